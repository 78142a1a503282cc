"""Which instance types each zone of the emulated cloud offers, as EC2 answers it.

moto bundles AWS's own per-zone offerings (``describe_instance_type_offerings``) for
every region, taken from real accounts: in us-east-1 g5 and g6 sizes are offered in
five of six zones, g6e and p4d in four, p4de in two, p5e in none. That answer is the
emulator's own. What ``migrate sandbox offerings`` sets for a type is held on the EC2
backend of the account and region (so it is dumped and loaded with the rest of the
cloud, and lost with it on a reset) and replaces moto's answer for that type in every
answer the emulated cloud gives: boto3 through ``sandbox serve``, in-process clients and
program lookups alike.

moto also answers every offering in one page, whatever ``MaxResults`` asks, and an
unknown filter name with nothing at all; EC2 pages (5 to 1000 per page) and refuses
such a filter. :func:`answer_as_ec2` makes the emulator do as EC2 does.
"""

from __future__ import annotations

import fnmatch
from typing import Any

__all__ = [
    "HELD",
    "UnknownInstanceType",
    "UnknownZone",
    "answer_as_ec2",
    "hold_offerings",
    "zones_of_region",
]

HELD = "phasegate_offerings"
"""The attribute of moto's EC2 backend that holds the offerings set: type -> zones."""

_FILTERS = ("instance-type", "location")
_LOCATION_TYPES = ("region", "availability-zone", "availability-zone-id")
_PAGE = (5, 1000)


class UnknownInstanceType(ValueError):
    """An instance type EC2 does not have."""


class UnknownZone(ValueError):
    """A zone the region does not have."""


def _backend(account_id: str, region: str) -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[account_id][region]


def zones_of_region(account_id: str, region: str) -> dict[str, str]:
    """The zones of ``region`` in the emulated cloud: name -> zone id."""
    return {
        zone.name: zone.zone_id
        for zone in _backend(account_id, region).describe_availability_zones()
    }


def hold_offerings(
    account_id: str, region: str, instance_type: str, zones: list[str] | None
) -> None:
    """Offer ``instance_type`` in exactly ``zones`` of the emulated cloud (``[]``: in none;
    None: as moto's own data says again). UnknownInstanceType or UnknownZone, naming
    what is allowed."""
    from moto.ec2.models.instance_types import INSTANCE_TYPES

    if instance_type not in INSTANCE_TYPES:
        family = instance_type.split(".", 1)[0]
        sizes = sorted(t for t in INSTANCE_TYPES if t.split(".", 1)[0] == family)
        allowed = ", ".join(sizes) if sizes else "an EC2 instance type such as g5.xlarge"
        raise UnknownInstanceType(f"unknown instance type {instance_type!r}; allowed: {allowed}")
    backend = _backend(account_id, region)
    held: dict[str, tuple[str, ...]] = dict(getattr(backend, HELD, None) or {})
    if zones is None:
        held.pop(instance_type, None)
    else:
        known = zones_of_region(account_id, region)
        unknown = [z for z in zones if z not in known]
        if unknown:
            raise UnknownZone(
                f"{', '.join(unknown)}: not a zone of {region}; allowed: {', '.join(sorted(known))}"
            )
        held[instance_type] = tuple(sorted(set(zones)))
    setattr(backend, HELD, held)


def _offerings(backend: Any, location_type: str) -> list[dict[str, Any]]:
    """moto's offerings of the backend's region, with the types held replaced."""
    from moto.ec2.models.instance_types import INSTANCE_TYPE_OFFERINGS

    region = backend.region_name
    moto_own = INSTANCE_TYPE_OFFERINGS[location_type].get(region, [])
    held: dict[str, tuple[str, ...]] = getattr(backend, HELD, None) or {}
    if not held:
        return list(moto_own)
    found = [o for o in moto_own if o["InstanceType"] not in held]
    ids = {z.name: z.zone_id for z in backend.describe_availability_zones()}
    for instance_type, zones in sorted(held.items()):
        if location_type == "region":
            locations = [region] if zones else []
        elif location_type == "availability-zone-id":
            locations = [ids[z] for z in zones]
        else:
            locations = list(zones)
        found += [
            {"InstanceType": instance_type, "Location": where, "LocationType": location_type}
            for where in locations
        ]
    return found


def _matches(offering: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    """EC2's filters: every filter holds, a value matches with ``*`` and ``?`` wildcards."""
    keys = {"instance-type": "InstanceType", "location": "Location"}
    return all(
        any(fnmatch.fnmatchcase(str(offering[keys[name]]), v) for v in values)
        for name, values in filters.items()
    )


def answer_as_ec2(
    backend: Any,
    location_type: str | None,
    filters: dict[str, list[str]],
    max_results: int | None = None,
    next_token: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of ``DescribeInstanceTypeOfferings`` and the token of the next (None
    after the last), as EC2 answers it; moto's own errors for what EC2 refuses."""
    from moto.ec2.exceptions import InvalidFilter, InvalidNextToken, InvalidParameterValueError

    location_type = location_type or "region"
    if location_type not in _LOCATION_TYPES:
        raise InvalidParameterValueError(location_type)
    for name in filters:
        if name not in _FILTERS:
            raise InvalidFilter(name)
    if max_results is not None and not _PAGE[0] <= max_results <= _PAGE[1]:
        raise InvalidParameterValueError(str(max_results))
    found = [o for o in _offerings(backend, location_type) if _matches(o, filters)]
    start = 0
    if next_token:
        if not next_token.isdigit() or int(next_token) > len(found):
            raise InvalidNextToken(next_token)
        start = int(next_token)
    end = len(found) if max_results is None else start + max_results
    return found[start:end], (str(end) if end < len(found) else None)
