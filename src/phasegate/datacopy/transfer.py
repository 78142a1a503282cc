"""Copying one object server side: CopyObject, or a multipart copy above the threshold.

The bytes never pass through this process: S3 copies them from the source bucket into
the target. What the copy keeps of the source object: its content type, user metadata,
tags and the other content headers (Cache-Control, Content-Disposition, -Encoding,
-Language); not its storage class, ACL or Expires. Each copy is encrypted with the given
KMS key (bucket key on) and carries a SHA-256 checksum S3 computes.

The copy is of the content listed: the source ETag seen in the listing is a condition of
the copy (``CopySourceIfMatch``), so an object rewritten since is not copied under its old
name and size. It is then looked up again (HeadObject) and that version copied, by
VersionId when the bucket keeps versions.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from phasegate.datacopy.model import CopyOptions, Location
from phasegate.errors import aws_error_code

__all__ = ["Copied", "ObjectCopier", "Stopped", "abort_leftover_uploads"]

_CONTENT_HEADERS = (
    "ContentType",
    "CacheControl",
    "ContentDisposition",
    "ContentEncoding",
    "ContentLanguage",
)
# Worth another try after botocore's own retries gave up: throttling and S3's 5xx.
_AGAIN_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "503",
        "500",
    }
)
_AGAIN_ERRORS = (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)


class Stopped(Exception):
    """The run was asked to stop while this object was being copied; nothing of it was
    left in the target (a multipart copy is aborted)."""


@dataclass(frozen=True, slots=True)
class Copied:
    """The source object as copied (it may be newer than the listing) and the target ETag."""

    size: int
    source_etag: str
    target_etag: str
    written: Mapping[str, Any] | None = None
    """S3's CopyObjectResult of a single-part copy (ETag, LastModified and the checksum
    it computed of what it wrote); None for a multipart copy."""


def _again(exc: BaseException) -> bool:
    if isinstance(exc, _AGAIN_ERRORS):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return aws_error_code(exc) in _AGAIN_CODES or status in (500, 503)
    return False


class ObjectCopier:
    """Copies objects from ``source`` to ``target``: thread-safe, one per run."""

    def __init__(
        self,
        source_client: Any,
        target_client: Any,
        source: Location,
        target: Location,
        options: CopyOptions,
        parts: Executor,
        stop: threading.Event,
    ) -> None:
        self.src = source_client
        self.dst = target_client
        self.source = source
        self.target = target
        self.options = options
        self.parts = parts
        self.stop = stop
        self._encryption: dict[str, Any] = {"ChecksumAlgorithm": "SHA256"}
        if options.kms_key_id:
            self._encryption.update(
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=options.kms_key_id,
                BucketKeyEnabled=True,
            )

    def copy(self, key: str, size: int, etag: str) -> Copied:
        """Copy the object at ``key`` (relative to the prefixes) as listed, trying again
        with backoff while S3 throttles or fails transiently."""
        attempt = 1
        while True:
            try:
                return self._copy_listed(key, size, etag)
            except Exception as exc:
                if not _again(exc) or attempt >= self.options.object_attempts:
                    raise
            delay = self.options.backoff * 2 ** (attempt - 1) * (0.5 + random.random())
            if self.stop.wait(delay):
                raise Stopped(key)
            attempt += 1

    def _copy_listed(self, key: str, size: int, etag: str) -> Copied:
        try:
            if size > self.options.multipart_threshold:
                return self._multipart(key, etag, version=None)
            return self._single(key, size, etag, version=None)
        except ClientError as exc:
            if aws_error_code(exc) not in ("PreconditionFailed", "412"):
                raise
        # Rewritten since it was listed: copy what is there now, that exact version.
        head = self.src.head_object(Bucket=self.source.bucket, Key=self.source.prefix + key)
        size, etag, version = head["ContentLength"], head["ETag"], head.get("VersionId")
        if size > self.options.multipart_threshold:
            return self._multipart(key, etag, version=version, head=head)
        return self._single(key, size, etag, version=version)

    def _copy_source(self, key: str, version: str | None) -> dict[str, str]:
        source = {"Bucket": self.source.bucket, "Key": self.source.prefix + key}
        if version and version != "null":
            source["VersionId"] = version
        return source

    def _single(self, key: str, size: int, etag: str, version: str | None) -> Copied:
        response = self.dst.copy_object(
            Bucket=self.target.bucket,
            Key=self.target.prefix + key,
            CopySource=self._copy_source(key, version),
            CopySourceIfMatch=etag,
            MetadataDirective="COPY",
            TaggingDirective="COPY",
            **self._encryption,
        )
        written = response["CopyObjectResult"]
        return Copied(size, etag, written["ETag"], written)

    def _multipart(
        self, key: str, etag: str, version: str | None, head: dict[str, Any] | None = None
    ) -> Copied:
        if head is None:
            head = self.src.head_object(
                Bucket=self.source.bucket, Key=self.source.prefix + key, IfMatch=etag
            )
            version = head.get("VersionId")
        size = head["ContentLength"]
        tagging: dict[str, Any] = {"Bucket": self.source.bucket, "Key": self.source.prefix + key}
        if version and version != "null":
            tagging["VersionId"] = version
        tags = self.src.get_object_tagging(**tagging)["TagSet"]
        create: dict[str, Any] = {name: head[name] for name in _CONTENT_HEADERS if head.get(name)}
        create["Metadata"] = head.get("Metadata", {})
        if tags:
            create["Tagging"] = urlencode([(tag["Key"], tag["Value"]) for tag in tags])
        target_key = self.target.prefix + key
        upload = self.dst.create_multipart_upload(
            Bucket=self.target.bucket, Key=target_key, **create, **self._encryption
        )["UploadId"]
        try:
            parts = self._parts(key, etag, version, size, upload)
            done = self.dst.complete_multipart_upload(
                Bucket=self.target.bucket,
                Key=target_key,
                UploadId=upload,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            # Never leave a half copy: S3 keeps (and bills) the parts of an open upload.
            with contextlib.suppress(Exception):
                self.dst.abort_multipart_upload(
                    Bucket=self.target.bucket, Key=target_key, UploadId=upload
                )
            raise
        return Copied(size, etag, done["ETag"])

    def _parts(
        self, key: str, etag: str, version: str | None, size: int, upload: str
    ) -> list[dict[str, Any]]:
        part_size = self.options.part_size_for(size)
        futures: list[Future[dict[str, Any]]] = []
        for number, start in enumerate(range(0, size, part_size), start=1):
            end = min(start + part_size, size) - 1
            futures.append(
                self.parts.submit(self._part, key, etag, version, upload, number, start, end)
            )
        try:
            return [future.result() for future in futures]
        finally:
            for future in futures:
                future.cancel()

    def _part(
        self,
        key: str,
        etag: str,
        version: str | None,
        upload: str,
        number: int,
        start: int,
        end: int,
    ) -> dict[str, Any]:
        if self.stop.is_set():
            raise Stopped(key)
        attempt = 1
        while True:
            try:
                result = self.dst.upload_part_copy(
                    Bucket=self.target.bucket,
                    Key=self.target.prefix + key,
                    UploadId=upload,
                    PartNumber=number,
                    CopySource=self._copy_source(key, version),
                    CopySourceRange=f"bytes={start}-{end}",
                    CopySourceIfMatch=etag,
                )["CopyPartResult"]
                break
            except Exception as exc:
                if not _again(exc) or attempt >= self.options.object_attempts:
                    raise
            if self.stop.wait(self.options.backoff * 2 ** (attempt - 1)):
                raise Stopped(key)
            attempt += 1
        part = {"ETag": result["ETag"], "PartNumber": number}
        if result.get("ChecksumSHA256"):
            part["ChecksumSHA256"] = result["ChecksumSHA256"]
        return part


def abort_leftover_uploads(target_client: Any, target: Location) -> int:
    """Abort every multipart upload open under the target prefix: the parts of copies a
    killed run left. The prefix is this copy's to write; run it before any copy starts.
    Returns how many were aborted."""
    aborted = 0
    paginator = target_client.get_paginator("list_multipart_uploads")
    for page in paginator.paginate(Bucket=target.bucket, Prefix=target.prefix):
        for upload in page.get("Uploads", []):
            target_client.abort_multipart_upload(
                Bucket=target.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
            aborted += 1
    return aborted
