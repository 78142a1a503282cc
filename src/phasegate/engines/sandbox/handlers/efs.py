"""EFS file systems and their mount targets.

The emulator makes a file system with whatever modes it is given and has no call that
changes its throughput later: the modes EFS allows are checked here, and a throughput
change is written to the emulator's own record of the file system, as EFS's
UpdateFileSystem would. A mount target takes the VPC's default security group when the
program names none, as EFS does.

Not emulated, so refused by name: replication ``protection`` and a mount target's IPv6
addressing, which the emulator does not carry.
"""

from __future__ import annotations

from typing import Any

from phasegate.engines.sandbox.handlers.base import (
    CloudContext,
    Handler,
    HandlerError,
    int_or_none,
    resource_exists,
    retag,
)
from phasegate.engines.sandbox.handlers.ec2 import _address, _default_group, _missing

__all__ = ["HANDLERS"]

_PERFORMANCE = ("generalPurpose", "maxIO")
_THROUGHPUT = ("bursting", "provisioned", "elastic")
_PROVISIONED_MIBPS = (1, 3414)
_AFTER = (
    "AFTER_1_DAY",
    "AFTER_7_DAYS",
    "AFTER_14_DAYS",
    "AFTER_30_DAYS",
    "AFTER_60_DAYS",
    "AFTER_90_DAYS",
    "AFTER_180_DAYS",
    "AFTER_270_DAYS",
    "AFTER_365_DAYS",
)
_TRANSITIONS = {
    "transitionToIa": ("TransitionToIA", _AFTER),
    "transitionToArchive": ("TransitionToArchive", _AFTER),
    "transitionToPrimaryStorageClass": ("TransitionToPrimaryStorageClass", ("AFTER_1_ACCESS",)),
}
"""Each lifecycle policy's wire name, EFS name and the values EFS takes."""


def _not_found(exc: Exception) -> bool:
    return _missing(exc) or "NotFound" in str(exc)


def _lifecycle(policies: list[Any] | None) -> list[dict[str, str]]:
    """The lifecycle policies as EFS takes them; HandlerError for what it refuses."""
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for i, policy in enumerate(policies or []):
        set_keys = [k for k, v in (policy or {}).items() if v]
        if len(set_keys) != 1 or set_keys[0] not in _TRANSITIONS:
            raise HandlerError(
                f"lifecyclePolicies[{i}] must set exactly one of {', '.join(_TRANSITIONS)}"
            )
        key = set_keys[0]
        name, values = _TRANSITIONS[key]
        if policy[key] not in values:
            raise HandlerError(
                f"lifecyclePolicies[{i}].{key} '{policy[key]}' is not one of {', '.join(values)}"
            )
        if key in seen:
            raise HandlerError(f"lifecyclePolicies sets {key} more than once")
        seen.add(key)
        out.append({name: policy[key]})
    return out


class FileSystem(Handler):
    type = "aws:efs/fileSystem:FileSystem"
    emulates = frozenset(
        {
            "availabilityZoneName",
            "creationToken",
            "encrypted",
            "kmsKeyId",
            *(f"lifecyclePolicies.{key}" for key in _TRANSITIONS),
            "performanceMode",
            "provisionedThroughputInMibps",
            "tags",
            "throughputMode",
        }
    )
    replace_on = frozenset(
        {"availabilityZoneName", "creationToken", "encrypted", "kmsKeyId", "performanceMode"}
    )
    computed = (
        "id",
        "arn",
        "availabilityZoneId",
        "creationToken",
        "dnsName",
        "name",
        "numberOfMountTargets",
        "ownerId",
        "sizeInBytes",
    )
    name_key = "creationToken"

    def validate(self, inputs: dict[str, Any]) -> None:
        token = inputs.get("creationToken")
        if isinstance(token, str) and not 1 <= len(token) <= 64:
            raise HandlerError("creationToken must be 1-64 characters")
        performance = inputs.get("performanceMode")
        if performance is not None and performance not in _PERFORMANCE:
            raise HandlerError(f"performanceMode '{performance}' is not generalPurpose or maxIO")
        throughput = inputs.get("throughputMode")
        if throughput is not None and throughput not in _THROUGHPUT:
            choices = ", ".join(_THROUGHPUT)
            raise HandlerError(f"throughputMode '{throughput}' is not one of {choices}")
        mibps = int_or_none(inputs.get("provisionedThroughputInMibps"))
        if throughput == "provisioned" and "provisionedThroughputInMibps" not in inputs:
            raise HandlerError("throughputMode provisioned needs provisionedThroughputInMibps")
        if mibps is not None:
            if throughput != "provisioned":
                raise HandlerError("provisionedThroughputInMibps needs throughputMode provisioned")
            low, high = _PROVISIONED_MIBPS
            if not low <= mibps <= high:
                raise HandlerError(f"provisionedThroughputInMibps {mibps} is outside {low}-{high}")
        if performance == "maxIO" and throughput == "elastic":
            raise HandlerError("elastic throughput needs performanceMode generalPurpose")
        if performance == "maxIO" and inputs.get("availabilityZoneName"):
            raise HandlerError("a One Zone file system (availabilityZoneName) is generalPurpose")
        if inputs.get("kmsKeyId") and not inputs.get("encrypted"):
            raise HandlerError("kmsKeyId needs encrypted true")
        if isinstance(inputs.get("lifecyclePolicies"), list):
            policies = _lifecycle(inputs["lifecyclePolicies"])
            if any("TransitionToArchive" in p for p in policies) and (
                throughput != "elastic" or performance == "maxIO"
            ):
                raise HandlerError(
                    "transitionToArchive needs throughputMode elastic, performance generalPurpose"
                )

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        efs = ctx.client("efs")
        token = self.physical_name(name, inputs, max_len=64)
        args: dict[str, Any] = {
            "CreationToken": token,
            "PerformanceMode": inputs.get("performanceMode") or "generalPurpose",
            "ThroughputMode": inputs.get("throughputMode") or "bursting",
            "Encrypted": bool(inputs.get("encrypted")),
            "Tags": self.tag_list(inputs.get("tags")),
        }
        optional = {
            "KmsKeyId": inputs.get("kmsKeyId"),
            "ProvisionedThroughputInMibps": inputs.get("provisionedThroughputInMibps"),
            "AvailabilityZoneName": inputs.get("availabilityZoneName"),
        }
        args.update({k: v for k, v in optional.items() if v})
        try:
            created = efs.create_file_system(**args)
        except Exception as exc:
            raise HandlerError(f"cannot create file system {token}: {exc}") from None
        fs_id = created["FileSystemId"]
        policies = _lifecycle(inputs.get("lifecyclePolicies"))
        if policies:
            efs.put_lifecycle_configuration(FileSystemId=fs_id, LifecyclePolicies=policies)
        return fs_id, self._outputs(ctx, fs_id, inputs)

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        efs = ctx.client("efs")
        mode = new.get("throughputMode") or "bursting"
        mibps = new.get("provisionedThroughputInMibps") if mode == "provisioned" else None
        if (mode, mibps) != (
            old.get("throughputMode") or "bursting",
            old.get("provisionedThroughputInMibps") if mode == "provisioned" else None,
        ):
            from phasegate.engines.sandbox.emulator import efs_file_system

            record = efs_file_system(ctx.account_id, ctx.region, id_)
            record.throughput_mode = mode
            record.provisioned_throughput_in_mibps = mibps
        policies = _lifecycle(new.get("lifecyclePolicies"))
        if policies != _lifecycle(old.get("lifecyclePolicies")):
            efs.put_lifecycle_configuration(FileSystemId=id_, LifecyclePolicies=policies)
        retag(
            old.get("tags"),
            new.get("tags"),
            lambda tags: efs.tag_resource(ResourceId=id_, Tags=tags),
            lambda keys: efs.untag_resource(ResourceId=id_, TagKeys=keys),
        )
        return self._outputs(ctx, id_, new)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        try:
            ctx.client("efs").delete_file_system(FileSystemId=id_)
        except Exception as exc:
            if not _not_found(exc):
                raise HandlerError(f"cannot delete file system {id_}: {exc}") from None

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        return resource_exists(
            lambda: ctx.client("efs").describe_file_systems(FileSystemId=id_), _not_found
        )

    @staticmethod
    def _outputs(ctx: CloudContext, id_: str, inputs: dict[str, Any]) -> dict[str, Any]:
        found = ctx.client("efs").describe_file_systems(FileSystemId=id_)["FileSystems"][0]
        size = found.get("SizeInBytes") or {}
        return {
            **inputs,
            "id": id_,
            "arn": found["FileSystemArn"],
            "availabilityZoneId": found.get("AvailabilityZoneId") or "",
            "creationToken": found["CreationToken"],
            "dnsName": f"{id_}.efs.{ctx.region}.amazonaws.com",
            "name": found.get("Name") or "",
            "numberOfMountTargets": found.get("NumberOfMountTargets", 0),
            "ownerId": found.get("OwnerId", ctx.account_id),
            "sizeInBytes": [
                {
                    "value": size.get("Value", 0),
                    "valueInIa": size.get("ValueInIA", 0),
                    "valueInStandard": size.get("ValueInStandard", 0),
                }
            ],
        }


_MOUNT_TARGET_GROUPS = 5


class MountTarget(Handler):
    type = "aws:efs/mountTarget:MountTarget"
    emulates = frozenset({"fileSystemId", "ipAddress", "securityGroups", "subnetId"})
    replace_on = frozenset({"fileSystemId", "ipAddress", "subnetId"})
    computed = (
        "id",
        "availabilityZoneId",
        "availabilityZoneName",
        "dnsName",
        "fileSystemArn",
        "ipAddress",
        "mountTargetDnsName",
        "networkInterfaceId",
        "ownerId",
        "securityGroups",
    )

    def validate(self, inputs: dict[str, Any]) -> None:
        groups = inputs.get("securityGroups")
        if isinstance(groups, list) and len(groups) > _MOUNT_TARGET_GROUPS:
            raise HandlerError(
                f"securityGroups names {len(groups)} groups; a mount target takes at most 5"
            )
        if inputs.get("ipAddress"):
            _address(inputs["ipAddress"], "ipAddress")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        ec2, efs = ctx.client("ec2"), ctx.client("efs")
        try:
            subnet = ec2.describe_subnets(SubnetIds=[inputs["subnetId"]])["Subnets"][0]
        except Exception:
            raise HandlerError(f"subnet '{inputs.get('subnetId')}' does not exist") from None
        groups = list(inputs.get("securityGroups") or [])
        if groups:
            self._check_groups(ec2, groups, subnet["VpcId"])
        else:
            groups = [_default_group(ec2, subnet["VpcId"])]
        args: dict[str, Any] = {
            "FileSystemId": inputs["fileSystemId"],
            "SubnetId": inputs["subnetId"],
            "SecurityGroups": groups,
        }
        if inputs.get("ipAddress"):
            args["IpAddress"] = inputs["ipAddress"]
        try:
            target = efs.create_mount_target(**args)
        except Exception as exc:
            raise HandlerError(f"cannot create the mount target: {exc}") from None
        return target["MountTargetId"], self._outputs(ctx, target, inputs)

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        ec2, efs = ctx.client("ec2"), ctx.client("efs")
        target = efs.describe_mount_targets(MountTargetId=id_)["MountTargets"][0]
        groups = list(new.get("securityGroups") or []) or [_default_group(ec2, target["VpcId"])]
        self._check_groups(ec2, groups, target["VpcId"])
        efs.modify_mount_target_security_groups(MountTargetId=id_, SecurityGroups=groups)
        return self._outputs(ctx, target, new)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        try:
            ctx.client("efs").delete_mount_target(MountTargetId=id_)
        except Exception as exc:
            if not _not_found(exc):
                raise

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        return resource_exists(
            lambda: ctx.client("efs").describe_mount_targets(MountTargetId=id_), _not_found
        )

    @staticmethod
    def _check_groups(ec2: Any, groups: list[str], vpc_id: str) -> None:
        """EFS takes only security groups of the mount target's own VPC."""
        try:
            found = ec2.describe_security_groups(GroupIds=groups)["SecurityGroups"]
        except Exception as exc:
            raise HandlerError(f"securityGroups: {exc}") from None
        elsewhere = sorted(g["GroupId"] for g in found if g.get("VpcId") != vpc_id)
        if elsewhere:
            raise HandlerError(
                f"security groups {', '.join(elsewhere)} are not in the subnet's VPC {vpc_id}"
            )

    @staticmethod
    def _outputs(ctx: CloudContext, target: dict[str, Any], inputs: dict) -> dict[str, Any]:
        efs = ctx.client("efs")
        id_, fs_id = target["MountTargetId"], target["FileSystemId"]
        zone = target.get("AvailabilityZoneName") or ""
        groups = efs.describe_mount_target_security_groups(MountTargetId=id_)["SecurityGroups"]
        return {
            **inputs,
            "id": id_,
            "availabilityZoneId": target.get("AvailabilityZoneId") or "",
            "availabilityZoneName": zone,
            "dnsName": f"{fs_id}.efs.{ctx.region}.amazonaws.com",
            "fileSystemArn": (
                f"arn:aws:elasticfilesystem:{ctx.region}:{ctx.account_id}:file-system/{fs_id}"
            ),
            "ipAddress": target.get("IpAddress") or "",
            "mountTargetDnsName": f"{zone}.{fs_id}.efs.{ctx.region}.amazonaws.com",
            "networkInterfaceId": target.get("NetworkInterfaceId") or "",
            "ownerId": target.get("OwnerId", ctx.account_id),
            "securityGroups": sorted(groups),
        }


HANDLERS: list[Handler] = [FileSystem(), MountTarget()]
