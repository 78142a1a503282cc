"""A bucket guarded by its standalone companions, as pulumi-aws v7 has them: versioning,
default encryption, a public access block, a TLS-only policy and lifecycle rules."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

MAIN = """
import json
import pulumi
import pulumi_aws as aws

stage = pulumi.Config("corpus").get_int("stage") or 1
bucket = aws.s3.Bucket("guarded", bucket="corpus-guarded", force_destroy=True)
aws.s3.BucketVersioning("guarded", bucket=bucket.id,
    versioning_configuration={"status": "Enabled" if stage == 1 else "Suspended"})
algorithm = "AES256" if stage == 1 else "aws:kms"
aws.s3.BucketServerSideEncryptionConfiguration("guarded", bucket=bucket.id, rules=[{
    "apply_server_side_encryption_by_default": {"sse_algorithm": algorithm},
}])
aws.s3.BucketPublicAccessBlock("guarded", bucket=bucket.id, block_public_acls=True,
    block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=stage == 1)
aws.s3.BucketPolicy("guarded", bucket=bucket.id, policy=bucket.arn.apply(lambda arn: json.dumps({
    "Version": "2012-10-17",
    "Statement": [{
        "Sid": "tls-only", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [arn, f"{arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }],
})))
aws.s3.BucketLifecycleConfiguration("guarded", bucket=bucket.id, rules=[{
    "id": "tmp", "status": "Enabled", "filter": {"prefix": "tmp/"},
    "expiration": {"days": 7 if stage == 1 else 14},
}])
pulumi.export("bucket", bucket.bucket)
"""


def check(aws: Callable[..., Any], outputs: dict[str, Any], stage: int) -> None:
    s3, bucket = aws("s3"), outputs["bucket"]
    assert bucket == "corpus-guarded"
    status = s3.get_bucket_versioning(Bucket=bucket)["Status"]
    assert status == ("Enabled" if stage == 1 else "Suspended")
    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    algorithm = "AES256" if stage == 1 else "aws:kms"
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": algorithm}
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": stage == 1,
    }
    (statement,) = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
    assert statement["Sid"] == "tls-only" and statement["Effect"] == "Deny"
    (lifecycle,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert lifecycle["Expiration"] == {"Days": 7 if stage == 1 else 14}
    assert lifecycle["Filter"] == {"Prefix": "tmp/"}


def gone(aws: Callable[..., Any], outputs: dict[str, Any]) -> None:
    assert outputs["bucket"] not in {b["Name"] for b in aws("s3").list_buckets()["Buckets"]}
