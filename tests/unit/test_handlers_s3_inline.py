"""A bucket's inline settings and its name prefix reach the emulated cloud: what boto3
shows after a create and an update, and what S3 would refuse, refused in the plan."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from phasegate.engines.sandbox.handlers import CloudContext, HandlerError, handler_for

BUCKET = "aws:s3/bucket:Bucket"
HANDLER = handler_for(BUCKET)
assert HANDLER is not None


def _create(ctx: CloudContext, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """As the engine does it: the plan's check, then the create."""
    inputs = {"bucket": f"inline-{secrets.token_hex(4)}", **inputs}
    HANDLER.validate(inputs)
    return HANDLER.create(ctx, "lake", inputs)


def _update(ctx: CloudContext, id_: str, old: dict[str, Any], new: dict[str, Any]) -> None:
    new = {"bucket": old["bucket"], **new}
    HANDLER.validate(new)
    HANDLER.update(ctx, id_, old, new, old)


def test_inline_versioning_enables_then_suspends(ctx: CloudContext, s3: Any) -> None:
    bucket, outputs = _create(ctx, {"versioning": {"enabled": True}})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"

    _update(ctx, bucket, outputs, {"versioning": {"enabled": False}})

    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"


def test_inline_versioning_off_from_the_start_leaves_the_bucket_unversioned(
    ctx: CloudContext, s3: Any
) -> None:
    bucket, _ = _create(ctx, {"versioning": {"enabled": False}})
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)


def test_inline_default_encryption_reaches_the_bucket_and_changes_in_place(
    ctx: CloudContext, s3: Any
) -> None:
    key = ctx.client("kms").create_key()["KeyMetadata"]["Arn"]
    sse = {
        "rule": {
            "applyServerSideEncryptionByDefault": {
                "sseAlgorithm": "aws:kms",
                "kmsMasterKeyId": key,
            },
            "bucketKeyEnabled": True,
        }
    }
    bucket, outputs = _create(ctx, {"serverSideEncryptionConfiguration": sse})
    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule == {
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key},
        "BucketKeyEnabled": True,
    }

    aes = {"rule": {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}}
    _update(ctx, bucket, outputs, {"serverSideEncryptionConfiguration": aes})

    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}


def test_inline_lifecycle_rules_reach_the_bucket_as_s3_holds_them(
    ctx: CloudContext, s3: Any
) -> None:
    rules = [
        {
            "id": "age-out",
            "enabled": True,
            "prefix": "exports/",
            "transitions": [{"days": 30, "storageClass": "STANDARD_IA"}],
            "expiration": {"days": 365},
            "noncurrentVersionTransitions": [{"days": 30, "storageClass": "GLACIER"}],
            "noncurrentVersionExpiration": {"days": 90},
            "abortIncompleteMultipartUploadDays": 7,
        },
        {"id": "tagged", "enabled": False, "tags": {"tier": "cold"}, "expiration": {"days": 9}},
    ]
    bucket, outputs = _create(ctx, {"lifecycleRules": rules})

    held = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert held == [
        {
            "ID": "age-out",
            "Status": "Enabled",
            "Filter": {"Prefix": "exports/"},
            "Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"}],
            "Expiration": {"Days": 365},
            "NoncurrentVersionTransitions": [{"NoncurrentDays": 30, "StorageClass": "GLACIER"}],
            "NoncurrentVersionExpiration": {"NoncurrentDays": 90},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
        },
        {
            "ID": "tagged",
            "Status": "Disabled",
            "Filter": {"And": {"Prefix": "", "Tags": [{"Key": "tier", "Value": "cold"}]}},
            "Expiration": {"Days": 9},
        },
    ]

    _update(
        ctx, bucket, outputs, {"lifecycleRules": [{"enabled": True, "expiration": {"days": 3}}]}
    )

    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rule["Expiration"] == {"Days": 3} and rule["ID"].startswith("tf-s3-lifecycle-")


def test_a_setting_dropped_from_the_program_stays_on_the_bucket(ctx: CloudContext, s3: Any) -> None:
    """As with the provider, which computes the three: S3 keeps them until changed."""
    bucket, outputs = _create(ctx, {"versioning": {"enabled": True}})
    _update(ctx, bucket, outputs, {})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"


def test_a_name_prefix_names_the_bucket_with_the_providers_suffix(
    ctx: CloudContext, s3: Any
) -> None:
    inputs = {"bucketPrefix": "lake-raw-"}
    HANDLER.validate(inputs)
    bucket, outputs = HANDLER.create(ctx, "lake", inputs)

    assert bucket.startswith("lake-raw-") and len(bucket) == len("lake-raw-") + 26
    assert outputs["bucket"] == bucket
    assert bucket in {b["Name"] for b in s3.list_buckets()["Buckets"]}


@pytest.mark.parametrize(
    ("inputs", "said"),
    [
        (
            {"bucket": "x-logs", "bucketPrefix": "x-"},
            "bucket and bucketPrefix conflict: give one",
        ),
        (
            {"bucketPrefix": "p" * 38},
            f"bucketPrefix '{'p' * 38}' is longer than 37 characters (the provider adds 26 "
            "to make the name)",
        ),
        ({"bucketPrefix": "Lake_"}, "bucket name 'Lake_"),
        (
            {"versioning": {"enabled": True, "mfaDelete": True}},
            "versioning: mfaDelete needs the MFA device's serial and code",
        ),
        (
            {
                "serverSideEncryptionConfiguration": {
                    "rule": {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "rot13"}}
                }
            },
            "serverSideEncryptionConfiguration: sseAlgorithm 'rot13' is not one of",
        ),
        (
            {
                "lifecycleRules": [
                    {"enabled": True, "transitions": [{"days": 5, "storageClass": "STANDARD_IA"}]}
                ]
            },
            "lifecycleRules: rules[0].transitions[0]: S3 moves objects to STANDARD_IA after at "
            "least 30 days, not 5",
        ),
        (
            {"lifecycleRules": [{"enabled": True}]},
            "lifecycleRules: rules[0] has no action",
        ),
    ],
)
def test_inline_settings_s3_would_refuse_are_refused(inputs: dict[str, Any], said: str) -> None:
    with pytest.raises(HandlerError) as refused:
        HANDLER.validate(inputs)
    assert str(refused.value).startswith(said)
