"""The audit's data: the legacy bucket's objects and bytes, default encryption,
versioning and public access block."""

from __future__ import annotations

from typing import Any

from phasegate.audit.base import AWS_ERRORS, AuditInputs, Aws, Finding, byte_size, unreadable
from phasegate.errors import aws_error_code

__all__ = ["LIST_LIMIT", "data"]

LIST_LIMIT = 100_000
"""Objects of the legacy bucket counted before the audit stops listing (100 requests)."""


def data(inputs: AuditInputs, aws: Aws, list_limit: int = LIST_LIMIT) -> list[Finding]:
    """The legacy bucket: object count and bytes, default encryption, versioning and
    its public access block."""
    bucket = inputs.legacy_bucket
    if bucket is None:
        return [
            Finding(
                area="data",
                check="legacy bucket",
                severity="info",
                found="no stack config names a legacy_bucket: no data to migrate",
            )
        ]
    s3 = aws("s3")
    try:
        s3.head_bucket(Bucket=bucket)
    except AWS_ERRORS as exc:
        code = aws_error_code(exc)
        if code in ("404", "NoSuchBucket", "NotFound"):
            return [
                Finding(
                    area="data",
                    check="legacy bucket",
                    severity="critical",
                    found=f"the legacy bucket {bucket} does not exist",
                    action="fix legacy_bucket in the data layer's stack config",
                )
            ]
        return [
            unreadable(
                "data", "legacy bucket", f"the legacy bucket {bucket}", "s3:ListBucket on it", exc
            )
        ]
    return [
        _contents(bucket, s3, list_limit),
        _encryption(bucket, s3),
        _versioning(bucket, s3),
        _public_access(bucket, s3),
    ]


def _contents(bucket: str, s3: Any, limit: int) -> Finding:
    objects = size = 0
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                objects += 1
                size += int(item.get("Size", 0))
            if objects >= limit:
                return Finding(
                    area="data",
                    check="legacy objects",
                    severity="info",
                    found=f"{bucket}: at least {objects} objects, {byte_size(size)} (counting "
                    f"stopped at {limit})",
                    action="see the whole in S3 Storage Lens or the bucket's daily "
                    "CloudWatch metrics (NumberOfObjects, BucketSizeBytes)",
                )
    except AWS_ERRORS as exc:
        return unreadable(
            "data",
            "legacy objects",
            f"{bucket}: objects",
            "s3:ListBucket on it",
            exc,
            done="listed",
        )
    return Finding(
        area="data",
        check="legacy objects",
        severity="info",
        found=f"{bucket}: {objects} objects, {byte_size(size)} (current versions)",
    )


def _encryption(bucket: str, s3: Any) -> Finding:
    check = "legacy encryption"
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    except AWS_ERRORS as exc:
        if aws_error_code(exc) == "ServerSideEncryptionConfigurationNotFoundError":
            return Finding(
                area="data",
                check=check,
                severity="warning",
                found=f"{bucket} has no default encryption",
                action="turn on default encryption (SSE-KMS) on the legacy bucket; "
                "the lake encrypts its copy with its own key in any case",
            )
        return unreadable(
            "data", check, f"{bucket}: encryption", "s3:GetEncryptionConfiguration", exc
        )
    algorithms = sorted(
        {
            r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm", "?")
            for r in rules.get("Rules", [])
        }
    )
    return Finding(
        area="data",
        check=check,
        severity="ok",
        found=f"{bucket} is encrypted by default ({', '.join(algorithms)})",
    )


def _versioning(bucket: str, s3: Any) -> Finding:
    check = "legacy versioning"
    try:
        status = s3.get_bucket_versioning(Bucket=bucket).get("Status", "never enabled")
    except AWS_ERRORS as exc:
        return unreadable("data", check, f"{bucket}: versioning", "s3:GetBucketVersioning", exc)
    if status == "Enabled":
        return Finding(area="data", check=check, severity="ok", found=f"{bucket} is versioned")
    return Finding(
        area="data",
        check=check,
        severity="warning",
        found=f"{bucket}: versioning {status.lower()}: an export overwritten while "
        "it is copied is lost",
        action="enable versioning on the legacy bucket for the migration",
    )


_BLOCKS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


def _public_access(bucket: str, s3: Any) -> Finding:
    check = "legacy public access"
    try:
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except AWS_ERRORS as exc:
        if aws_error_code(exc) != "NoSuchPublicAccessBlockConfiguration":
            return unreadable(
                "data",
                check,
                f"{bucket}: public access block",
                "s3:GetBucketPublicAccessBlock",
                exc,
            )
        block = {}
    off = [name for name in _BLOCKS if not block.get(name)]
    if not off:
        return Finding(
            area="data", check=check, severity="ok", found=f"{bucket} blocks all public access"
        )
    return Finding(
        area="data",
        check=check,
        severity="warning",
        found=f"{bucket}: public access not blocked ({', '.join(off)} off)",
        action="turn on all four settings of the bucket's public access block",
    )
