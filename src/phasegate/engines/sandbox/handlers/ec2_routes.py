"""EC2 routing: route tables, their routes, and their subnet or gateway associations.

The emulator takes a route with no target, a route whose target is a NAT gateway given as
``gatewayId``, and a second association of a subnet (it hands back the first one). AWS
refuses all three, and so do these handlers.
"""

from __future__ import annotations

import ipaddress
import zlib
from typing import Any

from phasegate.engines.sandbox.handlers.base import CloudContext, Handler, HandlerError, error_code
from phasegate.engines.sandbox.handlers.ec2 import _missing, _network, _retag, _tag_spec

__all__ = ["HANDLERS"]

_DESTINATIONS = {
    "destinationCidrBlock": "DestinationCidrBlock",
    "destinationIpv6CidrBlock": "DestinationIpv6CidrBlock",
    "destinationPrefixListId": "DestinationPrefixListId",
}
"""aws.ec2.Route destination inputs -> CreateRoute arguments."""
_INLINE_DESTINATIONS = {
    "cidrBlock": "DestinationCidrBlock",
    "ipv6CidrBlock": "DestinationIpv6CidrBlock",
    "destinationPrefixListId": "DestinationPrefixListId",
}
"""aws.ec2.RouteTable ``routes`` destination keys -> CreateRoute arguments."""
_TARGETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "gatewayId": ("GatewayId", ("igw-", "vgw-", "local")),
    "natGatewayId": ("NatGatewayId", ("nat-",)),
    "vpcEndpointId": ("VpcEndpointId", ("vpce-",)),
    "networkInterfaceId": ("NetworkInterfaceId", ("eni-",)),
    "transitGatewayId": ("TransitGatewayId", ("tgw-",)),
    "vpcPeeringConnectionId": ("VpcPeeringConnectionId", ("pcx-",)),
    "egressOnlyGatewayId": ("EgressOnlyInternetGatewayId", ("eigw-",)),
    "carrierGatewayId": ("CarrierGatewayId", ("cagw-",)),
    "localGatewayId": ("LocalGatewayId", ("lgw-",)),
    "coreNetworkArn": ("CoreNetworkArn", ("arn:",)),
    "odbNetworkArn": ("OdbNetworkArn", ("arn:",)),
}
"""Route target inputs -> (CreateRoute argument, the id prefixes AWS takes there)."""
_GONE_ROUTE = ("InvalidRoute.NotFound", "InvalidRouteTableID.NotFound")
_NOT_KEPT = ("coreNetworkArn", "localGatewayId", "odbNetworkArn")
"""Targets the emulator takes and drops: its route keeps no such target."""


def _check_route(route: dict[str, Any], destinations: dict[str, str], what: str) -> None:
    """Values and conflicts only: a missing value may just be unknown during preview."""
    given = [k for k in destinations if route.get(k)]
    if len(given) > 1:
        raise HandlerError(f"{what} has more than one destination: {', '.join(given)}")
    targets = [k for k in _TARGETS if route.get(k)]
    if len(targets) > 1:
        raise HandlerError(f"{what} has more than one target: {', '.join(targets)}")
    for key in given:
        value = route[key]
        if key.lower().endswith("ipv6cidrblock"):
            try:
                ipaddress.IPv6Network(str(value))
            except ValueError as exc:
                raise HandlerError(f"{what}: {key} '{value}' is not an IPv6 CIDR: {exc}") from None
        elif key.lower().endswith("cidrblock"):
            _network(value, f"{what}: {key}")
    for key in targets:
        value, prefixes = route[key], _TARGETS[key][1]
        if isinstance(value, str) and not value.startswith(prefixes):
            raise HandlerError(
                f"{what}: {key} '{value}' is not an id starting {' or '.join(prefixes)}"
            )


def _route_args(route: dict[str, Any], destinations: dict[str, str], what: str) -> dict[str, Any]:
    """CreateRoute arguments of a route; exactly one destination and one target."""
    given = {destinations[k]: route[k] for k in destinations if route.get(k)}
    targets = {_TARGETS[k][0]: route[k] for k in _TARGETS if route.get(k)}
    if len(given) != 1:
        raise HandlerError(f"{what} needs one destination: {', '.join(destinations)}")
    if len(targets) != 1:
        raise HandlerError(f"{what} needs one target: gatewayId, natGatewayId, ...")
    return {**given, **targets}


def _destination(args: dict[str, Any]) -> tuple[str, str]:
    """(argument, value) of the destination in CreateRoute arguments."""
    return next((k, v) for k, v in args.items() if k.startswith("Destination"))


def _find_route(ec2: Any, table_id: str, args: dict[str, Any]) -> dict[str, Any] | None:
    key, value = _destination(args)
    try:
        tables = ec2.describe_route_tables(RouteTableIds=[table_id])["RouteTables"]
    except Exception as exc:
        if _missing(exc):
            return None
        raise
    for route in tables[0]["Routes"] if tables else []:
        if route.get(key) == value:
            found: dict[str, Any] = route
            return found
    return None


def _delete_route(ec2: Any, table_id: str, args: dict[str, Any]) -> None:
    key, value = _destination(args)
    try:
        ec2.delete_route(RouteTableId=table_id, **{key: value})
    except Exception as exc:
        if error_code(exc) not in _GONE_ROUTE:
            raise


class RouteTable(Handler):
    type = "aws:ec2/routeTable:RouteTable"
    emulates = frozenset(
        {
            *(f"routes.{key}" for key in _INLINE_DESTINATIONS),
            *(f"routes.{key}" for key in _TARGETS if key not in _NOT_KEPT),
            "tags",
            "vpcId",
        }
    )
    replace_on = frozenset({"vpcId"})
    computed = ("id", "arn", "ownerId")

    def validate(self, inputs: dict[str, Any]) -> None:
        for i, route in enumerate(inputs.get("routes") or []):
            if isinstance(route, dict):
                _check_route(route, _INLINE_DESTINATIONS, f"routes[{i}]")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        if inputs.get("propagatingVgws"):
            raise HandlerError("route propagation from virtual private gateways is not emulated")
        routes = self._routes(inputs)
        ec2 = ctx.client("ec2")
        table = ec2.create_route_table(
            VpcId=inputs["vpcId"], TagSpecifications=_tag_spec("route-table", inputs)
        )["RouteTable"]
        table_id = table["RouteTableId"]
        try:
            for destination, args in routes.items():
                self._create_route(ec2, table_id, destination, args)
        except HandlerError:
            ec2.delete_route_table(RouteTableId=table_id)
            raise
        return table_id, {
            **inputs,
            "id": table_id,
            "arn": f"arn:aws:ec2:{ctx.region}:{ctx.account_id}:route-table/{table_id}",
            "ownerId": table.get("OwnerId", ctx.account_id),
        }

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        if (old.get("propagatingVgws") or []) != (new.get("propagatingVgws") or []):
            raise HandlerError("route propagation from virtual private gateways is not emulated")
        ec2 = ctx.client("ec2")
        before, after = self._routes(old), self._routes(new)
        for destination, args in before.items():
            if destination not in after:
                _delete_route(ec2, id_, args)
        for destination, args in after.items():
            if destination not in before:
                self._create_route(ec2, id_, destination, args)
            elif before[destination] != args:
                ec2.replace_route(RouteTableId=id_, **args)
        _retag(ec2, id_, old.get("tags"), new.get("tags"))
        return self.updated(new, outputs)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        try:
            ctx.client("ec2").delete_route_table(RouteTableId=id_)
        except Exception as exc:
            if _missing(exc):
                return
            raise HandlerError(f"cannot delete route table {id_}: {exc}") from None

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        try:
            return bool(ctx.client("ec2").describe_route_tables(RouteTableIds=[id_])["RouteTables"])
        except Exception as exc:
            if _missing(exc):
                return False
            raise

    @staticmethod
    def _routes(inputs: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The inline routes as CreateRoute arguments, by destination."""
        routes: dict[str, dict[str, Any]] = {}
        for i, route in enumerate(inputs.get("routes") or []):
            args = _route_args(route, _INLINE_DESTINATIONS, f"routes[{i}]")
            routes[_destination(args)[1]] = args
        return routes

    @staticmethod
    def _create_route(ec2: Any, table_id: str, destination: str, args: dict[str, Any]) -> None:
        try:
            ec2.create_route(RouteTableId=table_id, **args)
        except Exception as exc:
            raise HandlerError(f"cannot add the route to {destination}: {exc}") from None


class Route(Handler):
    type = "aws:ec2/route:Route"
    emulates = frozenset(
        {"routeTableId", *_DESTINATIONS, *(key for key in _TARGETS if key not in _NOT_KEPT)}
    )
    replace_on = frozenset({"routeTableId", *_DESTINATIONS})
    computed = ("id", "instanceId", "instanceOwnerId", "origin", "state")
    delete_before_replace = True  # a route is its table and destination: the same again

    def validate(self, inputs: dict[str, Any]) -> None:
        _check_route(inputs, _DESTINATIONS, "the route")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        args = _route_args(inputs, _DESTINATIONS, "the route")
        table_id = inputs["routeTableId"]
        destination = _destination(args)[1]
        try:
            ctx.client("ec2").create_route(RouteTableId=table_id, **args)
        except Exception as exc:
            raise HandlerError(f"cannot add the route to {destination}: {exc}") from None
        # The provider's id: the table and a hash of the destination.
        id_ = f"r-{table_id}{zlib.crc32(destination.encode())}"
        return id_, {
            **inputs,
            "id": id_,
            "instanceId": "",
            "instanceOwnerId": "",
            "origin": "CreateRoute",
            "state": "active",
        }

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        args = _route_args(new, _DESTINATIONS, "the route")
        try:
            ctx.client("ec2").replace_route(RouteTableId=new["routeTableId"], **args)
        except Exception as exc:
            raise HandlerError(f"cannot change the route's target: {exc}") from None
        return self.updated(new, outputs)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        args = _route_args(outputs, _DESTINATIONS, "the route")
        _delete_route(ctx.client("ec2"), outputs["routeTableId"], args)

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        args = _route_args(outputs, _DESTINATIONS, "the route")
        return _find_route(ctx.client("ec2"), outputs["routeTableId"], args) is not None


class RouteTableAssociation(Handler):
    """A subnet's (or an edge gateway's) route table.

    Changing the table keeps the resource: AWS replaces the association and gives it a
    new id, so the handler finds the association by its subnet or gateway, not its id.
    """

    type = "aws:ec2/routeTableAssociation:RouteTableAssociation"
    emulates = frozenset({"gatewayId", "routeTableId", "subnetId"})
    replace_on = frozenset({"subnetId", "gatewayId"})
    computed = ("id",)

    def validate(self, inputs: dict[str, Any]) -> None:
        if inputs.get("subnetId") and inputs.get("gatewayId"):
            raise HandlerError("associate a route table with subnetId or gatewayId, not both")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        if not inputs.get("subnetId") and not inputs.get("gatewayId"):
            raise HandlerError("a route table association needs subnetId or gatewayId")
        ec2 = ctx.client("ec2")
        current = self._current(ec2, inputs)
        if current is not None:
            what = inputs.get("subnetId") or inputs.get("gatewayId")
            raise HandlerError(f"{what} is already associated with route table {current[1]}")
        args: dict[str, Any] = {"RouteTableId": inputs["routeTableId"]}
        if inputs.get("subnetId"):
            args["SubnetId"] = inputs["subnetId"]
        else:
            args["GatewayId"] = inputs["gatewayId"]
        try:
            association_id = ec2.associate_route_table(**args)["AssociationId"]
        except Exception as exc:
            raise HandlerError(f"cannot associate {inputs['routeTableId']}: {exc}") from None
        return association_id, {**inputs, "id": association_id}

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        ec2 = ctx.client("ec2")
        current = self._current(ec2, outputs)
        if current is None:
            raise HandlerError(f"association {id_} is gone from the cloud")
        try:
            ec2.replace_route_table_association(
                AssociationId=current[0], RouteTableId=new["routeTableId"]
            )
        except Exception as exc:
            raise HandlerError(f"cannot move to {new['routeTableId']}: {exc}") from None
        return self.updated(new, outputs)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        ec2 = ctx.client("ec2")
        current = self._current(ec2, outputs)
        if current is not None:
            ec2.disassociate_route_table(AssociationId=current[0])

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        current = self._current(ctx.client("ec2"), outputs)
        return current is not None and current[1] == outputs.get("routeTableId")

    @staticmethod
    def _current(ec2: Any, inputs: dict[str, Any]) -> tuple[str, str] | None:
        """(association id, route table id) of the subnet's or gateway's explicit association."""
        key, value = (
            ("SubnetId", inputs["subnetId"])
            if inputs.get("subnetId")
            else ("GatewayId", inputs.get("gatewayId"))
        )
        for table in ec2.describe_route_tables()["RouteTables"]:
            for association in table.get("Associations", []):
                if not association.get("Main") and association.get(key) == value:
                    return association["RouteTableAssociationId"], table["RouteTableId"]
        return None


HANDLERS: list[Handler] = [RouteTable(), Route(), RouteTableAssociation()]
