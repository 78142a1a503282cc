"""Secrets Manager secrets: the secret itself (its name, key, description, tags) and its
versions (the value).

Deleting a secret schedules its deletion after the recovery window, as in AWS; a window of
0 deletes it at once. A secret scheduled for deletion is gone as far as a stack is
concerned, and its name stays taken until the window ends.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from phasegate.engines.sandbox.handlers.base import (
    CloudContext,
    Handler,
    HandlerError,
    error_code,
    int_or_none,
)

__all__ = ["HANDLERS"]

_NAME = re.compile(r"^[a-zA-Z0-9/_+=.@-]+$")
_NAME_LIMIT = 512
_PREFIX_SUFFIX = 26
"""The provider ends a prefixed name with 26 characters of its own."""


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
        for key, limit in (("name", _NAME_LIMIT), ("namePrefix", _NAME_LIMIT - _PREFIX_SUFFIX)):
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
            secret_name = f"{inputs['namePrefix']}{secrets.token_hex(_PREFIX_SUFFIX // 2)}"
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
        old_tags, new_tags = old.get("tags") or {}, new.get("tags") or {}
        if old_tags != new_tags:
            gone = [k for k in old_tags if k not in new_tags]
            if gone:
                client.untag_resource(SecretId=id_, TagKeys=gone)
            if new_tags:
                client.tag_resource(SecretId=id_, Tags=self.tag_list(new_tags))
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


HANDLERS: list[Handler] = [Secret()]
