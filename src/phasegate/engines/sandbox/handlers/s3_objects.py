"""Objects in a bucket (pulumi-aws v7 ``aws.s3.BucketObjectv2``): their content, headers,
metadata, tags, encryption and storage class.

Any change puts the object again, as the provider does, so a versioned bucket gains a
version; deleting it removes every version of its key. The emulator takes metadata keys in
capitals, more than ten tags, a KMS key without KMS encryption and unknown storage classes;
those are checked here.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from typing import Any

from phasegate.engines.sandbox.handlers.base import CloudContext, Handler, HandlerError, error_code

__all__ = ["HANDLERS"]

_ENCRYPTION = ("AES256", "aws:kms", "aws:kms:dsse")
_STORAGE_CLASSES = (
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "GLACIER_IR",
    "DEEP_ARCHIVE",
)
_METADATA_LIMIT = 2048
_TAG_LIMIT = 10
_HEADERS = {
    "cacheControl": "CacheControl",
    "contentDisposition": "ContentDisposition",
    "contentEncoding": "ContentEncoding",
    "contentType": "ContentType",
    "serverSideEncryption": "ServerSideEncryption",
    "kmsKeyId": "SSEKMSKeyId",
    "storageClass": "StorageClass",
}
"""Inputs put as they are, by the put_object argument that carries each."""


def _body(inputs: dict[str, Any]) -> bytes:
    """The object's bytes, from whichever content input is set (none: empty)."""
    if inputs.get("contentBase64") is not None:
        try:
            return base64.b64decode(str(inputs["contentBase64"]), validate=True)
        except binascii.Error as exc:
            raise HandlerError(f"contentBase64 is not base64: {exc}") from None
    return str(inputs.get("content") or "").encode()


class BucketObjectv2(Handler):
    type = "aws:s3/bucketObjectv2:BucketObjectv2"
    emulates = frozenset(
        {
            "bucket",
            "cacheControl",
            "content",
            "contentBase64",
            "contentDisposition",
            "contentEncoding",
            "contentType",
            "key",
            "kmsKeyId",
            "metadata",
            "serverSideEncryption",
            "storageClass",
            "tags",
        }
    )
    replace_on = frozenset({"bucket", "key"})
    computed = ("id", "arn", "etag", "versionId", "contentType", "storageClass")
    changed_by_update = ("etag", "versionId")

    def validate(self, inputs: dict[str, Any]) -> None:
        key = inputs.get("key")
        if isinstance(key, str) and not key:
            raise HandlerError("key cannot be empty")
        if isinstance(key, str) and len(key.encode()) > 1024:
            raise HandlerError("key is longer than S3's 1024 bytes")
        if inputs.get("content") is not None and inputs.get("contentBase64") is not None:
            raise HandlerError("content and contentBase64 cannot both be set")
        if inputs.get("contentBase64") is not None:
            _body(inputs)
        encryption = inputs.get("serverSideEncryption")
        if isinstance(encryption, str) and encryption not in _ENCRYPTION:
            raise HandlerError(
                f"serverSideEncryption '{encryption}' is not one of {', '.join(_ENCRYPTION)}"
            )
        if inputs.get("kmsKeyId") and encryption not in ("aws:kms", "aws:kms:dsse"):
            raise HandlerError("kmsKeyId needs serverSideEncryption aws:kms or aws:kms:dsse")
        storage = inputs.get("storageClass")
        if isinstance(storage, str) and storage not in _STORAGE_CLASSES:
            raise HandlerError(
                f"storageClass '{storage}' is not one of {', '.join(_STORAGE_CLASSES)}"
            )
        self._check_metadata(inputs.get("metadata"))
        tags = inputs.get("tags")
        if isinstance(tags, dict) and len(tags) > _TAG_LIMIT:
            raise HandlerError(f"an object takes at most {_TAG_LIMIT} tags, not {len(tags)}")

    @staticmethod
    def _check_metadata(metadata: Any) -> None:
        if not isinstance(metadata, dict):
            return
        for name in metadata:
            if name != name.lower():
                raise HandlerError(f"metadata key '{name}' must be lowercase (S3 lowercases it)")
        size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in metadata.items())
        if size > _METADATA_LIMIT:
            raise HandlerError(f"metadata is {size} bytes, more than S3's {_METADATA_LIMIT}")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        # Checked here, not in validate: a plan does not know a bucket made in the same run.
        for required in ("bucket", "key"):
            if not inputs.get(required):
                raise HandlerError(f"{required} is required")
        return inputs["key"], {**inputs, **self._put(ctx, inputs)}

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        return {**self.updated(new, outputs), **self._put(ctx, new)}

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        s3 = ctx.client("s3")
        bucket, key = outputs["bucket"], outputs["key"]
        try:
            pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key)
            for page in pages:
                for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
                    if item["Key"] == key:
                        s3.delete_object(Bucket=bucket, Key=key, VersionId=item["VersionId"])
        except Exception as exc:
            if error_code(exc) != "NoSuchBucket":
                raise

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        try:
            ctx.client("s3").head_object(Bucket=outputs["bucket"], Key=outputs["key"])
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NoSuchBucket"):
                return False
            raise
        return True

    def _put(self, ctx: CloudContext, inputs: dict[str, Any]) -> dict[str, Any]:
        """Put the object as declared; the outputs only S3 can tell."""
        bucket, key = inputs["bucket"], inputs["key"]
        args: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": _body(inputs)}
        args.update({api: inputs[k] for k, api in _HEADERS.items() if inputs.get(k)})
        if inputs.get("metadata"):
            args["Metadata"] = {k: str(v) for k, v in inputs["metadata"].items()}
        if inputs.get("tags"):
            args["Tagging"] = urllib.parse.urlencode(sorted(inputs["tags"].items()))
        s3 = ctx.client("s3")
        try:
            put = s3.put_object(**args)
        except Exception as exc:
            if error_code(exc) == "NoSuchBucket":
                raise HandlerError(f"bucket {bucket} does not exist") from None
            raise HandlerError(f"cannot put s3://{bucket}/{key}: {exc}") from None
        head = s3.head_object(Bucket=bucket, Key=key)
        return {
            "id": key,
            "arn": f"arn:aws:s3:::{bucket}/{key}",
            "etag": str(put["ETag"]).strip('"'),
            "versionId": put.get("VersionId", ""),
            "contentType": head.get("ContentType", "application/octet-stream"),
            "storageClass": head.get("StorageClass", "STANDARD"),
        }


HANDLERS: list[Handler] = [BucketObjectv2()]
