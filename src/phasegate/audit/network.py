"""The audit's network: free private addresses against the node groups at max size, the
S3 gateway endpoint, a NAT gateway per zone where the config wants one."""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Any

from phasegate.audit.base import (
    AWS_ERRORS,
    AuditInputs,
    Aws,
    Finding,
    pages,
    unreadable,
    zone_list,
)

__all__ = ["ADDRESSES_PER_NODE", "PODS_PER_NODE", "network"]

PODS_PER_NODE = 110
ADDRESSES_PER_NODE = 1 + PODS_PER_NODE
"""Private addresses one node may take at most: its own, and one per pod, since the VPC
CNI (without prefix delegation) gives every pod an address of the node's subnet; 110
pods is the Kubernetes default cap per node. An upper bound: small types run fewer."""
_RESERVED = 5
"""Addresses AWS keeps in every subnet (network, router, DNS, future, broadcast)."""


def network(inputs: AuditInputs, aws: Aws) -> list[Finding]:
    """Free private addresses against the node groups at max size; the S3 gateway
    endpoint; a NAT gateway per zone where the config wants one."""
    nodes = sum(p.max_size for p in inputs.pools)
    needed = nodes * ADDRESSES_PER_NODE
    assumption = (
        f"{nodes} node(s) at max size x {ADDRESSES_PER_NODE} addresses (1 per node, 1 per "
        f"pod through the VPC CNI, up to {PODS_PER_NODE} pods a node) = {needed}"
    )
    if inputs.vpc_id is None:
        return _planned_network(inputs, needed, assumption)
    ec2 = aws("ec2")
    findings = [_free_addresses(inputs, ec2, needed, assumption)]
    findings.append(_s3_endpoint(inputs, ec2))
    findings.append(_nat(inputs, ec2))
    return findings


def _planned_network(inputs: AuditInputs, needed: int, assumption: str) -> list[Finding]:
    cidrs = inputs.private_subnet_cidrs
    planned = sum(IPv4Network(c).num_addresses - _RESERVED for c in cidrs)
    later = "checked once the VPC exists (no stack exports vpc_id yet)"
    if not cidrs:
        addresses = Finding(
            area="network",
            check="free addresses",
            severity="unknown",
            found=f"no VPC yet and no private_subnet_cidrs in the stack configs; {assumption}",
            action="run the audit again once the network is applied",
        )
    else:
        addresses = Finding(
            area="network",
            check="free addresses",
            severity="ok" if planned >= needed else "critical",
            found=f"no VPC yet: the planned private subnets ({', '.join(cidrs)}) give "
            f"{planned} addresses; needed: {assumption}",
            action=None if planned >= needed else "plan larger private_subnet_cidrs",
        )
    nat = "one per zone" if inputs.nat_per_az else "one shared"
    return [
        addresses,
        Finding(area="network", check="S3 gateway endpoint", severity="info", found=later),
        Finding(
            area="network",
            check="NAT gateways",
            severity="info",
            found=f"{later}; planned: {nat} ({inputs.nat_key or 'nat_per_az'}: "
            f"{str(bool(inputs.nat_per_az)).lower()})",
        ),
    ]


def _free_addresses(inputs: AuditInputs, ec2: Any, needed: int, assumption: str) -> Finding:
    check = "free addresses"
    try:
        if inputs.private_subnet_ids:
            subnets = ec2.describe_subnets(SubnetIds=list(inputs.private_subnet_ids))["Subnets"]
        else:
            subnets = list(
                pages(
                    ec2,
                    "describe_subnets",
                    "Subnets",
                    Filters=[{"Name": "vpc-id", "Values": [inputs.vpc_id]}],
                )
            )
    except AWS_ERRORS as exc:
        return unreadable(
            "network", check, f"the subnets of {inputs.vpc_id}", "ec2:DescribeSubnets", exc
        )
    free = sum(int(s.get("AvailableIpAddressCount", 0)) for s in subnets)
    which = "private subnets" if inputs.private_subnet_ids else "subnets"
    found = (
        f"{free} free addresses in the {len(subnets)} {which} of {inputs.vpc_id}; "
        f"needed: {assumption}"
    )
    if free >= needed:
        return Finding(area="network", check=check, severity="ok", found=found)
    desired = sum(p.desired_size for p in inputs.pools) * ADDRESSES_PER_NODE
    return Finding(
        area="network",
        check=check,
        severity="warning" if free >= desired else "critical",
        found=found,
        action="add private subnets (or a secondary CIDR), or turn on VPC CNI prefix "
        "delegation, before the pools scale out",
    )


def _s3_endpoint(inputs: AuditInputs, ec2: Any) -> Finding:
    check = "S3 gateway endpoint"
    service = f"com.amazonaws.{inputs.region}.s3"
    try:
        endpoints = list(
            pages(
                ec2,
                "describe_vpc_endpoints",
                "VpcEndpoints",
                Filters=[
                    {"Name": "vpc-id", "Values": [inputs.vpc_id]},
                    {"Name": "service-name", "Values": [service]},
                ],
            )
        )
    except AWS_ERRORS as exc:
        return unreadable(
            "network", check, f"the endpoints of {inputs.vpc_id}", "ec2:DescribeVpcEndpoints", exc
        )
    gateways = [
        e["VpcEndpointId"]
        for e in endpoints
        if e.get("VpcEndpointType") == "Gateway" and e.get("State", "available") == "available"
    ]
    if gateways:
        return Finding(
            area="network",
            check=check,
            severity="ok",
            found=f"{inputs.vpc_id} has an S3 gateway endpoint ({', '.join(gateways)})",
        )
    return Finding(
        area="network",
        check=check,
        severity="warning",
        found=f"{inputs.vpc_id} has no S3 gateway endpoint: the lake's traffic would go "
        "through the NAT gateways, paid per GB",
        action=f"add a Gateway endpoint for {service} on the private route tables",
    )


def _nat(inputs: AuditInputs, ec2: Any) -> Finding:
    check = "NAT gateways"
    try:
        nats = list(
            pages(
                ec2,
                "describe_nat_gateways",
                "NatGateways",
                Filters=[
                    {"Name": "vpc-id", "Values": [inputs.vpc_id]},
                    {"Name": "state", "Values": ["available"]},
                ],
            )
        )
        subnet_ids = sorted({n["SubnetId"] for n in nats} | set(inputs.private_subnet_ids))
        zone_of = {
            s["SubnetId"]: s["AvailabilityZone"]
            for s in (ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"] if subnet_ids else [])
        }
    except AWS_ERRORS as exc:
        return unreadable(
            "network", check, f"the NAT gateways of {inputs.vpc_id}", "ec2:DescribeNatGateways", exc
        )
    with_nat = {zone_of.get(n["SubnetId"], "?") for n in nats}
    private_zones = {zone_of[s] for s in inputs.private_subnet_ids if s in zone_of}
    wanted = private_zones or set(inputs.zones)
    key = inputs.nat_key or "nat_per_az"
    found = f"{len(nats)} NAT gateway(s) in {inputs.vpc_id}, in {zone_list(with_nat)}"
    if not nats:
        return Finding(
            area="network",
            check=check,
            severity="warning",
            found=found + ": private nodes cannot reach the internet",
            action="add a NAT gateway (the pilot declares one)",
        )
    if not inputs.nat_per_az:
        return Finding(
            area="network",
            check=check,
            severity="info",
            found=f"{found}; one shared is what {key}: false asks for (a zone "
            "outage cuts the others off)",
        )
    missing = wanted - with_nat
    if not missing:
        return Finding(
            area="network",
            check=check,
            severity="ok",
            found=f"{found}: one per zone, as {key}: true asks",
        )
    return Finding(
        area="network",
        check=check,
        severity="warning",
        found=f"{found}; {key}: true wants one in each zone, {zone_list(missing)} have none",
        action=f"apply the pilot again to add NAT gateways in {zone_list(missing)}",
    )
