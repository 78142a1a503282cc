"""Network checks: ``vpc_endpoint`` (a service endpoint in a VPC) and ``route53_weights``
(the weighted records of a name split traffic exactly as declared)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field

from phasegate.checks.base import CheckContext, CheckError, CheckKind, Params, Probe, aws_client

__all__ = ["Route53Weights", "Route53WeightsParams", "VpcEndpoint", "VpcEndpointParams"]


class VpcEndpointParams(Params):
    """A VPC endpoint for a service, available, of the given type and route tables."""

    vpc_id: str = Field(min_length=1, description="the VPC the endpoint is in")
    service: str = Field(
        min_length=1,
        description="service name (com.amazonaws.<region>.s3) or its short form (s3)",
    )
    type: Literal["Gateway", "Interface", "GatewayLoadBalancer"] | None = Field(
        None, description="the endpoint type; any when not given"
    )
    route_table_ids: list[str] | None = Field(
        None, description="exactly these route tables (a gateway endpoint's), any order"
    )


class VpcEndpoint(CheckKind):
    name = "vpc_endpoint"
    params = VpcEndpointParams

    def probe(self, params: VpcEndpointParams, ctx: CheckContext) -> Probe:
        ec2 = aws_client(ctx, "ec2")
        service = params.service
        if "." not in service:
            service = f"com.amazonaws.{ec2.meta.region_name}.{service}"
        in_vpc = [
            e
            for page in ec2.get_paginator("describe_vpc_endpoints").paginate(
                Filters=[{"Name": "vpc-id", "Values": [params.vpc_id]}]
            )
            for e in page["VpcEndpoints"]
        ]
        candidates = [
            e
            for e in in_vpc
            if e.get("ServiceName") == service and params.type in (None, e.get("VpcEndpointType"))
        ]
        if not candidates:
            others = ", ".join(
                f"{e.get('ServiceName')} ({e.get('VpcEndpointType')})" for e in in_vpc
            )
            return Probe(
                False,
                f"VPC {params.vpc_id}: no {params.type + ' ' if params.type else ''}endpoint "
                f"for {service} "
                f"(endpoints there: {others or 'none'})",
            )
        reports = []
        for endpoint in candidates:
            problems = []
            state = str(endpoint.get("State", "unknown"))
            if state.lower() != "available":
                problems.append(f"state {state}, expected available")
            tables = sorted(endpoint.get("RouteTableIds", []))
            if params.route_table_ids is not None and tables != sorted(set(params.route_table_ids)):
                problems.append(
                    f"route tables {', '.join(tables) or 'none'}, expected "
                    f"{', '.join(sorted(set(params.route_table_ids))) or 'none'}"
                )
            where = f"{endpoint['VpcEndpointId']} ({endpoint.get('VpcEndpointType')} {service})"
            if not problems:
                routes = f", route tables {', '.join(tables)}" if tables else ""
                return Probe(True, f"{where} in {params.vpc_id}: available{routes}")
            reports.append(f"{where}: {'; '.join(problems)}")
        return Probe(False, "; ".join(reports))


Weight = Annotated[int, Field(ge=0, le=255)]
_ZONE_ID = re.compile(r"^(/hostedzone/)?Z[A-Z0-9]{1,31}$")


class Route53WeightsParams(Params):
    """The weighted records of one name have exactly these weights by set identifier."""

    zone: str = Field(min_length=1, description="the hosted zone: its name or its id")
    name: str = Field(
        min_length=1, description="the record name, relative to the zone or fully qualified"
    )
    weights: dict[str, Weight] = Field(
        min_length=1, description="set identifier -> weight (0-255): exactly these records"
    )
    type: str | None = Field(None, description="record type (CNAME, A, ...); any when not given")


def _dotted(name: str) -> str:
    return name.lower() if name.endswith(".") else name.lower() + "."


def _zone(r53: Any, zone: str) -> tuple[str, str]:
    """The zone's id and its name (with the trailing dot)."""
    if _ZONE_ID.match(zone):
        found = r53.get_hosted_zone(Id=zone)["HostedZone"]
        return str(found["Id"]), str(found["Name"])
    wanted = _dotted(zone)
    matches = [
        z
        for z in r53.list_hosted_zones_by_name(DNSName=wanted)["HostedZones"]
        if z["Name"].lower() == wanted
    ]
    if not matches:
        raise CheckError(f"no hosted zone is named {wanted}")
    if len(matches) > 1:
        ids = ", ".join(z["Id"].rsplit("/", 1)[-1] for z in matches)
        raise CheckError(f"{len(matches)} hosted zones are named {wanted} ({ids}): give its id")
    return str(matches[0]["Id"]), str(matches[0]["Name"])


def _render(weights: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(weights.items())) or "none"


class Route53Weights(CheckKind):
    name = "route53_weights"
    params = Route53WeightsParams

    def probe(self, params: Route53WeightsParams, ctx: CheckContext) -> Probe:
        r53 = aws_client(ctx, "route53")
        zone_id, zone_name = _zone(r53, params.zone)
        record = _dotted(params.name)
        if record != zone_name and not record.endswith("." + zone_name):
            record = f"{record}{zone_name}"
        found: dict[str, int] = {}
        problems = []
        pages = r53.get_paginator("list_resource_record_sets").paginate(
            HostedZoneId=zone_id, StartRecordName=record
        )
        for page in pages:
            sets = page["ResourceRecordSets"]
            for rrset in sets:
                if rrset["Name"].lower() != record:
                    continue
                if "Weight" not in rrset or (params.type and rrset["Type"] != params.type):
                    continue
                ident, weight = rrset.get("SetIdentifier", ""), int(rrset["Weight"])
                if ident in found and found[ident] != weight:
                    problems.append(f"set {ident} has weights {found[ident]} and {weight}")
                found[ident] = weight
            if sets and sets[-1]["Name"].lower() != record:
                break  # records come in name order: past ours
        what = f"{record.rstrip('.')}{' ' + params.type if params.type else ''}"
        if not found:
            return Probe(False, f"{what}: no weighted records, expected {_render(params.weights)}")
        if found != params.weights or problems:
            problems.insert(0, f"weights {_render(found)}, expected {_render(params.weights)}")
            return Probe(False, f"{what}: {'; '.join(problems)}")
        return Probe(True, f"{what}: weights {_render(found)}")
