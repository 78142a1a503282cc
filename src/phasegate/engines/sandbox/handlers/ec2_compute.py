"""What EC2 instances launch from: launch templates and placement groups.

A launch template's inputs become its ``LaunchTemplateData``; any change to them makes a
new version, as with the provider. The emulator stores whatever data it is given, so the
checks EC2 makes when an instance launches from a template (metadata options, volumes,
EFA interfaces, base64 user data) are made here, where a rehearsal can still fail.

The emulator has no placement groups: the sandbox keeps them in its own store.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from typing import Any

from phasegate.engines.sandbox.handlers.base import (
    CloudContext,
    Handler,
    HandlerError,
    generated_name,
    int_or_none,
)
from phasegate.engines.sandbox.handlers.ec2 import _missing, _retag

__all__ = ["HANDLERS", "instance_type_info"]

_TEMPLATE_NAME = re.compile(r"^[a-zA-Z0-9().\-/_]{3,128}$")
_NOT_DATA = frozenset(
    {
        "name",
        "namePrefix",
        "tags",
        "description",
        "defaultVersion",
        "updateDefaultVersion",
        "region",
    }
)
"""Launch template inputs that are not part of a version's LaunchTemplateData."""
_RENAMES = {
    "vpcSecurityGroupIds": "SecurityGroupIds",
    "securityGroupNames": "SecurityGroups",
    "securityGroups": "Groups",  # of a network interface
    "ipv4AddressCount": "SecondaryPrivateIpAddressCount",
    "ipv4Addresses": "PrivateIpAddresses",
    "memoryMib": "MemoryMiB",
    "memoryGibPerVcpu": "MemoryGiBPerVCpu",
    "vcpuCount": "VCpuCount",
    "acceleratorTotalMemoryMib": "AcceleratorTotalMemoryMiB",
    "totalLocalStorageGb": "TotalLocalStorageGB",
    "enableResourceNameDnsAaaaRecord": "EnableResourceNameDnsAAAARecord",
}
"""Wire names whose EC2 API name is not the wire name capitalised."""
_WRAPPED = {
    "ipv4Addresses": "PrivateIpAddress",
    "ipv4Prefixes": "Ipv4Prefix",
    "ipv6Addresses": "Ipv6Address",
    "ipv6Prefixes": "Ipv6Prefix",
    "privateIpAddresses": "PrivateIpAddress",  # of a secondary interface
}
"""Lists of strings on the wire that EC2 takes as lists of one-key objects."""
_STRING_BOOLS = frozenset(
    {
        "associateCarrierIpAddress",
        "associatePublicIpAddress",
        "deleteOnTermination",
        "ebsOptimized",
        "encrypted",
        "primaryIpv6",
    }
)
"""Booleans the provider types as strings ("true", "false", or "" for unset)."""

_VOLUME_SIZES = {
    "standard": (1, 1024),
    "gp2": (1, 16384),
    "gp3": (1, 16384),
    "io1": (4, 16384),
    "io2": (4, 65536),
    "st1": (125, 16384),
    "sc1": (125, 16384),
}
_IOPS_TYPES = ("gp3", "io1", "io2")
_INTERFACE_TYPES = ("interface", "efa", "efa-only")
_TAGGABLE = ("instance", "volume", "network-interface", "spot-instances-request")
_METADATA_CHOICES = {
    "httpTokens": ("optional", "required"),
    "httpEndpoint": ("enabled", "disabled"),
    "httpProtocolIpv6": ("enabled", "disabled"),
    "instanceMetadataTags": ("enabled", "disabled"),
}


def instance_type_info(name: Any) -> dict[str, Any]:
    """EC2's description of an instance type (as moto's catalogue of them has it);
    HandlerError for a type EC2 does not offer, which the emulator would take."""
    from moto.ec2.models.instance_types import INSTANCE_TYPES

    info: dict[str, Any] | None = INSTANCE_TYPES.get(str(name))
    if info is None:
        raise HandlerError(f"instanceType '{name}' is not an EC2 instance type")
    return info


def _flag(value: Any) -> bool | None:
    """A provider string boolean as a bool; None when unset."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("", "none"):
        return None
    if text not in ("true", "false"):
        raise HandlerError(f"'{value}' is not true or false")
    return text == "true"


def _to_api(key: str, value: Any) -> Any:
    """A wire value as EC2 takes it, keys renamed all the way down."""
    if key in _STRING_BOOLS:
        return _flag(value)
    if key == "tags" and isinstance(value, dict):
        return Handler.tag_list(value)
    if key in _WRAPPED:
        return [{_WRAPPED[key]: item} for item in value]
    if isinstance(value, dict):
        return _api_dict(value)
    if isinstance(value, list):
        return [_api_dict(v) if isinstance(v, dict) else v for v in value]
    return value


def _api_dict(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        converted = _to_api(key, value)
        if converted is None or converted == "" or converted == []:
            continue
        out[_RENAMES.get(key, key[:1].upper() + key[1:])] = converted
    return out


def _template_data(inputs: dict[str, Any]) -> dict[str, Any]:
    return _api_dict({k: v for k, v in inputs.items() if k not in _NOT_DATA})


def _check_metadata(options: dict[str, Any]) -> None:
    for key, choices in _METADATA_CHOICES.items():
        if key in options and options[key] not in choices:
            raise HandlerError(
                f"metadataOptions.{key} '{options[key]}' is not {' or '.join(choices)}"
            )
    hops = int_or_none(options.get("httpPutResponseHopLimit"))
    if hops is not None and not 1 <= hops <= 64:
        raise HandlerError(f"metadataOptions.httpPutResponseHopLimit {hops} is outside 1-64")


def _check_volume(ebs: dict[str, Any], what: str) -> None:
    kind = ebs.get("volumeType", "gp3")
    if kind not in _VOLUME_SIZES:
        raise HandlerError(f"{what}.volumeType '{kind}' is not one of {', '.join(_VOLUME_SIZES)}")
    size = int_or_none(ebs.get("volumeSize"))
    low, high = _VOLUME_SIZES[kind]
    if size is not None and not low <= size <= high:
        raise HandlerError(f"{what}.volumeSize {size} GiB is outside {low}-{high} for {kind}")
    if ebs.get("iops") and kind not in _IOPS_TYPES:
        raise HandlerError(f"{what}.iops applies to {', '.join(_IOPS_TYPES)} volumes, not {kind}")
    throughput = int_or_none(ebs.get("throughput"))
    if throughput is not None and (kind != "gp3" or not 125 <= throughput <= 2000):
        raise HandlerError(f"{what}.throughput is for gp3 volumes only, 125-2000 MiB/s")
    if ebs.get("kmsKeyId") and not _flag(ebs.get("encrypted", "")):
        raise HandlerError(f"{what}.kmsKeyId needs encrypted 'true'")


def _check_interfaces(interfaces: list[Any], inputs: dict[str, Any]) -> None:
    slots: set[tuple[int, int]] = set()
    for i, nic in enumerate(interfaces):
        if not isinstance(nic, dict):
            continue
        what = f"networkInterfaces[{i}]"
        kind = nic.get("interfaceType", "interface")
        if kind not in _INTERFACE_TYPES:
            raise HandlerError(
                f"{what}.interfaceType '{kind}' is not one of {', '.join(_INTERFACE_TYPES)}"
            )
        card, device = (
            int_or_none(nic.get("networkCardIndex", 0)),
            int_or_none(nic.get("deviceIndex")),
        )
        if card is None or device is None:
            continue
        if (card, device) in slots:
            raise HandlerError(f"{what} repeats deviceIndex {device} on network card {card}")
        slots.add((card, device))
        if device == 0 and card != 0:
            raise HandlerError(f"{what}: the primary interface (deviceIndex 0) must be on card 0")
        if kind == "efa-only" and (card, device) == (0, 0):
            raise HandlerError(f"{what}: an efa-only interface cannot be the primary interface")
        if nic.get("securityGroups") and (
            inputs.get("vpcSecurityGroupIds") or inputs.get("securityGroupNames")
        ):
            raise HandlerError(
                f"{what} has securityGroups and the template has instance-level ones: "
                "EC2 refuses to launch with both"
            )


class LaunchTemplate(Handler):
    type = "aws:ec2/launchTemplate:LaunchTemplate"
    # Every input but the naming and versioning ones goes whole into the version's
    # LaunchTemplateData, which the emulator stores as given.
    emulates = frozenset(
        {
            "blockDeviceMappings",
            "capacityReservationSpecification",
            "cpuOptions",
            "creditSpecification",
            "defaultVersion",
            "description",
            "disableApiStop",
            "disableApiTermination",
            "ebsOptimized",
            "enclaveOptions",
            "hibernationOptions",
            "iamInstanceProfile",
            "imageId",
            "instanceInitiatedShutdownBehavior",
            "instanceMarketOptions",
            "instanceRequirements",
            "instanceType",
            "kernelId",
            "keyName",
            "licenseSpecifications",
            "maintenanceOptions",
            "metadataOptions",
            "monitoring",
            "name",
            "namePrefix",
            "networkInterfaces",
            "networkPerformanceOptions",
            "placement",
            "privateDnsNameOptions",
            "ramDiskId",
            "secondaryInterfaces",
            "securityGroupNames",
            "tagSpecifications",
            "tags",
            "updateDefaultVersion",
            "userData",
            "vpcSecurityGroupIds",
        }
    )
    replace_on = frozenset({"name", "namePrefix"})
    computed = ("id", "arn", "defaultVersion", "latestVersion", "name")
    changed_by_update = ("latestVersion",)
    name_key = "name"

    def validate(self, inputs: dict[str, Any]) -> None:
        name = inputs.get("name")
        if isinstance(name, str) and not _TEMPLATE_NAME.match(name):
            raise HandlerError(f"name '{name}' must be 3-128 characters of a-z, A-Z, 0-9, ().-/_")
        if inputs.get("instanceType"):
            instance_type_info(inputs["instanceType"])
        if isinstance(inputs.get("metadataOptions"), dict):
            _check_metadata(inputs["metadataOptions"])
        for i, mapping in enumerate(inputs.get("blockDeviceMappings") or []):
            if isinstance(mapping, dict) and isinstance(mapping.get("ebs"), dict):
                _check_volume(mapping["ebs"], f"blockDeviceMappings[{i}].ebs")
        _check_interfaces(inputs.get("networkInterfaces") or [], inputs)
        for spec in inputs.get("tagSpecifications") or []:
            kind = spec.get("resourceType") if isinstance(spec, dict) else None
            if isinstance(kind, str) and kind not in _TAGGABLE:
                raise HandlerError(
                    f"tagSpecifications resourceType '{kind}' is not one of {', '.join(_TAGGABLE)}"
                )
        tenancy = (inputs.get("placement") or {}).get("tenancy")
        if tenancy is not None and tenancy not in ("default", "dedicated", "host"):
            raise HandlerError(f"placement.tenancy '{tenancy}' is not default, dedicated or host")
        user_data = inputs.get("userData")
        if isinstance(user_data, str):
            try:
                base64.b64decode(user_data, validate=True)
            except (binascii.Error, ValueError):
                raise HandlerError("userData must be base64-encoded") from None

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        ec2 = ctx.client("ec2")
        template_name = generated_name(self, name, inputs, max_len=128)
        args: dict[str, Any] = {
            "LaunchTemplateName": template_name,
            "LaunchTemplateData": _template_data(inputs),
        }
        if inputs.get("description"):
            args["VersionDescription"] = inputs["description"]
        if inputs.get("tags"):
            args["TagSpecifications"] = [
                {"ResourceType": "launch-template", "Tags": self.tag_list(inputs["tags"])}
            ]
        try:
            template = ec2.create_launch_template(**args)["LaunchTemplate"]
        except Exception as exc:
            raise HandlerError(f"cannot create launch template {template_name}: {exc}") from None
        return template["LaunchTemplateId"], self._outputs(ctx, template, inputs)

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        ec2 = ctx.client("ec2")
        data = _template_data(new)
        if data != _template_data(old) or old.get("description") != new.get("description"):
            args: dict[str, Any] = {"LaunchTemplateId": id_, "LaunchTemplateData": data}
            if new.get("description"):
                args["VersionDescription"] = new["description"]
            try:
                ec2.create_launch_template_version(**args)
            except Exception as exc:
                raise HandlerError(f"cannot make a new version of {id_}: {exc}") from None
        template = self._described(ec2, id_)
        default = template["DefaultVersionNumber"]
        if new.get("updateDefaultVersion"):
            wanted = template["LatestVersionNumber"]
        else:
            wanted = int_or_none(new.get("defaultVersion")) or default
        if wanted != default:
            ec2.modify_launch_template(LaunchTemplateId=id_, DefaultVersion=str(wanted))
            template = self._described(ec2, id_)
        _retag(ec2, id_, old.get("tags"), new.get("tags"))
        return self._outputs(ctx, template, new)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        try:
            ctx.client("ec2").delete_launch_template(LaunchTemplateId=id_)
        except Exception as exc:
            if not _missing(exc):
                raise

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        try:
            found = ctx.client("ec2").describe_launch_templates(LaunchTemplateIds=[id_])
        except Exception as exc:
            if _missing(exc):
                return False
            raise
        return bool(found["LaunchTemplates"])

    @staticmethod
    def _described(ec2: Any, id_: str) -> dict[str, Any]:
        template: dict[str, Any] = ec2.describe_launch_templates(LaunchTemplateIds=[id_])[
            "LaunchTemplates"
        ][0]
        return template

    @staticmethod
    def _outputs(ctx: CloudContext, template: dict[str, Any], inputs: dict) -> dict[str, Any]:
        id_ = template["LaunchTemplateId"]
        return {
            **inputs,
            "id": id_,
            "arn": f"arn:aws:ec2:{ctx.region}:{ctx.account_id}:launch-template/{id_}",
            "name": template["LaunchTemplateName"],
            "defaultVersion": int(template["DefaultVersionNumber"]),
            "latestVersion": int(template["LatestVersionNumber"]),
        }


_PLACEMENT_GROUPS = "ec2_placement_groups"
_STRATEGIES = ("cluster", "spread", "partition")


class PlacementGroup(Handler):
    type = "aws:ec2/placementGroup:PlacementGroup"
    emulates = frozenset({"name", "partitionCount", "spreadLevel", "strategy", "tags"})
    replace_on = frozenset({"name", "partitionCount", "spreadLevel", "strategy"})
    computed = ("id", "arn", "name", "partitionCount", "placementGroupId", "spreadLevel")
    name_key = "name"
    emulated = True

    def validate(self, inputs: dict[str, Any]) -> None:
        strategy = inputs.get("strategy")
        if strategy is not None and strategy not in _STRATEGIES:
            raise HandlerError(f"strategy '{strategy}' is not one of {', '.join(_STRATEGIES)}")
        count = int_or_none(inputs.get("partitionCount"))
        if count is not None:
            if strategy is not None and strategy != "partition":
                raise HandlerError("partitionCount applies to the partition strategy only")
            if not 1 <= count <= 7:
                raise HandlerError(f"partitionCount {count} is outside 1-7")
        level = inputs.get("spreadLevel")
        if level is not None:
            if strategy is not None and strategy != "spread":
                raise HandlerError("spreadLevel applies to the spread strategy only")
            if level == "host":
                raise HandlerError("spreadLevel 'host' is for Outposts only; use 'rack'")
            if level != "rack":
                raise HandlerError(f"spreadLevel '{level}' is not rack")
        name = inputs.get("name")
        if isinstance(name, str) and not 1 <= len(name) <= 255:
            raise HandlerError("name must be 1-255 characters")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        strategy = inputs.get("strategy")
        if not strategy:
            raise HandlerError("a placement group needs a strategy: cluster, spread or partition")
        group_name = self.physical_name(name, inputs, max_len=255)
        groups = ctx.kept(_PLACEMENT_GROUPS)
        if group_name in groups:
            raise HandlerError(f"placement group {group_name} already exists")
        outputs = {
            **inputs,
            "id": group_name,
            "name": group_name,
            "arn": f"arn:aws:ec2:{ctx.region}:{ctx.account_id}:placement-group/{group_name}",
            "placementGroupId": f"pg-{secrets.token_hex(9)[:17]}",
            # What EC2 reports when the input is left out.
            "partitionCount": inputs.get("partitionCount", 2 if strategy == "partition" else 0),
            "spreadLevel": inputs.get("spreadLevel", "rack" if strategy == "spread" else ""),
        }
        groups[group_name] = outputs
        return group_name, outputs

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        updated = self.updated(new, outputs)
        ctx.kept(_PLACEMENT_GROUPS)[id_] = updated
        return updated

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        ctx.kept(_PLACEMENT_GROUPS).pop(id_, None)

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        return id_ in ctx.kept(_PLACEMENT_GROUPS)


HANDLERS: list[Handler] = [LaunchTemplate(), PlacementGroup()]
