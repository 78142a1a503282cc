"""The live view of a phase on a terminal (rich): drawn afresh at every refresh from
what :class:`phasegate.cli.progress.LiveView` keeps of the run (part of the CLI layer)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

from phasegate.cli.copy_progress import copy_row

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult

__all__ = ["VERDICT", "PhaseView", "grid", "plural"]

VERDICT = {"pass": "passed", "fail": "failed", "skipped": "skipped"}


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class _Drawn(Protocol):
    """What the view draws from: the run's phases so far, the spinner, the masking."""

    phases: dict[str, Any]
    spinner: Any

    def _text(self, value: object) -> str: ...


class PhaseView:
    """The live view of one stack, drawn afresh at every refresh (the time moves on)."""

    def __init__(self, progress: _Drawn, stack: str) -> None:
        self.progress = progress
        self.stack = stack

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.markup import escape
        from rich.progress_bar import ProgressBar

        phase = self.progress.phases.get(self.stack)
        if phase is None:
            return
        text = self.progress._text
        elapsed = time.monotonic() - phase.started
        row = grid(5)
        if phase.status == "planning":
            row.add_row(
                self.progress.spinner, f"[bold]{self.stack}[/] planning [dim]{elapsed:.0f}s[/]"
            )
            yield row
            return
        doing = {"rolling_back": "rolling back"}
        count = f"{phase.finished}/{phase.total}" if phase.total else f"{phase.finished}"
        bar = ProgressBar(total=phase.total or None, completed=phase.finished, width=24)
        row.add_row(
            self.progress.spinner,
            f"[bold]{self.stack}[/] {doing.get(phase.status, phase.status)}",
            bar,
            f"{count} resources",
            f"[dim]{elapsed:.0f}s[/]",
        )
        yield row
        if phase.copy is not None:
            yield copy_row(phase.copy)
        current = list(phase.current.values())
        if current and phase.status not in ("verifying", "copying"):
            more = f" [dim](+{len(current) - 1})[/]" if len(current) > 1 else ""
            yield f"    {escape(text(current[-1]))}{more}"
        marks = {"pass": "[green]✓[/]", "fail": "[red]✗[/]", "skipped": "[dim]-[/]"}
        for check in list(phase.checks.values()):
            head = f"check {escape(check.name)} [dim]({check.kind})[/]"
            of = f"attempt {check.attempt}/{check.max_attempts}"
            waited = time.monotonic() - check.since
            if check.status in marks:
                tries = plural(check.attempt, "attempt")
                line = f"{marks[check.status]} {head} {VERDICT[check.status]} [dim]{tries}[/]"
                yield f"    {line}"
            elif check.status == "baking":
                baked = min(waited, check.seconds)
                # Its kind left out: the line fits 80 columns, bar and all.
                yield self._baking(f"check {escape(check.name)} {of}", baked, check.seconds)
            elif check.status == "waiting":
                why = escape(text(check.message))
                left = max(0.0, check.seconds - waited)
                yield f"    [yellow]…[/] {head} {of} [dim]{why}[/]; next in {left:.0f}s"
            else:
                yield f"    [cyan]…[/] {head} {of}"

    @staticmethod
    def _baking(head: str, baked: float, seconds: float) -> Any:
        from rich.progress_bar import ProgressBar

        row = grid(3)
        row.add_row(
            f"    [cyan]…[/] {head} baking",
            ProgressBar(total=seconds, completed=baked, width=12),
            f"{baked:.0f}/{seconds:g}s",
        )
        return row


def grid(columns: int) -> Any:
    """A row of columns that never wraps: a live line that wrapped would leave a word on
    a line of its own, and the view would jump."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 1))
    for _ in range(columns):
        grid.add_column(no_wrap=True)
    return grid
