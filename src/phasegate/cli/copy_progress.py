"""How a phase's data copy shows while it runs, from its
:class:`~phasegate.events.CopyEvent` (part of the CLI layer, beside
:mod:`phasegate.cli.progress`): the words and numbers of each rendering, and which events
make a plain line.

A copy may move millions of objects: the plain rendering says when the listing starts,
when the copying starts (what there is to copy), then at most one line per
:data:`PLAIN_EVERY` seconds, and one at the end; never one per object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from phasegate.events import CopyEvent

__all__ = ["PLAIN_EVERY", "CopyLines", "copy_row", "copy_summary", "eta", "size"]

MIB = 1024 * 1024
PLAIN_EVERY = 10.0
"""Seconds between two plain lines of one copy (its start and end lines aside)."""


def size(n: float, unit_of: float | None = None) -> str:
    """Bytes as MiB, one decimal: what a person compares at a glance (GiB from 10 GiB
    on, or when ``unit_of``, the total it is part of, is that large)."""
    if (n if unit_of is None else unit_of) >= 10 * 1024 * MIB:
        return f"{n / 1024 / MIB:.1f} GiB"
    return f"{n / MIB:.1f} MiB"


def _rates(event: CopyEvent) -> tuple[float, float] | None:
    """Objects and bytes copied per second so far; None before any time has passed."""
    if event.seconds <= 0:
        return None
    return event.copied_objects / event.seconds, event.copied_bytes / event.seconds


def rate(event: CopyEvent) -> str:
    rates = _rates(event)
    if rates is None:
        return "-"
    return f"{rates[0]:.1f} objects/s, {size(rates[1])}/s"


def eta(event: CopyEvent) -> float | None:
    """Seconds until the copy is done at the rate so far; None while nothing tells it.
    Small objects cost a request each and large ones their bytes, so the slower of the
    two estimates (by objects, by bytes) is the one given."""
    rates = _rates(event)
    if rates is None or not event.copied_objects:
        return None
    left = (event.total_objects - event.copied_objects - event.failed) / rates[0]
    if event.total_bytes and rates[1]:
        left = max(left, (event.total_bytes - event.copied_bytes) / rates[1])
    return max(0.0, left)


def _eta_text(event: CopyEvent) -> str:
    left = eta(event)
    if left is None:
        return "ETA -"
    minutes, seconds = divmod(round(left), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"ETA {hours}h{minutes:02d}m"
    return f"ETA {minutes}m{seconds:02d}s" if minutes else f"ETA {seconds}s"


def _counts(event: CopyEvent) -> str:
    return (
        f"{event.copied_objects}/{event.total_objects} objects, "
        f"{size(event.copied_bytes, event.total_bytes).split()[0]}/{size(event.total_bytes)}"
    )


def _stopped(event: CopyEvent) -> bool:
    return event.copied_objects + event.failed < event.total_objects


def copy_summary(event: CopyEvent) -> str:
    """A copy that is done (or stopped), in a few words: for a phase's summary line."""
    verb = "copy stopped" if _stopped(event) else "copied"
    failed = f", {event.failed} failed" if event.failed else ""
    return f"{verb} {event.copied_objects}/{event.total_objects} objects{failed}"


class CopyLines:
    """Says which copy events make a plain line, and the line: the first of a copy (its
    listing, or its copying when nothing had to be listed), the first of its copying
    (the totals), its end, and in between at most one per ``every`` seconds of
    ``clock``."""

    def __init__(self, clock: Callable[[], float], every: float = PLAIN_EVERY) -> None:
        self.clock = clock
        self.every = every
        self._last: dict[str, tuple[str, float]] = {}
        """Per stack: the status and time of the last line said."""

    def line(self, event: CopyEvent) -> str | None:
        now = self.clock()
        before = self._last.get(event.stack)
        head = f"{event.stack}: copy into {event.target}"
        if event.status == "done":
            self._last.pop(event.stack, None)
            return self._done(head, event)
        if before is not None and before[0] == event.status and now - before[1] < self.every:
            return None
        self._last[event.stack] = (event.status, now)
        if event.status == "listing":
            return f"{head}: listing, {event.listed} source objects so far ({event.seconds:.0f}s)"
        if before is None or before[0] != "copying":
            return (
                f"{head}: {event.total_objects} objects, {size(event.total_bytes)} to copy "
                f"of {event.listed} listed"
            )
        failed = f", {event.failed} failed" if event.failed else ""
        return (
            f"{head}: {_counts(event)}{failed}, {rate(event)}, {_eta_text(event)} "
            f"({event.seconds:.0f}s)"
        )

    @staticmethod
    def _done(head: str, event: CopyEvent) -> str:
        verb = "stopped" if _stopped(event) else "done"
        return (
            f"{head}: {verb}: {event.copied_objects}/{event.total_objects} objects, "
            f"{size(event.copied_bytes)} copied, {event.failed} failed, "
            f"{event.listed} listed, in {event.seconds:.1f}s ({rate(event)})"
        )


def copy_row(event: CopyEvent) -> Any:
    """The live view's row of a copy: a bar, the counts, the ETA and the rate (the last
    to go on a narrow terminal); once done, one line of what it did."""
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    mark = "[cyan]…[/]"
    if event.status == "done":
        mark = "[red]✗[/]" if event.failed or _stopped(event) else "[green]✓[/]"
    row = Table.grid(padding=(0, 1))
    row.add_column(no_wrap=True, min_width=10)
    if event.status == "listing":
        row.add_row(f"    {mark} copy listing: {event.listed} source objects so far")
        return row
    if event.status == "done":
        row.add_row(
            f"    {mark} {copy_summary(event)}, {size(event.copied_bytes)} in "
            f"{event.seconds:.1f}s [dim]({rate(event)})[/]"
        )
        return row
    by_bytes = event.total_bytes > 0
    bar = ProgressBar(
        total=(event.total_bytes if by_bytes else event.total_objects) or None,
        completed=event.copied_bytes if by_bytes else event.copied_objects,
        width=12,
    )
    failed = f" [red]{event.failed} failed[/]" if event.failed else ""
    row.add_column(no_wrap=True, min_width=12)
    row.add_column(no_wrap=True)
    row.add_row(
        f"    {mark} copy",
        bar,
        f"{_counts(event)}{failed} · {_eta_text(event)} · [dim]{rate(event)}[/]",
    )
    return row
