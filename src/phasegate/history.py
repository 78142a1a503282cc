"""An environment's history: every transition its phases' state files record, in the
order they happened, for a person or a pipeline to read (``migrate history``).

Read only, from the state files as they are on disk: each file's seal and hash chain are
checked on the way (a damaged one stops the read, naming it), and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from phasegate.environment import Environment
from phasegate.state import HistoryEntry

__all__ = ["Transition", "history"]


@dataclass(frozen=True)
class Transition:
    """One entry of a phase's history."""

    phase: str
    stack: str
    entry: HistoryEntry

    def as_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "stack": self.stack,
            **self.entry.model_dump(mode="json", by_alias=True, exclude={"prev"}),
        }


def history(environment: Environment, phase: str | None = None) -> list[Transition]:
    """The transitions of every phase of ``environment`` (or of ``phase`` alone), oldest
    first; those of one moment keep the phases' order."""
    wanted = {spec.name for spec in environment.phases(phase)}  # an unknown phase: refused
    states = environment.read_all()
    found = [
        Transition(state.phase, state.stack, entry)
        for name, state in states.items()
        if name in wanted
        for entry in state.history
    ]
    return sorted(found, key=lambda t: t.entry.at)  # stable: phase order within a moment
