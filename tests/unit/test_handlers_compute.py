"""EC2 instances, EFS file systems and mount targets, and a VPC's tenancy, against the
emulated cloud: every property a handler says it emulates reaches the cloud (boto3 shows
it), changes there on an update or makes the plan replace, and what EC2 and EFS refuse
is refused before the emulator could accept it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from _handlers import create, handler_of
from phasegate.engines.base import Op
from phasegate.engines.sandbox.diff import _diff
from phasegate.engines.sandbox.emulator import Emulator, load_ami_catalogue
from phasegate.engines.sandbox.handlers import CloudContext, HandlerError
from phasegate.engines.sandbox.handlers.base import RunContext
from phasegate.engines.sandbox.runtime import Registration
from phasegate.engines.sandbox.store import ResourceState

REGION = "us-east-1"
ACCOUNT = "123456789012"

INSTANCE = "aws:ec2/instance:Instance"
FILE_SYSTEM = "aws:efs/fileSystem:FileSystem"
MOUNT_TARGET = "aws:efs/mountTarget:MountTarget"
VPC = "aws:ec2/vpc:Vpc"


# --- the emulated cloud -----------------------------------------------------------------


@pytest.fixture
def efs(ctx: CloudContext) -> Any:
    return ctx.client("efs")


@pytest.fixture
def vpc(ec2: Any) -> str:
    vpc_id: str = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    return vpc_id


def _subnet(ec2: Any, vpc: str, cidr: str, zone: str) -> str:
    found = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)
    subnet_id: str = found["Subnet"]["SubnetId"]
    return subnet_id


@pytest.fixture
def subnet(ec2: Any, vpc: str) -> str:
    return _subnet(ec2, vpc, "10.40.1.0/24", "us-east-1a")


@pytest.fixture
def subnet_b(ec2: Any, vpc: str) -> str:
    return _subnet(ec2, vpc, "10.40.2.0/24", "us-east-1b")


def _group(ec2: Any, vpc: str, name: str) -> str:
    group_id: str = ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc)[
        "GroupId"
    ]
    return group_id


@pytest.fixture
def groups(ec2: Any, vpc: str) -> tuple[str, str]:
    suffix = vpc[-6:]
    return _group(ec2, vpc, f"app-{suffix}"), _group(ec2, vpc, f"ops-{suffix}")


def _image(ec2: Any, architecture: str) -> str:
    load_ami_catalogue(ACCOUNT, REGION)
    images = ec2.describe_images(
        Owners=["amazon"],
        Filters=[
            {"Name": "name", "Values": ["al2023-ami-2023*"]},
            {"Name": "architecture", "Values": [architecture]},
        ],
    )["Images"]
    image_id: str = images[0]["ImageId"]
    return image_id


@pytest.fixture
def ami(ec2: Any) -> str:
    return _image(ec2, "x86_64")


@pytest.fixture
def profiles(ctx: CloudContext) -> tuple[str, str]:
    iam = ctx.client("iam")
    names = []
    for name in ("web", "batch"):
        profile = f"{name}-{len(iam.list_instance_profiles()['InstanceProfiles'])}"
        iam.create_instance_profile(InstanceProfileName=profile)
        names.append(profile)
    return names[0], names[1]


@pytest.fixture
def key_name(ec2: Any) -> str:
    name = f"deploy-{len(ec2.describe_key_pairs()['KeyPairs'])}"
    ec2.create_key_pair(KeyName=name)
    return name


def _update(ctx: CloudContext, token: str, id_: str, old: dict, new: dict, outputs: dict) -> dict:
    handler = handler_of(token)
    handler.validate(new)
    return handler.update(ctx, id_, old, new, outputs)


def _op(token: str, old: dict[str, Any], new: dict[str, Any]) -> Op:
    """What the plan does to a resource recorded with ``old`` and declared with ``new``."""
    urn = f"urn:pulumi:test::p::{token}::thing"
    state = ResourceState(
        urn=urn, type=token, name="thing", custom=True, id="x", inputs=old, outputs=dict(old)
    )
    reg = Registration(urn=urn, type=token, name="thing", custom=True, inputs=new)
    return _diff(handler_of(token), state, reg, RunContext()).op


# --- EC2 instances ---------------------------------------------------------------------


def _described(ec2: Any, instance_id: str) -> dict[str, Any]:
    found: dict[str, Any] = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0][
        "Instances"
    ][0]
    return found


def _groups(ec2: Any, instance_id: str) -> list[str]:
    """The instance's security groups: its primary network interface's, where EC2 has them."""
    (primary,) = [
        i
        for i in _described(ec2, instance_id)["NetworkInterfaces"]
        if i["Attachment"]["DeviceIndex"] == 0
    ]
    return sorted(g["GroupId"] for g in primary["Groups"])


def _attribute(ec2: Any, instance_id: str, name: str) -> Any:
    key = name[:1].upper() + name[1:]
    return ec2.describe_instance_attribute(InstanceId=instance_id, Attribute=name)[key]["Value"]


def _root_volume(ec2: Any, instance_id: str) -> dict[str, Any]:
    instance = _described(ec2, instance_id)
    (mapping,) = [
        m for m in instance["BlockDeviceMappings"] if m["DeviceName"] == instance["RootDeviceName"]
    ]
    volume: dict[str, Any] = ec2.describe_volumes(VolumeIds=[mapping["Ebs"]["VolumeId"]])[
        "Volumes"
    ][0]
    return volume


def _instance_inputs(ami: str, subnet: str, **extra: Any) -> dict[str, Any]:
    return {"ami": ami, "instanceType": "t3.micro", "subnetId": subnet, **extra}


def test_an_instance_carries_every_declared_property(
    ctx: CloudContext,
    ec2: Any,
    ami: str,
    subnet: str,
    groups: tuple[str, str],
    profiles: tuple[str, str],
    key_name: str,
) -> None:
    inputs = _instance_inputs(
        ami,
        subnet,
        instanceType="m5.large",
        availabilityZone="us-east-1a",
        vpcSecurityGroupIds=[groups[0]],
        iamInstanceProfile=profiles[0],
        keyName=key_name,
        userData="#!/bin/sh\necho hello\n",
        tags={"team": "ml", "Name": "trainer"},
        rootBlockDevice={"volumeSize": 40, "volumeType": "gp2"},
        metadataOptions={"httpTokens": "required", "httpPutResponseHopLimit": 2},
        associatePublicIpAddress=True,
        privateIp="10.40.1.20",
        disableApiTermination=True,
        instanceInitiatedShutdownBehavior="terminate",
        ebsOptimized=True,
    )
    instance_id, outputs = create(ctx, INSTANCE, inputs, "trainer")
    found = _described(ec2, instance_id)
    assert found["ImageId"] == ami
    assert found["InstanceType"] == "m5.large"
    assert found["SubnetId"] == subnet
    assert found["Placement"]["AvailabilityZone"] == "us-east-1a"
    assert _groups(ec2, instance_id) == [groups[0]]
    assert found["IamInstanceProfile"]["Arn"].endswith(f"instance-profile/{profiles[0]}")
    assert found["KeyName"] == key_name
    assert base64.b64decode(_attribute(ec2, instance_id, "userData")) == inputs["userData"].encode()
    assert {t["Key"]: t["Value"] for t in found["Tags"]} == inputs["tags"]
    volume = _root_volume(ec2, instance_id)
    assert (volume["Size"], volume["VolumeType"]) == (40, "gp2")
    assert found["MetadataOptions"]["HttpTokens"] == "required"
    assert found["MetadataOptions"]["HttpPutResponseHopLimit"] == 2
    assert found["PublicIpAddress"]
    assert found["PrivateIpAddress"] == "10.40.1.20"
    assert _attribute(ec2, instance_id, "disableApiTermination") is True
    assert _attribute(ec2, instance_id, "instanceInitiatedShutdownBehavior") == "terminate"
    assert found["EbsOptimized"] is True
    assert outputs["arn"] == f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{instance_id}"
    assert outputs["publicIp"] == found["PublicIpAddress"]
    assert outputs["primaryNetworkInterfaceId"].startswith("eni-")
    # Termination protection does not stop the provider's delete: it turns it off first.
    assert handler_of(INSTANCE).exists(ctx, instance_id, outputs)
    handler_of(INSTANCE).delete(ctx, instance_id, outputs)
    assert _described(ec2, instance_id)["State"]["Name"] == "terminated"
    assert not handler_of(INSTANCE).exists(ctx, instance_id, outputs)


def test_an_instance_updates_in_place_what_ec2_changes_in_place(
    ctx: CloudContext,
    ec2: Any,
    ami: str,
    subnet: str,
    groups: tuple[str, str],
    profiles: tuple[str, str],
) -> None:
    old = _instance_inputs(
        ami,
        subnet,
        vpcSecurityGroupIds=[groups[0]],
        iamInstanceProfile=profiles[0],
        userData="one",
        tags={"team": "ml", "stage": "dev"},
        rootBlockDevice={"volumeSize": 10, "volumeType": "gp2"},
        metadataOptions={"httpTokens": "optional"},
    )
    instance_id, outputs = create(ctx, INSTANCE, old)
    new = {
        **old,
        "instanceType": "c5.xlarge",
        "vpcSecurityGroupIds": [groups[1]],
        "iamInstanceProfile": profiles[1],
        "userData": "two",
        "tags": {"team": "platform"},
        "rootBlockDevice": {"volumeSize": 30, "volumeType": "gp3"},
        "metadataOptions": {"httpTokens": "required", "instanceMetadataTags": "enabled"},
        "disableApiTermination": True,
        "instanceInitiatedShutdownBehavior": "terminate",
        "ebsOptimized": True,
    }
    changed = set(new) - {"ami", "subnetId"}
    assert all(_op(INSTANCE, old, {**old, k: new[k]}) is Op.UPDATE for k in changed)
    outputs = _update(ctx, INSTANCE, instance_id, old, new, outputs)
    found = _described(ec2, instance_id)
    assert found["State"]["Name"] == "running"  # stopped for the change, started again
    assert found["InstanceType"] == "c5.xlarge"
    assert _groups(ec2, instance_id) == [groups[1]]
    assert [g["GroupId"] for g in found["SecurityGroups"]] == [groups[1]]
    assert found["IamInstanceProfile"]["Arn"].endswith(f"instance-profile/{profiles[1]}")
    assert base64.b64decode(_attribute(ec2, instance_id, "userData")) == b"two"
    assert {t["Key"]: t["Value"] for t in found["Tags"]} == {"team": "platform"}
    volume = _root_volume(ec2, instance_id)
    assert (volume["Size"], volume["VolumeType"]) == (30, "gp3")
    assert found["MetadataOptions"]["HttpTokens"] == "required"
    assert found["MetadataOptions"]["InstanceMetadataTags"] == "enabled"
    assert _attribute(ec2, instance_id, "disableApiTermination") is True
    assert _attribute(ec2, instance_id, "instanceInitiatedShutdownBehavior") == "terminate"
    assert found["EbsOptimized"] is True
    assert outputs["vpcSecurityGroupIds"] == [groups[1]]
    # A profile the program drops is let go of.
    without = {k: v for k, v in new.items() if k != "iamInstanceProfile"}
    outputs = _update(ctx, INSTANCE, instance_id, new, without, outputs)
    associations = ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [instance_id]}]
    )["IamInstanceProfileAssociations"]
    assert [a for a in associations if a["State"] == "associated"] == []
    handler_of(INSTANCE).delete(ctx, instance_id, outputs)


def test_user_data_in_base64_reaches_the_instance_as_its_bytes(
    ctx: CloudContext, ec2: Any, ami: str, subnet: str
) -> None:
    script = b"\x1f\x8b gzipped user data"
    inputs = _instance_inputs(ami, subnet, userDataBase64=base64.b64encode(script).decode())
    instance_id, outputs = create(ctx, INSTANCE, inputs)
    assert base64.b64decode(_attribute(ec2, instance_id, "userData")) == script
    handler_of(INSTANCE).delete(ctx, instance_id, outputs)


def test_an_encrypted_root_volume_uses_the_declared_key(
    ctx: CloudContext, ec2: Any, ami: str, subnet: str
) -> None:
    key_arn = ctx.client("kms").create_key()["KeyMetadata"]["Arn"]
    root = {"volumeSize": 12, "encrypted": True, "kmsKeyId": key_arn}
    instance_id, outputs = create(
        ctx, INSTANCE, _instance_inputs(ami, subnet, rootBlockDevice=root)
    )
    volume = _root_volume(ec2, instance_id)
    assert (volume["Encrypted"], volume["KmsKeyId"], volume["Size"]) == (True, key_arn, 12)
    handler_of(INSTANCE).delete(ctx, instance_id, outputs)


def test_an_instance_without_subnet_or_groups_gets_ec2s_defaults(
    ctx: CloudContext, ec2: Any, ami: str
) -> None:
    instance_id, outputs = create(
        ctx, INSTANCE, {"ami": ami, "instanceType": "t3.small", "availabilityZone": "us-east-1c"}
    )
    found = _described(ec2, instance_id)
    subnet = ec2.describe_subnets(SubnetIds=[found["SubnetId"]])["Subnets"][0]
    assert subnet["DefaultForAz"] and subnet["AvailabilityZone"] == "us-east-1c"
    default_group = ec2.describe_security_groups(
        Filters=[
            {"Name": "vpc-id", "Values": [subnet["VpcId"]]},
            {"Name": "group-name", "Values": ["default"]},
        ]
    )["SecurityGroups"][0]["GroupId"]
    assert _groups(ec2, instance_id) == [default_group]
    assert [g["GroupId"] for g in found["SecurityGroups"]] == [default_group]
    assert outputs["subnetId"] == found["SubnetId"]
    handler_of(INSTANCE).delete(ctx, instance_id, outputs)


@pytest.mark.parametrize(
    ("key", "old", "new"),
    [
        ("ami", "ami-1", "ami-2"),
        ("associatePublicIpAddress", False, True),
        ("availabilityZone", "us-east-1a", "us-east-1b"),
        ("keyName", "one", "two"),
        ("privateIp", "10.0.0.10", "10.0.0.11"),
        ("subnetId", "subnet-1", "subnet-2"),
        ("rootBlockDevice", {"encrypted": False}, {"encrypted": True}),
        (
            "rootBlockDevice",
            {"encrypted": True, "kmsKeyId": "k1"},
            {"encrypted": True, "kmsKeyId": "k2"},
        ),
    ],
)
def test_an_instance_is_replaced_for_what_ec2_cannot_change(key: str, old: Any, new: Any) -> None:
    base = {"ami": "ami-1", "instanceType": "t3.micro"}
    assert _op(INSTANCE, {**base, key: old}, {**base, key: new}) is Op.REPLACE


def test_an_instance_that_is_gone_does_not_exist(ctx: CloudContext) -> None:
    assert not handler_of(INSTANCE).exists(ctx, "i-0123456789abcdef0", {})


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        ({"instanceType": "t3.gigantic"}, "not an EC2 instance type"),
        ({"instanceType": "t2.micro", "ebsOptimized": True}, "cannot be EBS-optimized"),
        ({"userData": "a", "userDataBase64": "YQ=="}, "cannot both be set"),
        ({"userDataBase64": "not base64!"}, "not valid base64"),
        ({"userData": "x" * (16 * 1024 + 1)}, "at most 16 KB"),
        ({"instanceInitiatedShutdownBehavior": "hibernate"}, "is not stop or terminate"),
        ({"metadataOptions": {"httpTokens": "sometimes"}}, "httpTokens"),
        ({"metadataOptions": {"httpPutResponseHopLimit": 65}}, "outside 1-64"),
        ({"rootBlockDevice": {"iops": 3000}}, "does not emulate rootBlockDevice.iops"),
        ({"rootBlockDevice": {"tags": {"a": "b"}}}, "does not emulate rootBlockDevice.tags"),
        ({"rootBlockDevice": {"throughput": 0}}, "does not emulate rootBlockDevice.throughput"),
        ({"rootBlockDevice": {"volumeSize": 20000}}, "outside 1-16384"),
        ({"rootBlockDevice": {"volumeType": "gp9"}}, "volumeType 'gp9'"),
        ({"rootBlockDevice": {"volumeType": "io2"}}, "needs iops"),
        ({"rootBlockDevice": {"volumeType": "st1", "volumeSize": 500}}, "cannot be a boot"),
        ({"rootBlockDevice": {"kmsKeyId": "k"}}, "needs encrypted"),
        ({"privateIp": "10.0.0.300"}, "not an IPv4 address"),
    ],
)
def test_an_instance_ec2_refuses_is_refused(inputs: dict[str, Any], match: str) -> None:
    with pytest.raises(HandlerError, match=match):
        handler_of(INSTANCE).validate({"ami": "ami-1", "instanceType": "t3.micro", **inputs})


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        ({"ami": "ami-0000000000000dead"}, "does not exist"),
        ({"instanceType": "t4g.micro"}, "is x86_64; instanceType t4g.micro runs arm64"),
        ({"keyName": "nobody-has-this"}, "key pair 'nobody-has-this' does not exist"),
        ({"privateIp": "10.40.9.9"}, "not an address of subnet"),
        ({"privateIp": "10.40.1.1"}, "not an address of subnet"),
        ({"availabilityZone": "us-east-1b"}, "not the zone of subnet"),
        ({"iamInstanceProfile": "no-such-profile"}, "cannot launch"),
        ({"subnetId": "subnet-00000000000000000"}, "does not exist"),
    ],
)
def test_a_launch_ec2_refuses_is_refused_before_anything_runs(
    ctx: CloudContext, ec2: Any, ami: str, subnet: str, inputs: dict[str, Any], match: str
) -> None:
    before = len(ec2.describe_instances()["Reservations"])
    with pytest.raises(HandlerError, match=match):
        create(ctx, INSTANCE, {**_instance_inputs(ami, subnet), **inputs})
    assert len(ec2.describe_instances()["Reservations"]) == before


def test_an_arm64_image_runs_on_a_graviton_type(ctx: CloudContext, ec2: Any, subnet: str) -> None:
    arm = _image(ec2, "arm64")
    instance_id, outputs = create(
        ctx, INSTANCE, {"ami": arm, "instanceType": "t4g.micro", "subnetId": subnet}
    )
    assert _described(ec2, instance_id)["Architecture"] == "arm64"
    with pytest.raises(HandlerError, match="runs x86_64"):
        _update(
            ctx,
            INSTANCE,
            instance_id,
            {"ami": arm, "instanceType": "t4g.micro", "subnetId": subnet},
            {"ami": arm, "instanceType": "t3.micro", "subnetId": subnet},
            outputs,
        )
    handler_of(INSTANCE).delete(ctx, instance_id, outputs)


def test_a_root_volume_kept_after_the_instance_and_then_not(
    ctx: CloudContext, ec2: Any, ami: str, subnet: str
) -> None:
    old = _instance_inputs(ami, subnet, rootBlockDevice={"deleteOnTermination": False})
    instance_id, outputs = create(ctx, INSTANCE, old)
    instance = _described(ec2, instance_id)

    def deleted_with() -> bool:
        (root,) = [
            m
            for m in _described(ec2, instance_id)["BlockDeviceMappings"]
            if m["DeviceName"] == instance["RootDeviceName"]
        ]
        return bool(root["Ebs"]["DeleteOnTermination"])

    assert deleted_with() is False
    new = {**old, "rootBlockDevice": {"deleteOnTermination": True}}
    assert _op(INSTANCE, old, new) is Op.UPDATE
    outputs = _update(ctx, INSTANCE, instance_id, old, new, outputs)
    assert deleted_with() is True
    _update(ctx, INSTANCE, instance_id, new, old, outputs)
    volume_id = _root_volume(ec2, instance_id)["VolumeId"]
    handler_of(INSTANCE).delete(ctx, instance_id, outputs)
    # Kept, as EC2 keeps it: the instance is gone, its root volume is not.
    assert ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"] == "available"
    ec2.delete_volume(VolumeId=volume_id)


def test_a_root_volume_only_grows(ctx: CloudContext, ami: str, subnet: str) -> None:
    old = _instance_inputs(ami, subnet, rootBlockDevice={"volumeSize": 30})
    instance_id, outputs = create(ctx, INSTANCE, old)
    new = {**old, "rootBlockDevice": {"volumeSize": 20}}
    with pytest.raises(HandlerError, match="only grows"):
        _update(ctx, INSTANCE, instance_id, old, new, outputs)
    handler_of(INSTANCE).delete(ctx, instance_id, outputs)


def test_a_launch_template_of_an_instance_type_ec2_does_not_offer_is_refused() -> None:
    template = handler_of("aws:ec2/launchTemplate:LaunchTemplate")
    with pytest.raises(HandlerError, match=r"'g5\.huge' is not an EC2 instance type"):
        template.validate({"name": "gpu-pool", "instanceType": "g5.huge"})
    template.validate({"name": "gpu-pool", "instanceType": "g5.xlarge"})


# --- a VPC's tenancy -------------------------------------------------------------------


def test_a_vpcs_tenancy_reaches_ec2_and_goes_back_to_default_in_place(
    ctx: CloudContext, ec2: Any
) -> None:
    old = {"cidrBlock": "10.50.0.0/16", "instanceTenancy": "dedicated"}
    vpc_id, outputs = create(ctx, VPC, old)
    assert ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]["InstanceTenancy"] == "dedicated"
    new = {**old, "instanceTenancy": "default"}
    assert _op(VPC, old, new) is Op.UPDATE
    assert _op(VPC, old, {"cidrBlock": "10.50.0.0/16"}) is Op.UPDATE  # default, left out
    _update(ctx, VPC, vpc_id, old, new, outputs)
    assert ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]["InstanceTenancy"] == "default"
    handler_of(VPC).delete(ctx, vpc_id, outputs)


def test_a_vpc_made_dedicated_is_a_new_vpc() -> None:
    assert (
        _op(
            VPC,
            {"cidrBlock": "10.0.0.0/16"},
            {"cidrBlock": "10.0.0.0/16", "instanceTenancy": "dedicated"},
        )
        is Op.REPLACE
    )
    assert (
        _op(
            VPC,
            {"cidrBlock": "10.0.0.0/16", "instanceTenancy": "default"},
            {"cidrBlock": "10.0.0.0/16", "instanceTenancy": "dedicated"},
        )
        is Op.REPLACE
    )


def test_a_vpc_tenancy_ec2_does_not_offer_is_refused() -> None:
    with pytest.raises(HandlerError, match="not default or dedicated"):
        handler_of(VPC).validate({"cidrBlock": "10.0.0.0/16", "instanceTenancy": "host"})


# --- EFS -------------------------------------------------------------------------------


def _file_system(efs: Any, fs_id: str) -> dict[str, Any]:
    found: dict[str, Any] = efs.describe_file_systems(FileSystemId=fs_id)["FileSystems"][0]
    return found


def _efs_tags(efs: Any, fs_id: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in efs.list_tags_for_resource(ResourceId=fs_id)["Tags"]}


def test_a_file_system_carries_every_declared_property(ctx: CloudContext, efs: Any) -> None:
    key_arn = ctx.client("kms").create_key()["KeyMetadata"]["Arn"]
    inputs = {
        "creationToken": "shared-models",
        "encrypted": True,
        "kmsKeyId": key_arn,
        "performanceMode": "maxIO",
        "throughputMode": "provisioned",
        "provisionedThroughputInMibps": 256,
        "lifecyclePolicies": [
            {"transitionToIa": "AFTER_30_DAYS"},
            {"transitionToPrimaryStorageClass": "AFTER_1_ACCESS"},
        ],
        "tags": {"Name": "models", "team": "ml"},
    }
    fs_id, outputs = create(ctx, FILE_SYSTEM, inputs, "models")
    found = _file_system(efs, fs_id)
    assert found["CreationToken"] == "shared-models"
    assert (found["Encrypted"], found["KmsKeyId"]) == (True, key_arn)
    assert found["PerformanceMode"] == "maxIO"
    assert (found["ThroughputMode"], found["ProvisionedThroughputInMibps"]) == ("provisioned", 256)
    assert efs.describe_lifecycle_configuration(FileSystemId=fs_id)["LifecyclePolicies"] == [
        {"TransitionToIA": "AFTER_30_DAYS"},
        {"TransitionToPrimaryStorageClass": "AFTER_1_ACCESS"},
    ]
    assert _efs_tags(efs, fs_id) == inputs["tags"]
    assert outputs["arn"] == found["FileSystemArn"]
    assert outputs["dnsName"] == f"{fs_id}.efs.{REGION}.amazonaws.com"
    assert outputs["name"] == "models"
    assert handler_of(FILE_SYSTEM).exists(ctx, fs_id, outputs)
    handler_of(FILE_SYSTEM).delete(ctx, fs_id, outputs)
    assert not handler_of(FILE_SYSTEM).exists(ctx, fs_id, outputs)


def test_a_one_zone_file_system_sits_in_its_zone(ctx: CloudContext, efs: Any) -> None:
    fs_id, outputs = create(ctx, FILE_SYSTEM, {"availabilityZoneName": "us-east-1b"})
    found = _file_system(efs, fs_id)
    assert found["AvailabilityZoneName"] == "us-east-1b"
    assert found["CreationToken"] == outputs["creationToken"]  # auto-named
    assert outputs["availabilityZoneId"] == found["AvailabilityZoneId"]
    handler_of(FILE_SYSTEM).delete(ctx, fs_id, outputs)


def test_a_file_systems_throughput_lifecycle_and_tags_change_in_place(
    ctx: CloudContext, efs: Any
) -> None:
    old = {
        "throughputMode": "bursting",
        "lifecyclePolicies": [{"transitionToIa": "AFTER_7_DAYS"}],
        "tags": {"team": "ml", "stage": "dev"},
    }
    fs_id, outputs = create(ctx, FILE_SYSTEM, old)
    new = {
        "throughputMode": "provisioned",
        "provisionedThroughputInMibps": 64,
        "lifecyclePolicies": [{"transitionToIa": "AFTER_90_DAYS"}],
        "tags": {"team": "platform"},
    }
    for key in new:
        assert _op(FILE_SYSTEM, old, {**old, key: new[key]}) is Op.UPDATE, key
    outputs = _update(ctx, FILE_SYSTEM, fs_id, old, new, outputs)
    found = _file_system(efs, fs_id)
    assert (found["ThroughputMode"], found["ProvisionedThroughputInMibps"]) == ("provisioned", 64)
    assert efs.describe_lifecycle_configuration(FileSystemId=fs_id)["LifecyclePolicies"] == [
        {"TransitionToIA": "AFTER_90_DAYS"}
    ]
    assert _efs_tags(efs, fs_id) == {"team": "platform"}
    newer = {"throughputMode": "elastic", "tags": {"team": "platform"}}
    _update(ctx, FILE_SYSTEM, fs_id, new, newer, outputs)
    found = _file_system(efs, fs_id)
    assert found["ThroughputMode"] == "elastic" and not found.get("ProvisionedThroughputInMibps")
    assert efs.describe_lifecycle_configuration(FileSystemId=fs_id)["LifecyclePolicies"] == []
    handler_of(FILE_SYSTEM).delete(ctx, fs_id, outputs)


@pytest.mark.parametrize(
    ("key", "old", "new"),
    [
        ("creationToken", "a", "b"),
        ("encrypted", False, True),
        ("kmsKeyId", "k1", "k2"),
        ("performanceMode", "generalPurpose", "maxIO"),
        ("availabilityZoneName", "us-east-1a", "us-east-1b"),
    ],
)
def test_a_file_system_is_replaced_for_what_efs_cannot_change(key: str, old: Any, new: Any) -> None:
    assert _op(FILE_SYSTEM, {key: old}, {key: new}) is Op.REPLACE


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        ({"creationToken": "x" * 65}, "1-64 characters"),
        ({"performanceMode": "fast"}, "not generalPurpose or maxIO"),
        ({"throughputMode": "turbo"}, "not one of bursting"),
        ({"throughputMode": "provisioned"}, "needs provisionedThroughputInMibps"),
        ({"provisionedThroughputInMibps": 100}, "needs throughputMode provisioned"),
        (
            {"throughputMode": "provisioned", "provisionedThroughputInMibps": 5000},
            "outside 1-3414",
        ),
        ({"performanceMode": "maxIO", "throughputMode": "elastic"}, "needs performanceMode"),
        ({"performanceMode": "maxIO", "availabilityZoneName": "us-east-1a"}, "One Zone"),
        ({"kmsKeyId": "k"}, "needs encrypted true"),
        ({"lifecyclePolicies": [{"transitionToIa": "AFTER_2_DAYS"}]}, "is not one of"),
        ({"lifecyclePolicies": [{}]}, "exactly one of"),
        (
            {"lifecyclePolicies": [{"transitionToIa": "AFTER_1_DAY"}] * 2},
            "more than once",
        ),
        (
            {"lifecyclePolicies": [{"transitionToArchive": "AFTER_90_DAYS"}]},
            "needs throughputMode elastic",
        ),
    ],
)
def test_a_file_system_efs_refuses_is_refused(inputs: dict[str, Any], match: str) -> None:
    with pytest.raises(HandlerError, match=match):
        handler_of(FILE_SYSTEM).validate(inputs)


def test_mount_targets_in_two_zones_with_their_groups(
    ctx: CloudContext,
    ec2: Any,
    efs: Any,
    subnet: str,
    subnet_b: str,
    groups: tuple[str, str],
) -> None:
    fs_id, fs_outputs = create(ctx, FILE_SYSTEM, {"encrypted": True})
    first = {"fileSystemId": fs_id, "subnetId": subnet, "securityGroups": [groups[0]]}
    second = {"fileSystemId": fs_id, "subnetId": subnet_b, "ipAddress": "10.40.2.50"}
    one, one_outputs = create(ctx, MOUNT_TARGET, first)
    two, two_outputs = create(ctx, MOUNT_TARGET, second)
    targets = {
        t["MountTargetId"]: t
        for t in efs.describe_mount_targets(FileSystemId=fs_id)["MountTargets"]
    }
    assert targets[one]["SubnetId"] == subnet and targets[two]["SubnetId"] == subnet_b
    assert targets[two]["IpAddress"] == "10.40.2.50"
    assert efs.describe_mount_target_security_groups(MountTargetId=one)["SecurityGroups"] == [
        groups[0]
    ]
    # None named: the VPC's default group, as EFS gives it.
    (default,) = two_outputs["securityGroups"]
    assert ec2.describe_security_groups(GroupIds=[default])["SecurityGroups"][0]["GroupName"] == (
        "default"
    )
    assert one_outputs["availabilityZoneName"] == "us-east-1a"
    assert one_outputs["mountTargetDnsName"] == f"us-east-1a.{fs_id}.efs.{REGION}.amazonaws.com"
    assert one_outputs["networkInterfaceId"].startswith("eni-")
    # An update moves the groups in place; a move to another subnet is a new mount target.
    changed = {**first, "securityGroups": list(groups)}
    assert _op(MOUNT_TARGET, first, changed) is Op.UPDATE
    for key, value in (
        ("subnetId", subnet_b),
        ("fileSystemId", "fs-2"),
        ("ipAddress", "10.40.1.9"),
    ):
        assert _op(MOUNT_TARGET, first, {**first, key: value}) is Op.REPLACE, key
    _update(ctx, MOUNT_TARGET, one, first, changed, one_outputs)
    assert sorted(
        efs.describe_mount_target_security_groups(MountTargetId=one)["SecurityGroups"]
    ) == sorted(groups)
    # EFS keeps a file system with mount targets.
    with pytest.raises(HandlerError, match="mount targets"):
        handler_of(FILE_SYSTEM).delete(ctx, fs_id, fs_outputs)
    for target_id, outputs in ((one, one_outputs), (two, two_outputs)):
        assert handler_of(MOUNT_TARGET).exists(ctx, target_id, outputs)
        handler_of(MOUNT_TARGET).delete(ctx, target_id, outputs)
        assert not handler_of(MOUNT_TARGET).exists(ctx, target_id, outputs)
    handler_of(FILE_SYSTEM).delete(ctx, fs_id, fs_outputs)


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"securityGroups": ["sg-1", "sg-2", "sg-3", "sg-4", "sg-5", "sg-6"]}, "at most 5"),
        ({"ipAddress": "10.40.1"}, "not an IPv4 address"),
    ],
)
def test_a_mount_target_efs_refuses_is_refused(extra: dict[str, Any], match: str) -> None:
    with pytest.raises(HandlerError, match=match):
        handler_of(MOUNT_TARGET).validate({"fileSystemId": "fs-1", "subnetId": "subnet-1", **extra})


def test_a_mount_target_with_a_group_of_another_vpc_is_refused(
    ctx: CloudContext, ec2: Any, subnet: str
) -> None:
    other_vpc = ec2.create_vpc(CidrBlock="10.60.0.0/16")["Vpc"]["VpcId"]
    elsewhere = _group(ec2, other_vpc, "elsewhere")
    fs_id, fs_outputs = create(ctx, FILE_SYSTEM, {})
    with pytest.raises(HandlerError, match="not in the subnet's VPC"):
        create(
            ctx,
            MOUNT_TARGET,
            {"fileSystemId": fs_id, "subnetId": subnet, "securityGroups": [elsewhere]},
        )
    handler_of(FILE_SYSTEM).delete(ctx, fs_id, fs_outputs)


# --- the emulated cloud is saved and loaded with them ----------------------------------


def test_instances_file_systems_and_mount_targets_survive_a_dump_and_load(
    emu: Emulator, ctx: CloudContext, ec2: Any, efs: Any, ami: str, subnet: str
) -> None:
    instance_id, instance_outputs = create(ctx, INSTANCE, _instance_inputs(ami, subnet))
    fs_id, fs_outputs = create(ctx, FILE_SYSTEM, {"tags": {"team": "ml"}})
    target_id, target_outputs = create(
        ctx, MOUNT_TARGET, {"fileSystemId": fs_id, "subnetId": subnet}
    )
    dump = emu.dump()
    emu.reset()
    assert not handler_of(FILE_SYSTEM).exists(ctx, fs_id, fs_outputs)
    emu.load(dump)
    assert handler_of(INSTANCE).exists(ctx, instance_id, instance_outputs)
    assert handler_of(FILE_SYSTEM).exists(ctx, fs_id, fs_outputs)
    assert handler_of(MOUNT_TARGET).exists(ctx, target_id, target_outputs)
    assert _efs_tags(efs, fs_id) == {"team": "ml"}
    (target,) = efs.describe_mount_targets(FileSystemId=fs_id)["MountTargets"]
    # The mount target's interface is the very one EC2 has after the load.
    interface = ec2.describe_network_interfaces(NetworkInterfaceIds=[target["NetworkInterfaceId"]])[
        "NetworkInterfaces"
    ][0]
    assert interface["SubnetId"] == subnet
    # The public AMIs loaded for the launch are in the cloud still.
    assert ec2.describe_images(ImageIds=[ami])["Images"]
    handler_of(MOUNT_TARGET).delete(ctx, target_id, target_outputs)
    handler_of(FILE_SYSTEM).delete(ctx, fs_id, fs_outputs)
    handler_of(INSTANCE).delete(ctx, instance_id, instance_outputs)
    assert json.dumps(efs.describe_file_systems()["FileSystems"], default=str) == "[]"
