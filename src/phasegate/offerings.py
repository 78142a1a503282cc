"""Which availability zones offer which EC2 instance types, read from the environment's
AWS API (the real one, or the sandbox's emulated cloud) through any boto3 EC2 client."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["zones_offering"]

_VALUES_PER_FILTER = 200
"""EC2 takes at most this many values in one filter: more types are asked in batches."""


def zones_offering(ec2_client: Any, types: Iterable[str]) -> dict[str, set[str]]:
    """Every type in ``types`` -> the availability zones of the client's region that offer
    it (an empty set for a type offered in none). Paginated, as EC2 pages the answer."""
    wanted = sorted(set(types))
    found: dict[str, set[str]] = {t: set() for t in wanted}
    paginator = ec2_client.get_paginator("describe_instance_type_offerings")
    for start in range(0, len(wanted), _VALUES_PER_FILTER):
        batch = wanted[start : start + _VALUES_PER_FILTER]
        pages = paginator.paginate(
            LocationType="availability-zone",
            Filters=[{"Name": "instance-type", "Values": batch}],
        )
        for page in pages:
            for offering in page["InstanceTypeOfferings"]:
                found.setdefault(offering["InstanceType"], set()).add(offering["Location"])
    return found
