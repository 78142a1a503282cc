"""Buckets with their settings inline, as programs written for older pulumi-aws set them:
versioning, default encryption with a KMS key, lifecycle rules, a name prefix."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MAIN = """
import pulumi
import pulumi_aws as aws

stage = pulumi.Config("corpus").get_int("stage") or 1
key = aws.kms.Key("lake", description="lake objects", deletion_window_in_days=7)
raw = aws.s3.Bucket(
    "raw",
    bucket_prefix="raw-exports-",
    force_destroy=True,
    versioning={"enabled": stage == 1},
    server_side_encryption_configuration={
        "rule": {
            "apply_server_side_encryption_by_default": {
                "sse_algorithm": "aws:kms",
                "kms_master_key_id": key.arn,
            },
            "bucket_key_enabled": True,
        }
    },
    lifecycle_rules=[{
        "id": "age-out",
        "enabled": True,
        "prefix": "nightly/",
        "transitions": [{"days": 30, "storage_class": "STANDARD_IA"}],
        "expiration": {"days": 365 if stage == 1 else 730},
    }],
    tags={"team": "data", "stage": str(stage)},
)
pulumi.export("bucket", raw.bucket)
pulumi.export("key_arn", key.arn)
"""


def check(aws: Callable[[str], Any], outputs: dict[str, Any], stage: int) -> None:
    s3, bucket = aws("s3"), outputs["bucket"]
    assert bucket.startswith("raw-exports-") and len(bucket) == len("raw-exports-") + 26
    versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    assert versioning == ("Enabled" if stage == 1 else "Suspended")
    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule == {
        "ApplyServerSideEncryptionByDefault": {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": outputs["key_arn"],
        },
        "BucketKeyEnabled": True,
    }
    (lifecycle,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert lifecycle == {
        "ID": "age-out",
        "Status": "Enabled",
        "Filter": {"Prefix": "nightly/"},
        "Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"}],
        "Expiration": {"Days": 365 if stage == 1 else 730},
    }
    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    assert tags == {"team": "data", "stage": str(stage)}


def gone(aws: Callable[[str], Any], outputs: dict[str, Any]) -> None:
    names = {b["Name"] for b in aws("s3").list_buckets()["Buckets"]}
    assert outputs["bucket"] not in names
    key = aws("kms").describe_key(KeyId=outputs["key_arn"])["KeyMetadata"]
    assert key["KeyState"] == "PendingDeletion"
