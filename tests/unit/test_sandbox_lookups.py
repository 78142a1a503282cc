"""Provider functions that read the emulated cloud: AMIs, VPCs, subnets, security groups
and hosted zones, found as the aws provider finds them, on a plan before any apply too.
"""

from __future__ import annotations

import threading
import types
from pathlib import Path
from typing import Any, cast

import pytest

from phasegate.engines.base import StackTarget
from phasegate.engines.sandbox.deployment import _Deployment
from phasegate.engines.sandbox.emulator import Emulator, load_ami_catalogue
from phasegate.engines.sandbox.handlers import CloudContext
from phasegate.engines.sandbox.lookups import lookup, reads_cloud
from phasegate.engines.sandbox.runtime import ProgramFailed
from phasegate.engines.sandbox.store import SandboxStore

REGION = "us-east-1"
ACCOUNT = "123456789012"
AMI = "aws:ec2/getAmi:getAmi"
GET_VPC = "aws:ec2/getVpc:getVpc"
GET_SUBNET = "aws:ec2/getSubnet:getSubnet"
GET_SUBNETS = "aws:ec2/getSubnets:getSubnets"
GET_GROUP = "aws:ec2/getSecurityGroup:getSecurityGroup"
GET_ZONE = "aws:route53/getZone:getZone"
OFFERINGS = "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings"


@pytest.fixture
def network(ec2: Any) -> dict[str, str]:
    """A tagged VPC with two tagged subnets and a security group, each test its own."""
    count = len(ec2.describe_vpcs()["Vpcs"])
    tag = f"net-{count}"
    cidr = f"10.{100 + count}.0.0/16"
    vpc = ec2.create_vpc(
        CidrBlock=cidr,
        TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": tag}]}],
    )["Vpc"]["VpcId"]
    subnets = []
    for i, zone in enumerate(("us-east-1a", "us-east-1b")):
        subnets.append(
            ec2.create_subnet(
                VpcId=vpc,
                CidrBlock=cidr.replace(".0.0/16", f".{i}.0/24"),
                AvailabilityZone=zone,
                TagSpecifications=[
                    {"ResourceType": "subnet", "Tags": [{"Key": "tier", "Value": f"{tag}-app"}]}
                ],
            )["Subnet"]["SubnetId"]
        )
    group = ec2.create_security_group(GroupName="app", Description="app tier", VpcId=vpc)
    return {
        "tag": tag,
        "cidr": cidr,
        "vpc": vpc,
        "a": subnets[0],
        "b": subnets[1],
        "group": group["GroupId"],
    }


def test_the_lookups_are_the_cloud_reading_functions() -> None:
    for token in (AMI, GET_VPC, GET_SUBNET, GET_SUBNETS, GET_GROUP, GET_ZONE, OFFERINGS):
        assert reads_cloud(token)
    assert not reads_cloud("aws:index/getRegion:getRegion")


# --- AMIs ------------------------------------------------------------------------------


def test_the_newest_amazon_linux_image_of_an_architecture(ctx: CloudContext) -> None:
    found = lookup(
        AMI,
        {
            "owners": ["amazon"],
            "mostRecent": True,
            "filters": [
                {"name": "name", "values": ["al2023-ami-2023.*"]},
                {"name": "architecture", "values": ["arm64"]},
                {"name": "virtualization-type", "values": ["hvm"]},
            ],
        },
        ctx,
    )
    images = ctx.client("ec2").describe_images(Owners=["amazon"])["Images"]
    candidates = [
        i
        for i in images
        if i["Name"].startswith("al2023-ami-2023.") and i["Architecture"] == "arm64"
    ]
    assert len(candidates) > 1
    # Images of one build date: the provider's "most recent" takes any of them (the
    # sandbox, the last by id).
    newest = max(candidates, key=lambda i: (i["CreationDate"], i["ImageId"]))
    assert newest["CreationDate"].startswith("2026-11-02")
    assert found["id"] == found["imageId"] == newest["ImageId"]
    assert (found["architecture"], found["virtualizationType"]) == ("arm64", "hvm")
    assert found["arn"] == f"arn:aws:ec2:{REGION}::image/{newest['ImageId']}"
    assert found["rootDeviceName"] and found["blockDeviceMappings"][0]["ebs"]["volume_size"]


def test_the_public_images_come_into_a_region_when_a_lookup_needs_them(emu: Emulator) -> None:
    west = CloudContext(
        session=emu.session(), region="us-west-2", account_id=ACCOUNT, make_client=emu.client
    )
    images = west.client("ec2").describe_images
    assert images(Owners=["amazon"])["Images"] == []  # the emulator starts without them
    found = lookup(AMI, {"owners": ["amazon"], "mostRecent": True}, west)
    catalogue = images(Owners=["amazon"])["Images"]
    assert found["id"] in {i["ImageId"] for i in catalogue}
    assert len(catalogue) == load_ami_catalogue(ACCOUNT, "us-west-2")  # once only
    assert {i["OwnerId"] for i in catalogue} >= {"137112412989", "099720109477"}


def test_a_name_regex_narrows_the_images(ctx: CloudContext) -> None:
    found = lookup(
        AMI,
        {
            "owners": ["amazon"],
            "mostRecent": True,
            "nameRegex": r"^amzn2-ami-kernel-5\.10-hvm-.*-x86_64-gp2$",
        },
        ctx,
    )
    assert found["name"].startswith("amzn2-ami-kernel-5.10-hvm-")
    assert found["architecture"] == "x86_64"


def test_several_images_without_most_recent_fail_as_with_the_provider(ctx: CloudContext) -> None:
    with pytest.raises(ValueError, match="set most_recent to true"):
        lookup(
            AMI, {"owners": ["amazon"], "filters": [{"name": "name", "values": ["al2023*"]}]}, ctx
        )


def test_no_image_found_names_the_search(ctx: CloudContext) -> None:
    with pytest.raises(ValueError, match=r"no matching AMI found \(.*nameRegex='\^nothing'"):
        lookup(AMI, {"owners": ["amazon"], "mostRecent": True, "nameRegex": "^nothing"}, ctx)


def test_an_ami_argument_the_sandbox_cannot_honour_is_refused(ctx: CloudContext) -> None:
    with pytest.raises(ValueError, match="does not answer executableUsers"):
        lookup(AMI, {"owners": ["amazon"], "executableUsers": ["self"]}, ctx)


# --- VPCs, subnets, security groups ----------------------------------------------------


def test_the_default_vpc_and_a_vpc_by_tag_id_or_cidr(
    ctx: CloudContext, ec2: Any, network: dict[str, str]
) -> None:
    default = lookup(GET_VPC, {"default": True}, ctx)
    (expected,) = [v for v in ec2.describe_vpcs()["Vpcs"] if v["IsDefault"]]
    assert default["id"] == expected["VpcId"] and default["default"] is True
    assert default["cidrBlock"] == "172.31.0.0/16"
    for args in (
        {"tags": {"Name": network["tag"]}},
        {"id": network["vpc"]},
        {"cidrBlock": network["cidr"]},
        {"filters": [{"name": "tag:Name", "values": [network["tag"]]}]},
    ):
        found = lookup(GET_VPC, args, ctx)
        assert found["id"] == network["vpc"], args
    assert found["tags"] == {"Name": network["tag"]}
    assert found["default"] is False and found["enableDnsSupport"] is True
    assert found["mainRouteTableId"].startswith("rtb-")


def test_no_vpc_or_several_fail_the_lookup(ctx: CloudContext, network: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"no matching EC2 VPC found \(tags=\{'Name': 'nope'\}\)"):
        lookup(GET_VPC, {"tags": {"Name": "nope"}}, ctx)
    with pytest.raises(ValueError, match="multiple EC2 VPCs matched"):
        lookup(GET_VPC, {"state": "available"}, ctx)


def test_a_subnet_by_vpc_and_zone_and_the_subnets_of_a_vpc(
    ctx: CloudContext, network: dict[str, str]
) -> None:
    found = lookup(GET_SUBNET, {"vpcId": network["vpc"], "availabilityZone": "us-east-1b"}, ctx)
    assert found["id"] == network["b"]
    assert found["vpcId"] == network["vpc"] and found["tags"] == {"tier": f"{network['tag']}-app"}
    assert lookup(GET_SUBNET, {"id": network["a"]}, ctx)["availabilityZone"] == "us-east-1a"
    default = lookup(GET_SUBNET, {"defaultForAz": True, "availabilityZone": "us-east-1c"}, ctx)
    assert default["defaultForAz"] is True and default["cidrBlock"].startswith("172.31.")
    listed = lookup(GET_SUBNETS, {"filters": [{"name": "vpc-id", "values": [network["vpc"]]}]}, ctx)
    assert sorted(listed["ids"]) == sorted([network["a"], network["b"]])
    tagged = lookup(GET_SUBNETS, {"tags": {"tier": f"{network['tag']}-app"}}, ctx)
    assert sorted(tagged["ids"]) == sorted(listed["ids"])
    # Subnets finds none without failing, as the provider's does; subnet must find one.
    assert lookup(GET_SUBNETS, {"tags": {"tier": "none"}}, ctx)["ids"] == []
    with pytest.raises(ValueError, match="multiple EC2 Subnets matched"):
        lookup(GET_SUBNET, {"vpcId": network["vpc"]}, ctx)
    with pytest.raises(ValueError, match="no matching EC2 Subnet found"):
        lookup(GET_SUBNET, {"vpcId": network["vpc"], "availabilityZone": "us-east-1f"}, ctx)


def test_a_security_group_by_name_in_a_vpc_or_by_id(
    ctx: CloudContext, network: dict[str, str], ec2: Any
) -> None:
    elsewhere = ec2.create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    ec2.create_security_group(GroupName="app", Description="app tier", VpcId=elsewhere)
    found = lookup(GET_GROUP, {"name": "app", "vpcId": network["vpc"]}, ctx)
    assert found["id"] == network["group"]
    assert (found["description"], found["vpcId"]) == ("app tier", network["vpc"])
    assert lookup(GET_GROUP, {"id": network["group"]}, ctx)["name"] == "app"
    with pytest.raises(ValueError, match="multiple EC2 Security Groups matched"):
        lookup(GET_GROUP, {"name": "app"}, ctx)  # in two networks at least
    with pytest.raises(ValueError, match="no matching EC2 Security Group found"):
        lookup(GET_GROUP, {"name": "db", "vpcId": network["vpc"]}, ctx)


def test_what_a_lookup_cannot_honour_is_refused_by_argument(ctx: CloudContext) -> None:
    with pytest.raises(ValueError, match="does not answer ipv6CidrBlock"):
        lookup(GET_SUBNET, {"ipv6CidrBlock": "::/64"}, ctx)
    with pytest.raises(ValueError, match="does not answer vpcId"):
        lookup(GET_ZONE, {"name": "corp.example.com", "vpcId": "vpc-1"}, ctx)


# --- instance type offerings ----------------------------------------------------------


def test_instance_type_offerings_are_found_per_zone(ctx: CloudContext) -> None:
    from phasegate.engines.sandbox.zone_offerings import hold_offerings

    wanted = [{"name": "instance-type", "values": ["p4de.24xlarge", "g6e.xlarge"]}]
    found = lookup(OFFERINGS, {"filters": wanted, "locationType": "availability-zone"}, ctx)
    pairs = sorted(zip(found["instanceTypes"], found["locations"], strict=True))
    assert pairs == [
        *[("g6e.xlarge", f"us-east-1{z}") for z in "abcd"],
        ("p4de.24xlarge", "us-east-1b"),
        ("p4de.24xlarge", "us-east-1c"),
    ]
    assert set(found["locationTypes"]) == {"availability-zone"}
    assert (found["id"], found["region"], found["filters"]) == (REGION, REGION, wanted)
    # Without a location type, the provider asks per region.
    regional = lookup(OFFERINGS, {"filters": wanted}, ctx)
    assert sorted(regional["locations"]) == [REGION, REGION]
    # What `migrate sandbox offerings` sets is what a program learns.
    hold_offerings(ACCOUNT, REGION, "p4de.24xlarge", [])
    try:
        gone = lookup(OFFERINGS, {"filters": wanted, "locationType": "availability-zone"}, ctx)
        assert set(gone["instanceTypes"]) == {"g6e.xlarge"}
    finally:
        hold_offerings(ACCOUNT, REGION, "p4de.24xlarge", None)
    with pytest.raises(ValueError, match="The filter 'family' is invalid"):
        lookup(OFFERINGS, {"filters": [{"name": "family", "values": ["g5"]}]}, ctx)
    with pytest.raises(ValueError, match="does not answer instanceType"):
        lookup(OFFERINGS, {"instanceType": "g5.xlarge"}, ctx)


# --- hosted zones ----------------------------------------------------------------------


def test_a_hosted_zone_is_found_in_the_cloud(ctx: CloudContext) -> None:
    route53 = ctx.client("route53")
    made = route53.create_hosted_zone(Name="models.example.com", CallerReference="models")
    zone_id = made["HostedZone"]["Id"].rsplit("/", 1)[-1]
    found = lookup(GET_ZONE, {"name": "models.example.com."}, ctx)
    assert (found["id"], found["zoneId"], found["name"]) == (zone_id, zone_id, "models.example.com")
    assert found["privateZone"] is False and found["nameServers"]
    assert lookup(GET_ZONE, {"zoneId": zone_id}, ctx)["name"] == "models.example.com"
    with pytest.raises(ValueError, match="no matching Route 53 Hosted Zone found"):
        lookup(GET_ZONE, {"name": "models.example.com", "privateZone": True}, ctx)


# --- on a plan before any apply ----------------------------------------------------------


def _plan(store: SandboxStore) -> _Deployment:
    stack = StackTarget(
        project="phasegate",
        environment="test",
        phase="net",
        region=REGION,
        program=cast(Any, None),
        config={},
    )
    engine = cast(Any, types.SimpleNamespace(stop=threading.Event()))
    return _Deployment(
        engine, stack, store, store.load(), preview=True, upstream={}, on_event=lambda _: None
    )


def test_a_plan_before_any_apply_reads_the_cloud_and_keeps_the_legacy_estate(
    tmp_path: Path,
) -> None:
    """getZone answered None there, and the SDK failed on it with an AssertionError."""
    directory, key = tmp_path / "sandbox", tmp_path / "sandbox.key"
    store = SandboxStore(directory, "test", REGION, key_file=key)
    try:
        deployment = _plan(store)
        zone = deployment.invoke(GET_ZONE, {"name": "corp.example.com"})
        vpc = deployment.invoke(GET_VPC, {"tags": {"Name": "legacy"}})
        assert zone is not None and zone["name"] == "corp.example.com"
        assert vpc is not None and vpc["cidrBlock"] == "172.16.0.0/16"
        # What it looks for is unknown until an apply: so is the answer.
        assert (
            deployment.invoke(
                GET_SUBNETS, {"filters": [{"name": "vpc-id", "values": ["(known after apply)"]}]}
            )
            is None
        )
        with pytest.raises(ProgramFailed, match=r"getVpc:getVpc: no matching EC2 VPC found"):
            deployment.invoke(GET_VPC, {"tags": {"Name": "tomorrow"}})
    finally:
        store.close()
    # The estate the plan read was kept: the apply opens the very same cloud.
    again = SandboxStore(directory, "test", REGION, key_file=key)
    try:
        saved = again.load()
        assert saved.legacy["vpc_id"] == vpc["id"]
        assert saved.legacy["zones"] == {"corp.example.com": zone["id"]}
        assert saved.cloud
    finally:
        again.close()
