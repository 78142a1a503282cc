"""A launch template's objects reach its version's data whole, every nested key of them.

They are declared whole (no dotted entries): the handler hands each one to EC2's
LaunchTemplateData with its keys renamed, and the emulator keeps the data as given. This
holds that claim to the installed schema: every nested key set, each to a value of its
own, and each found again through boto3.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from test_sandbox_inputs import _Map, schema_inputs

from phasegate.engines.sandbox.handlers import CloudContext, handler_for

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"


_NOT_DATA = ("name", "namePrefix", "tags", "description", "defaultVersion", "region")
_STRING_BOOLS = (
    "associateCarrierIpAddress",
    "associatePublicIpAddress",
    "deleteOnTermination",
    "ebsOptimized",
    "encrypted",
    "primaryIpv6",
)


def _distinct(key: str, value: Any, counter: Iterator[int]) -> Any:
    """The schema's dummy value with each leaf made unique, to be found again."""
    if isinstance(value, _Map):
        return {"key": f"v{next(counter)}"}
    if isinstance(value, dict):
        return {k: _distinct(k, v, counter) for k, v in value.items()}
    if isinstance(value, list):
        return [_distinct(key, v, counter) for v in value]
    if key in _STRING_BOOLS:
        return "true"  # the provider's string booleans
    if key == "validUntil":
        return "2030-01-01T00:00:00Z"
    if isinstance(value, bool):
        return True
    if isinstance(value, (int, float)):
        return next(counter) + (0.5 if isinstance(value, float) else 0)
    return f"v{next(counter)}"


def _leaves(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """(key, value) of each plain value in ``value``, a map's entries as such."""
    if isinstance(value, dict):
        for k, inner in value.items():
            yield from _leaves(inner, k)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item, key)
    else:
        yield key, value


def _leaf_paths(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and "key" not in value:
        for k, inner in value.items():
            yield from _leaf_paths(inner, f"{prefix}.{k}" if prefix else k)
    elif isinstance(value, list):
        for item in value:
            yield from _leaf_paths(item, prefix)
    else:
        yield prefix, value


def test_every_nested_key_of_a_launch_template_reaches_its_version_data(
    ctx: CloudContext, ec2: Any
) -> None:
    """Its objects go whole into the version's LaunchTemplateData, which the emulator keeps
    as given: they are declared whole, and this holds them to it, every key of the
    installed schema set to a value of its own and found again through boto3."""
    counter = itertools.count(1001)
    inputs = {
        k: _distinct(k, v, counter)
        for k, v in schema_inputs(LAUNCH_TEMPLATE).items()
        if k not in (*_NOT_DATA, "userData") and isinstance(v, (dict, list))
    }
    templates = handler_for(LAUNCH_TEMPLATE)
    assert templates is not None
    assert not [p for p in templates.emulates if "." in p]  # each object is carried whole
    template_id, _ = templates.create(ctx, "every-key", inputs)
    data = ec2.describe_launch_template_versions(LaunchTemplateId=template_id)[
        "LaunchTemplateVersions"
    ][0]["LaunchTemplateData"]
    shown = list(_leaves(data))
    values = {v for _, v in shown}
    lost = []
    for path, value in _leaf_paths(inputs):
        key = path.rsplit(".", 1)[-1].lower()
        if value is True or value == "true":
            found = any(k.lower() == key and v is True for k, v in shown)
        elif key == "validuntil":
            found = any(k == "ValidUntil" for k, _ in shown)
        elif isinstance(value, dict):
            found = value["key"] in values  # a map, as EC2's Key/Value tags
        else:
            found = value in values
        if not found:
            lost.append(path)
    assert lost == []
    assert len(list(_leaf_paths(inputs))) > 100
