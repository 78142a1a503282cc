"""Lookups of the cloud a program starts from: the default VPC and its subnets, their
default security group, and a group the program adds there, found again by id."""

from __future__ import annotations

from typing import Any

MAIN = """
import pulumi
import pulumi_aws as aws

stage = pulumi.Config("corpus").get_int("stage") or 1

network = aws.ec2.get_vpc(default=True)
subnets = aws.ec2.get_subnets(filters=[{"name": "vpc-id", "values": [network.id]}])
first = aws.ec2.get_subnet(vpc_id=network.id, availability_zone="us-east-1a")
default_group = aws.ec2.get_security_group(name="default", vpc_id=network.id)

app = aws.ec2.SecurityGroup(
    "app",
    vpc_id=network.id,
    description="app servers" if stage == 1 else "app servers, v2",
    ingress=[
        {
            "protocol": "tcp",
            "from_port": 8080,
            "to_port": 8080,
            "cidr_blocks": [network.cidr_block],
        }
    ],
    tags={"stage": str(stage)},
)
found = aws.ec2.get_security_group_output(id=app.id)

pulumi.export("vpc_id", network.id)
pulumi.export("vpc_cidr", network.cidr_block)
pulumi.export("subnet_ids", sorted(subnets.ids))
pulumi.export("subnet_a", first.id)
pulumi.export("default_group", default_group.id)
pulumi.export("app_group", app.id)
pulumi.export("found_description", found.description)
"""


def check(aws: Any, outputs: dict[str, Any], stage: int) -> None:
    """After the apply of ``stage``: boto3 finds exactly the declared properties."""
    ec2 = aws("ec2")
    (vpc,) = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    assert outputs["vpc_id"] == vpc["VpcId"]
    assert outputs["vpc_cidr"] == vpc["CidrBlock"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
    assert outputs["subnet_ids"] == sorted(s["SubnetId"] for s in subnets["Subnets"])
    (subnet_a,) = [s for s in subnets["Subnets"] if s["AvailabilityZone"] == "us-east-1a"]
    assert outputs["subnet_a"] == subnet_a["SubnetId"]
    default = ec2.describe_security_groups(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc["VpcId"]]},
            {"Name": "group-name", "Values": ["default"]},
        ]
    )["SecurityGroups"]
    assert [g["GroupId"] for g in default] == [outputs["default_group"]]
    (app,) = ec2.describe_security_groups(GroupIds=[outputs["app_group"]])["SecurityGroups"]
    description = "app servers" if stage == 1 else "app servers, v2"
    assert (app["VpcId"], app["Description"]) == (vpc["VpcId"], description)
    assert outputs["found_description"] == description
    assert {t["Key"]: t["Value"] for t in app.get("Tags", [])} == {"stage": str(stage)}
    (rule,) = app["IpPermissions"]
    assert (rule["FromPort"], rule["ToPort"]) == (8080, 8080)
    assert [r["CidrIp"] for r in rule["IpRanges"]] == [vpc["CidrBlock"]]
    # The description is a group's for good: stage 2's is a new group, the first gone.
    in_vpc = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
        "SecurityGroups"
    ]
    assert sorted(g["GroupName"] for g in in_vpc if g["GroupName"] != "default") == [
        app["GroupName"]
    ]


def gone(aws: Any, outputs: dict[str, Any]) -> None:
    """After destroy: nothing the program declared is left (the outputs of stage 2); the
    default VPC, which it only looked up, is still there."""
    ec2 = aws("ec2")
    groups = ec2.describe_security_groups(
        Filters=[{"Name": "group-id", "Values": [outputs["app_group"]]}]
    )
    assert not groups["SecurityGroups"]
    assert ec2.describe_vpcs(VpcIds=[outputs["vpc_id"]])["Vpcs"]
    assert ec2.describe_security_groups(GroupIds=[outputs["default_group"]])["SecurityGroups"]
