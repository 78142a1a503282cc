"""What a run must copy: both listings, the journal and the globs, compared without a
request per object.

An object is **unchanged** (skipped) when the journal records it copied from the same
source object (size and ETag as listed now) and the target still has the key. Anything
else is copied: new at the source, rewritten there (its ETag or size differ), or gone
from the target. A target object rewritten after its copy is not copied over: that is
what the parity proof is for, and it names the key (a copy that healed it in silence
would hide that the lake was written behind the migration's back). The target's own ETag
cannot be compared with the source's (an SSE-KMS object's ETag is not its MD5, and a
multipart copy's is not a single part's), which is why the journal keeps both.

With no journal record (a fresh runner, a lost journal) a target object of the same size
is **adopted** as copied when its ETag equals the source's, or when it is not older than
the source object (how ``aws s3 sync`` judges); adopted objects go into the journal, so
later runs judge them like any other. ``adopt_existing=False`` copies them again instead.

Only the current version of each source object is considered (ListObjectsV2, not the
version listing). Objects deleted at the source are left in the target: a copy never
deletes data.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from phasegate.datacopy.globs import KeyFilter
from phasegate.datacopy.journal import Journal, Record
from phasegate.datacopy.model import MAX_KEY_BYTES, DataCopyError, Location
from phasegate.errors import aws_error_code
from phasegate.s3listing import Listing, S3Object
from phasegate.s3listing import list_objects as _list

__all__ = ["Decision", "Plan", "build_plan", "decide", "list_objects"]


class Decision(Enum):
    COPY = "copy"
    SKIP = "skip"
    ADOPT = "adopt"


def decide(
    source: S3Object, target: S3Object | None, record: Record | None, adopt: bool
) -> Decision:
    """Copy, skip (the journal vouches for the copy) or adopt (see the module's doc)."""
    if target is None:
        return Decision.COPY
    if record is not None:
        if record.size == source.size and record.source_etag == source.etag:
            # Copied from this very source object. A target rewritten since is not
            # healed in silence: the parity proof finds it and names it.
            return Decision.SKIP
        return Decision.COPY
    if target.size == source.size and (
        target.etag == source.etag or (adopt and target.last_modified >= source.last_modified)
    ):
        return Decision.ADOPT
    return Decision.COPY


def list_objects(client: Any, location: Location) -> Iterator[tuple[str, S3Object]]:
    """Every current object under ``location``: its key relative to the prefix, as listed."""
    try:
        yield from _list(client, location.bucket, location.prefix)
    except ClientError as exc:
        raise DataCopyError(
            f"{location}: cannot list: {aws_error_code(exc)}: "
            f"{exc.response.get('Error', {}).get('Message', '')}".rstrip(": ")
        ) from exc
    except BotoCoreError as exc:
        raise DataCopyError(f"{location}: cannot list: {exc}") from exc


@dataclass(slots=True)
class Plan:
    """The objects to copy (relative key, size, ETag), and what the listings counted."""

    copy: list[tuple[str, int, str]] = field(default_factory=list)
    copy_bytes: int = 0
    listed: int = 0
    listed_bytes: int = 0
    excluded: int = 0
    skipped: int = 0
    skipped_bytes: int = 0
    too_long: list[str] = field(default_factory=list)


def build_plan(
    source_client: Any,
    target_client: Any,
    source: Location,
    target: Location,
    journal: Journal,
    keys: KeyFilter,
    adopt: bool,
    on_listed: Callable[[int], None] | None = None,
    on_listings: Callable[[Listing, Listing], None] | None = None,
) -> Plan:
    """List the source and (at the same time, in a thread) the target, and compare.
    ``on_listings`` gets both listings whole (every source key, the globs aside)."""
    targets: dict[str, S3Object] = {}
    failed: list[BaseException] = []

    def list_target() -> None:
        try:
            targets.update(list_objects(target_client, target))
        except BaseException as exc:
            failed.append(exc)

    lister = threading.Thread(target=list_target, name="datacopy-list-target", daemon=True)
    lister.start()
    sources: dict[str, S3Object] = {}
    plan = Plan()
    try:
        for key, listed in list_objects(source_client, source):
            plan.listed += 1
            plan.listed_bytes += listed.size
            sources[key] = listed
            if on_listed is not None and plan.listed % 1000 == 0:
                on_listed(plan.listed)
    finally:
        lister.join()
    if failed:
        raise failed[0]
    if on_listings is not None:
        on_listings(sources, targets)
    room = MAX_KEY_BYTES - len(target.prefix.encode())
    for key, listed in sources.items():
        if not keys(key):
            plan.excluded += 1
            continue
        decision = decide(listed, targets.get(key), journal.get(key), adopt)
        if decision is Decision.COPY:
            if len(key.encode()) > room:
                plan.too_long.append(key)
                continue
            plan.copy.append((key, listed.size, listed.etag))
            plan.copy_bytes += listed.size
            continue
        if decision is Decision.ADOPT:
            journal.add(key, Record(listed.size, listed.etag, targets[key].etag))
        plan.skipped += 1
        plan.skipped_bytes += listed.size
    return plan
