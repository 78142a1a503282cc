"""EC2 ways between a VPC and the internet: internet and NAT gateways, Elastic IPs.

The emulator takes several things AWS refuses: a second internet gateway on a VPC, a
public NAT gateway without an Elastic IP or in a VPC without an internet gateway, an
EC2-Classic address, releasing an address a NAT gateway holds. Those are checked here.
VPC endpoints, a VPC's private way to AWS services, are in ``ec2_endpoints``.
"""

from __future__ import annotations

from typing import Any

from phasegate.engines.sandbox.handlers.base import CloudContext, Handler, HandlerError
from phasegate.engines.sandbox.handlers.ec2 import _missing, _retag, _tag_spec

__all__ = ["HANDLERS"]

_LIVE_NAT = ("pending", "available")


def _arn(ctx: CloudContext, kind: str, id_: str) -> str:
    return f"arn:aws:ec2:{ctx.region}:{ctx.account_id}:{kind}/{id_}"


class InternetGateway(Handler):
    type = "aws:ec2/internetGateway:InternetGateway"
    emulates = frozenset({"tags", "vpcId"})
    computed = ("id", "arn", "ownerId")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        ec2 = ctx.client("ec2")
        igw = ec2.create_internet_gateway(TagSpecifications=_tag_spec("internet-gateway", inputs))[
            "InternetGateway"
        ]
        igw_id = igw["InternetGatewayId"]
        if inputs.get("vpcId"):
            try:
                self._attach(ec2, igw_id, inputs["vpcId"])
            except HandlerError:
                ec2.delete_internet_gateway(InternetGatewayId=igw_id)
                raise
        return igw_id, {
            **inputs,
            "id": igw_id,
            "arn": _arn(ctx, "internet-gateway", igw_id),
            "ownerId": igw.get("OwnerId", ctx.account_id),
        }

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        ec2 = ctx.client("ec2")
        if old.get("vpcId") != new.get("vpcId"):
            if new.get("vpcId"):
                self._check_vpc_free(ec2, id_, new["vpcId"])  # before leaving the old one
            if old.get("vpcId"):
                ec2.detach_internet_gateway(InternetGatewayId=id_, VpcId=old["vpcId"])
            if new.get("vpcId"):
                self._attach(ec2, id_, new["vpcId"])
        _retag(ec2, id_, old.get("tags"), new.get("tags"))
        return self.updated(new, outputs)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        ec2 = ctx.client("ec2")
        try:
            igw = ec2.describe_internet_gateways(InternetGatewayIds=[id_])["InternetGateways"][0]
        except Exception as exc:
            if _missing(exc):
                return
            raise
        for attachment in igw.get("Attachments", []):
            ec2.detach_internet_gateway(InternetGatewayId=id_, VpcId=attachment["VpcId"])
        ec2.delete_internet_gateway(InternetGatewayId=id_)

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        try:
            found = ctx.client("ec2").describe_internet_gateways(InternetGatewayIds=[id_])
        except Exception as exc:
            if _missing(exc):
                return False
            raise
        return bool(found["InternetGateways"])

    @staticmethod
    def _check_vpc_free(ec2: Any, igw_id: str, vpc_id: str) -> None:
        """AWS allows one internet gateway per VPC; the emulator would attach a second."""
        held = ec2.describe_internet_gateways(
            Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}]
        )["InternetGateways"]
        others = [g["InternetGatewayId"] for g in held if g["InternetGatewayId"] != igw_id]
        if others:
            raise HandlerError(f"{vpc_id} already has internet gateway {others[0]} attached")

    @classmethod
    def _attach(cls, ec2: Any, igw_id: str, vpc_id: str) -> None:
        cls._check_vpc_free(ec2, igw_id, vpc_id)
        try:
            ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
        except Exception as exc:
            raise HandlerError(f"cannot attach {igw_id} to {vpc_id}: {exc}") from None


class Eip(Handler):
    type = "aws:ec2/eip:Eip"
    emulates = frozenset(
        {
            "address",
            "domain",
            "instance",
            "networkInterface",
            "tags",
        }
    )
    replace_on = frozenset(
        {
            "address",
            "customerOwnedIpv4Pool",
            "domain",
            "ipamPoolId",
            "networkBorderGroup",
            "publicIpv4Pool",
        }
    )
    computed = (
        "id",
        "arn",
        "allocationId",
        "associationId",
        "domain",
        "privateIp",
        "publicDns",
        "publicIp",
    )
    _POOLS = (
        ("address", "Address"),
        ("publicIpv4Pool", "PublicIpv4Pool"),
        ("networkBorderGroup", "NetworkBorderGroup"),
        ("customerOwnedIpv4Pool", "CustomerOwnedIpv4Pool"),
        ("ipamPoolId", "IpamPoolId"),
    )

    def validate(self, inputs: dict[str, Any]) -> None:
        domain = inputs.get("domain", "vpc")
        if domain == "standard":
            raise HandlerError(
                "domain 'standard' is EC2-Classic, retired in 2023: an address needs domain 'vpc'"
            )
        if domain != "vpc":
            raise HandlerError(f"domain '{domain}' is not 'vpc'")
        if inputs.get("instance") and inputs.get("networkInterface"):
            raise HandlerError("associate the address with instance or networkInterface, not both")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        ec2 = ctx.client("ec2")
        args: dict[str, Any] = {
            "Domain": "vpc",
            "TagSpecifications": _tag_spec("elastic-ip", inputs),
        }
        args.update({arg: inputs[key] for key, arg in self._POOLS if inputs.get(key)})
        alloc_id = ec2.allocate_address(**args)["AllocationId"]
        try:
            self._associate(ec2, alloc_id, inputs)
        except HandlerError:
            ec2.release_address(AllocationId=alloc_id)
            raise
        return alloc_id, self._outputs(ctx, alloc_id, inputs)

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        ec2 = ctx.client("ec2")
        target = ("instance", "networkInterface", "associateWithPrivateIp")
        if any(old.get(k) != new.get(k) for k in target):
            address = ec2.describe_addresses(AllocationIds=[id_])["Addresses"][0]
            if address.get("AssociationId"):
                ec2.disassociate_address(AssociationId=address["AssociationId"])
            self._associate(ec2, id_, new)
        _retag(ec2, id_, old.get("tags"), new.get("tags"))
        return self._outputs(ctx, id_, new)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        ec2 = ctx.client("ec2")
        try:
            address = ec2.describe_addresses(AllocationIds=[id_])["Addresses"][0]
        except Exception as exc:
            if _missing(exc):
                return
            raise
        # AWS refuses to release an address a NAT gateway holds; the emulator lets it go.
        for nat in ec2.describe_nat_gateways()["NatGateways"]:
            held = {a.get("AllocationId") for a in nat.get("NatGatewayAddresses", [])}
            if nat["State"] in _LIVE_NAT and id_ in held:
                raise HandlerError(f"{id_} is in use by NAT gateway {nat['NatGatewayId']}")
        if address.get("AssociationId"):
            ec2.disassociate_address(AssociationId=address["AssociationId"])
        ec2.release_address(AllocationId=id_)

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        try:
            return bool(ctx.client("ec2").describe_addresses(AllocationIds=[id_])["Addresses"])
        except Exception as exc:
            if _missing(exc):
                return False
            raise

    @staticmethod
    def _associate(ec2: Any, alloc_id: str, inputs: dict[str, Any]) -> None:
        args: dict[str, Any] = {"AllocationId": alloc_id}
        if inputs.get("instance"):
            args["InstanceId"] = inputs["instance"]
        elif inputs.get("networkInterface"):
            args["NetworkInterfaceId"] = inputs["networkInterface"]
        else:
            return
        if inputs.get("associateWithPrivateIp"):
            args["PrivateIpAddress"] = inputs["associateWithPrivateIp"]
        try:
            ec2.associate_address(**args)
        except Exception as exc:
            raise HandlerError(f"cannot associate {alloc_id}: {exc}") from None

    @staticmethod
    def _outputs(ctx: CloudContext, alloc_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
        address = ctx.client("ec2").describe_addresses(AllocationIds=[alloc_id])["Addresses"][0]
        public_ip = address.get("PublicIp", "")
        host = "compute-1" if ctx.region == "us-east-1" else f"{ctx.region}.compute"
        return {
            **inputs,
            "id": alloc_id,
            "arn": _arn(ctx, "elastic-ip", alloc_id),
            "allocationId": alloc_id,
            "associationId": address.get("AssociationId", ""),
            "domain": address.get("Domain", "vpc"),
            "privateIp": address.get("PrivateIpAddress", ""),
            "publicIp": public_ip,
            "publicDns": f"ec2-{public_ip.replace('.', '-')}.{host}.amazonaws.com",
        }


class NatGateway(Handler):
    type = "aws:ec2/natGateway:NatGateway"
    emulates = frozenset(
        {
            "allocationId",
            "availabilityMode",
            "connectivityType",
            "subnetId",
            "tags",
        }
    )
    replace_on = frozenset(
        {"allocationId", "availabilityMode", "connectivityType", "privateIp", "subnetId", "vpcId"}
    )
    computed = ("id", "associationId", "networkInterfaceId", "privateIp", "publicIp")

    def validate(self, inputs: dict[str, Any]) -> None:
        kind = inputs.get("connectivityType", "public")
        if kind not in ("public", "private"):
            raise HandlerError(f"connectivityType '{kind}' is not public or private")
        mode = inputs.get("availabilityMode", "zonal")
        if mode not in ("zonal", "regional"):
            raise HandlerError(f"availabilityMode '{mode}' is not zonal or regional")
        if kind == "private" and (
            inputs.get("allocationId") or inputs.get("secondaryAllocationIds")
        ):
            raise HandlerError("a private NAT gateway takes no Elastic IP (allocationId)")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        # Required inputs are checked here, not in validate(): there an unknown value
        # (an Elastic IP not yet allocated, during preview) looks like a missing one.
        kind = inputs.get("connectivityType", "public")
        if inputs.get("availabilityMode", "zonal") == "regional":
            raise HandlerError("regional NAT gateways are not emulated; use availabilityMode zonal")
        if not inputs.get("subnetId"):
            raise HandlerError("a zonal NAT gateway needs subnetId")
        if kind == "public" and not inputs.get("allocationId"):
            raise HandlerError("a public NAT gateway needs allocationId (an Elastic IP)")
        ec2 = ctx.client("ec2")
        if kind == "public":
            self._check_internet_gateway(ec2, inputs["subnetId"])
        args: dict[str, Any] = {
            "SubnetId": inputs["subnetId"],
            "ConnectivityType": kind,
            "TagSpecifications": _tag_spec("natgateway", inputs),
        }
        if inputs.get("allocationId"):
            self._check_free(ec2, inputs["allocationId"])
            args["AllocationId"] = inputs["allocationId"]
        for key, arg in (
            ("privateIp", "PrivateIpAddress"),
            ("secondaryAllocationIds", "SecondaryAllocationIds"),
            ("secondaryPrivateIpAddresses", "SecondaryPrivateIpAddresses"),
            ("secondaryPrivateIpAddressCount", "SecondaryPrivateIpAddressCount"),
        ):
            if inputs.get(key):
                args[arg] = inputs[key]
        try:
            nat = ec2.create_nat_gateway(**args)["NatGateway"]
        except Exception as exc:
            raise HandlerError(f"cannot create NAT gateway: {exc}") from None
        primary = (nat.get("NatGatewayAddresses") or [{}])[0]
        return nat["NatGatewayId"], {
            **inputs,
            "id": nat["NatGatewayId"],
            "associationId": primary.get("AssociationId", ""),
            "networkInterfaceId": primary.get("NetworkInterfaceId", ""),
            "privateIp": primary.get("PrivateIp", ""),
            "publicIp": primary.get("PublicIp", ""),
        }

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        secondary = (
            "secondaryAllocationIds",
            "secondaryPrivateIpAddresses",
            "secondaryPrivateIpAddressCount",
        )
        changed = [k for k in secondary if old.get(k) != new.get(k)]
        if changed:
            raise HandlerError(
                f"changing {', '.join(changed)} of a NAT gateway in place is not emulated"
            )
        _retag(ctx.client("ec2"), id_, old.get("tags"), new.get("tags"))
        return self.updated(new, outputs)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        try:
            ctx.client("ec2").delete_nat_gateway(NatGatewayId=id_)
        except Exception as exc:
            if not _missing(exc):
                raise

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        try:
            found = ctx.client("ec2").describe_nat_gateways(NatGatewayIds=[id_])["NatGateways"]
        except Exception as exc:
            if _missing(exc):
                return False
            raise
        return any(nat["State"] in _LIVE_NAT for nat in found)

    @staticmethod
    def _check_internet_gateway(ec2: Any, subnet_id: str) -> None:
        """AWS fails a public NAT gateway (Gateway.NotAttached) in a VPC without one."""
        try:
            vpc_id = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]["VpcId"]
        except Exception as exc:
            if _missing(exc):
                raise HandlerError(f"subnet {subnet_id} does not exist") from None
            raise
        attached = ec2.describe_internet_gateways(
            Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}]
        )["InternetGateways"]
        if not attached:
            raise HandlerError(
                f"{vpc_id} has no internet gateway attached: a public NAT gateway needs one"
            )

    @staticmethod
    def _check_free(ec2: Any, alloc_id: str) -> None:
        try:
            address = ec2.describe_addresses(AllocationIds=[alloc_id])["Addresses"][0]
        except Exception as exc:
            if _missing(exc):
                raise HandlerError(f"Elastic IP {alloc_id} does not exist") from None
            raise
        if address.get("AssociationId"):
            raise HandlerError(f"Elastic IP {alloc_id} is already associated")


HANDLERS: list[Handler] = [InternetGateway(), Eip(), NatGateway()]
