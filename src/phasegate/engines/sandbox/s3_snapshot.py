"""S3's objects in a cloud snapshot whose bodies live beside it (``bodies``).

:class:`BodyPickling` gives ``snapshot``'s pickler the reductions for one dump:

* an object (``FakeKey``) travels as its state and a reference to its body: a blob's
  digest, or the legacy estate's recipe; a body first met is staged for the blob store,
  and once written the object reads it from there (its temporary file let go);
* a completed multipart upload travels without its parts: S3 answers nothing about them
  once the upload is complete (sizes aside, which it keeps), so their bytes, a second
  copy of the object's, would only weigh on every commit;
* a bucket's keys (its ``_VersionedKeyStore``, every version and delete marker) travel
  as a segment blob, pickled again only when a request changed that bucket.

Loading (within :func:`loading`) rebuilds them: bodies stay on disk until read.
"""

from __future__ import annotations

import contextlib
import pickle
import threading
import zlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, cast

from phasegate.engines.sandbox.bodies import BlobError, BlobStore, LazyBody, bucket_generation

__all__ = ["SEGMENT_MIN_KEYS", "BodyPickling", "loading"]

SEGMENT_MIN_KEYS = 32
"""A bucket with fewer keys travels inline: a segment would cost more than it saves."""

_LOADING: ContextVar[BlobStore | None] = ContextVar("phasegate_blob_store", default=None)


@contextlib.contextmanager
def loading(blobs: BlobStore | None) -> Iterator[None]:
    """Within: object bodies and segments of the dump being loaded come from ``blobs``."""
    token = _LOADING.set(blobs)
    try:
        yield
    finally:
        _LOADING.reset(token)


class BodyPickling:
    """One dump's reductions for S3, and what it learns: the bodies it references."""

    def __init__(
        self,
        blobs: BlobStore,
        buckets: dict[int, str],
        dumps: Callable[[Any, BodyPickling], bytes],
    ) -> None:
        self.blobs = blobs
        self.buckets = buckets
        """id(key store) -> its bucket's name"""
        self.dumps = dumps
        self.referenced: set[str] = set()
        self.segments: set[str] = set()
        self.fresh: list[tuple[Any, str, int]] = []
        """Objects whose bodies this dump staged: (object, digest, size)."""

    def reductions(self) -> dict[type, Callable[[Any], Any]]:
        from moto.s3.models import FakeKey, FakeMultipart
        from moto.s3.utils import _VersionedKeyStore

        return {
            FakeKey: self._key,
            FakeMultipart: self._multipart,
            _VersionedKeyStore: self._store,
        }

    def settle(self) -> None:
        """After the dump: write the staged bodies, and let each object read its body
        from the blob store from now on."""
        self.blobs.flush()
        where = self.blobs.where(self.referenced)
        self.blobs.in_use = {name for name, _, _ in where.values()} | self.segments
        for key, digest, size in self.fresh:
            with key.lock:
                old = key._value_buffer
                key._value_buffer = LazyBody(size, blobs=self.blobs, digest=digest)
            with contextlib.suppress(Exception):
                old.close()
        self.fresh = []

    def _key(self, key: Any) -> Any:
        state = dict(vars(key))
        buffer = state.pop("_value_buffer", None)
        state.pop("lock", None)
        if isinstance(buffer, LazyBody) and not buffer.changed:
            if buffer.recipe:
                return (_rebuild_key, (type(key), state, ("recipe", buffer.recipe, buffer.size)))
            self.referenced.add(buffer.digest)
            return (_rebuild_key, (type(key), state, ("blob", buffer.digest, buffer.size)))
        try:
            data = key.value
        except ValueError:  # its buffer is closed: a disposed object, as moto pickles it
            data = b""
        digest = self.blobs.body(data)
        self.referenced.add(digest)
        if buffer is not None and not getattr(buffer, "closed", False):
            self.fresh.append((key, digest, len(data)))
        return (_rebuild_key, (type(key), state, ("blob", digest, len(data))))

    def _multipart(self, upload: Any) -> Any:
        if not upload.completed_part_sizes:
            return NotImplemented  # in progress: its parts are what ListParts answers
        state = dict(vars(upload))
        state["parts"] = {}
        return (_rebuild_plain, (type(upload), state))

    def _store(self, store: Any) -> Any:
        bucket = self.buckets.get(id(store))
        if bucket is None or len(store) < SEGMENT_MIN_KEYS:
            return _reduce_versioned_store(store)
        saved = self.blobs.segment(store, bucket)
        if saved is None:
            generation = bucket_generation(bucket)
            inner = BodyPickling(self.blobs, self.buckets, self.dumps)
            data = self.dumps(dict(dict.items(store)), inner)
            name = self.blobs.write_blob(zlib.compress(data, 1))
            bodies = frozenset(inner.referenced)
            self.fresh.extend(inner.fresh)
            self.blobs.remember_segment(store, bucket, name, bodies, generation)
            saved = (name, bodies)
        self.referenced |= saved[1]
        self.segments.add(saved[0])
        return (_rebuild_store, (type(store), saved[0], bucket, dict(vars(store))))


def _rebuild_key(cls: type[Any], state: dict[str, Any], ref: tuple[Any, ...]) -> Any:
    key: Any = cast(Any, cls).__new__(cls)  # as pickle makes it: moto tracks its models in __new__
    vars(key).update(state)
    key.lock = threading.Lock()
    kind, what, size = ref
    if kind == "recipe":
        key._value_buffer = LazyBody(size, recipe=tuple(what))
    else:
        key._value_buffer = LazyBody(size, blobs=_store_loading(), digest=what)
    return key


def _rebuild_plain(cls: type[Any], state: dict[str, Any]) -> Any:
    obj: Any = cast(Any, cls).__new__(cls)
    vars(obj).update(state)
    return obj


def _rebuild_store(cls: type, name: str, bucket: str, attrs: dict[str, Any]) -> Any:
    blobs = _store_loading()
    try:
        raw = pickle.loads(zlib.decompress(blobs.read_blob(name)))
    except BlobError:
        raise
    except Exception as exc:
        raise BlobError(f"{blobs.directory / name}: blob damaged ({exc})") from None
    store = cls()
    dict.update(store, raw)
    vars(store).update(attrs)
    bodies = frozenset(
        version._value_buffer.digest
        for versions in raw.values()
        for version in versions
        if isinstance(getattr(version, "_value_buffer", None), LazyBody)
        and version._value_buffer.digest
    )
    blobs.remember_segment(store, bucket, name, bodies)
    return store


def _store_loading() -> BlobStore:
    blobs = _LOADING.get()
    if blobs is None:
        raise ValueError("it keeps object bodies beside it, and no blob store was given")
    return blobs


def _reduce_versioned_store(store: Any) -> tuple[Any, ...]:
    # dict.items() reads the raw lists; the store's own items() yields the newest only.
    return (_rebuild_versioned_store, (type(store), dict(dict.items(store)), vars(store)))


def _rebuild_versioned_store(cls: type, raw: dict[str, list[Any]], attrs: dict[str, Any]) -> Any:
    store = cls()
    dict.update(store, raw)
    vars(store).update(attrs)
    return store
