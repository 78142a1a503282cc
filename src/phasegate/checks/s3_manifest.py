"""The manifest of objects under an S3 prefix, for the ``s3_parity`` proof: what is there
(current versions only), and a SHA-256 of each object's content.

Where the SHA-256 comes from
---------------------------
S3 keeps an additional checksum of an object when it was written with one. A single-part
object written with ``ChecksumAlgorithm=SHA256`` (the lake copy sets it) carries the
SHA-256 of its whole content: HeadObject with ``ChecksumMode=ENABLED`` gives it, and it is
used as it is. A multipart object's SHA-256 is *composite* (a hash of its parts' hashes),
which no single-part copy of the same bytes matches, and its ETag is no checksum either:
its content is read (GetObject, streamed through ``hashlib.sha256``). An object is taken
as multipart when its ETag ends in ``-N`` or S3 says its checksum is ``COMPOSITE``
(some emulators give a composite value without the ``-N`` S3 puts on it). The HeadObject
is asked only of an object whose listing names SHA256 among its checksum algorithms
(ListObjectsV2's ``ChecksumAlgorithm``): any other has no SHA-256 to give, and its body
is read straight away. A store that does not list the algorithms has its objects read:
slower, never wrong.

Other algorithms (CRC32, CRC32C) are not used: the manifest is over SHA-256, and the copy
gives each single-part target object a SHA-256, so a source that carries only a CRC is
read once. Every SHA-256 a proof had, on either side, is cached (:class:`ChecksumCache`)
for the object version its listing names, and a later proof reads only objects that are
new or rewritten since. Reading the source object is conditional on the
ETag listed (``IfMatch``): an object rewritten during the proof is reported as such, never
hashed in its new version against the old listing.

Memory: the listing of each side is held as a dict of small tuples (a few hundred bytes
per object and side, some tens of MB for 100,000 keys); bodies are streamed in 1 MiB
chunks, one per worker thread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from phasegate.atomic import write_atomic
from phasegate.checks.base import CheckError, error_code
from phasegate.errors import StorageError
from phasegate.s3listing import Listing, S3Object, list_objects

__all__ = [
    "CHUNK",
    "ChecksumCache",
    "ObjectSum",
    "Stopped",
    "full_object_sha256",
    "glob_matches",
    "list_prefix",
    "select",
    "sha256_of",
]

CHUNK = 1024 * 1024
"""Bytes read from a body at a time: each worker holds one chunk."""

_CACHE_VERSION = 1


class ObjectSum(NamedTuple):
    """An object's content SHA-256 (hex) and where it came from."""

    sha256: str
    origin: str
    """``s3`` (the object's own full-object checksum), ``computed`` (its body read now)
    or ``cached`` (read by an earlier proof, same key, size, ETag and time)."""


class Stopped(Exception):
    """A stop was asked for while a body was being read."""


class Changed(Exception):
    """The object is no longer the one listed (its ETag changed): rewritten or deleted."""


def _glob_regex(pattern: str) -> str:
    """``**`` crosses ``/``, ``**/`` also matches no folder, ``*`` and ``?`` stay in one
    path segment, ``[...]`` is a character class as in fnmatch."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[" and _class_end(pattern, i) > 0:
            end = _class_end(pattern, i)
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            if body.startswith("!"):
                body = "^" + body[1:]
            elif body.startswith("^"):
                body = "\\" + body
            out.append(f"[{body}]")
            i = end + 1
        else:
            out.append(re.escape(char))
            i += 1
    return "".join(out)


def _class_end(pattern: str, start: int) -> int:
    """Where the ``[...]`` opened at ``start`` closes (a ``]`` first in it is literal);
    -1 when it does not, and the ``[`` is literal."""
    j = start + 1
    if pattern.startswith("!", j):
        j += 1
    if pattern.startswith("]", j):
        j += 1
    return pattern.find("]", j)


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(_glob_regex(pattern), re.DOTALL)


def glob_matches(key: str, include: Iterable[str], exclude: Iterable[str]) -> bool:
    """Whether ``key`` (relative to the prefix) matches an include and no exclude."""
    return any(_compiled(p).fullmatch(key) for p in include) and not any(
        _compiled(p).fullmatch(key) for p in exclude
    )


def list_prefix(
    s3: Any,
    bucket: str,
    prefix: str,
    include: Iterable[str] = ("**",),
    exclude: Iterable[str] = (),
) -> dict[str, S3Object]:
    """The current objects under ``prefix`` whose key relative to it the globs select,
    by that relative key."""
    try:
        return select(dict(list_objects(s3, bucket, prefix)), include, exclude)
    except Exception as exc:
        if error_code(exc) == "NoSuchBucket":
            raise CheckError(f"bucket {bucket} does not exist") from None
        raise


def select(
    listing: Listing, include: Iterable[str] = ("**",), exclude: Iterable[str] = ()
) -> dict[str, S3Object]:
    """The objects of ``listing`` whose relative key the globs select."""
    include, exclude = tuple(include), tuple(exclude)
    if include == ("**",) and not exclude:
        return dict(listing)
    return {k: v for k, v in listing.items() if glob_matches(k, include, exclude)}


def _multipart(etag: str) -> bool:
    return re.search(r"-\d+\"?$", etag) is not None


def full_object_sha256(answer: Mapping[str, Any], etag: str) -> str | None:
    """The hex SHA-256 of the whole content that S3 keeps for an object, if it keeps one,
    from S3's answer about it (HeadObject, or the CopyObjectResult that wrote it);
    ``etag`` is the object's ETag as listed."""
    value = answer.get("ChecksumSHA256")
    if not value or "-" in value or answer.get("ChecksumType") == "COMPOSITE":
        return None
    if _multipart(etag) or _multipart(str(answer.get("ETag", ""))):
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


def sha256_of(s3: Any, bucket: str, listed: S3Object, stopped: Callable[[], bool]) -> ObjectSum:
    """The object's SHA-256: S3's full-object one when it keeps one, else its body read.

    Raises Changed when the object is no longer the one listed, Stopped when ``stopped()``
    says so before or while the body is read.
    """
    if stopped():
        raise Stopped
    if "SHA256" in listed.algorithms and not _multipart(listed.etag):
        try:
            head = s3.head_object(
                Bucket=bucket, Key=listed.key, IfMatch=listed.etag, ChecksumMode="ENABLED"
            )
        except Exception as exc:
            if error_code(exc) in ("PreconditionFailed", "412", "404", "NoSuchKey"):
                raise Changed from None
            raise
        known = full_object_sha256(head, listed.etag)
        if known is not None:
            return ObjectSum(known, "s3")
    try:
        answer = s3.get_object(Bucket=bucket, Key=listed.key, IfMatch=listed.etag)
    except Exception as exc:
        if error_code(exc) in ("PreconditionFailed", "412", "NoSuchKey"):
            raise Changed from None
        raise
    digest, size, body = hashlib.sha256(), 0, answer["Body"]
    try:
        for chunk in body.iter_chunks(CHUNK):
            if stopped():
                raise Stopped
            digest.update(chunk)
            size += len(chunk)
    finally:
        body.close()
    if size != listed.size:
        raise Changed
    return ObjectSum(digest.hexdigest(), "computed")


class ChecksumCache:
    """The SHA-256s earlier proofs had for one side (the source, or the target), and those
    S3 answered as the copy wrote the target (:meth:`keep_written`), in a JSON file, so a
    proof after new exports reads only the new objects and their copies.

    An entry counts only for the same key, size, ETag and LastModified, which is to say
    the same object version as the listing now names: a rewritten object (a corrupted
    copy included) is read again. Checksums S3 keeps are cached as well (a re-proof then
    makes no HeadObject for them). A file that cannot be read as a cache is taken as
    empty and rewritten: it is only a saving.
    """

    def __init__(self, path: Path | None, source: str) -> None:
        self.path = path
        self.source = source
        """``s3://bucket/prefix`` of the side: one file may hold several."""
        self._lock = threading.Lock()
        self._all: dict[str, Any] = self._load()
        self._mine: dict[str, list[Any]] = dict(self._all.get(source, {}))
        self._dirty = False

    def _load(self) -> dict[str, Any]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != _CACHE_VERSION:
            return {}
        sources = data.get("sources")
        return sources if isinstance(sources, dict) else {}

    def get(self, relative: str, listed: S3Object) -> str | None:
        entry = self._mine.get(relative)
        if (
            isinstance(entry, list)
            and len(entry) == 4
            and entry[:3] == [listed.size, listed.etag, listed.last_modified.isoformat()]
            and isinstance(entry[3], str)
            and re.fullmatch(r"[0-9a-f]{64}", entry[3])
        ):
            return entry[3]
        return None

    def put(self, relative: str, listed: S3Object, sha256: str) -> None:
        with self._lock:
            modified = listed.last_modified.isoformat()
            self._mine[relative] = [listed.size, listed.etag, modified, sha256]
            self._dirty = True

    def keep_written(self, relative: str, size: int, written: Mapping[str, Any] | None) -> None:
        """Keep the SHA-256 S3 answered as it wrote the object at ``relative`` (its
        CopyObjectResult: ETag, LastModified, ChecksumSHA256), for the version it wrote:
        what a HeadObject of that version gives. Nothing without a full-object one."""
        if written is None or written.get("LastModified") is None:
            return
        etag = str(written.get("ETag", ""))
        sha256 = full_object_sha256(written, etag)
        if sha256 is not None:
            self.put(relative, S3Object(relative, size, etag, written["LastModified"]), sha256)

    def save(self, listed: Listing | None = None) -> str | None:
        """Write the file if anything changed; with ``listed``, entries of objects no
        longer listed are dropped. Returns why the file could not be written, if it could
        not: a cache is a saving, its loss no reason to fail a proof."""
        if self.path is None:
            return None
        with self._lock:
            if listed is not None:
                kept = {k: v for k, v in self._mine.items() if k in listed}
                self._dirty = self._dirty or len(kept) != len(self._mine)
                self._mine = kept
            if not self._dirty:
                return None
            sources = {**self._all, self.source: dict(self._mine)}
            text = json.dumps({"version": _CACHE_VERSION, "sources": sources}, sort_keys=True)
            try:
                write_atomic(self.path, text.encode("utf-8"))
            except StorageError as exc:
                return str(exc)
            self._dirty = False
            return None
