"""EC2 networking: VPCs and subnets, and the helpers the other EC2 handler modules share."""

from __future__ import annotations

import ipaddress
from typing import Any

from phasegate.engines.sandbox.handlers.base import (
    CloudContext,
    Handler,
    HandlerError,
    ProviderDiff,
    RunContext,
    retag,
)

__all__ = ["HANDLERS"]


def _network(value: Any, what: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(str(value))
    except ValueError as exc:
        raise HandlerError(f"{what} '{value}' is not a valid IPv4 CIDR: {exc}") from None


def _address(value: Any, what: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(str(value))
    except ValueError:
        raise HandlerError(f"{what} '{value}' is not an IPv4 address") from None


def _missing(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return "NotFound" in code


_TENANCIES = ("default", "dedicated")


def _tenancy(inputs: dict[str, Any]) -> Any:
    """The VPC's instance tenancy: EC2's default when the program leaves it out."""
    return inputs.get("instanceTenancy") or "default"


class Vpc(Handler):
    type = "aws:ec2/vpc:Vpc"
    emulates = frozenset(
        {"cidrBlock", "enableDnsHostnames", "enableDnsSupport", "instanceTenancy", "tags"}
    )
    replace_on = frozenset({"cidrBlock"})
    computed = ("id", "arn", "mainRouteTableId", "defaultSecurityGroupId", "ownerId")

    def validate(self, inputs: dict[str, Any]) -> None:
        tenancy = inputs.get("instanceTenancy")
        if tenancy is not None and tenancy not in _TENANCIES:
            raise HandlerError(f"instanceTenancy '{tenancy}' is not default or dedicated")
        if "cidrBlock" not in inputs:
            return
        net = _network(inputs["cidrBlock"], "cidrBlock")
        if not 16 <= net.prefixlen <= 28:
            raise HandlerError(f"cidrBlock {net} must be between /16 and /28")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        ec2 = ctx.client("ec2")
        vpc = ec2.create_vpc(
            CidrBlock=inputs["cidrBlock"],
            InstanceTenancy=_tenancy(inputs),
            TagSpecifications=_tag_spec("vpc", inputs),
        )["Vpc"]
        vpc_id = vpc["VpcId"]
        for attr in ("enableDnsSupport", "enableDnsHostnames"):
            if attr in inputs:
                ec2.modify_vpc_attribute(
                    VpcId=vpc_id, **{attr[0].upper() + attr[1:]: {"Value": bool(inputs[attr])}}
                )
        tables = ec2.describe_route_tables(
            Filters=[
                {"Name": "vpc-id", "Values": [vpc_id]},
                {"Name": "association.main", "Values": ["true"]},
            ]
        )["RouteTables"]
        groups = ec2.describe_security_groups(
            Filters=[
                {"Name": "vpc-id", "Values": [vpc_id]},
                {"Name": "group-name", "Values": ["default"]},
            ]
        )["SecurityGroups"]
        return vpc_id, {
            **inputs,
            "id": vpc_id,
            "arn": f"arn:aws:ec2:{ctx.region}:{ctx.account_id}:vpc/{vpc_id}",
            "mainRouteTableId": tables[0]["RouteTableId"] if tables else "",
            "defaultSecurityGroupId": groups[0]["GroupId"] if groups else "",
            "ownerId": vpc.get("OwnerId", ctx.account_id),
        }

    def diff(
        self, run: RunContext, id_: str, old_outputs: dict[str, Any], new: dict[str, Any]
    ) -> ProviderDiff | None:
        """EC2 moves a VPC's tenancy from dedicated to default in place; any other change
        of tenancy makes a new VPC, as with the provider."""
        before, after = _tenancy(old_outputs), _tenancy(new)
        if before == after or (before, after) == ("dedicated", "default"):
            return None
        return ProviderDiff(changes=None, replaces=("instanceTenancy",))

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        ec2 = ctx.client("ec2")
        if _tenancy(old) != _tenancy(new):
            ec2.modify_vpc_tenancy(VpcId=id_, InstanceTenancy=_tenancy(new))
        for attr in ("enableDnsSupport", "enableDnsHostnames"):
            if old.get(attr) != new.get(attr) and attr in new:
                ec2.modify_vpc_attribute(
                    VpcId=id_, **{attr[0].upper() + attr[1:]: {"Value": bool(new[attr])}}
                )
        _retag(ec2, id_, old.get("tags"), new.get("tags"))
        return {**outputs, **new}

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        ctx.client("ec2").delete_vpc(VpcId=id_)

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        try:
            return bool(ctx.client("ec2").describe_vpcs(VpcIds=[id_])["Vpcs"])
        except Exception as exc:
            if _missing(exc):
                return False
            raise


class Subnet(Handler):
    type = "aws:ec2/subnet:Subnet"
    emulates = frozenset({"availabilityZone", "cidrBlock", "mapPublicIpOnLaunch", "tags", "vpcId"})
    replace_on = frozenset({"vpcId", "cidrBlock", "availabilityZone"})
    computed = ("id", "arn", "ownerId")

    def validate(self, inputs: dict[str, Any]) -> None:
        if "cidrBlock" in inputs:
            _network(inputs["cidrBlock"], "cidrBlock")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        ec2 = ctx.client("ec2")
        args: dict[str, Any] = {"VpcId": inputs["vpcId"], "CidrBlock": inputs["cidrBlock"]}
        if inputs.get("availabilityZone"):
            args["AvailabilityZone"] = inputs["availabilityZone"]
        args["TagSpecifications"] = _tag_spec("subnet", inputs)
        try:
            subnet = ec2.create_subnet(**args)["Subnet"]
        except Exception as exc:
            raise HandlerError(f"cannot create subnet {inputs['cidrBlock']}: {exc}") from None
        if inputs.get("mapPublicIpOnLaunch"):
            ec2.modify_subnet_attribute(
                SubnetId=subnet["SubnetId"], MapPublicIpOnLaunch={"Value": True}
            )
        subnet_id = subnet["SubnetId"]
        return subnet_id, {
            **inputs,
            "id": subnet_id,
            "arn": f"arn:aws:ec2:{ctx.region}:{ctx.account_id}:subnet/{subnet_id}",
            "availabilityZone": subnet["AvailabilityZone"],
            "ownerId": ctx.account_id,
        }

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        ec2 = ctx.client("ec2")
        if bool(old.get("mapPublicIpOnLaunch")) != bool(new.get("mapPublicIpOnLaunch")):
            ec2.modify_subnet_attribute(
                SubnetId=id_, MapPublicIpOnLaunch={"Value": bool(new.get("mapPublicIpOnLaunch"))}
            )
        _retag(ec2, id_, old.get("tags"), new.get("tags"))
        return {**outputs, **new}

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        ctx.client("ec2").delete_subnet(SubnetId=id_)

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        try:
            return bool(ctx.client("ec2").describe_subnets(SubnetIds=[id_])["Subnets"])
        except Exception as exc:
            if _missing(exc):
                return False
            raise


def _default_group(ec2: Any, vpc_id: str) -> str:
    """The VPC's default security group: what EC2 and EFS give what is declared without."""
    groups = ec2.describe_security_groups(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "group-name", "Values": ["default"]},
        ]
    )["SecurityGroups"]
    return str(groups[0]["GroupId"])


def _tag_spec(resource_type: str, inputs: dict[str, Any]) -> list[dict[str, Any]]:
    """TagSpecifications for a create call: the tags the program declares, no others."""
    tags = Handler.tag_list(inputs.get("tags"))
    return [{"ResourceType": resource_type, "Tags": tags}] if tags else []


def _retag(ec2: Any, resource_id: str, old: dict | None, new: dict | None) -> None:
    retag(
        old,
        new,
        lambda tags: ec2.create_tags(Resources=[resource_id], Tags=tags),
        lambda keys: ec2.delete_tags(Resources=[resource_id], Tags=[{"Key": k} for k in keys]),
    )


HANDLERS: list[Handler] = [Vpc(), Subnet()]
