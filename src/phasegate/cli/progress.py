"""How a run's progress reaches the person or program that started it, on stderr (stdout
keeps the report alone). Part of the CLI layer: the core emits typed events
(:mod:`phasegate.events`, and the engine's resource events) and this module renders them.

Three renderings, picked by :func:`progress_for`:

* on a terminal, a **live view** per phase (rich): the stack, resources done of the
  plan's total, the operation under way, the time so far, then the phase's checks with
  their attempts, waits and bakes; when the phase is done the view gives way to one
  summary line;
* off a terminal (CI), or with ``NO_COLOR`` or ``TERM=dumb``, **plain lines** without
  colour or cursor control: one per resource operation done or failed, one per check
  attempt, wait and verdict, one per phase done;
* with ``--output json``, **JSON lines**: one object per event, each with an ``event`` key:

  - ``{"event": "run", "action": "plan"|"apply", "environment", "phases": [...],
    "status": "start"|"done"}``
  - ``{"event": "phase", "stack", "phase", "status": "planning"|"applying"|"verifying"|
    "rolling_back"|"done", "total", "outcome", "message"}`` (``total``: resource
    operations to come when applying, checks to run when verifying; ``outcome`` with
    ``done``)
  - ``{"event": "resource", "stack", "op": "create"|"update"|"replace"|"delete"|"import",
    "type", "name", "status": "start"|"done"|"failed", "seconds", "message"}``
  - ``{"event": "check", "stack", "check", "kind", "status": "start"|"attempt"|"baking"|
    "waiting"|"pass"|"fail"|"skipped", "attempt", "max_attempts", "seconds",
    "message"}`` (``seconds``: the bake, the wait before the next attempt, or the time
    the check took)

Every message shows the run's secrets as ``[secret]``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from phasegate.engines.base import ProgressEvent
from phasegate.events import CheckEvent, PhaseEvent, RunEvent
from phasegate.redaction import SecretValues

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.live import Live

__all__ = ["Progress", "progress_for"]

Event = ProgressEvent | RunEvent | PhaseEvent | CheckEvent

_DOING = {
    "create": "creating",
    "update": "updating",
    "replace": "replacing",
    "delete": "deleting",
    "import": "importing",
}
_DONE = {
    "create": "created",
    "update": "updated",
    "replace": "replaced",
    "delete": "deleted",
    "import": "imported",
}
_ACTION = {"plan": "Planning", "apply": "Applying"}
_VERDICT = {"pass": "passed", "fail": "failed", "skipped": "skipped"}


def progress_for(output: str, secrets: SecretValues, stream: IO[str] | None = None) -> Progress:
    """The rendering that suits ``output`` and where stderr goes."""
    stream = stream or sys.stderr
    if output == "json":
        return JsonLines(secrets, stream)
    plain = (
        not stream.isatty() or bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM") == "dumb"
    )
    return Lines(secrets, stream) if plain else LiveView(secrets, stream)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass
class _Check:
    name: str
    kind: str
    status: str = "start"
    attempt: int = 0
    max_attempts: int = 0
    seconds: float = 0.0
    message: str = ""
    since: float = field(default_factory=time.monotonic)


@dataclass
class _Phase:
    """What a stack's run so far adds up to: for the live view and the summary line."""

    stack: str
    status: str = "planning"
    total: int = 0
    done: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    current: dict[tuple[str, str, str], str] = field(default_factory=dict)
    checks: dict[str, _Check] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    @property
    def finished(self) -> int:
        return sum(self.done.values()) + self.failed

    def summary(self, outcome: str) -> str:
        head = f"{self.stack} {outcome or 'stopped'}"
        if outcome == "no changes":
            return head
        parts = []
        if self.done or self.failed:
            ops = [f"{n} {_DONE[op]}" for op, n in self.done.items() if n]
            if self.failed:
                ops.append(f"{self.failed} failed")
            parts.append(", ".join(ops))
        verdicts: dict[str, int] = {}
        for check in self.checks.values():
            verdicts[check.status] = verdicts.get(check.status, 0) + 1
        if verdicts:
            said = [f"{n} {_VERDICT.get(s, s)}" for s, n in verdicts.items()]
            parts.append(f"checks: {', '.join(said)}")
        parts.append(f"{time.monotonic() - self.started:.1f}s")
        return f"{head}: {'; '.join(parts)}"


class Progress:
    """Takes every event of a run (the engine's resource events and the run's own) and
    keeps what the summaries need; subclasses say how it looks."""

    def __init__(self, secrets: SecretValues, stream: IO[str]) -> None:
        self.secrets = secrets
        self.stream = stream
        self.phases: dict[str, _Phase] = {}
        self._started: dict[tuple[str, str, str], float] = {}
        self._lock = threading.RLock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, ProgressEvent):
                self._resource(event)
            elif isinstance(event, CheckEvent):
                self._check(event)
            elif isinstance(event, PhaseEvent):
                self._phase(event)
            else:
                self._run(event)

    def close(self) -> None:
        """The run is over (or stopped by an error): nothing may stay on screen half drawn."""

    def _text(self, value: object) -> str:
        return self.secrets.mask(str(value))

    def _of(self, stack: str) -> _Phase:
        if stack not in self.phases:
            self.phases[stack] = _Phase(stack)
        return self.phases[stack]

    def _took(self, event: ProgressEvent) -> float:
        key = (event.stack, event.type, event.name)
        if event.status == "start":
            self._started[key] = time.monotonic()
            return 0.0
        return time.monotonic() - self._started.pop(key, time.monotonic())

    def _resource(self, event: ProgressEvent) -> None:
        phase = self._of(event.stack)
        key = (event.op.value, event.type, event.name)
        if event.status == "start":
            phase.current[key] = f"{_DOING[event.op.value]} {event.type} {event.name}"
        else:
            phase.current.pop(key, None)
            if event.status == "done":
                phase.done[event.op.value] = phase.done.get(event.op.value, 0) + 1
            else:
                phase.failed += 1

    def _check(self, event: CheckEvent) -> None:
        phase = self._of(event.stack)
        check = phase.checks.setdefault(event.check, _Check(event.check, event.kind))
        check.status, check.message = event.status, event.message
        check.attempt = event.attempt or check.attempt
        check.max_attempts, check.seconds = event.max_attempts, event.seconds
        check.since = time.monotonic()

    def _phase(self, event: PhaseEvent) -> None:
        if event.status == "done":
            return
        if event.status in ("planning", "applying"):
            self.phases[event.stack] = _Phase(event.stack, event.status, event.total)
            return
        phase = self._of(event.stack)
        phase.status = event.status
        if event.status == "verifying":
            phase.checks = {}

    def _run(self, event: RunEvent) -> None:
        return None

    @staticmethod
    def _headline(event: RunEvent, arrow: str) -> str:
        phases = arrow.join(event.phases) or "no phases yet"
        return f"{_ACTION[event.action]} {event.environment}: {phases}"


class JsonLines(Progress):
    """One JSON object per event, a line each."""

    def __call__(self, event: Event) -> None:
        with self._lock:
            data: dict[str, Any]
            if isinstance(event, ProgressEvent):
                took = self._took(event)
                data = {
                    "event": "resource",
                    "stack": event.stack,
                    "op": event.op.value,
                    "type": event.type,
                    "name": event.name,
                    "status": event.status,
                }
                if event.status != "start":
                    data["seconds"] = round(took, 3)
                if event.message:
                    data["message"] = event.message
            elif isinstance(event, CheckEvent):
                data = {"event": "check", **vars(event)}
            elif isinstance(event, PhaseEvent):
                data = {"event": "phase", **vars(event)}
            else:
                data = {"event": "run", **vars(event), "phases": list(event.phases)}
            self.stream.write(json.dumps(self.secrets.mask_data(data)) + "\n")
            self.stream.flush()


class Lines(Progress):
    """Plain lines for logs: no colour, no cursor control; each says its stack first."""

    def _say(self, line: str) -> None:
        self.stream.write(self._text(line) + "\n")
        self.stream.flush()

    def _resource(self, event: ProgressEvent) -> None:
        super()._resource(event)
        took = self._took(event)
        what = f"{event.type} {event.name}"
        if event.status == "done":
            self._say(f"{event.stack}: {_DONE[event.op.value]} {what} ({took:.1f}s)")
        elif event.status == "failed":
            self._say(f"{event.stack}: {_DOING[event.op.value]} {what} failed: {event.message}")

    def _check(self, event: CheckEvent) -> None:
        super()._check(event)
        head = f"{event.stack}: check {event.check} ({event.kind})"
        of = f"attempt {event.attempt}/{event.max_attempts}"
        if event.status == "attempt":
            self._say(f"{head}: {of}")
        elif event.status == "baking":
            self._say(f"{head}: {of}: baking for {event.seconds:g}s")
        elif event.status == "waiting":
            self._say(f"{head}: {of}: {event.message}; next attempt in {event.seconds:g}s")
        elif event.status in ("pass", "fail"):
            tries = _plural(event.attempt, "attempt")
            said = f"{_VERDICT[event.status]} after {tries} ({event.seconds:.1f}s)"
            self._say(f"{head}: {said}: {event.message}")
        elif event.status == "skipped":
            self._say(f"{head}: skipped: {event.message}")

    def _phase(self, event: PhaseEvent) -> None:
        if event.status == "done":
            self._say(self._of(event.stack).summary(event.outcome))
        elif event.status == "rolling_back":
            self._say(f"{event.stack}: rolling back")
        super()._phase(event)

    def _run(self, event: RunEvent) -> None:
        if event.status == "start":
            arrow = " → "
            try:
                arrow.encode(getattr(self.stream, "encoding", None) or "ascii")
            except (UnicodeEncodeError, LookupError):
                arrow = " -> "
            self._say(self._headline(event, arrow))


class _View:
    """The live view of one stack, drawn afresh at every refresh (the time moves on)."""

    def __init__(self, progress: LiveView, stack: str) -> None:
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
        grid = _grid(5)
        if phase.status == "planning":
            grid.add_row(
                self.progress.spinner, f"[bold]{self.stack}[/] planning [dim]{elapsed:.0f}s[/]"
            )
            yield grid
            return
        doing = {"applying": "applying", "verifying": "verifying", "rolling_back": "rolling back"}
        count = f"{phase.finished}/{phase.total}" if phase.total else f"{phase.finished}"
        bar = ProgressBar(total=phase.total or None, completed=phase.finished, width=24)
        grid.add_row(
            self.progress.spinner,
            f"[bold]{self.stack}[/] {doing.get(phase.status, phase.status)}",
            bar,
            f"{count} resources",
            f"[dim]{elapsed:.0f}s[/]",
        )
        yield grid
        current = list(phase.current.values())
        if current and phase.status != "verifying":
            more = f" [dim](+{len(current) - 1})[/]" if len(current) > 1 else ""
            yield f"    {escape(text(current[-1]))}{more}"
        marks = {"pass": "[green]✓[/]", "fail": "[red]✗[/]", "skipped": "[dim]-[/]"}
        for check in list(phase.checks.values()):
            head = f"check {escape(check.name)} [dim]({check.kind})[/]"
            of = f"attempt {check.attempt}/{check.max_attempts}"
            waited = time.monotonic() - check.since
            if check.status in marks:
                tries = _plural(check.attempt, "attempt")
                line = f"{marks[check.status]} {head} {_VERDICT[check.status]} [dim]{tries}[/]"
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

        grid = _grid(3)
        grid.add_row(
            f"    [cyan]…[/] {head} baking",
            ProgressBar(total=seconds, completed=baked, width=12),
            f"{baked:.0f}/{seconds:g}s",
        )
        return grid


def _grid(columns: int) -> Any:
    """A row of columns that never wraps: a live line that wrapped would leave a word on
    a line of its own, and the view would jump."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 1))
    for _ in range(columns):
        grid.add_column(no_wrap=True)
    return grid


class LiveView(Progress):
    """A live view per phase on the terminal; a summary line each once it is done."""

    def __init__(self, secrets: SecretValues, stream: IO[str]) -> None:
        super().__init__(secrets, stream)
        from rich.console import Console
        from rich.spinner import Spinner

        self.console = Console(file=stream, highlight=False, soft_wrap=False)
        self.spinner = Spinner("dots")
        self._live: Live | None = None
        self._shown: str | None = None

    def _show(self, stack: str) -> None:
        if self._shown == stack and self._live is not None:
            return
        self._stop()
        from rich.live import Live

        self._shown = stack
        self._live = Live(
            _View(self, stack),
            console=self.console,
            transient=True,
            refresh_per_second=8,
            redirect_stdout=False,  # stdout is the report's alone
        )
        self._live.start()

    def _stop(self) -> None:
        live, self._live, self._shown = self._live, None, None
        if live is not None:
            live.stop()

    def _print(self, markup: str) -> None:
        self.console.print(markup)

    def _resource(self, event: ProgressEvent) -> None:
        super()._resource(event)
        self._took(event)
        self._show(event.stack)
        if event.status == "failed":
            from rich.markup import escape

            what = f"{_DOING[event.op.value]} {event.type} {event.name}"
            self._print(
                f"  [red]✗[/] {event.stack}: {escape(self._text(what))} failed: "
                f"{escape(self._text(event.message))}"
            )

    def _check(self, event: CheckEvent) -> None:
        super()._check(event)
        self._show(event.stack)

    def _phase(self, event: PhaseEvent) -> None:
        if event.status == "done":
            phase = self._of(event.stack)
            self._stop()
            from rich.markup import escape

            mark = {
                "applied": "[green]✓[/]",
                "no changes": "[dim]·[/]",
                "rolled back": "[yellow]↺[/]",
            }.get(event.outcome, "[red]✗[/]")
            self._print(f"{mark} {escape(self._text(phase.summary(event.outcome)))}")
            return
        super()._phase(event)
        self._show(event.stack)

    def _run(self, event: RunEvent) -> None:
        if event.status == "start":
            self._print(f"[bold]{self._headline(event, ' → ')}[/]")
        else:
            self._stop()

    def close(self) -> None:
        with self._lock:
            self._stop()
