"""EFS: an encrypted file system with mount targets in two subnets of a VPC, its
throughput and lifecycle changed in place, one mount target moved to a fixed address
(a new mount target)."""

from __future__ import annotations

from typing import Any

MAIN = """
import pulumi
import pulumi_aws as aws

stage = pulumi.Config("corpus").get_int("stage") or 1

network = aws.ec2.Vpc("files", cidr_block="10.81.0.0/16")
zone_a = aws.ec2.Subnet(
    "files-a", vpc_id=network.id, cidr_block="10.81.1.0/24", availability_zone="us-east-1a"
)
zone_b = aws.ec2.Subnet(
    "files-b", vpc_id=network.id, cidr_block="10.81.2.0/24", availability_zone="us-east-1b"
)
nfs = aws.ec2.SecurityGroup(
    "nfs",
    vpc_id=network.id,
    description="NFS from the VPC",
    ingress=[
        {"protocol": "tcp", "from_port": 2049, "to_port": 2049, "cidr_blocks": ["10.81.0.0/16"]}
    ],
)
admin = aws.ec2.SecurityGroup("nfs-admin", vpc_id=network.id, description="NFS admin hosts")

shared = aws.efs.FileSystem(
    "shared",
    encrypted=True,
    performance_mode="generalPurpose",
    throughput_mode="bursting" if stage == 1 else "provisioned",
    provisioned_throughput_in_mibps=None if stage == 1 else 64,
    lifecycle_policies=[{"transition_to_ia": "AFTER_30_DAYS"}]
    if stage == 1
    else [
        {"transition_to_ia": "AFTER_60_DAYS"},
        {"transition_to_primary_storage_class": "AFTER_1_ACCESS"},
    ],
    tags={"Name": "shared", "stage": str(stage)},
)

mount_a = aws.efs.MountTarget(
    "shared-a",
    file_system_id=shared.id,
    subnet_id=zone_a.id,
    security_groups=[nfs.id] if stage == 1 else [nfs.id, admin.id],
)
# EFS takes one mount target per zone: the new one can only come once the old is gone.
mount_b = aws.efs.MountTarget(
    "shared-b",
    file_system_id=shared.id,
    subnet_id=zone_b.id,
    security_groups=[nfs.id],
    ip_address=None if stage == 1 else "10.81.2.100",
    opts=pulumi.ResourceOptions(delete_before_replace=True),
)

pulumi.export("file_system_id", shared.id)
pulumi.export("vpc_id", network.id)
pulumi.export("subnets", [zone_a.id, zone_b.id])
pulumi.export("groups", {"nfs": nfs.id, "admin": admin.id})
pulumi.export("mount_targets", [mount_a.id, mount_b.id])
"""


def check(aws: Any, outputs: dict[str, Any], stage: int) -> None:
    """After the apply of ``stage``: boto3 finds exactly the declared properties."""
    efs = aws("efs")
    fs_id = outputs["file_system_id"]
    (found,) = efs.describe_file_systems(FileSystemId=fs_id)["FileSystems"]
    assert found["Encrypted"] is True
    assert found["PerformanceMode"] == "generalPurpose"
    if stage == 1:
        assert found["ThroughputMode"] == "bursting"
        assert not found.get("ProvisionedThroughputInMibps")
    else:
        assert (found["ThroughputMode"], found["ProvisionedThroughputInMibps"]) == (
            "provisioned",
            64,
        )
    policies = efs.describe_lifecycle_configuration(FileSystemId=fs_id)["LifecyclePolicies"]
    assert policies == (
        [{"TransitionToIA": "AFTER_30_DAYS"}]
        if stage == 1
        else [
            {"TransitionToIA": "AFTER_60_DAYS"},
            {"TransitionToPrimaryStorageClass": "AFTER_1_ACCESS"},
        ]
    )
    tags = {t["Key"]: t["Value"] for t in efs.list_tags_for_resource(ResourceId=fs_id)["Tags"]}
    assert tags == {"Name": "shared", "stage": str(stage)}
    targets = {
        t["MountTargetId"]: t
        for t in efs.describe_mount_targets(FileSystemId=fs_id)["MountTargets"]
    }
    assert sorted(targets) == sorted(outputs["mount_targets"])
    target_a, target_b = (targets[i] for i in outputs["mount_targets"])
    assert [target_a["SubnetId"], target_b["SubnetId"]] == outputs["subnets"]
    assert (target_a["AvailabilityZoneName"], target_b["AvailabilityZoneName"]) == (
        "us-east-1a",
        "us-east-1b",
    )
    groups = outputs["groups"]
    wanted_a = [groups["nfs"]] if stage == 1 else [groups["nfs"], groups["admin"]]
    for target, wanted in ((target_a, wanted_a), (target_b, [groups["nfs"]])):
        held = efs.describe_mount_target_security_groups(MountTargetId=target["MountTargetId"])
        assert sorted(held["SecurityGroups"]) == sorted(wanted)
    if stage == 2:
        assert target_b["IpAddress"] == "10.81.2.100"


def gone(aws: Any, outputs: dict[str, Any]) -> None:
    """After destroy: nothing the program declared is left (the outputs of stage 2)."""
    efs, ec2 = aws("efs"), aws("ec2")
    assert outputs["file_system_id"] not in {
        f["FileSystemId"] for f in efs.describe_file_systems()["FileSystems"]
    }
    assert not ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [outputs["vpc_id"]]}])[
        "Vpcs"
    ]
    subnets = ec2.describe_subnets(Filters=[{"Name": "subnet-id", "Values": outputs["subnets"]}])
    assert not subnets["Subnets"]
    interfaces = ec2.describe_network_interfaces(
        Filters=[{"Name": "subnet-id", "Values": outputs["subnets"]}]
    )
    assert not interfaces["NetworkInterfaces"]
