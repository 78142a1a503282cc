"""Provider functions (data sources) the sandbox answers itself, the same on a plan before
any apply as after: what they tell depends only on the account and region, not on what
the emulated cloud holds. Each answers in the aws provider's own property names; a
function not here is refused by the engine by token, never answered with nothing.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from typing import Any

__all__ = ["ACCOUNT_ID", "ANSWERED", "answer"]

ACCOUNT_ID = "123456789012"
"""The emulated account (moto's)."""

_PARTITION = {"partition": "aws", "dnsSuffix": "amazonaws.com", "reverseDnsPrefix": "com.amazonaws"}


def _zones(region: str) -> list[dict[str, str]]:
    """The region's availability zones, as the emulator has them."""
    from moto.ec2.models.availability_zones_and_regions import RegionsAndZonesBackend

    return [
        {"name": z.name, "zoneId": z.zone_id} for z in RegionsAndZonesBackend.zones.get(region, [])
    ]


def _availability_zones(args: dict[str, Any], region: str) -> dict[str, Any]:
    unsupported = sorted(k for k in ("allAvailabilityZones", "filters") if args.get(k))
    if unsupported:
        raise ValueError(f"the sandbox does not answer {', '.join(unsupported)}")
    zones = [z for z in _zones(region) if z["name"] not in (args.get("excludeNames") or [])]
    zones = [z for z in zones if z["zoneId"] not in (args.get("excludeZoneIds") or [])]
    return {
        "id": region,
        "names": [z["name"] for z in zones],
        "zoneIds": [z["zoneId"] for z in zones],
        "groupNames": [region] * len(zones),
        "state": args.get("state") or "available",
    }


def _caller_identity(_: dict[str, Any], __: str) -> dict[str, Any]:
    return {
        "id": ACCOUNT_ID,
        "accountId": ACCOUNT_ID,
        "arn": f"arn:aws:sts::{ACCOUNT_ID}:user/moto",
        "userId": "AKIAIOSFODNN7EXAMPLE",
    }


def _partition(_: dict[str, Any], __: str) -> dict[str, Any]:
    return {"id": "aws", **_PARTITION}


def _region(_: dict[str, Any], region: str) -> dict[str, Any]:
    return {
        "id": region,
        "name": region,
        "region": region,
        "endpoint": f"ec2.{region}.amazonaws.com",
        "description": region,
    }


def _policy_document(args: dict[str, Any], _: str) -> dict[str, Any]:
    """``iam.get_policy_document``: the statements as the policy JSON the provider renders
    (a single value as a string, several as a list in the provider's reverse-sorted
    order, keys in AWS's order)."""
    unsupported = sorted(
        {"sourcePolicyDocuments", "overridePolicyDocuments", "policyId"} & set(args)
    )
    if unsupported:
        raise ValueError(f"the sandbox does not render {', '.join(unsupported)}")
    statements = [_statement(s) for s in args.get("statements") or []]
    document = {"Version": args.get("version") or "2012-10-17", "Statement": statements}
    minified = json.dumps(document, separators=(",", ":"))
    return {
        "id": str(zlib.crc32(minified.encode())),
        "json": json.dumps(document, indent=2),
        "minifiedJson": minified,
    }


def _one_or_many(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else sorted(values, reverse=True)


def _statement(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if spec.get("sid"):
        out["Sid"] = spec["sid"]
    out["Effect"] = spec.get("effect") or "Allow"
    for key, name in (
        ("actions", "Action"),
        ("notActions", "NotAction"),
        ("resources", "Resource"),
        ("notResources", "NotResource"),
    ):
        if spec.get(key):
            out[name] = _one_or_many(list(spec[key]))
    for key, name in (("principals", "Principal"), ("notPrincipals", "NotPrincipal")):
        if spec.get(key):
            out[name] = {p["type"]: _one_or_many(list(p["identifiers"])) for p in spec[key]}
    if spec.get("conditions"):
        conditions: dict[str, dict[str, Any]] = {}
        for condition in spec["conditions"]:
            test = conditions.setdefault(condition["test"], {})
            test[condition["variable"]] = _one_or_many(list(condition["values"]))
        out["Condition"] = conditions
    return out


_ANSWERS: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
    "aws:index/getAvailabilityZones:getAvailabilityZones": _availability_zones,
    "aws:index/getCallerIdentity:getCallerIdentity": _caller_identity,
    "aws:index/getPartition:getPartition": _partition,
    "aws:index/getRegion:getRegion": _region,
    "aws:iam/getPolicyDocument:getPolicyDocument": _policy_document,
}

ANSWERED = frozenset(_ANSWERS)
"""The functions answered here, by token."""


def answer(token: str, args: dict[str, Any], region: str) -> dict[str, Any] | None:
    """The function's result, or None when the sandbox does not answer ``token`` here.
    Raises ValueError for arguments it cannot honour."""
    found = _ANSWERS.get(token)
    return found(args, region) if found is not None else None
