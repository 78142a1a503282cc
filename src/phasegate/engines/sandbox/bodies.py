"""S3 object bodies kept beside the cloud snapshot, not in it: content-addressed blobs.

The snapshot is written after every resource operation; with the legacy estate's tens of
MB of objects in it, every commit would pickle, hash and seal them all again. So the
snapshot holds a reference per body and the bytes live in ``blobs/`` beside it:

* A body is known by its SHA-256. Bodies first met by a dump are written once, as one
  *pack* per dump (several bodies end to end; a body of 1 MiB or more gets one of its
  own), under the SHA-256 of the pack's content; the dump's envelope says where each
  body it references is (pack, offset, size). A blob is never rewritten.
* Bodies of the legacy estate are not stored at all: they are made again, byte for byte,
  from their recipe (``legacy``).
* A bucket's keys (the metadata of thousands of objects) travel as a *segment*: a pickle
  of its own, a blob too, pickled again only when a request changed that bucket
  (:func:`bucket_changed`, called by the moto patch that sees every S3 request).
* Nothing is read eagerly: a body is read from its pack on first access
  (:class:`LazyBody`) and checked against its digest then; loading checks that every
  pack the snapshot names is there and long enough, and each segment against its name.

Integrity: the snapshot is sealed and names each blob by its hash, so a blob that checks
out against its name is as trusted as the snapshot. A missing or damaged one is
:class:`BlobError`, naming its file. Blobs hold object bodies, never secrets of the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from phasegate.errors import EngineError

__all__ = [
    "BlobError",
    "BlobStore",
    "LazyBody",
    "bucket_changed",
    "bucket_generation",
]

ALONE = 1 << 20
"""A body at least this large gets a blob of its own (dropped alone once unreferenced)."""
_NAME = re.compile(r"^[0-9a-f]{64}$")
_CACHED = 1 << 20
"""A lazy body up to this size stays in memory once read; a larger one is read again."""


class BlobError(EngineError):
    """A blob the snapshot names is missing or does not match its name (not a
    ValueError: moto takes some of those for a closed buffer and carries on)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, hint="`migrate sandbox reset` starts the sandbox over")


# -- which buckets changed -------------------------------------------------------------

_lock = threading.Lock()
_generations: dict[str, int] = {}
_everything = [0]


def bucket_changed(bucket: str | None) -> None:
    """Note that a request may have changed ``bucket`` (None: any bucket)."""
    with _lock:
        if bucket:
            _generations[bucket] = _generations.get(bucket, 0) + 1
        else:
            _everything[0] += 1


def bucket_generation(bucket: str) -> tuple[int, int]:
    """How often ``bucket`` (or any bucket) was noted changed in this process."""
    with _lock:
        return _everything[0], _generations.get(bucket, 0)


# -- the blob directory ----------------------------------------------------------------


class BlobStore:
    """The blobs of one sandbox environment under ``directory``, and what this process
    knows of them: where each body is, and which key stores are saved as which segment."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._where: dict[str, tuple[str, int, int]] = {}
        """body digest -> (blob name, offset, size)"""
        self._staged: dict[str, bytes] = {}
        self._segments: dict[int, tuple[Any, str, tuple[Any, ...], str, frozenset[str]]] = {}
        """id(key store) -> (the store, its bucket, generation and shape when saved, blob,
        bodies)"""
        self.written = 0
        """Blob files this process wrote (for tests and benchmarks)."""
        self.in_use: set[str] = set()
        """The blobs the last dump references (packs and segments)."""

    # bodies

    def body(self, data: bytes) -> str:
        """The digest of ``data``, staged to be written by :meth:`flush` unless known."""
        digest = hashlib.sha256(data).hexdigest()
        if digest not in self._where and digest not in self._staged:
            self._staged[digest] = data
        return digest

    def flush(self) -> None:
        """Write the staged bodies: large ones alone, the rest as one pack."""
        staged, self._staged = self._staged, {}
        if not staged:
            return
        pack: list[tuple[str, bytes]] = []
        for digest, data in staged.items():
            if len(data) >= ALONE:
                self._write(data, digest)
                self._where[digest] = (digest, 0, len(data))
            else:
                pack.append((digest, data))
        if pack:
            content = b"".join(data for _, data in pack)
            name = self._write(content)
            offset = 0
            for digest, data in pack:
                self._where[digest] = (name, offset, len(data))
                offset += len(data)
        _sync_directory(self.directory)

    def where(self, digests: Iterable[str]) -> dict[str, tuple[str, int, int]]:
        """Where each of ``digests`` is: what a snapshot's envelope keeps."""
        return {d: self._where[d] for d in digests}

    def adopt(self, where: dict[str, tuple[str, int, int]]) -> None:
        """Take a snapshot's record of its bodies, once every pack it names is there and
        long enough (their content is checked body by body, when read)."""
        needed: dict[str, int] = {}
        for name, offset, size in where.values():
            if not isinstance(name, str) or not _NAME.match(name):
                raise BlobError(f"the snapshot names a blob {name!r}, not a SHA-256")
            needed[name] = max(needed.get(name, 0), offset + size)
        for name, length in needed.items():
            path = self.directory / name
            try:
                actual = path.stat().st_size
            except OSError as exc:
                raise BlobError(f"{path}: blob missing ({exc.strerror or exc})") from None
            if actual < length:
                raise BlobError(f"{path}: blob damaged (shorter than the snapshot says)")
        self._where.update(where)

    def read_body(self, digest: str) -> bytes:
        try:
            name, offset, size = self._where[digest]
        except KeyError:
            raise BlobError(f"{self.directory}: no blob holds object body {digest}") from None
        path = self.directory / name
        try:
            with open(path, "rb") as file:
                file.seek(offset)
                data = file.read(size)
        except OSError as exc:
            raise BlobError(f"{path}: blob missing ({exc.strerror or exc})") from None
        if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
            raise BlobError(f"{path}: blob damaged (an object body in it does not match)")
        return data

    # segments

    def segment(self, store: Any, bucket: str) -> tuple[str, frozenset[str]] | None:
        """The blob and bodies ``store`` was saved as, if its bucket is unchanged since."""
        saved = self._segments.get(id(store))
        if saved is None or saved[0] is not store or saved[1] != bucket:
            return None
        if saved[2] != (bucket_generation(bucket), _shape(store)):
            return None
        return saved[3], saved[4]

    def remember_segment(
        self, store: Any, bucket: str, name: str, bodies: frozenset[str], generation: Any = None
    ) -> None:
        generation = bucket_generation(bucket) if generation is None else generation
        self._segments[id(store)] = (store, bucket, (generation, _shape(store)), name, bodies)

    def forget_segments(self) -> None:
        """Forget the stores saved before a load replaced them."""
        self._segments.clear()

    def write_blob(self, data: bytes) -> str:
        """``data`` as a blob (written once): its name."""
        return self._write(data)

    def read_blob(self, name: str) -> bytes:
        path = self.directory / name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BlobError(f"{path}: blob missing ({exc.strerror or exc})") from None
        if hashlib.sha256(data).hexdigest() != name:
            raise BlobError(f"{path}: blob damaged (its content does not match its name)")
        return data

    # housekeeping

    def collect(self, keep: set[str]) -> None:
        """Remove the blobs no longer referenced (those of snapshots pruned)."""
        if not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            if _NAME.match(path.name) and path.name not in keep:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        known = {n for n, _, _ in self._where.values()}
        if known - keep:
            self._where = {d: w for d, w in self._where.items() if w[0] in keep}

    def _write(self, data: bytes, name: str | None = None) -> str:
        name = name or hashlib.sha256(data).hexdigest()
        path = self.directory / name
        if path.exists() and path.stat().st_size == len(data):
            return name  # content-addressed: already there (its content checked on read)
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".blob.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self.written += 1
        return name


def _shape(store: Any) -> int:
    """What tells a bucket's keys from a later state of them, should a change reach them
    other than through a request (moto's own services writing to S3): the newest version
    of every key, by identity (the store holds them, so no two are alike)."""
    return hash(tuple(id(versions[-1]) if versions else 0 for versions in dict.values(store)))


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- bodies read when asked ------------------------------------------------------------


class LazyBody:
    """What moto's object keeps its value in (a file-like buffer), for a body that is
    read only when asked: from a blob, or made from the legacy estate's recipe."""

    def __init__(
        self,
        size: int,
        *,
        blobs: BlobStore | None = None,
        digest: str = "",
        recipe: tuple[Any, ...] = (),
    ) -> None:
        self.size = size
        self.blobs = blobs
        self.digest = digest
        self.recipe = recipe
        self._data: bytes | None = None
        self._buffer: io.BytesIO | None = None
        self._position = 0
        self.closed = False

    def _bytes(self) -> bytes:
        if self._data is not None:
            return self._data
        if self.recipe:
            from phasegate.engines.sandbox.recipes import estate_body

            data = estate_body(self.recipe)
        elif self.blobs is not None:
            data = self.blobs.read_body(self.digest)
        else:
            raise BlobError("an object body with nowhere to read it from")
        if len(data) <= _CACHED:
            self._data = data
        return data

    def seek(self, position: int, whence: int = 0) -> int:
        if self._buffer is not None:
            return self._buffer.seek(position, whence)
        base = {0: 0, 1: self._position, 2: self.size}[whence]
        self._position = max(0, base + position)
        return self._position

    def tell(self) -> int:
        return self._buffer.tell() if self._buffer is not None else self._position

    def read(self, size: int | None = -1) -> bytes:
        if self._buffer is not None:
            return self._buffer.read(size)
        data = self._bytes()
        end = len(data) if size is None or size < 0 else self._position + size
        chunk = data[self._position : end]
        self._position += len(chunk)
        if self._data is None and self._position < len(data):
            self._data = data  # read in chunks (an ETag): keep it until the end
        elif self._position >= len(data) and len(data) > _CACHED:
            self._data = None
        return chunk

    def _writable(self) -> io.BytesIO:
        if self._buffer is None:
            self._buffer = io.BytesIO(self._bytes())
            self._buffer.seek(self._position)
        return self._buffer

    def write(self, data: bytes) -> int:
        return self._writable().write(data)

    def truncate(self, size: int | None = None) -> int:
        return self._writable().truncate(size)

    def close(self) -> None:
        self.closed = True
        self._data = None
        self._buffer = None

    def same_body(self) -> LazyBody:
        """Another buffer for the body this one stands for, read when asked (a copy)."""
        return LazyBody(self.size, blobs=self.blobs, digest=self.digest, recipe=self.recipe)

    @property
    def changed(self) -> bool:
        """Written to since it was made: no longer the blob or recipe it stands for."""
        return self._buffer is not None
