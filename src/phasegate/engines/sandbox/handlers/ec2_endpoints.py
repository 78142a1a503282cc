"""EC2 VPC endpoints: a VPC's private way to an AWS service, by route or by interface.

The emulator takes an endpoint for a service that does not exist, which AWS refuses; that
is checked here, as are the inputs an endpoint of each type does not take.
"""

from __future__ import annotations

from typing import Any

from phasegate.engines.sandbox.handlers.base import (
    CloudContext,
    Handler,
    HandlerError,
    check_json_input,
    error_code,
    json_text,
)
from phasegate.engines.sandbox.handlers.ec2 import _missing, _retag, _tag_spec

__all__ = ["HANDLERS"]

_ENDPOINT_TYPES = ("Gateway", "GatewayLoadBalancer", "Interface", "Resource", "ServiceNetwork")
_GONE_ENDPOINT = ("deleting", "deleted", "rejected", "failed", "expired")


class VpcEndpoint(Handler):
    type = "aws:ec2/vpcEndpoint:VpcEndpoint"
    emulates = frozenset(
        {
            "policy",
            "privateDnsEnabled",
            "routeTableIds",
            "securityGroupIds",
            "serviceName",
            "subnetIds",
            "tags",
            "vpcEndpointType",
            "vpcId",
        }
    )
    replace_on = frozenset(
        {
            "resourceConfigurationArn",
            "serviceName",
            "serviceNetworkArn",
            "serviceRegion",
            "vpcEndpointType",
            "vpcId",
        }
    )
    computed = (
        "id",
        "arn",
        "cidrBlocks",
        "dnsEntries",
        "networkInterfaceIds",
        "ownerId",
        "prefixListId",
        "requesterManaged",
        "state",
    )
    _SETS = (
        ("routeTableIds", "RouteTableIds"),
        ("subnetIds", "SubnetIds"),
        ("securityGroupIds", "SecurityGroupIds"),
    )

    def validate(self, inputs: dict[str, Any]) -> None:
        kind = inputs.get("vpcEndpointType", "Gateway")
        if kind not in _ENDPOINT_TYPES:
            raise HandlerError(
                f"vpcEndpointType '{kind}' is not one of {', '.join(_ENDPOINT_TYPES)}"
            )
        if kind == "Gateway":
            for key in ("subnetIds", "securityGroupIds", "subnetConfigurations"):
                if inputs.get(key):
                    raise HandlerError(f"a Gateway endpoint takes no {key}: it works by routes")
            if inputs.get("privateDnsEnabled"):
                raise HandlerError("privateDnsEnabled applies to Interface endpoints only")
            service = inputs.get("serviceName")
            if isinstance(service, str) and not service.endswith((".s3", ".dynamodb")):
                raise HandlerError(
                    f"{service} has no Gateway endpoint: only S3 and DynamoDB do; "
                    "use vpcEndpointType Interface"
                )
        elif inputs.get("routeTableIds"):
            raise HandlerError(f"a {kind} endpoint takes no routeTableIds: only Gateway ones do")
        check_json_input(inputs, "policy")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        ec2 = ctx.client("ec2")
        kind = inputs.get("vpcEndpointType", "Gateway")
        args: dict[str, Any] = {
            "VpcId": inputs["vpcId"],
            "VpcEndpointType": kind,
            "TagSpecifications": _tag_spec("vpc-endpoint", inputs),
        }
        if inputs.get("serviceName"):
            self._check_service(ec2, inputs["serviceName"], kind)
            args["ServiceName"] = inputs["serviceName"]
        args.update({arg: list(inputs[key]) for key, arg in self._SETS if inputs.get(key)})
        if inputs.get("policy"):
            args["PolicyDocument"] = json_text(inputs["policy"])
        if kind == "Interface":
            args["PrivateDnsEnabled"] = bool(inputs.get("privateDnsEnabled", False))
        if inputs.get("ipAddressType"):
            args["IpAddressType"] = inputs["ipAddressType"]
        try:
            endpoint = ec2.create_vpc_endpoint(**args)["VpcEndpoint"]
        except Exception as exc:
            raise HandlerError(f"cannot create VPC endpoint: {exc}") from None
        return endpoint["VpcEndpointId"], self._outputs(ctx, endpoint, inputs)

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        ec2 = ctx.client("ec2")
        args: dict[str, Any] = {}
        for key, arg in self._SETS:
            before, after = set(old.get(key) or []), set(new.get(key) or [])
            if after - before:
                args[f"Add{arg}"] = sorted(after - before)
            if before - after:
                args[f"Remove{arg}"] = sorted(before - after)
        if old.get("policy") != new.get("policy"):
            if new.get("policy"):
                args["PolicyDocument"] = json_text(new["policy"])
            else:
                args["ResetPolicy"] = True
        if old.get("privateDnsEnabled") != new.get("privateDnsEnabled"):
            args["PrivateDnsEnabled"] = bool(new.get("privateDnsEnabled", False))
        if args:
            try:
                ec2.modify_vpc_endpoint(VpcEndpointId=id_, **args)
            except Exception as exc:
                raise HandlerError(f"cannot modify {id_}: {exc}") from None
            if outputs.get("prefixListId"):
                self._move_routes(ec2, id_, outputs["prefixListId"], args)
        _retag(ec2, id_, old.get("tags"), new.get("tags"))
        endpoint = ec2.describe_vpc_endpoints(VpcEndpointIds=[id_])["VpcEndpoints"][0]
        return self._outputs(ctx, endpoint, new)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        try:
            answer = ctx.client("ec2").delete_vpc_endpoints(VpcEndpointIds=[id_])
        except Exception as exc:
            if error_code(exc) == "InvalidVpcEndpointId.NotFound":
                return
            raise HandlerError(f"cannot delete {id_}: {exc}") from None
        # The call answers per endpoint instead of raising.
        for failed in answer.get("Unsuccessful", []):
            error = failed.get("Error", {})
            raise HandlerError(f"cannot delete {id_}: {error.get('Code')}: {error.get('Message')}")

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        try:
            found = ctx.client("ec2").describe_vpc_endpoints(VpcEndpointIds=[id_])
        except Exception as exc:
            if _missing(exc):
                return False
            raise
        return any(e["State"].lower() not in _GONE_ENDPOINT for e in found["VpcEndpoints"])

    @staticmethod
    def _move_routes(ec2: Any, id_: str, prefix_list: str, args: dict[str, Any]) -> None:
        """Route the endpoint's prefix list in the tables added, not in those removed.

        AWS does this as part of ModifyVpcEndpoint; the emulator does not, and would then
        fail to delete the endpoint, looking for its route where it never put one.
        """
        for table_id in args.get("RemoveRouteTableIds", []):
            try:
                ec2.delete_route(RouteTableId=table_id, DestinationPrefixListId=prefix_list)
            except Exception as exc:
                if error_code(exc) != "InvalidRoute.NotFound":
                    raise
        for table_id in args.get("AddRouteTableIds", []):
            table = ec2.describe_route_tables(RouteTableIds=[table_id])["RouteTables"][0]
            if not any(r.get("DestinationPrefixListId") == prefix_list for r in table["Routes"]):
                ec2.create_route(
                    RouteTableId=table_id, DestinationPrefixListId=prefix_list, GatewayId=id_
                )

    @staticmethod
    def _check_service(ec2: Any, service: str, kind: str) -> None:
        """AWS refuses a service it does not offer here, or not as this endpoint type."""
        try:
            details = ec2.describe_vpc_endpoint_services(ServiceNames=[service])["ServiceDetails"]
        except Exception as exc:
            if error_code(exc) == "InvalidServiceName":
                raise HandlerError(f"no VPC endpoint service named {service} here") from None
            raise
        offered = {t["ServiceType"] for d in details for t in d.get("ServiceType", [])}
        if offered and kind not in offered:
            raise HandlerError(
                f"{service} offers {' and '.join(sorted(offered))} endpoints, not {kind}"
            )

    @staticmethod
    def _outputs(ctx: CloudContext, endpoint: dict[str, Any], inputs: dict) -> dict[str, Any]:
        ec2 = ctx.client("ec2")
        id_ = endpoint["VpcEndpointId"]
        prefix_list_id, cidrs = "", []
        if endpoint.get("VpcEndpointType") == "Gateway":
            lists = ec2.describe_prefix_lists(
                Filters=[{"Name": "prefix-list-name", "Values": [endpoint["ServiceName"]]}]
            )["PrefixLists"]
            if lists:
                prefix_list_id, cidrs = lists[0]["PrefixListId"], lists[0].get("Cidrs", [])
        return {
            **inputs,
            "id": id_,
            "arn": f"arn:aws:ec2:{ctx.region}:{ctx.account_id}:vpc-endpoint/{id_}",
            "cidrBlocks": list(cidrs),
            "dnsEntries": [
                {"dnsName": d.get("DnsName", ""), "hostedZoneId": d.get("HostedZoneId", "")}
                for d in endpoint.get("DnsEntries", [])
            ],
            "networkInterfaceIds": list(endpoint.get("NetworkInterfaceIds", [])),
            "ownerId": endpoint.get("OwnerId", ctx.account_id),
            "prefixListId": prefix_list_id,
            "requesterManaged": bool(endpoint.get("RequesterManaged", False)),
            "state": endpoint.get("State", ""),
        }


HANDLERS: list[Handler] = [VpcEndpoint()]
