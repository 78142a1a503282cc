"""A phase's data copy (``copy:`` in ``migration.yaml``): after the phase's resources are
applied and before its checks, the data it names is copied, server side, into what the
phase made (the data layer: the legacy exports into the lake's raw bucket).

It runs inside the verification, so an apply cut short while copying leaves the stack
``verifying`` and ``migrate recover`` (or the next apply) resumes the copy from its
journal under ``.phasegate/copy/<stack>/``. The copy is incremental: what the target has
already, as the source has it, is not copied again. The parity proof (an ``s3_parity``
check) then says whether the target holds exactly the source's data. The source is only
read. The library that copies is :mod:`phasegate.datacopy`; this module resolves the
step's references, runs it against the environment's AWS API, reports its progress as
:class:`~phasegate.events.CopyEvent` through the run's ``on_progress`` sink and keeps its
summary on the state file.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phasegate.check_context import check_context
from phasegate.checks.base import CheckContext, UnresolvedReference, resolve_references
from phasegate.checks.parity import target_checksums
from phasegate.datacopy import (
    CopyOptions,
    CopyResult,
    DataCopyError,
    Location,
    Progress,
    ProgressCallback,
    client_config,
    copy_prefix,
    pending,
)
from phasegate.engines.base import StackOutputs
from phasegate.errors import Interrupted, PhasegateError
from phasegate.events import CopyEvent, RunSink
from phasegate.s3listing import Listing
from phasegate.spec import CopySpec, PhaseSpec
from phasegate.state import DataCopy

if TYPE_CHECKING:
    from phasegate.engines.base import StackTarget
    from phasegate.environment import Environment

__all__ = [
    "CopyOutcome",
    "PendingCopy",
    "copy_data",
    "copy_for_proof",
    "pending_copy",
    "reporter",
]

MIB = 1024 * 1024


@dataclass(frozen=True)
class CopyOutcome:
    """What the phase's copy did, for the state file and for the checks that follow."""

    summary: DataCopy | None
    """None when the copy could not start (its references do not resolve, a bucket it
    cannot list)."""
    failure: str | None = None
    """Why the phase fails; None when every selected object is in the target."""
    listings: Mapping[str, Listing] = field(default_factory=dict)
    """By ``s3://bucket/prefix``: the source's listing, and the target's when the copy
    wrote nothing to it, for the parity proof to take as they are."""


def copy_data(
    environment: Environment, spec: PhaseSpec, target: StackTarget, ctx: CheckContext
) -> CopyOutcome:
    """Run the phase's copy. A stop asked for raises Interrupted once what is under way
    is done."""
    step = spec.copy_data
    assert step is not None
    try:
        resolved = _resolved(step, ctx)
    except UnresolvedReference as exc:
        return CopyOutcome(None, f"copy: {exc}")
    source = Location(resolved.source.bucket, resolved.source.prefix)
    into = Location(resolved.target.bucket, resolved.target.prefix)
    options = _options(resolved)
    client = environment.engine.aws_client(target, "s3", client_config(options.workers))
    try:
        result, listings = copy_for_proof(
            client,
            source,
            into,
            _journal_dir(environment, target),
            options,
            work_dir=ctx.work_dir,
            stack=ctx.stack,
            progress=reporter(environment.on_progress, target.name, str(into)),
            stop=environment.stop,
            # What the journal says was copied is kept by the engine first, even if stopped.
            durable=environment.engine.cloud_writes_keeper(target),
        )
    except DataCopyError as exc:  # a bucket it cannot list, a journal it cannot trust
        return CopyOutcome(None, f"copy: {exc}")  # the phase fails: readers stay on legacy
    summary = _summary(result, environment.context.clock())
    if result.stopped and environment.stop.is_set():
        raise Interrupted(
            f"stopped on request while copying into {summary.target}: "
            f"{summary.copied_objects} object(s) copied, the rest on the next run"
        )
    if not result.ok:
        first = "; ".join(f"{f.key}: {f.error}" for f in result.failures[:3])
        return CopyOutcome(
            summary,
            f"copy into {summary.target} failed for {result.failed_objects} of "
            f"{result.listed_objects} object(s): {first}",
        )
    return CopyOutcome(summary, listings=listings)


def copy_for_proof(
    client: Any,
    source: Location,
    into: Location,
    journal_dir: Path,
    options: CopyOptions,
    *,
    work_dir: Path | None,
    stack: str,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    durable: Callable[[], None] | None = None,
) -> tuple[CopyResult, dict[str, Listing]]:
    """:func:`~phasegate.datacopy.copy_prefix`, keeping what it saw for the parity proof
    of ``stack`` that follows: the SHA-256 S3 answered for each copy goes into the
    proof's target checksum file, and the listings nothing wrote to since are returned,
    by ``s3://bucket/prefix`` (the source's always, the target's when nothing was
    copied). Raises DataCopyError as copy_prefix does."""
    checksums = target_checksums(work_dir, stack, str(into))
    listings: dict[str, Listing] = {}

    def listed(source_listing: Listing, target_listing: Listing) -> None:
        listings.update({str(source): source_listing, str(into): target_listing})

    try:
        result = copy_prefix(
            client,
            client,
            source,
            into,
            journal_dir,
            options,
            progress=progress,
            stop=stop,
            durable=durable,
            on_copied=lambda key, copied: checksums.keep_written(key, copied.size, copied.written),
            on_listings=listed,
        )
    finally:
        checksums.save()  # a saving only: a file it cannot write costs the proof time
    if result.copied_objects or result.failed_objects or result.aborted_uploads:
        listings.pop(str(into), None)  # written since it was listed: the proof lists it
    return result, listings


def reporter(
    sink: RunSink, stack: str, target: str, clock: Callable[[], float] = time.monotonic
) -> Callable[[Progress], None]:
    """The copy library's progress callback, turned into the run's CopyEvents for
    ``stack`` (``seconds`` counted from this call, made just before the copy starts)."""
    started = clock()

    def report(progress: Progress) -> None:
        sink(
            CopyEvent(
                stack,
                target,
                progress.phase,
                copied_objects=progress.objects_done,
                total_objects=progress.objects_total,
                copied_bytes=progress.bytes_done,
                total_bytes=progress.bytes_total,
                failed=progress.failed,
                listed=progress.listed,
                seconds=round(clock() - started, 3),
            )
        )

    return report


def _resolved(step: CopySpec, ctx: CheckContext) -> CopySpec:
    data: dict[str, Any] = step.model_dump(by_alias=True)
    return CopySpec.model_validate(resolve_references(data, ctx, "copy"))


def _summary(result: CopyResult, at: str) -> DataCopy:
    return DataCopy(
        at=at,
        source=result.source,
        target=result.target,
        listed_objects=result.listed_objects,
        listed_bytes=result.listed_bytes,
        copied_objects=result.copied_objects,
        copied_bytes=result.copied_bytes,
        skipped_objects=result.skipped_objects,
        failed_objects=result.failed_objects,
        failures=[f"{f.key}: {f.error}" for f in result.failures],
        seconds=round(result.seconds, 3),
    )


@dataclass(frozen=True)
class PendingCopy:
    """What a phase's copy would copy now (a plan's view of it)."""

    target: str
    objects: int
    bytes: int

    def describe(self) -> str:
        return f"{self.objects} object(s), {self.bytes} byte(s) to copy into {self.target}"


def pending_copy(
    environment: Environment, spec: PhaseSpec, target: StackTarget, outputs: StackOutputs
) -> PendingCopy | None:
    """What the phase's copy would copy on an apply now, from both listings and the
    journal; None when that cannot be told yet (the target is not made, its outputs not
    known). Reads listings only."""
    step = spec.copy_data
    if step is None or environment.engine.outputs(target.name) is None:
        return None  # never applied: its target is not made yet, and all of it will go
    ctx = check_context(environment, spec, target, outputs)
    try:
        resolved = _resolved(step, ctx)
        into = Location(resolved.target.bucket, resolved.target.prefix)
        client = environment.engine.aws_client(target, "s3")
        found = pending(
            client,
            client,
            Location(resolved.source.bucket, resolved.source.prefix),
            into,
            _journal_dir(environment, target),
            _options(resolved),
        )
    except (UnresolvedReference, PhasegateError, ValueError):
        return None
    return PendingCopy(str(into), len(found.copy), found.copy_bytes)


def _journal_dir(environment: Environment, target: StackTarget) -> Path:
    return environment.project.work_dir / "copy" / target.name


def _options(resolved: CopySpec) -> CopyOptions:
    return CopyOptions(
        workers=resolved.workers,
        multipart_threshold=resolved.multipart_threshold_mib * MIB,
        kms_key_id=resolved.kms_key,
        include=tuple(resolved.include),
        exclude=tuple(resolved.exclude),
    )
