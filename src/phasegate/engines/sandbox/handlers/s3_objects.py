"""Objects in a bucket (pulumi-aws v7 ``aws.s3.BucketObjectv2``): their content, headers,
metadata, tags, encryption and storage class.

Any change puts the object again, as the provider does, so a versioned bucket gains a
version; deleting it removes every version of its key. A ``source`` is a file path or a
``pulumi.FileAsset``, relative to the program's folder; the plan hashes the file, as the
Pulumi engine hashes an asset, so a change to the file alone is an update.

The emulator takes metadata keys in capitals, more than ten tags, a KMS key without KMS
encryption and unknown storage classes; those are checked here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import urllib.parse
from pathlib import Path
from typing import Any

from phasegate.engines.base import UNKNOWN
from phasegate.engines.sandbox.handlers.base import (
    CloudContext,
    Handler,
    HandlerError,
    RunContext,
    error_code,
)

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


_SIG_KEY = "4dabf18193072939515e22adb298388d"
_ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17"
"""How the Pulumi wire format marks an asset (``pulumi/runtime/rpc.py``)."""


def _source_path(source: Any) -> str:
    """The file a ``source`` names: a path, or a file asset's path."""
    if isinstance(source, str):
        return source
    asset = isinstance(source, dict) and source.get(_SIG_KEY) == _ASSET_SIG
    if asset and isinstance(source.get("path"), str):
        return str(source["path"])
    raise HandlerError(
        "source: the sandbox emulates a file path or a pulumi.FileAsset, not a string or "
        "remote asset, nor an archive"
    )


def _source_file(program: Path | None, source: Any) -> bytes:
    """The bytes of the file a ``source`` names, relative to the program's folder."""
    path = Path(_source_path(source))
    if not path.is_absolute() and program is not None:
        path = program / path
    try:
        return path.read_bytes()
    except OSError as exc:
        raise HandlerError(
            f"source {_source_path(source)} cannot be read: {exc.strerror}"
        ) from None


def _body(inputs: dict[str, Any], program: Path | None = None) -> bytes:
    """The object's bytes, from whichever content input is set (none: empty)."""
    if inputs.get("source") is not None:
        return _source_file(program, inputs["source"])
    if inputs.get("contentBase64") is not None:
        try:
            return base64.b64decode(str(inputs["contentBase64"]), validate=True)
        except binascii.Error as exc:
            raise HandlerError(f"contentBase64 is not base64: {exc}") from None
    return str(inputs.get("content") or "").encode()


class BucketObjectv2(Handler):
    type = "aws:s3/bucketObjectv2:BucketObjectv2"
    required = frozenset({"bucket", "key"})
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
            "source",
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
        given = [k for k in ("content", "contentBase64", "source") if inputs.get(k) is not None]
        if len(given) > 1:
            raise HandlerError(f"{' and '.join(given)} cannot both be set: S3 takes one body")
        if inputs.get("source") is not None:
            _source_path(inputs["source"])
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

    def check(
        self, run: RunContext, old: dict[str, Any] | None, new: dict[str, Any]
    ) -> dict[str, Any]:
        """A source as a file asset with the hash of its file, as the Pulumi engine
        records an asset: a change to the file changes the inputs."""
        source = new.get("source")
        if source is None or source == UNKNOWN:
            return new
        data = _source_file(run.program, source)
        asset = {_SIG_KEY: _ASSET_SIG, "path": _source_path(source)}
        return {**new, "source": {**asset, "hash": hashlib.sha256(data).hexdigest()}}

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
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
        args: dict[str, Any] = {
            "Bucket": bucket,
            "Key": key,
            "Body": _body(inputs, ctx.run.program),
        }
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
