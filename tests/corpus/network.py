"""A VPC's network: subnets in two zones, an internet gateway, a NAT gateway with its
address, route tables with routes and associations, a security group's rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MAIN = """
import pulumi
import pulumi_aws as aws

stage = pulumi.Config("corpus").get_int("stage") or 1
vpc = aws.ec2.Vpc("net", cidr_block="10.40.0.0/16", enable_dns_hostnames=True,
                  tags={"net": "corpus", "stage": str(stage)})
public = aws.ec2.Subnet("public", vpc_id=vpc.id, cidr_block="10.40.0.0/24",
                        availability_zone="us-east-1a", map_public_ip_on_launch=True)
private = aws.ec2.Subnet("private", vpc_id=vpc.id, availability_zone="us-east-1b",
                         cidr_block="10.40.1.0/24" if stage == 1 else "10.40.2.0/24")
igw = aws.ec2.InternetGateway("igw", vpc_id=vpc.id)
eip = aws.ec2.Eip("nat", domain="vpc")
# AWS refuses a public NAT gateway until the VPC's internet gateway is attached.
nat = aws.ec2.NatGateway("nat", allocation_id=eip.id, subnet_id=public.id,
                         opts=pulumi.ResourceOptions(depends_on=[igw]))
public_rt = aws.ec2.RouteTable("public", vpc_id=vpc.id)
aws.ec2.Route("internet", route_table_id=public_rt.id, destination_cidr_block="0.0.0.0/0",
              gateway_id=igw.id)
private_rt = aws.ec2.RouteTable("private", vpc_id=vpc.id)
aws.ec2.Route("egress", route_table_id=private_rt.id, destination_cidr_block="0.0.0.0/0",
              nat_gateway_id=nat.id)
aws.ec2.RouteTableAssociation("public", subnet_id=public.id, route_table_id=public_rt.id)
aws.ec2.RouteTableAssociation("private", subnet_id=private.id, route_table_id=private_rt.id)
web = aws.ec2.SecurityGroup(
    "web", vpc_id=vpc.id, description="web tier",
    ingress=[{"protocol": "tcp", "from_port": 443, "to_port": 443,
              "cidr_blocks": ["10.40.0.0/16"] if stage == 1 else ["10.0.0.0/8"]}],
    egress=[{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}],
)
pulumi.export("vpc", vpc.id)
pulumi.export("public", public.id)
pulumi.export("private", private.id)
pulumi.export("nat", nat.id)
pulumi.export("igw", igw.id)
pulumi.export("public_rt", public_rt.id)
pulumi.export("private_rt", private_rt.id)
pulumi.export("web", web.id)
"""


def check(aws: Callable[..., Any], outputs: dict[str, Any], stage: int) -> None:
    ec2 = aws("ec2")
    (vpc,) = ec2.describe_vpcs(VpcIds=[outputs["vpc"]])["Vpcs"]
    assert vpc["CidrBlock"] == "10.40.0.0/16"
    assert {t["Key"]: t["Value"] for t in vpc["Tags"]} == {"net": "corpus", "stage": str(stage)}
    hostnames = ec2.describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute="enableDnsHostnames")
    assert hostnames["EnableDnsHostnames"]["Value"] is True
    subnets = {
        s["SubnetId"]: s
        for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
            "Subnets"
        ]
    }
    assert set(subnets) == {outputs["public"], outputs["private"]}
    public, private = subnets[outputs["public"]], subnets[outputs["private"]]
    assert (public["CidrBlock"], public["AvailabilityZone"]) == ("10.40.0.0/24", "us-east-1a")
    assert public["MapPublicIpOnLaunch"] is True and not public.get("Tags")
    assert private["CidrBlock"] == ("10.40.1.0/24" if stage == 1 else "10.40.2.0/24")
    (igw,) = ec2.describe_internet_gateways(InternetGatewayIds=[outputs["igw"]])["InternetGateways"]
    assert igw["Attachments"] == [{"State": "available", "VpcId": vpc["VpcId"]}]
    (nat,) = ec2.describe_nat_gateways(NatGatewayIds=[outputs["nat"]])["NatGateways"]
    assert nat["SubnetId"] == outputs["public"]
    routes = {
        rt["RouteTableId"]: rt
        for rt in ec2.describe_route_tables(
            RouteTableIds=[outputs["public_rt"], outputs["private_rt"]]
        )["RouteTables"]
    }
    out = [
        r
        for r in routes[outputs["public_rt"]]["Routes"]
        if r["DestinationCidrBlock"] != "10.40.0.0/16"
    ]
    assert [r["GatewayId"] for r in out] == [outputs["igw"]]
    out = [
        r
        for r in routes[outputs["private_rt"]]["Routes"]
        if r["DestinationCidrBlock"] != "10.40.0.0/16"
    ]
    assert [r["NatGatewayId"] for r in out] == [outputs["nat"]]
    associated = {
        a["SubnetId"]: rt
        for rt, table in routes.items()
        for a in table["Associations"]
        if a.get("SubnetId")
    }
    assert associated == {
        outputs["public"]: outputs["public_rt"],
        outputs["private"]: outputs["private_rt"],
    }
    (web,) = ec2.describe_security_groups(GroupIds=[outputs["web"]])["SecurityGroups"]
    assert web["Description"] == "web tier" and not web.get("Tags")
    (ingress,) = web["IpPermissions"]
    assert (ingress["IpProtocol"], ingress["FromPort"], ingress["ToPort"]) == ("tcp", 443, 443)
    wanted = "10.40.0.0/16" if stage == 1 else "10.0.0.0/8"
    assert [r["CidrIp"] for r in ingress["IpRanges"]] == [wanted]
    (egress,) = web["IpPermissionsEgress"]
    assert egress["IpProtocol"] == "-1"
    assert [r["CidrIp"] for r in egress["IpRanges"]] == ["0.0.0.0/0"]


def gone(aws: Callable[..., Any], outputs: dict[str, Any]) -> None:
    ec2 = aws("ec2")
    assert not ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [outputs["vpc"]]}])["Vpcs"]
    nats = ec2.describe_nat_gateways(NatGatewayIds=[outputs["nat"]])["NatGateways"]
    assert [n["State"] for n in nats] in ([], ["deleted"])
    addresses = ec2.describe_addresses()["Addresses"]
    assert not [a for a in addresses if a.get("Domain") == "vpc" and not a.get("Tags")]
