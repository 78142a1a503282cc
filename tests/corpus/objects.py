"""S3 objects: a bucket holding objects of several content types, with headers, metadata
and tags, changed in place and moved to a new key."""

from __future__ import annotations

import base64
from typing import Any

MAIN = """
import base64

import pulumi
import pulumi_aws as aws

stage = pulumi.Config("corpus").get_int("stage") or 1

site = aws.s3.Bucket("site", force_destroy=True, tags={"team": "web"})

page = aws.s3.BucketObjectv2(
    "page",
    bucket=site.id,
    key="index.html",
    content="<h1>hello</h1>" if stage == 1 else "<h1>hello again</h1>",
    content_type="text/html",
    cache_control="max-age=60" if stage == 1 else "max-age=300",
    metadata={"build": str(stage)},
    tags={"purpose": "page"},
)

data = aws.s3.BucketObjectv2(
    "data",
    bucket=site.id,
    key="data/v1.json" if stage == 1 else "data/v2.json",
    content='{"stage": %d}' % stage,
    content_type="application/json",
    content_encoding="identity",
    content_disposition="inline" if stage == 1 else "attachment",
    storage_class="STANDARD_IA",
    server_side_encryption="AES256",
)

logo = aws.s3.BucketObjectv2(
    "logo",
    bucket=site.id,
    key="img/logo.png",
    content_base64=base64.b64encode(bytes(range(16))).decode(),
    content_type="image/png",
    metadata={"source": "design"} if stage == 1 else {"source": "design", "approved": "yes"},
)

pulumi.export("bucket", site.id)
pulumi.export("keys", [page.key, data.key, logo.key])
"""


def _object(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    found: dict[str, Any] = s3.get_object(Bucket=bucket, Key=key)
    found["Body"] = found["Body"].read()
    return found


def _tags(s3: Any, bucket: str, key: str) -> dict[str, str]:
    tags = s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    return {t["Key"]: t["Value"] for t in tags}


def check(aws: Any, outputs: dict[str, Any], stage: int) -> None:
    """After the apply of `stage`: boto3 finds exactly the declared properties."""
    s3 = aws("s3")
    bucket = outputs["bucket"]
    data_key = "data/v1.json" if stage == 1 else "data/v2.json"
    assert outputs["keys"] == ["index.html", data_key, "img/logo.png"]
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert sorted(o["Key"] for o in listed) == sorted(outputs["keys"])
    assert {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]} == {
        "team": "web"
    }

    page = _object(s3, bucket, "index.html")
    assert page["Body"] == (b"<h1>hello</h1>" if stage == 1 else b"<h1>hello again</h1>")
    assert page["ContentType"] == "text/html"
    assert page["CacheControl"] == ("max-age=60" if stage == 1 else "max-age=300")
    assert page["Metadata"] == {"build": str(stage)}
    assert _tags(s3, bucket, "index.html") == {"purpose": "page"}

    data = _object(s3, bucket, data_key)
    assert data["Body"] == b'{"stage": %d}' % stage
    assert data["ContentType"] == "application/json"
    assert data["ContentEncoding"] == "identity"
    assert data["ContentDisposition"] == ("inline" if stage == 1 else "attachment")
    assert data["StorageClass"] == "STANDARD_IA"
    assert data["ServerSideEncryption"] == "AES256"
    assert data["Metadata"] == {}
    assert _tags(s3, bucket, data_key) == {}

    logo = _object(s3, bucket, "img/logo.png")
    assert logo["Body"] == base64.b64decode(base64.b64encode(bytes(range(16))))
    assert logo["ContentType"] == "image/png"
    expected = {"source": "design"} if stage == 1 else {"source": "design", "approved": "yes"}
    assert logo["Metadata"] == expected


def gone(aws: Any, outputs: dict[str, Any]) -> None:
    """After destroy: nothing the program declared is left (the outputs of stage 2)."""
    s3 = aws("s3")
    names = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    assert outputs["bucket"] not in names
