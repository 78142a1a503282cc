"""How a run's progress reaches the person or program that started it, on stderr (stdout
keeps the report alone). Part of the CLI layer: the core emits typed events
(:mod:`phasegate.events`, and the engine's resource events) and this module renders them.

Three renderings, picked by :func:`progress_for`:

* on a terminal, a **live view** per phase (rich): the stack, resources done of the
  plan's total, the operation under way, the time so far, its data copy (objects, MiB,
  rate, ETA), then the phase's checks with their attempts, waits and bakes; when the
  phase is done the view gives way to one summary line (:mod:`phasegate.cli.live_view`);
* off a terminal (CI), or with ``NO_COLOR`` or ``TERM=dumb``, **plain lines** without
  colour or cursor control: one per resource operation done or failed, one per check
  attempt, wait and verdict, one per phase done; a data copy's at its start, then at
  most one per 10 s, and at its end (:mod:`phasegate.cli.copy_progress`);
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
  - ``{"event": "copy", "stack", "target", "status": "listing"|"copying"|"done",
    "copied_objects", "total_objects", "copied_bytes", "total_bytes", "failed", "listed",
    "seconds"}`` (a few a second at most; ``total_*``: what this run copies)

Every message shows the run's secrets as ``[secret]``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from phasegate.cli.copy_progress import CopyLines, copy_summary
from phasegate.cli.live_view import VERDICT, PhaseView, plural
from phasegate.engines.base import ProgressEvent
from phasegate.events import CheckEvent, CopyEvent, PhaseEvent, RunEvent
from phasegate.redaction import SecretValues

if TYPE_CHECKING:
    from rich.live import Live

__all__ = ["Progress", "progress_for"]

Event = ProgressEvent | RunEvent | PhaseEvent | CheckEvent | CopyEvent

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


def progress_for(output: str, secrets: SecretValues, stream: IO[str] | None = None) -> Progress:
    """The rendering that suits ``output`` and where stderr goes."""
    stream = stream or sys.stderr
    if output == "json":
        return JsonLines(secrets, stream)
    plain = (
        not stream.isatty() or bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM") == "dumb"
    )
    return Lines(secrets, stream) if plain else LiveView(secrets, stream)


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
    copy: CopyEvent | None = None
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
            said = [f"{n} {VERDICT.get(s, s)}" for s, n in verdicts.items()]
            parts.append(f"checks: {', '.join(said)}")
        if self.copy is not None and self.copy.status == "done":
            parts.append(copy_summary(self.copy))
        parts.append(f"{time.monotonic() - self.started:.1f}s")
        return f"{head}: {'; '.join(parts)}"


class Progress:
    """Takes every event of a run (the engine's resource events and the run's own) and
    keeps what the summaries need; subclasses say how it looks."""

    def __init__(
        self, secrets: SecretValues, stream: IO[str], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.secrets = secrets
        self.stream = stream
        self.clock = clock
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
            elif isinstance(event, CopyEvent):
                self._copy(event)
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

    def _copy(self, event: CopyEvent) -> None:
        phase = self._of(event.stack)
        phase.copy = event
        if phase.status != "verifying":  # the copy runs before the checks, as they verify
            phase.status = "copying"

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
            elif isinstance(event, CopyEvent):
                data = {"event": "copy", **vars(event)}
            else:
                data = {"event": "run", **vars(event), "phases": list(event.phases)}
            self.stream.write(json.dumps(self.secrets.mask_data(data)) + "\n")
            self.stream.flush()


class Lines(Progress):
    """Plain lines for logs: no colour, no cursor control; each says its stack first."""

    def __init__(
        self, secrets: SecretValues, stream: IO[str], clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(secrets, stream, clock)
        self._copies = CopyLines(clock)

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
            tries = plural(event.attempt, "attempt")
            said = f"{VERDICT[event.status]} after {tries} ({event.seconds:.1f}s)"
            self._say(f"{head}: {said}: {event.message}")
        elif event.status == "skipped":
            self._say(f"{head}: skipped: {event.message}")

    def _copy(self, event: CopyEvent) -> None:
        super()._copy(event)
        line = self._copies.line(event)
        if line is not None:
            self._say(line)

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
            PhaseView(self, stack),
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

    def _copy(self, event: CopyEvent) -> None:
        super()._copy(event)
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
