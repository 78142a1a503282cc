"""What ListObjectsV2 says of the current objects under a prefix.

The data copy (what to copy) and the parity proof (what to prove) both start from it, so
one listing taken by the copy can serve the proof that follows in the same run: the
source's always (the copy only reads it), the target's when the copy wrote nothing to it
after listing it. Only current versions are listed; delete markers and older versions
are not objects here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, NamedTuple

__all__ = ["Listing", "S3Object", "list_objects"]


class S3Object(NamedTuple):
    """One current object as ListObjectsV2 gives it."""

    key: str
    """The full key in the bucket."""
    size: int
    etag: str
    last_modified: datetime
    """With the size and ETag, what tells a rewritten object from the one listed before."""
    algorithms: tuple[str, ...] = ()
    """The additional checksums S3 keeps of it (``SHA256``, ``CRC32C``...), as listed."""


Listing = Mapping[str, S3Object]
"""The objects under a prefix, by key relative to it."""


def list_objects(client: Any, bucket: str, prefix: str) -> Iterator[tuple[str, S3Object]]:
    """Every current object under ``prefix``, with its key relative to it, in S3's order.
    The client's errors (ClientError, BotoCoreError) are the caller's to word."""
    strip = len(prefix)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            yield (
                item["Key"][strip:],
                S3Object(
                    item["Key"],
                    int(item["Size"]),
                    str(item.get("ETag", "")),
                    item["LastModified"],
                    tuple(item.get("ChecksumAlgorithm") or ()),
                ),
            )
