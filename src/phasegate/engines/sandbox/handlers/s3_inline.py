"""A bucket's settings given inline on ``aws.s3.Bucket`` (``versioning``,
``serverSideEncryptionConfiguration``, ``lifecycleRules``: deprecated in pulumi-aws v7,
still valid), realised through the same code as their standalone resources.

Each inline setting is put in the shape of its standalone resource (a lifecycle rule's
``enabled`` becomes its ``status``, its ``prefix`` and ``tags`` its ``filter``...) and
checked and applied by that resource's handler, so an inline setting is refused where
the standalone one would be, and reaches the emulated cloud the same way.

As the provider does (the three are computed on the bucket), a setting dropped from the
program is left on the bucket as it is: S3 keeps it until something changes it.
"""

from __future__ import annotations

from typing import Any

from phasegate.engines.sandbox.handlers.base import HandlerError, prefixed_name
from phasegate.engines.sandbox.handlers.s3_config import (
    BucketConfig,
    BucketServerSideEncryptionConfiguration,
    BucketVersioning,
)
from phasegate.engines.sandbox.handlers.s3_lifecycle import BucketLifecycleConfiguration

__all__ = ["INLINE", "check_inline", "put_inline"]

_HANDLERS: dict[str, BucketConfig] = {
    "versioning": BucketVersioning(),
    "serverSideEncryptionConfiguration": BucketServerSideEncryptionConfiguration(),
    "lifecycleRules": BucketLifecycleConfiguration(),
}
"""Each inline setting, and the standalone resource that checks and puts it."""

INLINE = frozenset(
    {
        "versioning.enabled",  # mfaDelete needs the device's code, which it cannot give
        "serverSideEncryptionConfiguration.rule.applyServerSideEncryptionByDefault.kmsMasterKeyId",
        "serverSideEncryptionConfiguration.rule.applyServerSideEncryptionByDefault.sseAlgorithm",
        "serverSideEncryptionConfiguration.rule.bucketKeyEnabled",
        *(
            f"lifecycleRules.{key}"
            for key in (
                "abortIncompleteMultipartUploadDays",
                "enabled",
                "expiration.date",
                "expiration.days",
                "expiration.expiredObjectDeleteMarker",
                "id",
                "noncurrentVersionExpiration.days",
                "noncurrentVersionTransitions.days",
                "noncurrentVersionTransitions.storageClass",
                "prefix",
                "tags",
                "transitions.date",
                "transitions.days",
                "transitions.storageClass",
            )
        ),
    }
)
"""The bucket's inline settings' keys this module realises, each as its standalone
resource does (a rule's blockedEncryptionTypes, which the emulator drops, is not)."""


def _versioning(given: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
    """``{enabled, mfaDelete}`` as a BucketVersioning's inputs: off is Suspended once the
    bucket has been versioned (S3 cannot un-version it), else Disabled."""
    if given.get("mfaDelete"):
        raise HandlerError(
            "mfaDelete needs the MFA device's serial and code, which an inline "
            "setting cannot give: use aws.s3.BucketVersioning with mfa"
        )
    was_on = bool((before or {}).get("enabled"))
    status = "Enabled" if given.get("enabled") else ("Suspended" if was_on else "Disabled")
    return {"versioningConfiguration": {"status": status}}


def _encryption(given: dict[str, Any]) -> dict[str, Any]:
    rule = given.get("rule")
    if not isinstance(rule, dict):
        raise HandlerError("serverSideEncryptionConfiguration.rule is required")
    return {"rules": [rule]}


def _lifecycle(rules: list[dict[str, Any]]) -> dict[str, Any]:
    """v6-style rules as a BucketLifecycleConfiguration's: ``enabled`` is the status;
    ``prefix`` and ``tags`` the filter; day counts of noncurrent versions and of aborted
    uploads under the standalone names. A rule without an id gets one, as the provider
    gives it."""
    out = []
    for rule in rules:
        shaped: dict[str, Any] = {
            "id": rule.get("id") or prefixed_name("tf-s3-lifecycle-"),
            "status": "Enabled" if rule.get("enabled") else "Disabled",
        }
        prefix, tags = rule.get("prefix"), rule.get("tags")
        if tags:
            shaped["filter"] = {"and": {"prefix": prefix or "", "tags": tags}}
        else:
            shaped["filter"] = {"prefix": prefix or ""}
        if rule.get("expiration"):
            shaped["expiration"] = rule["expiration"]
        if rule.get("transitions"):
            shaped["transitions"] = rule["transitions"]
        if rule.get("noncurrentVersionTransitions"):
            shaped["noncurrentVersionTransitions"] = [
                {"storageClass": t.get("storageClass"), "noncurrentDays": t.get("days")}
                for t in rule["noncurrentVersionTransitions"]
            ]
        noncurrent = rule.get("noncurrentVersionExpiration") or {}
        if noncurrent.get("days") is not None:
            shaped["noncurrentVersionExpiration"] = {"noncurrentDays": noncurrent["days"]}
        if rule.get("abortIncompleteMultipartUploadDays") is not None:
            shaped["abortIncompleteMultipartUpload"] = {
                "daysAfterInitiation": rule["abortIncompleteMultipartUploadDays"]
            }
        out.append(shaped)
    return {"rules": out}


def _shaped(key: str, given: Any, before: Any) -> dict[str, Any]:
    if key == "versioning":
        return _versioning(given, before)
    if key == "serverSideEncryptionConfiguration":
        return _encryption(given)
    return _lifecycle(given)


def _named(key: str, exc: HandlerError) -> HandlerError:
    return HandlerError(f"{key}: {exc}")


def check_inline(inputs: dict[str, Any]) -> None:
    """Raise HandlerError for an inline setting its standalone resource would refuse."""
    for key, handler in _HANDLERS.items():
        given = inputs.get(key)
        if not given or not isinstance(given, (dict, list)):
            continue  # absent, or not known until apply
        try:
            handler.validate(_shaped(key, given, None))
        except HandlerError as exc:
            raise _named(key, exc) from None


def put_inline(s3: Any, bucket: str, new: dict[str, Any], old: dict[str, Any] | None) -> None:
    """Put each inline setting of ``new`` that is set and differs from ``old`` (None: a
    create) on ``bucket``."""
    for key, handler in _HANDLERS.items():
        given, before = new.get(key), (old or {}).get(key)
        if not given or given == before:
            continue
        shaped = {"bucket": bucket, **_shaped(key, given, before)}
        previous = {"bucket": bucket, **_shaped(key, before, None)} if before else None
        try:
            handler.validate(shaped)
            handler.put(s3, {"Bucket": bucket}, shaped, previous)
        except HandlerError as exc:
            raise _named(key, exc) from None
