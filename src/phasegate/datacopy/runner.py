"""One copy run: plan the delta, copy it with bounded concurrency, keep the journal.

Objects are submitted to a pool of ``workers`` threads, never more than ``max_in_flight``
at once, so memory stays flat however many keys the listing has. The main thread takes
the results, writes the journal and reports progress. A stop event (Ctrl-C, SIGTERM) is
honoured between objects: no new object starts, those under way finish (a multipart copy
under way is aborted at its next part), the journal is synced, and the result says
``stopped``. An exception in the main thread (a failing progress callback, a journal that
cannot be written, KeyboardInterrupt) does the same, then propagates.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from phasegate import faults
from phasegate.datacopy.globs import KeyFilter
from phasegate.datacopy.journal import Journal, Record, journal_path
from phasegate.datacopy.model import (
    MAX_KEY_BYTES,
    CopyOptions,
    CopyResult,
    DataCopyError,
    Location,
    Progress,
    Stage,
)
from phasegate.datacopy.plan import Plan, build_plan
from phasegate.datacopy.transfer import Copied, ObjectCopier, Stopped, abort_leftover_uploads
from phasegate.errors import aws_error_code
from phasegate.s3listing import Listing

__all__ = ["ProgressCallback", "copy_prefix", "pending"]

ProgressCallback = Callable[[Progress], None]


def copy_prefix(
    source_client: Any,
    target_client: Any,
    source: Location,
    target: Location,
    journal_dir: Path,
    options: CopyOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    durable: Callable[[], None] | None = None,
    on_copied: Callable[[str, Copied], None] | None = None,
    on_listings: Callable[[Listing, Listing], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> CopyResult:
    """Copy what is new or changed under ``source`` to ``target``, server side.

    ``source_client`` only lists and reads the source (ListObjectsV2; HeadObject and
    GetObjectTagging for multipart copies); every write goes through ``target_client``
    to the target bucket. Both may be one client. The journal of this (source, target)
    pair lives in ``journal_dir``. Objects that fail are counted in the result (the
    first few with their error); what stops the whole copy (a bucket it cannot list, a
    journal it cannot read or write) raises DataCopyError or StorageError.

    ``durable`` is for a target that keeps what it is written in memory until told (the
    sandbox's emulated cloud): the copy then pauses between batches of objects, with none
    under way, calls it, and only then journals the batch. A run killed at any point
    resumes from what the target holds for certain.

    ``on_copied`` is called, on the calling thread, with the relative key and what S3
    answered of each object copied (the parity proof keeps the target's checksums);
    ``on_listings`` with both listings before anything is copied (the proof that follows
    need not list again what the copy did not write).
    """
    options = options or CopyOptions()
    report = _Reporter(progress, options.progress_interval, clock)
    run = _Run(
        source_client,
        target_client,
        source,
        target,
        options,
        report,
        stop or threading.Event(),
        on_copied,
        on_listings,
    )
    started = clock()
    journal = Journal(
        journal_path(journal_dir, source, target),
        source,
        target,
        run.options.journal_batch,
        before_sync=durable,
    )
    try:
        run.execute(journal)
    finally:
        journal.close()
        run.result.seconds = round(clock() - started, 3)
    run.report(run.progress("done"), force=True)
    return run.result


def pending(
    source_client: Any,
    target_client: Any,
    source: Location,
    target: Location,
    journal_dir: Path,
    options: CopyOptions | None = None,
) -> Plan:
    """What :func:`copy_prefix` would copy now, from the listings and the journal; reads
    both buckets' listings and nothing else, and writes nothing (a plan)."""
    options = options or CopyOptions()
    journal = Journal(journal_path(journal_dir, source, target), source, target, read_only=True)
    keys = KeyFilter(options.include, options.exclude)
    return build_plan(
        source_client, target_client, source, target, journal, keys, options.adopt_existing
    )


class _Reporter:
    """Calls the progress callback at most once per interval, unless forced."""

    def __init__(
        self, callback: ProgressCallback | None, interval: float, clock: Callable[[], float]
    ) -> None:
        self.callback = callback
        self.interval = interval
        self.clock = clock
        self.last = float("-inf")

    def __call__(self, progress: Progress, force: bool = False) -> None:
        if self.callback is None:
            return
        now = self.clock()
        if force or now - self.last >= self.interval:
            self.last = now
            self.callback(progress)


class _Run:
    def __init__(
        self,
        source_client: Any,
        target_client: Any,
        source: Location,
        target: Location,
        options: CopyOptions,
        report: _Reporter,
        stop: threading.Event,
        on_copied: Callable[[str, Copied], None] | None = None,
        on_listings: Callable[[Listing, Listing], None] | None = None,
    ) -> None:
        self.src, self.dst = source_client, target_client
        self.source, self.target = source, target
        self.options = options
        self.report = report
        self.stop = stop
        self.result = CopyResult(source=str(source), target=str(target))
        self.total = (0, 0)
        self.on_copied = on_copied
        self.on_listings = on_listings

    def progress(self, phase: Stage) -> Progress:
        r = self.result
        return Progress(
            phase, r.copied_objects, self.total[0], r.copied_bytes, self.total[1],
            r.failed_objects, r.listed_objects,
        )  # fmt: skip

    def execute(self, journal: Journal) -> None:
        keys = KeyFilter(self.options.include, self.options.exclude)
        plan = build_plan(
            self.src,
            self.dst,
            self.source,
            self.target,
            journal,
            keys,
            self.options.adopt_existing,
            on_listed=lambda n: self.report(Progress("listing", 0, 0, 0, 0, listed=n)),
            on_listings=self.on_listings,
        )
        r = self.result
        r.listed_objects, r.listed_bytes, r.excluded_objects = (
            plan.listed, plan.listed_bytes, plan.excluded,
        )  # fmt: skip
        r.skipped_objects, r.skipped_bytes = plan.skipped, plan.skipped_bytes
        for key in plan.too_long:
            r.failed(key, f"KeyTooLong: {self.target.prefix}{key} is over {MAX_KEY_BYTES} bytes")
        self.total = (len(plan.copy), plan.copy_bytes)
        self.report(self.progress("copying"), force=True)
        if plan.copy:
            try:
                r.aborted_uploads = abort_leftover_uploads(self.dst, self.target)
            except (ClientError, BotoCoreError) as exc:
                raise DataCopyError(
                    f"{self.target}: cannot list or abort its open multipart uploads: {exc}"
                ) from exc
            self._copy(plan.copy, journal)

    def _copy(self, todo: list[tuple[str, int, str]], journal: Journal) -> None:
        options, result = self.options, self.result
        # Set when the caller's event is, or on the way out, so workers stop too.
        halt = threading.Event()
        parts = ThreadPoolExecutor(options.workers, thread_name_prefix="datacopy-part")
        pool = ThreadPoolExecutor(options.workers, thread_name_prefix="datacopy")
        copier = ObjectCopier(self.src, self.dst, self.source, self.target, options, parts, halt)
        running: dict[Future[Copied], str] = {}
        submitted = 0
        synced_at = self.report.clock()

        def batch_due() -> bool:
            """A target that is made durable by hand: time to pause, make it so, and
            journal what it now holds (no object under way meanwhile)."""
            if journal.before_sync is None or not journal.unsynced:
                return False
            elapsed = self.report.clock() - synced_at
            return journal.unsynced >= options.journal_batch or elapsed >= options.durable_seconds

        def settle(future: Future[Copied]) -> None:
            key = running.pop(future)
            try:
                copied = future.result()
            except Stopped:
                result.stopped = True
                return
            except ClientError as exc:
                message = exc.response.get("Error", {}).get("Message", "")
                result.failed(key, f"{aws_error_code(exc)}: {message}".rstrip(": "))
                return
            except Exception as exc:
                result.failed(key, f"{type(exc).__name__}: {exc}")
                return
            journal.add(key, Record(copied.size, copied.source_etag, copied.target_etag))
            if self.on_copied is not None:
                self.on_copied(key, copied)
            faults.point("copy-object")
            result.copied_objects += 1
            result.copied_bytes += copied.size

        try:
            while True:
                if self.stop.is_set() or result.failed_objects >= options.max_failures:
                    halt.set()
                pause = batch_due()
                while (
                    submitted < len(todo)
                    and not halt.is_set()
                    and not pause
                    and len(running) < options.in_flight
                ):
                    key, size, etag = todo[submitted]
                    running[pool.submit(copier.copy, key, size, etag)] = key
                    submitted += 1
                if not running:
                    if not pause:
                        break
                    journal.sync()
                    synced_at = self.report.clock()
                    continue
                finished, _ = wait(
                    running, timeout=options.progress_interval or None, return_when=FIRST_COMPLETED
                )
                for future in finished:
                    settle(future)
                self.report(self.progress("copying"))
        except BaseException:
            result.stopped = True
            raise
        finally:
            halt.set()
            pool.shutdown(wait=True, cancel_futures=True)
            parts.shutdown(wait=True, cancel_futures=True)
            # Copies that finished while we were on the way out are done: journal them.
            for future in list(running):
                if future.cancelled():
                    running.pop(future)
                else:
                    settle(future)
            result.stopped = result.stopped or submitted < len(todo)
