"""What a run did to each phase, as the CLI renders it and exit codes read it (the JSON
document made of it: :class:`phasegate.outputs.RunListing`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from phasegate.engines.base import Plan, UpResult
from phasegate.policy import Violation
from phasegate.state import CheckResult, DataCopy

if TYPE_CHECKING:
    from phasegate.copystep import PendingCopy
    from phasegate.estimates import PhaseEstimate
    from phasegate.estimates.model import PhaseEstimateEntry

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
    copy_pending: PendingCopy | None = None
    """A plan of a phase with a data copy: what its apply would copy now."""
    data_copy: DataCopy | None = None
    """An apply of a phase with a data copy: what the copy did."""
    estimate: PhaseEstimate | None = None
    """A plan: the phase's monthly cost, energy and carbon as planned."""
    applied_estimate: PhaseEstimate | None = None
    """A plan: the estimate of what is applied now (None: nothing verified yet)."""

    @property
    def estimate_entry(self) -> PhaseEstimateEntry | None:
        """A plan's estimate beside what is applied (None: not estimated)."""
        from phasegate.estimates.model import PhaseEstimateEntry

        if self.estimate is None:
            return None
        # A phase applied by a phasegate that kept no estimate: the delta is uncertain.
        unrecorded = self.status not in ("pending", "rolled_back")
        return PhaseEstimateEntry.of(
            self.estimate, self.applied_estimate, applied_unknown=unrecorded
        )

    @property
    def has_changes(self) -> bool:
        """A plan that would change something: a resource, or data to copy."""
        copies = self.copy_pending is not None and self.copy_pending.objects > 0
        return copies or bool(self.plan and self.plan.has_changes)
