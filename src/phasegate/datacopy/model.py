"""What a copy is asked to do and what it reports: locations, options, progress, result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from phasegate.errors import InputError, PhasegateError

__all__ = [
    "COPY_OBJECT_LIMIT",
    "MAX_KEY_BYTES",
    "MIN_PART_SIZE",
    "CopyOptions",
    "CopyResult",
    "DataCopyError",
    "Failure",
    "Location",
    "Progress",
    "Stage",
]

MIB = 1024 * 1024
GIB = 1024 * MIB
COPY_OBJECT_LIMIT = 5 * GIB
"""The largest object one CopyObject may copy; above it S3 wants a multipart copy."""
MIN_PART_SIZE = 5 * MIB
"""The smallest part S3 takes (all but the last)."""
MAX_PART_SIZE = 5 * GIB
MAX_PARTS = 10_000
MAX_KEY_BYTES = 1024
"""The longest key S3 stores, in UTF-8 bytes."""


class DataCopyError(PhasegateError):
    """A copy could not run at all (a bucket it cannot list, a journal it cannot trust)."""


Stage = Literal["listing", "copying", "done"]
"""Where a copy is: listing the source, copying, or done."""


@dataclass(frozen=True, slots=True)
class Location:
    """A bucket and a key prefix in it. A prefix that names a folder gets its trailing
    ``/``: ``exports`` and ``exports/`` are the same location, and a key's path relative
    to it never starts with ``/``."""

    bucket: str
    prefix: str = ""

    def __post_init__(self) -> None:
        if not self.bucket or "/" in self.bucket:
            raise InputError(f"{self.bucket!r} is not a bucket name", field="bucket")
        prefix = self.prefix.lstrip("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        object.__setattr__(self, "prefix", prefix)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True, slots=True)
class CopyOptions:
    """How to copy. Sizes are bytes; ``None`` picks the documented default."""

    workers: int = 32
    """Objects copied at once (and parts of multipart copies, in a pool of the same size)."""
    max_in_flight: int | None = None
    """Objects submitted but not yet done; bounds memory whatever the listing's size
    (default: four per worker)."""
    multipart_threshold: int = COPY_OBJECT_LIMIT
    """Objects larger than this are copied in parts (UploadPartCopy); at most 5 GiB."""
    part_size: int = 512 * MIB
    """Bytes per part of a multipart copy (raised when the object needs over 10,000)."""
    kms_key_id: str | None = None
    """Encrypt every copy with this KMS key (SSE-KMS, bucket key on); ``None`` leaves the
    target bucket's default encryption to apply."""
    include: tuple[str, ...] = ()
    """Globs on the key relative to the source prefix; empty selects every key."""
    exclude: tuple[str, ...] = ()
    """Globs on the relative key; a key matching any is left out, included or not."""
    object_attempts: int = 4
    """Tries per object when S3 still throttles or fails after botocore's own retries."""
    backoff: float = 0.5
    """First wait, in seconds, between two tries of one object (doubled each time)."""
    max_failures: int = 100
    """Stop submitting objects once this many failed: something is wrong for all."""
    adopt_existing: bool = True
    """A target object the journal does not know counts as copied when its size matches
    and it is not older than the source object (as ``aws s3 sync`` judges), or its ETag
    equals the source's. Off: it is copied again."""
    progress_interval: float = 0.2
    """At most one progress call per this many seconds (the first and last always)."""
    journal_batch: int = 512
    """Journal lines per fsync (and at least one fsync a second while copying)."""
    durable_seconds: float = 2.0
    """For a target made durable by hand (``copy_prefix(durable=...)``): the longest
    stretch of copying between two pauses that make it so (a kill loses at most that)."""

    def __post_init__(self) -> None:
        def bad(name: str, allowed: str) -> InputError:
            return InputError(f"{getattr(self, name)!r} is not allowed: {allowed}", field=name)

        if self.workers < 1:
            raise bad("workers", "1 or more")
        if self.max_in_flight is not None and self.max_in_flight < self.workers:
            raise bad("max_in_flight", f"at least workers ({self.workers})")
        if not 0 <= self.multipart_threshold <= COPY_OBJECT_LIMIT:
            raise bad("multipart_threshold", "0 to 5 GiB (5368709120)")
        if not MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE:
            raise bad("part_size", "5 MiB (5242880) to 5 GiB (5368709120)")
        if self.object_attempts < 1:
            raise bad("object_attempts", "1 or more")
        for name in ("backoff", "progress_interval", "durable_seconds"):
            if getattr(self, name) < 0:
                raise bad(name, "0 or more")
        if self.max_failures < 1 or self.journal_batch < 1:
            raise bad("max_failures" if self.max_failures < 1 else "journal_batch", "1 or more")
        if self.kms_key_id is not None and not self.kms_key_id.strip():
            raise bad("kms_key_id", "a KMS key id, ARN or alias, or None")

    @property
    def in_flight(self) -> int:
        return self.max_in_flight if self.max_in_flight is not None else 4 * self.workers

    def part_size_for(self, size: int) -> int:
        """The part size for an object of ``size`` bytes: as asked, or what fits it in
        10,000 parts."""
        least = -(-size // MAX_PARTS)
        return max(self.part_size, least)


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a copy stands. ``phase`` is ``listing`` (totals still growing), ``copying``
    or ``done``; totals count what this run copies (the delta), not what it skips."""

    phase: Stage
    objects_done: int
    objects_total: int
    bytes_done: int
    bytes_total: int
    failed: int = 0
    listed: int = 0


@dataclass(frozen=True, slots=True)
class Failure:
    """One object that could not be copied, and why (AWS error code and message)."""

    key: str
    error: str


@dataclass(slots=True)
class CopyResult:
    """What one run did. ``stopped`` is true when it was asked to stop (or gave up after
    ``max_failures``) before every object was tried; a later run copies the rest."""

    source: str
    target: str
    listed_objects: int = 0
    listed_bytes: int = 0
    excluded_objects: int = 0
    copied_objects: int = 0
    copied_bytes: int = 0
    skipped_objects: int = 0
    skipped_bytes: int = 0
    failed_objects: int = 0
    failures: list[Failure] = field(default_factory=list)
    aborted_uploads: int = 0
    stopped: bool = False
    seconds: float = 0.0

    FIRST_FAILURES = 10

    @property
    def ok(self) -> bool:
        """Every selected object is in the target, as the source has it."""
        return not self.failed_objects and not self.stopped

    def failed(self, key: str, error: str) -> None:
        self.failed_objects += 1
        if len(self.failures) < self.FIRST_FAILURES:
            self.failures.append(Failure(key, error))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}
