"""Secrets Manager secrets: the secret itself (its name, key, description, tags) and its
versions (the value and its staging labels).

Deleting a secret schedules its deletion after the recovery window, as in AWS; a window of
0 deletes it at once. A secret scheduled for deletion is gone as far as a stack is
concerned, and its name stays taken until the window ends.

A version's value is a secret of the run (the SDK sends it as one), so the checkpoint and
the cloud's snapshot keep it sealed (``sealing``, ``cloud_secrets``). Deleting a version
takes its labels off, as the provider does, except AWSCURRENT: Secrets Manager moves that
label only to another version, so the current version stays.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from phasegate.engines.sandbox.handlers.base import (
    UNIQUE_SUFFIX,
    CloudContext,
    Handler,
    HandlerError,
    error_code,
    int_or_none,
    prefixed_name,
    retag,
)

__all__ = ["HANDLERS"]

_NAME = re.compile(r"^[a-zA-Z0-9/_+=.@-]+$")
_NAME_LIMIT = 512
_VALUE_LIMIT = 65536
_STAGE_LIMIT = 20
_CURRENT = "AWSCURRENT"


class Secret(Handler):
    type = "aws:secretsmanager/secret:Secret"
    emulates = frozenset(
        {"description", "kmsKeyId", "name", "namePrefix", "recoveryWindowInDays", "tags"}
    )
    replace_on = frozenset({"name", "namePrefix"})
    computed = ("id", "arn", "name")
    name_key = "name"

    def validate(self, inputs: dict[str, Any]) -> None:
        if inputs.get("name") is not None and inputs.get("namePrefix") is not None:
            raise HandlerError("name and namePrefix cannot both be set")
        for key, limit in (("name", _NAME_LIMIT), ("namePrefix", _NAME_LIMIT - UNIQUE_SUFFIX)):
            value = inputs.get(key)
            if isinstance(value, str) and not (_NAME.match(value) and len(value) <= limit):
                raise HandlerError(
                    f"{key} '{value}' is not valid: up to {limit} characters of a-z, A-Z, "
                    "0-9 and / _ + = . @ -"
                )
        window = int_or_none(inputs.get("recoveryWindowInDays"))
        if window is not None and window != 0 and not 7 <= window <= 30:
            raise HandlerError(f"recoveryWindowInDays {window} is neither 0 nor within 7-30")
        description = inputs.get("description")
        if isinstance(description, str) and len(description) > 2048:
            raise HandlerError("description is longer than 2048 characters")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        if inputs.get("namePrefix"):
            secret_name = prefixed_name(str(inputs["namePrefix"]))
        else:
            secret_name = self.physical_name(name, inputs, max_len=_NAME_LIMIT)
        args: dict[str, Any] = {"Name": secret_name, "Tags": self.tag_list(inputs.get("tags"))}
        if inputs.get("description"):
            args["Description"] = inputs["description"]
        if inputs.get("kmsKeyId"):
            args["KmsKeyId"] = inputs["kmsKeyId"]
        try:
            arn = ctx.client("secretsmanager").create_secret(**args)["ARN"]
        except Exception as exc:
            raise HandlerError(f"cannot create secret '{secret_name}': {exc}") from None
        return arn, {**inputs, "id": arn, "arn": arn, "name": secret_name}

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        client = ctx.client("secretsmanager")
        if old.get("description") != new.get("description") or old.get("kmsKeyId") != new.get(
            "kmsKeyId"
        ):
            args: dict[str, Any] = {"SecretId": id_, "Description": new.get("description", "")}
            if new.get("kmsKeyId"):
                args["KmsKeyId"] = new["kmsKeyId"]
            elif old.get("kmsKeyId"):
                args["KmsKeyId"] = "alias/aws/secretsmanager"  # back to the default key
            client.update_secret(**args)
        retag(
            old.get("tags"),
            new.get("tags"),
            lambda tags: client.tag_resource(SecretId=id_, Tags=tags),
            lambda keys: client.untag_resource(SecretId=id_, TagKeys=keys),
        )
        return self.updated(new, outputs)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        window = int_or_none(outputs.get("recoveryWindowInDays"))
        window = 30 if window is None else window
        args: dict[str, Any] = (
            {"ForceDeleteWithoutRecovery": True}
            if window == 0
            else {"RecoveryWindowInDays": window}
        )
        try:
            ctx.client("secretsmanager").delete_secret(SecretId=id_, **args)
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        try:
            found = ctx.client("secretsmanager").describe_secret(SecretId=id_)
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return False
            raise
        return found.get("DeletedDate") is None


class SecretVersion(Handler):
    type = "aws:secretsmanager/secretVersion:SecretVersion"
    emulates = frozenset({"secretBinary", "secretId", "secretString", "versionStages"})
    replace_on = frozenset({"secretId", "secretString", "secretBinary"})
    computed = ("id", "arn", "versionId", "versionStages")

    def validate(self, inputs: dict[str, Any]) -> None:
        if inputs.get("secretString") is not None and inputs.get("secretBinary") is not None:
            raise HandlerError("secretString and secretBinary cannot both be set")
        value = inputs.get("secretString")
        if isinstance(value, str) and len(value.encode()) > _VALUE_LIMIT:
            raise HandlerError(f"secretString is larger than {_VALUE_LIMIT} bytes")
        if isinstance(inputs.get("secretBinary"), str):
            binary = self._binary(inputs["secretBinary"])
            if len(binary) > _VALUE_LIMIT:
                raise HandlerError(f"secretBinary is larger than {_VALUE_LIMIT} bytes")
        stages = inputs.get("versionStages")
        if isinstance(stages, list):
            if len(stages) > _STAGE_LIMIT:
                raise HandlerError(f"a version takes at most {_STAGE_LIMIT} versionStages")
            for stage in stages:
                if isinstance(stage, str) and not 1 <= len(stage) <= 256:
                    raise HandlerError(f"version stage {stage!r} is not 1-256 characters")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        args: dict[str, Any] = {"SecretId": inputs["secretId"]}
        if inputs.get("secretString") is not None:
            args["SecretString"] = inputs["secretString"]
        elif inputs.get("secretBinary") is not None:
            args["SecretBinary"] = self._binary(inputs["secretBinary"])
        else:
            raise HandlerError("a secret version needs secretString or secretBinary")
        if inputs.get("versionStages"):
            args["VersionStages"] = list(inputs["versionStages"])
        client = ctx.client("secretsmanager")
        try:
            put = client.put_secret_value(**args)
        except Exception as exc:
            raise HandlerError(f"cannot put a version of {inputs['secretId']}: {exc}") from None
        stages = self._stages(client, inputs["secretId"]).get(put["VersionId"], [])
        return f"{put['ARN']}|{put['VersionId']}", {
            **inputs,
            "id": f"{put['ARN']}|{put['VersionId']}",
            "arn": put["ARN"],
            "versionId": put["VersionId"],
            "versionStages": stages,
        }

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        client = ctx.client("secretsmanager")
        secret, version = outputs["arn"], outputs["versionId"]
        before = set(outputs.get("versionStages") or [])
        after = set(new.get("versionStages") or [_CURRENT])
        holders = {
            stage: vid for vid, stages in self._stages(client, secret).items() for stage in stages
        }
        for stage in sorted(after - before):
            move: dict[str, Any] = {"MoveToVersionId": version}
            if stage in holders:
                move["RemoveFromVersionId"] = holders[stage]
            client.update_secret_version_stage(SecretId=secret, VersionStage=stage, **move)
        for stage in sorted(before - after - {_CURRENT}):
            client.update_secret_version_stage(
                SecretId=secret, VersionStage=stage, RemoveFromVersionId=version
            )
        stages = self._stages(client, secret).get(version, [])
        return {**self.updated(new, outputs), "versionStages": stages}

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        client = ctx.client("secretsmanager")
        secret, version = outputs["arn"], outputs["versionId"]
        try:
            stages = self._stages(client, secret).get(version, [])
            for stage in stages:
                if stage != _CURRENT:
                    client.update_secret_version_stage(
                        SecretId=secret, VersionStage=stage, RemoveFromVersionId=version
                    )
        except Exception as exc:
            if error_code(exc) not in ("ResourceNotFoundException", "InvalidRequestException"):
                raise

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        client = ctx.client("secretsmanager")
        try:
            found = client.describe_secret(SecretId=outputs["arn"])
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return False
            raise
        if found.get("DeletedDate") is not None:
            return False
        return bool(found.get("VersionIdsToStages", {}).get(outputs["versionId"]))

    @staticmethod
    def _stages(client: Any, secret: str) -> dict[str, list[str]]:
        found: dict[str, list[str]] = client.describe_secret(SecretId=secret).get(
            "VersionIdsToStages", {}
        )
        return found

    @staticmethod
    def _binary(value: str) -> bytes:
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise HandlerError(f"secretBinary is not base64: {exc}") from None


HANDLERS: list[Handler] = [Secret(), SecretVersion()]
