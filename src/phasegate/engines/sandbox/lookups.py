"""Provider functions (data sources) that read the emulated cloud: AMIs, VPCs, subnets,
security groups, instance type offerings and hosted zones, found as the aws provider
finds them.

They answer on a plan before any apply as after one: the deployment opens the emulated
cloud for them either way. A lookup that finds nothing fails, as the provider's does
("no matching ..."), and so does one that finds several where the provider wants one.
An argument a lookup cannot honour is refused by name, never ignored. Errors are
ValueError; the deployment names the function in the line it shows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from phasegate.engines.sandbox.handlers.base import CloudContext

__all__ = ["READ", "lookup", "reads_cloud"]

_Read = Callable[[dict[str, Any], CloudContext], dict[str, Any]]


def _set(value: Any) -> bool:
    """An argument the program set: not absent, None, false or empty."""
    return value not in (None, False, "", [], {})


def _shown(args: dict[str, Any]) -> str:
    """The arguments set, as the line that names a lookup shows them."""
    return ", ".join(f"{k}={v!r}" for k, v in sorted(args.items()) if _set(v)) or "no arguments"


def _filters(args: dict[str, Any], **named: Any) -> list[dict[str, Any]]:
    """EC2 filters from a lookup's ``filters``, its ``tags`` and its own named arguments
    (filter name -> value; unset ones left out)."""
    found = [
        {"Name": f["name"], "Values": [str(v) for v in f["values"]]}
        for f in args.get("filters") or []
    ]
    found += [{"Name": f"tag:{k}", "Values": [str(v)]} for k, v in (args.get("tags") or {}).items()]
    for name, value in named.items():
        if _set(value):
            values = value if isinstance(value, list) else [value]
            found.append({"Name": name, "Values": [_text(v) for v in values]})
    return found


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _tags(described: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in described.get("Tags") or []}


def _described(call: Callable[..., dict[str, Any]], key: str, **kwargs: Any) -> list[Any]:
    """What an EC2 describe call finds; ValueError for a filter EC2 (or the emulator)
    does not take."""
    try:
        found: list[Any] = call(**kwargs)[key]
    except Exception as exc:
        if "NotFound" in str(exc):
            return []
        raise ValueError(f"cannot search with {kwargs}: {exc}") from None
    return found


def _one(found: list[Any], what: str, args: dict[str, Any]) -> Any:
    """The single match, as the provider's singular lookups want it."""
    if not found:
        raise ValueError(f"no matching {what} found ({_shown(args)})")
    if len(found) > 1:
        raise ValueError(
            f"multiple {what}s matched ({_shown(args)}); use additional constraints to "
            f"reduce matches to a single {what}"
        )
    return found[0]


# -- AMIs ------------------------------------------------------------------------------


def _ami(args: dict[str, Any], ctx: CloudContext) -> dict[str, Any]:
    from phasegate.engines.sandbox.emulator import load_ami_catalogue

    load_ami_catalogue(ctx.account_id, ctx.region)
    query: dict[str, Any] = {"Filters": _filters(args)}
    if args.get("owners"):
        query["Owners"] = list(args["owners"])
    images = _described(ctx.client("ec2").describe_images, "Images", **query)
    if args.get("nameRegex"):
        pattern = re.compile(str(args["nameRegex"]))
        images = [i for i in images if pattern.search(i.get("Name") or "")]
    if not images:
        raise ValueError(
            f"no matching AMI found ({_shown(args)}): your query returned no results, "
            "change your search criteria and try again"
        )
    if len(images) > 1 and not args.get("mostRecent"):
        raise ValueError(
            f"your query returned {len(images)} AMIs ({_shown(args)}); try a more specific "
            "search, or set most_recent to true"
        )
    image = max(images, key=lambda i: (i.get("CreationDate") or "", i["ImageId"]))
    return {
        "id": image["ImageId"],
        "imageId": image["ImageId"],
        "arn": f"arn:aws:ec2:{ctx.region}::image/{image['ImageId']}",
        "architecture": image.get("Architecture"),
        "blockDeviceMappings": [_mapping(m) for m in image.get("BlockDeviceMappings") or []],
        "creationDate": image.get("CreationDate"),
        "description": image.get("Description") or "",
        "hypervisor": image.get("Hypervisor"),
        "imageLocation": image.get("ImageLocation") or "",
        "imageOwnerAlias": image.get("ImageOwnerAlias") or "",
        "imageType": image.get("ImageType"),
        "name": image.get("Name"),
        "ownerId": image.get("OwnerId"),
        "platform": image.get("Platform") or "",
        "public": bool(image.get("Public")),
        "rootDeviceName": image.get("RootDeviceName"),
        "rootDeviceType": image.get("RootDeviceType"),
        "state": image.get("State"),
        "tags": _tags(image),
        "virtualizationType": image.get("VirtualizationType"),
        "owners": list(args.get("owners") or []),
        "filters": list(args.get("filters") or []),
        "mostRecent": bool(args.get("mostRecent")),
        "nameRegex": args.get("nameRegex") or "",
        "region": ctx.region,
    }


def _mapping(mapping: dict[str, Any]) -> dict[str, Any]:
    """A block device of an AMI, as the provider shows it (its EBS settings as text)."""
    ebs = mapping.get("Ebs") or {}
    keys = {
        "DeleteOnTermination": "delete_on_termination",
        "Encrypted": "encrypted",
        "SnapshotId": "snapshot_id",
        "VolumeSize": "volume_size",
        "VolumeType": "volume_type",
    }
    return {
        "deviceName": mapping.get("DeviceName"),
        "ebs": {name: _text(ebs[key]) for key, name in keys.items() if key in ebs},
        "noDevice": "",
        "virtualName": mapping.get("VirtualName") or "",
    }


# -- VPCs, subnets, security groups ----------------------------------------------------


def _vpc(args: dict[str, Any], ctx: CloudContext) -> dict[str, Any]:
    ec2 = ctx.client("ec2")
    filters = _filters(
        args,
        **{
            "vpc-id": args.get("id"),
            "is-default": args.get("default"),
            "cidr": args.get("cidrBlock"),
            "state": args.get("state"),
            "dhcp-options-id": args.get("dhcpOptionsId"),
        },
    )
    vpc = _one(_described(ec2.describe_vpcs, "Vpcs", Filters=filters), "EC2 VPC", args)
    vpc_id = vpc["VpcId"]
    attribute = ec2.describe_vpc_attribute
    tables = _described(
        ec2.describe_route_tables,
        "RouteTables",
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "association.main", "Values": ["true"]},
        ],
    )
    return {
        "id": vpc_id,
        "arn": f"arn:aws:ec2:{ctx.region}:{ctx.account_id}:vpc/{vpc_id}",
        "cidrBlock": vpc["CidrBlock"],
        "cidrBlockAssociations": [
            {
                "associationId": a["AssociationId"],
                "cidrBlock": a["CidrBlock"],
                "state": a["CidrBlockState"]["State"],
            }
            for a in vpc.get("CidrBlockAssociationSet") or []
        ],
        "default": bool(vpc.get("IsDefault")),
        "dhcpOptionsId": vpc.get("DhcpOptionsId") or "",
        "enableDnsHostnames": attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")[
            "EnableDnsHostnames"
        ]["Value"],
        "enableDnsSupport": attribute(VpcId=vpc_id, Attribute="enableDnsSupport")[
            "EnableDnsSupport"
        ]["Value"],
        "instanceTenancy": vpc.get("InstanceTenancy") or "default",
        "mainRouteTableId": tables[0]["RouteTableId"] if tables else "",
        "ownerId": vpc.get("OwnerId") or ctx.account_id,
        "state": vpc.get("State"),
        "tags": _tags(vpc),
        "filters": list(args.get("filters") or []),
        "region": ctx.region,
    }


def _subnet_filters(args: dict[str, Any]) -> list[dict[str, Any]]:
    return _filters(
        args,
        **{
            "subnet-id": args.get("id"),
            "vpc-id": args.get("vpcId"),
            "availability-zone": args.get("availabilityZone"),
            "availability-zone-id": args.get("availabilityZoneId"),
            "cidr-block": args.get("cidrBlock"),
            "default-for-az": args.get("defaultForAz"),
            "state": args.get("state"),
        },
    )


def _subnet(args: dict[str, Any], ctx: CloudContext) -> dict[str, Any]:
    ec2 = ctx.client("ec2")
    found = _described(ec2.describe_subnets, "Subnets", Filters=_subnet_filters(args))
    subnet = _one(found, "EC2 Subnet", args)
    return {
        "id": subnet["SubnetId"],
        "arn": subnet.get("SubnetArn")
        or f"arn:aws:ec2:{ctx.region}:{ctx.account_id}:subnet/{subnet['SubnetId']}",
        "assignIpv6AddressOnCreation": bool(subnet.get("AssignIpv6AddressOnCreation")),
        "availabilityZone": subnet["AvailabilityZone"],
        "availabilityZoneId": subnet.get("AvailabilityZoneId") or "",
        "availableIpAddressCount": subnet.get("AvailableIpAddressCount", 0),
        "cidrBlock": subnet["CidrBlock"],
        "defaultForAz": bool(subnet.get("DefaultForAz")),
        "mapPublicIpOnLaunch": bool(subnet.get("MapPublicIpOnLaunch")),
        "ownerId": subnet.get("OwnerId") or ctx.account_id,
        "state": subnet.get("State"),
        "tags": _tags(subnet),
        "vpcId": subnet["VpcId"],
        "filters": list(args.get("filters") or []),
        "region": ctx.region,
    }


def _subnets(args: dict[str, Any], ctx: CloudContext) -> dict[str, Any]:
    """``getSubnets``: every match, none an answer too (as with the provider)."""
    found = _described(ctx.client("ec2").describe_subnets, "Subnets", Filters=_filters(args))
    return {
        "id": ctx.region,
        "ids": [s["SubnetId"] for s in found],
        "filters": list(args.get("filters") or []),
        "tags": dict(args.get("tags") or {}),
        "region": ctx.region,
    }


def _security_group(args: dict[str, Any], ctx: CloudContext) -> dict[str, Any]:
    filters = _filters(
        args,
        **{
            "group-id": args.get("id"),
            "group-name": args.get("name"),
            "vpc-id": args.get("vpcId"),
        },
    )
    found = _described(
        ctx.client("ec2").describe_security_groups, "SecurityGroups", Filters=filters
    )
    group = _one(found, "EC2 Security Group", args)
    return {
        "id": group["GroupId"],
        "arn": f"arn:aws:ec2:{ctx.region}:{ctx.account_id}:security-group/{group['GroupId']}",
        "description": group.get("Description") or "",
        "name": group["GroupName"],
        "tags": _tags(group),
        "vpcId": group.get("VpcId") or "",
        "filters": list(args.get("filters") or []),
        "region": ctx.region,
    }


# -- instance type offerings -------------------------------------------------------------


def _offerings(args: dict[str, Any], ctx: CloudContext) -> dict[str, Any]:
    """``getInstanceTypeOfferings``: every offering that matches, over every page; none
    is an answer too (as with the provider)."""
    location_type = args.get("locationType") or "region"
    query: dict[str, Any] = {"LocationType": location_type, "Filters": _filters(args)}
    pages = ctx.client("ec2").get_paginator("describe_instance_type_offerings")
    try:
        found = [o for page in pages.paginate(**query) for o in page["InstanceTypeOfferings"]]
    except Exception as exc:
        raise ValueError(f"cannot search with {query}: {exc}") from None
    return {
        "id": ctx.region,
        "instanceTypes": [o["InstanceType"] for o in found],
        "locations": [o["Location"] for o in found],
        "locationTypes": [o["LocationType"] for o in found],
        "filters": list(args.get("filters") or []),
        "locationType": args.get("locationType") or "",
        "region": ctx.region,
    }


# -- hosted zones ----------------------------------------------------------------------


def _zone(args: dict[str, Any], ctx: CloudContext) -> dict[str, Any]:
    route53 = ctx.client("route53")
    name = str(args.get("name") or "").rstrip(".").lower()
    zones = [
        z
        for page in route53.get_paginator("list_hosted_zones").paginate()
        for z in page["HostedZones"]
    ]
    found = []
    for zone in zones:
        zone_id = zone["Id"].rsplit("/", 1)[-1]
        if args.get("zoneId") and zone_id != args["zoneId"]:
            continue
        if name and zone["Name"].rstrip(".").lower() != name:
            continue
        if bool(zone["Config"].get("PrivateZone")) != bool(args.get("privateZone")):
            continue
        tags = route53.list_tags_for_resource(ResourceType="hostedzone", ResourceId=zone_id)
        held = {t["Key"]: t["Value"] for t in tags["ResourceTagSet"].get("Tags", [])}
        if any(held.get(k) != v for k, v in (args.get("tags") or {}).items()):
            continue
        found.append((zone_id, zone, held))
    zone_id, zone, held = _one(found, "Route 53 Hosted Zone", args)
    servers = route53.get_hosted_zone(Id=zone_id).get("DelegationSet", {}).get("NameServers")
    return {
        "id": zone_id,
        "zoneId": zone_id,
        "arn": f"arn:aws:route53:::hostedzone/{zone_id}",
        "name": zone["Name"].rstrip("."),
        "callerReference": zone.get("CallerReference") or "",
        "comment": zone["Config"].get("Comment") or "",
        "nameServers": list(servers or []),
        "privateZone": bool(zone["Config"].get("PrivateZone")),
        "resourceRecordSetCount": zone.get("ResourceRecordSetCount", 0),
        "tags": held,
    }


_READS: dict[str, tuple[_Read, frozenset[str]]] = {
    "aws:ec2/getAmi:getAmi": (
        _ami,
        frozenset(
            {"owners", "filters", "mostRecent", "nameRegex", "tags", "includeDeprecated"}
            | {"allowUnsafeFilter"}  # the provider's warning about an unsafe filter only
        ),
    ),
    "aws:ec2/getVpc:getVpc": (
        _vpc,
        frozenset({"id", "default", "tags", "filters", "cidrBlock", "state", "dhcpOptionsId"}),
    ),
    "aws:ec2/getSubnet:getSubnet": (
        _subnet,
        frozenset(
            {
                "id",
                "vpcId",
                "availabilityZone",
                "availabilityZoneId",
                "cidrBlock",
                "defaultForAz",
                "filters",
                "state",
                "tags",
            }
        ),
    ),
    "aws:ec2/getSubnets:getSubnets": (_subnets, frozenset({"filters", "tags"})),
    "aws:ec2/getSecurityGroup:getSecurityGroup": (
        _security_group,
        frozenset({"id", "name", "vpcId", "filters", "tags"}),
    ),
    "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": (
        _offerings,
        frozenset({"filters", "locationType"}),
    ),
    "aws:route53/getZone:getZone": (
        _zone,
        frozenset({"name", "zoneId", "privateZone", "tags"}),
    ),
}
"""Each lookup, and the arguments it honours (besides ``region``, where it looks)."""

READ = frozenset(_READS)
"""The lookups of the emulated cloud, by token."""


def reads_cloud(token: str) -> bool:
    """Whether ``token`` is a lookup of what the emulated cloud holds."""
    return token in _READS


def lookup(token: str, args: dict[str, Any], ctx: CloudContext) -> dict[str, Any]:
    """The lookup's answer from the cloud ``ctx`` opens, in the provider's property names.
    ValueError for an argument it cannot honour, or when it finds no match (or several,
    where the provider wants one)."""
    read, honoured = _READS[token]
    refused = sorted(k for k, v in args.items() if k not in honoured | {"region"} and _set(v))
    if refused:
        raise ValueError(f"the sandbox does not answer {', '.join(refused)}")
    return read(args, ctx)
