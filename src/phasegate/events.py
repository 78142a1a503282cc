"""What a run reports as it goes, beside the engine's resource events: the run starting on
an environment, each phase's stages, and each check's attempts, waits and verdict, and the
progress of a phase's data copy.

The core emits these typed events through an injected sink (``on_progress``, passed like
the engine port's ``on_event``) and prints nothing; the CLI renders them (a live view on
a terminal, plain lines in CI, JSON lines with ``--output json``). Resource operations
stay :class:`~phasegate.engines.base.ProgressEvent`, the engine port's own.

This module imports nothing of phasegate, so every layer may use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CheckEvent",
    "CopyEvent",
    "Event",
    "PhaseEvent",
    "RunEvent",
    "RunSink",
    "ignore",
    "max_attempts",
]


@dataclass(frozen=True)
class RunEvent:
    """A command starts work on (``start``) or is done with (``done``) an environment."""

    action: Literal["plan", "apply"]
    environment: str
    phases: tuple[str, ...]
    status: Literal["start", "done"] = "start"


@dataclass(frozen=True)
class PhaseEvent:
    """One phase's stage.

    ``planning`` (a preview runs), ``applying`` and ``rolling_back`` (``total`` resource
    operations to come), ``verifying`` (``total`` checks to run), and ``done`` with the
    phase's ``outcome`` (applied, no changes, rolled back, rollback failed, failed)."""

    stack: str
    phase: str
    status: Literal["planning", "applying", "verifying", "rolling_back", "done"]
    total: int = 0
    outcome: str = ""
    message: str = ""


@dataclass(frozen=True)
class CheckEvent:
    """One check of a phase: ``start``; each ``attempt`` (``attempt`` of at most
    ``max_attempts``), or ``baking`` for an attempt that watches the step's bake for
    ``seconds``; ``waiting`` before the next attempt, ``seconds`` away, ``message`` what
    this one found ("failed: …", or "passed, 1 of 2 in a row: …"); and the verdict
    ``pass``, ``fail`` or ``skipped`` (after ``attempt`` attempts, ``seconds`` taken,
    ``message`` what it found)."""

    stack: str
    check: str
    kind: str
    status: Literal["start", "attempt", "baking", "waiting", "pass", "fail", "skipped"]
    attempt: int = 0
    max_attempts: int = 0
    seconds: float = 0.0
    message: str = ""


@dataclass(frozen=True)
class CopyEvent:
    """Where a phase's data copy into ``target`` stands, ``seconds`` after it started:
    ``listing`` both sides (``listed`` source objects so far), ``copying`` (``copied_*``
    of ``total_*``: what this run copies, not what the target holds already, and
    ``failed`` objects), and ``done`` (copied all it could, or stopped). The copy reports
    at most a few times a second, never once per object."""

    stack: str
    target: str
    status: Literal["listing", "copying", "done"]
    copied_objects: int = 0
    total_objects: int = 0
    copied_bytes: int = 0
    total_bytes: int = 0
    failed: int = 0
    listed: int = 0
    seconds: float = 0.0


Event = RunEvent | PhaseEvent | CheckEvent | CopyEvent
"""Every event a run emits through its ``on_progress`` sink."""

RunSink = Callable[[Event], None]


def ignore(_: Event) -> None:
    return None


def max_attempts(retries: int, required_passes: int) -> int:
    """The most attempts a check may take: each failure it may survive can come after
    ``required_passes - 1`` passes, and then ``required_passes`` more are needed."""
    return required_passes * (retries + 1)
