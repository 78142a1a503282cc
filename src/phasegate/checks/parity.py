"""The ``s3_parity`` check: a proof that a target prefix holds exactly the objects of a
source prefix, byte for byte (the data layer's legacy copy).

Both prefixes are listed (current versions only, ListObjectsV2). The source keys the
``include``/``exclude`` globs select, taken relative to the source prefix, must be the
keys under the target prefix relative to it, each with the same size and the same content
SHA-256 (how each SHA-256 is had: :mod:`phasegate.checks.s3_manifest`). Every object
under the target prefix counts: the prefix is the copy of the source and nothing else, so
an object there that the source does not have (or that the globs leave out) is a
mismatch, *extra in target*.

The proof fails for good at the first attempt that finds a mismatch (no retry can make
a finished copy right): the phase rolls back. The result keeps, besides its one-line
message, the counts, bytes and manifest digest of each side and the first mismatches by
key (``detail`` in the state file). A manifest digest is the SHA-256 of the sorted lines
``key<TAB>size<TAB>sha256<LF>`` (keys relative to the prefix, sorted by their UTF-8
bytes): the two are equal exactly when parity holds.

The proof only reads: ListObjectsV2 (both sides at once), HeadObject and GetObject, on
both buckets. A listing the run's data copy took and nothing wrote to since
(``ctx.listings``: the source's, and the target's when nothing was copied) is taken as
it is, not listed again. The SHA-256s it had, on either side, are kept under ``ctx.work_dir``
(``parity/<stack>.json`` for the source, ``parity/<stack>.target.json`` for the target),
each for the object version its listing names (size, ETag, last modified), so a proof
after new exports reads only the new objects and the new copies: any object rewritten
since is read again. The data copy puts in the target's file the SHA-256 S3 answered as
it wrote each copy (:func:`target_checksums`), the very value a HeadObject would give
for that version, so the first proof after a copy asks the target nothing per object.
The source's SHA-256s never come from the copy: they are S3's own, kept since the object
was written, or computed from its body.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import Field, model_validator

from phasegate.checks.base import CheckContext, CheckError, CheckKind, Params, Probe, aws_client
from phasegate.checks.s3_manifest import (
    Changed,
    ChecksumCache,
    ObjectSum,
    Stopped,
    list_prefix,
    select,
    sha256_of,
)
from phasegate.errors import Interrupted
from phasegate.s3listing import S3Object

__all__ = ["S3Location", "S3Parity", "S3ParityParams", "target_checksums"]

_SAVE_EVERY = 30.0
"""Seconds between writes of the checksum caches while a proof reads."""
SHOWN = 10
"""Mismatches the state file names; the message names the first few of them."""
_IN_MESSAGE = 3


class S3Location(Params):
    """A bucket and a key prefix in it."""

    bucket: str = Field(min_length=3, max_length=63, description="the bucket name")
    prefix: str = Field(
        "",
        max_length=1024,
        description="the key prefix, as S3 matches it (end it with / for a folder); "
        "empty: the whole bucket",
    )

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


class S3ParityParams(Params):
    """Source and target of a copy whose result must equal the source."""

    source: S3Location = Field(description="what was copied: the legacy bucket and prefix")
    target: S3Location = Field(description="where it was copied to: only the copy lives there")
    include: list[str] = Field(
        ["**"],
        min_length=1,
        description="globs over keys relative to the source prefix that the copy takes: "
        "** crosses /, * and ? do not",
    )
    exclude: list[str] = Field(
        default_factory=list, description="globs of source keys the copy leaves out"
    )
    concurrency: int = Field(16, ge=1, le=128, description="objects looked at at once")
    allow_empty: bool = Field(
        False,
        description="true: a source with no object the globs select passes when the target "
        "prefix is empty too; false: it fails (a wrong prefix proves nothing)",
    )

    @model_validator(mode="after")
    def _apart(self) -> S3ParityParams:
        s, t = self.source, self.target
        if s.bucket == t.bucket and (
            s.prefix.startswith(t.prefix) or t.prefix.startswith(s.prefix)
        ):
            raise ValueError(
                f"source {s} and target {t} overlap: one prefix holds the other, so "
                "there is no telling a copy from its source"
            )
        return self


class _Mismatch(NamedTuple):
    key: str
    """The full key: on the source, or on the target for an extra object."""
    problem: str
    source: str | None = None
    target: str | None = None

    def as_detail(self) -> dict[str, Any]:
        shown = {"key": self.key, "problem": self.problem}
        return shown | {k: v for k, v in (("source", self.source), ("target", self.target)) if v}

    def __str__(self) -> str:
        sides = f" (source {self.source} target {self.target})" if self.source else ""
        return f"{_printable(self.key)}: {self.problem}{sides}"


class S3Parity(CheckKind):
    name = "s3_parity"
    params = S3ParityParams
    not_rerun_after_rollback = (
        "not re-run after a rollback: a rollback keeps the lake's data as it is, and sends "
        "readers back to the source"
    )

    def probe(self, params: S3ParityParams, ctx: CheckContext) -> Probe:
        s3 = aws_client(ctx, "s3")
        # What the run's data copy listed, and nothing wrote to since, is not listed again.
        listed_source = ctx.listings.get(str(params.source))
        listed_target = ctx.listings.get(str(params.target))
        with ThreadPoolExecutor(1, thread_name_prefix="parity-list") as lister:
            listing = None
            if listed_target is None:
                listing = lister.submit(list_prefix, s3, params.target.bucket, params.target.prefix)
            if listed_source is None:
                source = list_prefix(
                    s3, params.source.bucket, params.source.prefix, params.include, params.exclude
                )
            else:
                source = select(listed_source, params.include, params.exclude)
            target = listing.result() if listing is not None else dict(listed_target or {})
        if not source and not params.allow_empty:
            return Probe(
                False,
                f"parity: nothing to prove: {params.source} has no object that include "
                f"{params.include} and exclude {params.exclude} select (check the prefix; "
                "allow_empty: true if it is empty on purpose)",
                final=True,
            )
        caches = {
            "source": ChecksumCache(_cache_file(ctx.work_dir, ctx.stack), str(params.source)),
            "target": target_checksums(ctx.work_dir, ctx.stack, str(params.target)),
        }
        try:
            source_sums, target_sums, changed = _checksums(s3, params, source, target, caches, ctx)
        finally:
            unsaved = "; ".join(
                why
                for side, listed in (("source", source), ("target", target))
                if (why := caches[side].save(listed))
            )
        mismatches = _compare(source, target, source_sums, target_sums, changed)
        sides = {
            "source": _side(params.source, source, source_sums),
            "target": _side(params.target, target, target_sums),
        }
        origins = {
            f"{side}_{origin}": count
            for side, sums in (("source", source_sums), ("target", target_sums))
            for origin in ("s3", "computed", "cached")
            if (count := sum(s.origin == origin for s in sums.values()))
        }
        detail: dict[str, Any] = {
            **sides,
            "checksums": origins,
            "mismatches": len(mismatches),
            "first_mismatches": [m.as_detail() for m in mismatches[:SHOWN]],
        }
        if unsaved:
            detail["cache"] = f"checksums not kept for the next proof: {unsaved}"
        if listed_source is not None or listed_target is not None:
            detail["listed_by"] = {
                side: "proof" if listed is None else "copy"
                for side, listed in (("source", listed_source), ("target", listed_target))
            }
        objects = len(source.keys() | target.keys())
        if not mismatches:
            size = sides["source"]["bytes"]
            return Probe(
                True,
                f"parity: {len(source):,} objects, {_bytes(size)}, manifest "
                f"{sides['source']['manifest'][:19]}…: match",
                detail=detail,
            )
        named = "; ".join(str(m) for m in mismatches[:_IN_MESSAGE])
        more = len(mismatches) - _IN_MESSAGE
        tail = f"; and {more:,} more (the first {SHOWN} in the state file)" if more > 0 else ""
        return Probe(
            False,
            f"parity FAILED: {len(mismatches):,} of {objects:,} objects differ: {named}{tail}",
            final=True,
            detail=detail,
        )


def target_checksums(work_dir: Path | None, stack: str, target: str) -> ChecksumCache:
    """The SHA-256s the proof of ``stack`` keeps for its target ``s3://bucket/prefix``
    (kept nowhere without a ``work_dir``)."""
    return ChecksumCache(_cache_file(work_dir, stack, ".target"), target)


def _cache_file(work_dir: Path | None, stack: str, side: str = "") -> Path | None:
    return None if work_dir is None else work_dir / "parity" / f"{stack}{side}.json"


def _checksums(
    s3: Any,
    params: S3ParityParams,
    source: Mapping[str, S3Object],
    target: Mapping[str, S3Object],
    caches: Mapping[str, ChecksumCache],
    ctx: CheckContext,
) -> tuple[dict[str, ObjectSum], dict[str, ObjectSum], set[tuple[str, str]]]:
    """Every object's SHA-256 on both sides, ``concurrency`` objects at a time, and the
    (side, relative key) of objects that changed since they were listed."""
    sums: dict[str, dict[str, ObjectSum]] = {"source": {}, "target": {}}
    changed: set[tuple[str, str]] = set()
    todo: list[tuple[str, str, S3Object]] = []
    for side, listing in (("source", source), ("target", target)):
        for relative, listed in listing.items():
            cached = caches[side].get(relative, listed)
            if cached is not None:
                sums[side][relative] = ObjectSum(cached, "cached")
            else:
                todo.append((side, relative, listed))
    buckets = {"source": params.source.bucket, "target": params.target.bucket}

    def one(side: str, relative: str, listed: S3Object) -> ObjectSum:
        found = sha256_of(s3, buckets[side], listed, stopped)
        caches[side].put(relative, listed, found.sha256)
        return found

    def stopped() -> bool:
        return ctx.stop.is_set() or abort.is_set()

    abort = threading.Event()
    saved_at = ctx.clock()
    pending = iter(todo)
    running: dict[Future[ObjectSum], tuple[str, str, S3Object]] = {}
    worker_stopped = False
    with ThreadPoolExecutor(params.concurrency, thread_name_prefix="parity") as pool:
        try:
            while True:
                # At most twice the workers in flight: the queue stays short at 100k keys.
                while len(running) < 2 * params.concurrency:
                    job = next(pending, None)
                    if job is None:
                        break
                    running[pool.submit(one, *job)] = job
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    side, relative, listed = running.pop(future)
                    try:
                        sums[side][relative] = future.result()
                    except Changed:
                        changed.add((side, relative))
                    except Stopped:
                        worker_stopped = True  # raised below, once for all workers
                    except Exception as exc:
                        raise CheckError(
                            f"cannot read s3://{buckets[side]}/{_printable(listed.key)}: "
                            f"{type(exc).__name__}: {exc}"
                        ) from exc
                if worker_stopped or ctx.stop.is_set():
                    checked = len(sums["source"]) + len(sums["target"])
                    raise Interrupted(
                        f"stopped on request during the parity proof, {checked:,} of "
                        f"{len(source) + len(target):,} objects checked"
                    )
                if ctx.clock() - saved_at > _SAVE_EVERY:
                    # A run killed outright still leaves most of what it read to the next.
                    for cache in caches.values():
                        cache.save()
                    saved_at = ctx.clock()
        finally:
            # Whatever ended the loop, the workers stop reading between two chunks.
            abort.set()
            for future in running:
                future.cancel()
    return sums["source"], sums["target"], changed


def _compare(
    source: Mapping[str, S3Object],
    target: Mapping[str, S3Object],
    source_sums: Mapping[str, ObjectSum],
    target_sums: Mapping[str, ObjectSum],
    changed: set[tuple[str, str]],
) -> list[_Mismatch]:
    """What differs, by key (relative, then UTF-8 order)."""
    found = []
    for relative in sorted(source.keys() | target.keys(), key=_utf8):
        mine, theirs = source.get(relative), target.get(relative)
        if theirs is None:
            assert mine is not None
            found.append(_Mismatch(mine.key, "missing in target"))
        elif mine is None:
            found.append(_Mismatch(theirs.key, "extra in target"))
        elif ("source", relative) in changed or ("target", relative) in changed:
            side = "source" if ("source", relative) in changed else "target"
            found.append(_Mismatch(mine.key, f"changed on the {side} during the proof"))
        elif mine.size != theirs.size:
            found.append(
                _Mismatch(
                    mine.key,
                    "size differs",
                    f"{mine.size:,} bytes",
                    f"{theirs.size:,} bytes",
                )
            )
        elif source_sums[relative].sha256 != target_sums[relative].sha256:
            found.append(
                _Mismatch(
                    mine.key,
                    "checksum differs",
                    f"sha256:{source_sums[relative].sha256}",
                    f"sha256:{target_sums[relative].sha256}",
                )
            )
    return found


def _side(
    where: S3Location, listed: Mapping[str, S3Object], sums: Mapping[str, ObjectSum]
) -> dict[str, Any]:
    """Counts, bytes and manifest digest of one side (objects that changed during the
    proof have no SHA-256 and are left out of the digest)."""
    digest = hashlib.sha256()
    for relative in sorted(sums, key=_utf8):
        digest.update(f"{relative}\t{listed[relative].size}\t{sums[relative].sha256}\n".encode())
    return {
        "bucket": where.bucket,
        "prefix": where.prefix,
        "objects": len(listed),
        "bytes": sum(item.size for item in listed.values()),
        "manifest": f"sha256:{digest.hexdigest()}",
    }


def _utf8(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")


def _printable(key: str) -> str:
    """A key on one line: control characters escaped, the rest as it is."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in key)


def _bytes(count: int) -> str:
    """``count`` as people read a size: ``512 bytes``, ``1.2 GiB``."""
    if count < 1024:
        return f"{count:,} bytes"
    size, units = count / 1024, ["KiB", "MiB", "GiB", "TiB", "PiB"]
    while size >= 1024 and len(units) > 1:
        size, units = size / 1024, units[1:]
    return f"{size:,.1f} {units[0]}"
