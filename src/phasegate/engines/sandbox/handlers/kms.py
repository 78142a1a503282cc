"""KMS keys and their aliases.

A key is never deleted at once: as in AWS, deleting it schedules the deletion after its
window (7-30 days). The emulator takes key usages a key spec cannot have, rotation of
asymmetric keys, any deletion window, and aliases in the reserved ``alias/aws/`` space or
on a key pending deletion; those are checked here.
"""

from __future__ import annotations

import re
from typing import Any

from phasegate.engines.sandbox.handlers.base import (
    CloudContext,
    Handler,
    HandlerError,
    check_json_input,
    error_code,
    int_or_none,
    json_text,
    prefixed_name,
)

__all__ = ["HANDLERS"]

_RSA = ("ENCRYPT_DECRYPT", "SIGN_VERIFY")
_NIST = ("SIGN_VERIFY", "KEY_AGREEMENT")
_USAGES: dict[str, tuple[str, ...]] = {
    "SYMMETRIC_DEFAULT": ("ENCRYPT_DECRYPT",),
    "RSA_2048": _RSA,
    "RSA_3072": _RSA,
    "RSA_4096": _RSA,
    "ECC_NIST_P256": _NIST,
    "ECC_NIST_P384": _NIST,
    "ECC_NIST_P521": _NIST,
    "ECC_SECG_P256K1": ("SIGN_VERIFY",),
    "HMAC_224": ("GENERATE_VERIFY_MAC",),
    "HMAC_256": ("GENERATE_VERIFY_MAC",),
    "HMAC_384": ("GENERATE_VERIFY_MAC",),
    "HMAC_512": ("GENERATE_VERIFY_MAC",),
    "SM2": ("ENCRYPT_DECRYPT", "SIGN_VERIFY", "KEY_AGREEMENT"),
    "ML_DSA_44": ("SIGN_VERIFY",),
    "ML_DSA_65": ("SIGN_VERIFY",),
    "ML_DSA_87": ("SIGN_VERIFY",),
}
"""Key spec -> the key usages KMS allows for it."""
_GONE = ("PendingDeletion", "PendingReplicaDeletion")
_ALIAS = re.compile(r"^alias/[a-zA-Z0-9/_-]+$")


def _kms_tags(tags: dict[str, Any] | None) -> list[dict[str, str]]:
    return [{"TagKey": k, "TagValue": str(v)} for k, v in sorted((tags or {}).items())]


class Key(Handler):
    type = "aws:kms/key:Key"
    emulates = frozenset(
        {
            "bypassPolicyLockoutSafetyCheck",
            "customerMasterKeySpec",
            "deletionWindowInDays",
            "description",
            "enableKeyRotation",
            "isEnabled",
            "keyUsage",
            "multiRegion",
            "policy",
            "rotationPeriodInDays",
            "tags",
        }
    )
    replace_on = frozenset(
        {"customKeyStoreId", "customerMasterKeySpec", "keyUsage", "multiRegion", "xksKeyId"}
    )
    computed = ("id", "arn", "keyId")

    def validate(self, inputs: dict[str, Any]) -> None:
        spec = inputs.get("customerMasterKeySpec", "SYMMETRIC_DEFAULT")
        usage = inputs.get("keyUsage", "ENCRYPT_DECRYPT")
        if spec not in _USAGES:
            raise HandlerError(f"customerMasterKeySpec '{spec}' is not one of {', '.join(_USAGES)}")
        if usage not in _USAGES[spec]:
            raise HandlerError(
                f"keyUsage '{usage}' is not possible for a {spec} key: "
                f"use {' or '.join(_USAGES[spec])}"
            )
        if inputs.get("enableKeyRotation") and spec != "SYMMETRIC_DEFAULT":
            raise HandlerError(
                f"automatic rotation is for symmetric encryption keys only, not {spec}"
            )
        window = int_or_none(inputs.get("deletionWindowInDays"))
        if window is not None and not 7 <= window <= 30:
            raise HandlerError(f"deletionWindowInDays {window} is outside 7-30")
        period = int_or_none(inputs.get("rotationPeriodInDays"))
        if period is not None and not 90 <= period <= 2560:
            raise HandlerError(f"rotationPeriodInDays {period} is outside 90-2560")
        description = inputs.get("description")
        if isinstance(description, str) and len(description) > 8192:
            raise HandlerError("description is longer than 8192 characters")
        check_json_input(inputs, "policy")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        if inputs.get("customKeyStoreId") or inputs.get("xksKeyId"):
            raise HandlerError("keys in a custom key store are not emulated")
        kms = ctx.client("kms")
        args: dict[str, Any] = {
            "Description": inputs.get("description", ""),
            "KeyUsage": inputs.get("keyUsage", "ENCRYPT_DECRYPT"),
            "KeySpec": inputs.get("customerMasterKeySpec", "SYMMETRIC_DEFAULT"),
            "Tags": _kms_tags(inputs.get("tags")),
            "MultiRegion": bool(inputs.get("multiRegion", False)),
        }
        if inputs.get("policy"):
            args["Policy"] = json_text(inputs["policy"])
            args["BypassPolicyLockoutSafetyCheck"] = bool(
                inputs.get("bypassPolicyLockoutSafetyCheck", False)
            )
        try:
            key = kms.create_key(**args)["KeyMetadata"]
        except Exception as exc:
            raise HandlerError(f"cannot create KMS key: {exc}") from None
        key_id = key["KeyId"]
        self._set_state(kms, key_id, {}, inputs)
        return key_id, {**inputs, "id": key_id, "keyId": key_id, "arn": key["Arn"]}

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        kms = ctx.client("kms")
        if old.get("description") != new.get("description"):
            kms.update_key_description(KeyId=id_, Description=new.get("description", ""))
        if old.get("policy") != new.get("policy") and new.get("policy"):
            kms.put_key_policy(
                KeyId=id_,
                PolicyName="default",
                Policy=json_text(new["policy"]),
                BypassPolicyLockoutSafetyCheck=bool(
                    new.get("bypassPolicyLockoutSafetyCheck", False)
                ),
            )
        self._set_state(kms, id_, old, new)
        old_tags, new_tags = old.get("tags") or {}, new.get("tags") or {}
        if old_tags != new_tags:
            gone = [k for k in old_tags if k not in new_tags]
            if gone:
                kms.untag_resource(KeyId=id_, TagKeys=gone)
            if new_tags:
                kms.tag_resource(KeyId=id_, Tags=_kms_tags(new_tags))
        return self.updated(new, outputs)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        kms = ctx.client("kms")
        try:
            state = kms.describe_key(KeyId=id_)["KeyMetadata"]["KeyState"]
        except Exception as exc:
            if error_code(exc) == "NotFoundException":
                return
            raise
        if state in _GONE:
            return
        window = int_or_none(outputs.get("deletionWindowInDays")) or 30
        kms.schedule_key_deletion(KeyId=id_, PendingWindowInDays=window)

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        try:
            state = ctx.client("kms").describe_key(KeyId=id_)["KeyMetadata"]["KeyState"]
        except Exception as exc:
            if error_code(exc) == "NotFoundException":
                return False
            raise
        return state not in _GONE

    @staticmethod
    def _set_state(kms: Any, key_id: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Enable or disable the key and its rotation; KMS rotates enabled keys only."""
        enabled = bool(new.get("isEnabled", True))
        was_enabled = bool(old.get("isEnabled", True))
        if enabled and not was_enabled:
            kms.enable_key(KeyId=key_id)
        rotation = (bool(new.get("enableKeyRotation")), new.get("rotationPeriodInDays"))
        before = (bool(old.get("enableKeyRotation")), old.get("rotationPeriodInDays"))
        if rotation != before:
            if rotation[0]:
                period = {"RotationPeriodInDays": rotation[1]} if rotation[1] else {}
                kms.enable_key_rotation(KeyId=key_id, **period)
            else:
                kms.disable_key_rotation(KeyId=key_id)
        if not enabled and was_enabled:
            kms.disable_key(KeyId=key_id)


class Alias(Handler):
    type = "aws:kms/alias:Alias"
    emulates = frozenset({"name", "namePrefix", "targetKeyId"})
    replace_on = frozenset({"name", "namePrefix"})
    computed = ("id", "arn", "name", "targetKeyArn")
    name_key = "name"

    def validate(self, inputs: dict[str, Any]) -> None:
        for key in ("name", "namePrefix"):
            value = inputs.get(key)
            if not isinstance(value, str):
                continue
            if not value.startswith("alias/"):
                raise HandlerError(f"{key} '{value}' must start with 'alias/'")
            if value.startswith("alias/aws/"):
                raise HandlerError(f"{key} '{value}': alias/aws/ is reserved for AWS-managed keys")
            if not _ALIAS.match(value) or len(value) > 256:
                raise HandlerError(
                    f"{key} '{value}' must be up to 256 characters of a-z, A-Z, 0-9, /, _ and -"
                )

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        if inputs.get("name"):
            alias = str(inputs["name"])
        elif inputs.get("namePrefix"):
            alias = prefixed_name(str(inputs["namePrefix"]))
        else:
            alias = f"alias/{self.physical_name(name, {}, max_len=250)}"
        kms = ctx.client("kms")
        target_arn = self._target_arn(kms, inputs["targetKeyId"])
        try:
            kms.create_alias(AliasName=alias, TargetKeyId=inputs["targetKeyId"])
        except Exception as exc:
            raise HandlerError(f"cannot create alias {alias}: {exc}") from None
        return alias, {
            **inputs,
            "id": alias,
            "name": alias,
            "arn": f"arn:aws:kms:{ctx.region}:{ctx.account_id}:{alias}",
            "targetKeyArn": target_arn,
        }

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        kms = ctx.client("kms")
        target_arn = self._target_arn(kms, new["targetKeyId"])
        try:
            kms.update_alias(AliasName=id_, TargetKeyId=new["targetKeyId"])
        except Exception as exc:
            raise HandlerError(f"cannot point {id_} at {new['targetKeyId']}: {exc}") from None
        return {**self.updated(new, outputs), "targetKeyArn": target_arn}

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        try:
            ctx.client("kms").delete_alias(AliasName=id_)
        except Exception as exc:
            if error_code(exc) != "NotFoundException":
                raise

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        pages = ctx.client("kms").get_paginator("list_aliases").paginate()
        return any(a["AliasName"] == id_ for page in pages for a in page["Aliases"])

    @staticmethod
    def _target_arn(kms: Any, key_id: str) -> str:
        """The target key's ARN; KMS refuses an alias on a key pending deletion."""
        try:
            key = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        except Exception as exc:
            if error_code(exc) == "NotFoundException":
                raise HandlerError(f"KMS key {key_id} does not exist") from None
            raise
        if key["KeyState"] in _GONE:
            raise HandlerError(f"KMS key {key_id} is pending deletion")
        if key.get("KeyManager") == "AWS":
            raise HandlerError(f"KMS key {key_id} is AWS-managed: aliases need a customer key")
        arn: str = key["Arn"]
        return arn


HANDLERS: list[Handler] = [Key(), Alias()]
