"""The journal: what earlier runs copied, so a re-run copies only the delta and a run that
was stopped or killed resumes where it was.

One file per (source, target) pair under the directory the caller gives, JSON lines,
append-only while a run copies and fsync'd in batches (a kill loses at most the last
batch: those objects are copied again, which is harmless). The first line names the pair;
each further line is one copied object, the last line for a key winning::

    {"journal": "phasegate-datacopy", "version": 1, "source": "s3://...", "target": "s3://..."}
    {"k": "exports/a.csv", "s": 1234, "e": "\"<source ETag>\"", "t": "\"<target ETag>\""}

A crash can leave the end of the file torn (half a line, or zeros): lines that do not
parse at the end are dropped and the file cut back to its last whole line. A bad line
followed by good ones is damage, not a torn write: the journal is refused, with its path.
The file is rewritten (atomically) without superseded lines once they outnumber the live.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from phasegate.atomic import write_atomic
from phasegate.datacopy.model import DataCopyError, Location
from phasegate.errors import StorageError

__all__ = ["Journal", "Record", "journal_path"]

_MAGIC = "phasegate-datacopy"
_VERSION = 1
_SYNC_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Record:
    """One copied object: its size and ETag at the source, its ETag in the target."""

    size: int
    source_etag: str
    target_etag: str


def journal_path(directory: Path, source: Location, target: Location) -> Path:
    """Where the journal of copies from ``source`` to ``target`` lives in ``directory``."""
    pair = f"{source}\n{target}".encode()
    return directory / f"journal-{hashlib.sha256(pair).hexdigest()[:16]}.jsonl"


class Journal:
    """The records of one (source, target) pair; open, look up, add, close."""

    def __init__(
        self,
        path: Path,
        source: Location,
        target: Location,
        batch: int = 512,
        *,
        read_only: bool = False,
        before_sync: Callable[[], None] | None = None,
    ):
        self.path = path
        self.read_only = read_only
        """Looked at, never written (a plan): a torn end is ignored, records added stay
        in memory."""
        self.before_sync = before_sync
        """Makes the copies durable before their lines are written (a cloud that keeps
        writes in memory until told); with it, lines are written only on sync() and
        close(), never by add(), so the caller syncs when no copy is under way."""
        self.header = {
            "journal": _MAGIC,
            "version": _VERSION,
            "source": str(source),
            "target": str(target),
        }
        self.records: dict[str, Record] = {}
        self.dropped_tail = 0
        self._lines = 0
        self._batch = batch
        self._pending: list[str] = []
        self._synced_at = time.monotonic()
        self._file: IO[bytes] | None = None
        self._load()

    # -- reading ------------------------------------------------------------------------

    def _load(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise DataCopyError(
                f"{self.path}: cannot read the copy journal: {exc.strerror}"
            ) from exc
        good_end = 0  # byte offset just past the last whole line that parsed
        offset = 0
        seen = 0
        bad_at: int | None = None
        for number, raw in enumerate(data.split(b"\n"), start=1):
            end = offset + len(raw) + 1  # past its newline; a line without one is torn
            if raw.strip(b"\x00 \r\t"):
                seen += 1
                if end > len(data) or not self._parse(raw, first=seen == 1):
                    bad_at = bad_at or number
                elif bad_at is not None:
                    raise DataCopyError(
                        f"{self.path}: line {bad_at} is damaged and later lines are not",
                        hint="delete the file to check every object again (nothing is lost)",
                    )
                else:
                    good_end = end
                    self._lines += 1
            offset = end
        if good_end < len(data):
            self.dropped_tail = len(data) - good_end
            if not self.read_only:
                self._truncate(good_end)

    def _parse(self, raw: bytes, *, first: bool) -> bool:
        try:
            line: Any = json.loads(raw)
        except ValueError:
            return False
        if not isinstance(line, dict):
            return False
        if first:
            if line.get("journal") != _MAGIC:
                return False
            if line != self.header:
                raise DataCopyError(
                    f"{self.path}: a journal of {line.get('source')} -> {line.get('target')}, "
                    f"version {line.get('version')}; this copy is {self.header['source']} -> "
                    f"{self.header['target']}, version {_VERSION}",
                    hint="delete the file to check every object again (nothing is lost)",
                )
            return True
        try:
            key, record = line["k"], Record(int(line["s"]), str(line["e"]), str(line["t"]))
        except (KeyError, TypeError, ValueError):
            return False
        if not isinstance(key, str):
            return False
        self.records[key] = record
        return True

    def _truncate(self, size: int) -> None:
        try:
            with self.path.open("r+b") as handle:
                handle.truncate(size)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise StorageError(self.path, exc) from exc

    def get(self, key: str) -> Record | None:
        return self.records.get(key)

    # -- writing ------------------------------------------------------------------------

    def add(self, key: str, record: Record) -> None:
        """Record a copied object; it reaches the disk with the batch it is in."""
        self.records[key] = record
        if self.read_only:
            return
        self._pending.append(
            json.dumps(
                {"k": key, "s": record.size, "e": record.source_etag, "t": record.target_etag},
                separators=(",", ":"),
            )
        )
        if self.before_sync is None and (
            len(self._pending) >= self._batch or time.monotonic() - self._synced_at >= _SYNC_SECONDS
        ):
            self.sync()

    @property
    def unsynced(self) -> int:
        """Lines added since the last sync."""
        return len(self._pending)

    def sync(self) -> None:
        """Write and fsync what was added since the last sync (after ``before_sync``: a
        line never claims a copy the target could still lose)."""
        if not self._pending:
            return
        if self.before_sync is not None:
            self.before_sync()
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fresh = self._lines == 0
                self._file = self.path.open("ab")
                if fresh:
                    self._pending.insert(0, json.dumps(self.header, separators=(",", ":")))
            self._file.write(("\n".join(self._pending) + "\n").encode())
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise StorageError(self.path, exc) from exc
        self._lines += len(self._pending)
        self._pending.clear()
        self._synced_at = time.monotonic()

    def close(self) -> None:
        """Sync, then compact the file when superseded lines outnumber live ones."""
        if self.read_only:
            return
        try:
            self.sync()
        finally:
            if self._file is not None:
                self._file.close()
                self._file = None
        if self._lines > 2 * len(self.records) + 1024:
            self._compact()

    def _compact(self) -> None:
        lines = [json.dumps(self.header, separators=(",", ":"))]
        lines.extend(
            json.dumps(
                {"k": key, "s": r.size, "e": r.source_etag, "t": r.target_etag},
                separators=(",", ":"),
            )
            for key, r in self.records.items()
        )
        write_atomic(self.path, ("\n".join(lines) + "\n").encode())
        self._lines = len(lines)
