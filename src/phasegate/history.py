"""An environment's history: every transition its phases' state files record, in the
order they happened, for a person or a pipeline to read (``migrate history``).

Read only, from the state files as they are on disk: each file's seal and hash chain are
checked on the way (a damaged one stops the read, naming it), and nothing is written.
The JSON form is :class:`HistoryListing`, whose schema ``migrate schema history`` prints.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from phasegate.environment import Environment
from phasegate.state import HistoryEntry

__all__ = ["HistoryListing", "Transition", "history"]


class Transition(HistoryEntry):
    """One entry of a phase's history, with the phase and stack it belongs to."""

    phase: str = Field(description="the phase whose state file holds the entry")
    stack: str = Field(description="the phase's stack in the environment")


class HistoryListing(BaseModel):
    """What ``migrate history --output json`` prints."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = Field(1, description="the version of this document's shape")
    environment: str = Field(description="the environment listed")
    history: list[Transition] = Field(description="every transition, oldest first")

    def as_json(self) -> dict[str, Any]:
        """The document, every field of every entry (null where there is none) but the
        hash chain's links, which only the state files need."""
        return self.model_dump(
            mode="json", by_alias=True, exclude={"history": {"__all__": {"prev"}}}
        )


def history(environment: Environment, phase: str | None = None) -> list[Transition]:
    """The transitions of every phase of ``environment`` (or of ``phase`` alone), oldest
    first; those of one moment keep the phases' order."""
    wanted = {spec.name for spec in environment.phases(phase)}  # an unknown phase: refused
    found = [
        Transition(phase=state.phase, stack=state.stack, **entry.model_dump())
        for name, state in environment.read_all().items()
        if name in wanted
        for entry in state.history
    ]
    return sorted(found, key=lambda t: t.at)  # stable: phase order within a moment
