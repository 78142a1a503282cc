"""Private, encrypted S3 buckets: the pilot's artifacts bucket and the lake buckets.

Every bucket phasegate makes blocks public access, encrypts with SSE-KMS and S3 bucket
keys (far fewer KMS calls on busy buckets), and refuses requests that are not TLS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from common import keep
from config import check_bucket_name

__all__ = ["Lifecycle", "private_bucket"]

_s3 = aws.s3
_Encryption = _s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs
_NoncurrentExpiry = _s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs
_AbortMultipart = _s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs


@dataclass(frozen=True)
class Lifecycle:
    """When objects move to colder storage classes, and when replaced versions go."""

    transitions: tuple[tuple[str, int], ...]
    """(storage class, days after creation), in order."""
    noncurrent_expiry_days: int
    abort_multipart_days: int = 7


def _tls_only(bucket_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )


def private_bucket(
    name: str,
    *,
    bucket: str,
    tags: dict[str, str],
    kms_key_arn: pulumi.Input[str] | None = None,
    versioned: bool = False,
    lifecycle: Lifecycle | None = None,
) -> aws.s3.Bucket:
    """A bucket and the settings that make it private; logical names start with ``name``.

    Without ``kms_key_arn`` objects are encrypted with the account's AWS managed S3 key.
    """
    check_bucket_name(bucket)
    resource = aws.s3.Bucket(name, bucket=bucket, tags=tags, opts=keep(name))
    blocked = aws.s3.BucketPublicAccessBlock(
        f"{name}-public-access",
        bucket=resource.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=keep(f"{name}-public-access"),
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-encryption",
        bucket=resource.id,
        rules=[
            aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=_Encryption(
                    sse_algorithm="aws:kms", kms_master_key_id=kms_key_arn
                ),
                bucket_key_enabled=True,
            )
        ],
        opts=keep(f"{name}-encryption"),
    )
    # S3 refuses a policy change while the public-access block is being written.
    aws.s3.BucketPolicy(
        f"{name}-tls-only",
        bucket=resource.id,
        policy=resource.arn.apply(_tls_only),
        opts=keep(f"{name}-tls-only", pulumi.ResourceOptions(depends_on=[blocked])),
    )
    versioning = None
    if versioned:
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=resource.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                status="Enabled"
            ),
            opts=keep(f"{name}-versioning"),
        )
    if lifecycle is not None:
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=resource.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="tiering",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    transitions=[
                        aws.s3.BucketLifecycleConfigurationRuleTransitionArgs(
                            storage_class=storage_class, days=days
                        )
                        for storage_class, days in lifecycle.transitions
                    ],
                    noncurrent_version_expiration=_NoncurrentExpiry(
                        noncurrent_days=lifecycle.noncurrent_expiry_days
                    ),
                    abort_incomplete_multipart_upload=_AbortMultipart(
                        days_after_initiation=lifecycle.abort_multipart_days
                    ),
                )
            ],
            # A lifecycle on a versioned bucket must follow the versioning setting.
            opts=keep(
                f"{name}-lifecycle",
                pulumi.ResourceOptions(depends_on=[versioning] if versioning else []),
            ),
        )
    return resource
