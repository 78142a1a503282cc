"""What a run did to each phase, as the CLI renders it (text, JSON) and exit codes read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from phasegate.engines.base import Plan, UpResult
from phasegate.policy import Violation
from phasegate.state import CheckResult, redact

__all__ = ["PhaseReport"]


@dataclass
class PhaseReport:
    """What happened to one phase in a run."""

    phase: str
    stack: str
    status: str
    outcome: str  # planned | no changes | applied | rolled back | rollback failed | blocked
    plan: Plan | None = None
    result: UpResult | None = None
    message: str = ""
    kept: tuple[str, ...] = ()
    violations: list[Violation] = field(default_factory=list)
    blocked_by: list[str] = field(default_factory=list)
    """A plan's gates that would stop its apply as things stand."""
    rollback_seconds: float | None = None
    """From the failure being seen to the rollback being done (checked), when one ran."""
    checks: list[CheckResult] = field(default_factory=list)
    """The checks of the apply (for a rollback: of the apply that failed)."""
    rollback_checks: list[CheckResult] = field(default_factory=list)
    """The last known good's checks, run again on what a rollback restored."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "phase": self.phase,
            "stack": self.stack,
            "status": self.status,
            "outcome": self.outcome,
        }
        if self.plan is not None:
            out["changes"] = self.plan.counts
            out["resources"] = [c.as_dict() for c in self.plan.changes]
            # What the stack exports: as applied once applied, else as planned.
            outputs = self.result.outputs if self.result is not None else self.plan.outputs
            out["outputs"] = redact(dict(outputs.values), outputs.secret)
        if self.result is not None:
            out["applied"] = self.result.counts
        if self.message:
            out["message"] = self.message
        if self.kept:
            out["kept"] = list(self.kept)
        if self.checks:
            out["checks"] = [c.model_dump(mode="json") for c in self.checks]
        if self.rollback_checks:
            out["rollback_checks"] = [c.model_dump(mode="json") for c in self.rollback_checks]
        if self.rollback_seconds is not None:
            out["rollback_seconds"] = round(self.rollback_seconds, 3)
        if self.blocked_by:
            out["blocked_by"] = list(self.blocked_by)
        if self.violations:
            out["policy"] = [
                {
                    "rule": v.rule,
                    "enforcement": v.enforcement,
                    "resource": f"{v.resource_type} {v.resource_name}",
                    "message": v.message,
                }
                for v in self.violations
            ]
        return out
