"""The documents ``--output json`` prints, as versioned models whose schemas ship with
the package (``migrate schema plan|apply|promote|status``).

:class:`RunListing` is what a run did to each phase (plan, apply, promote, recover,
rollback: one shape, the ``command`` says which); :class:`StatusListing` is where each
phase of an environment stands. The markdown renderer (:mod:`phasegate.markdown`)
renders from these same models, so the JSON and the pull-request comment never disagree.
A field a run has nothing for is left out of a run's document (no ``kept`` when nothing
was kept); a status document has every field, null where there is nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from phasegate.estimates.model import EnvironmentEstimate, PhaseEstimateEntry
from phasegate.state import CheckResult, DataCopy, Status, redact

if TYPE_CHECKING:
    from phasegate.engines.base import ResourceChange
    from phasegate.promotion import PromotionPlan
    from phasegate.reports import PhaseReport
    from phasegate.state import PhaseState

__all__ = [
    "OPS",
    "ApprovalEntry",
    "PhaseRun",
    "PhaseStanding",
    "PolicyFinding",
    "Promotion",
    "ResourceEntry",
    "RunListing",
    "StatusListing",
]

OpName = Literal["create", "update", "replace", "delete", "import", "same"]
OPS: tuple[str, ...] = OpName.__args__  # type: ignore[attr-defined]
Command = Literal["plan", "apply", "promote", "recover", "rollback"]
ApprovalStatus = Literal["valid", "void", "unknown"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResourceEntry(_Model):
    """One resource of a phase's plan (or of what its apply did)."""

    op: OpName = Field(description="what the engine does to it")
    type: str = Field(description="the resource type token, e.g. aws:s3/bucket:Bucket")
    name: str = Field(description="the resource's logical name in the program")
    changed: list[str] | None = Field(None, description="an update: the properties that differ")
    protected: Literal[True] | None = Field(
        None, description="present when the resource is protected (never deleted)"
    )
    emulated: Literal[True] | None = Field(
        None, description="present when the sandbox keeps the type itself (no emulator for it)"
    )
    refused: str | None = Field(None, description="why the engine refuses the resource")

    @classmethod
    def from_change(cls, change: ResourceChange) -> ResourceEntry:
        return cls(
            op=change.op.value,
            type=change.type,
            name=change.name,
            changed=list(change.changed) or None,
            protected=True if change.protected else None,
            emulated=True if change.emulated else None,
            refused=change.refused or None,
        )


class CopyPending(_Model):
    """What a phase's data copy would copy on an apply now."""

    target: str = Field(description="s3://bucket/prefix copied into")
    objects: int = Field(description="objects new or changed at the source")
    bytes: int = Field(description="their bytes")


class PolicyFinding(_Model):
    """One resource (or the stack) breaking one policy rule."""

    rule: str = Field(description="the policy rule's name")
    enforcement: Literal["mandatory", "advisory"] = Field(
        description="mandatory findings block the apply; advisory ones are reported"
    )
    resource: str = Field(description="'<type> <name>' of the resource")
    message: str = Field(description="what the rule found")


class PhaseRun(_Model):
    """What a run did (or, for a plan, would do) to one phase."""

    phase: str = Field(description="the phase")
    stack: str = Field(description="its stack in the environment, <env>-<phase>")
    status: Status = Field(description="the phase's status after the run")
    outcome: str = Field(
        description="planned, no changes, applied, failed, rolled back, rollback failed, verified"
    )
    changes: dict[OpName, int] | None = Field(
        None, description="the plan's resource count per operation"
    )
    resources: list[ResourceEntry] | None = Field(
        None, description="every resource of the plan, those that stay the same too"
    )
    outputs: dict[str, Any] | None = Field(
        None,
        description="what the stack exports: as applied once applied, else as planned; "
        "secret ones as [secret]",
    )
    applied: dict[OpName, int] | None = Field(
        None, description="what the apply did: resource count per operation"
    )
    message: str | None = Field(None, description="what happened, for failures and rollbacks")
    kept: list[str] | None = Field(
        None, description="protected resources a rollback left in place, as '<type> <name>'"
    )
    checks: list[CheckResult] | None = Field(
        None, description="the checks of the apply (for a rollback: of the apply that failed)"
    )
    rollback_checks: list[CheckResult] | None = Field(
        None, description="the last known good's checks, run again on what a rollback restored"
    )
    rollback_seconds: float | None = Field(
        None, description="from the failure being seen to the rollback being done (checked)"
    )
    blocked_by: list[str] | None = Field(
        None, description="a plan: the gates that would stop its apply as things stand"
    )
    policy: list[PolicyFinding] | None = Field(None, description="what the policy pack found")
    copy_pending: CopyPending | None = Field(
        None, description="a plan of a phase with a data copy: what its apply would copy"
    )
    data_copy: DataCopy | None = Field(
        None, description="an apply of a phase with a data copy: what the copy did"
    )
    estimate: PhaseEstimateEntry | None = Field(
        None,
        description="a plan: the phase's monthly cost, energy and carbon, as planned, as "
        "applied, and the delta",
    )

    @classmethod
    def from_report(cls, report: PhaseReport) -> PhaseRun:
        plan, result = report.plan, report.result
        outputs = None
        if plan is not None:
            # What the stack exports: as applied once applied, else as planned.
            exported = result.outputs if result is not None else plan.outputs
            outputs = redact(dict(exported.values), exported.secret)
        return cls(
            phase=report.phase,
            stack=report.stack,
            status=report.status,
            outcome=report.outcome,
            changes=plan.counts if plan is not None else None,
            resources=[ResourceEntry.from_change(c) for c in plan.changes] if plan else None,
            outputs=outputs,
            applied=result.counts if result is not None else None,
            message=report.message or None,
            kept=list(report.kept) or None,
            checks=list(report.checks) or None,
            rollback_checks=list(report.rollback_checks) or None,
            rollback_seconds=(
                round(report.rollback_seconds, 3) if report.rollback_seconds is not None else None
            ),
            blocked_by=list(report.blocked_by) or None,
            copy_pending=(
                CopyPending(**dataclasses.asdict(report.copy_pending))
                if report.copy_pending is not None
                else None
            ),
            data_copy=report.data_copy,
            estimate=report.estimate_entry,
            policy=[
                PolicyFinding(
                    rule=v.rule,
                    enforcement=v.enforcement,
                    resource=f"{v.resource_type} {v.resource_name}",
                    message=v.message,
                )
                for v in report.violations
            ]
            or None,
        )


class Promotion(_Model):
    """One phase ``promote`` looked at: promoted, waiting (and why), or there already."""

    phase: str = Field(description="the phase")
    outcome: Literal["promotes", "waits", "current"] = Field(
        description="promotes: applied by this promotion; waits: not verified upstream at "
        "the program in phases/, or waits for a phase it depends on; current: verified here "
        "at that program already"
    )
    from_program: str | None = Field(
        None, description="the content address of the program the phase is verified at here"
    )
    to_program: str | None = Field(
        None, description="promotes: the content address of the program promoted"
    )
    approval: Literal["not required", "valid", "void", "missing"] | None = Field(
        None, description="promotes: the approval this environment requires, as it stood"
    )
    plan: str | None = Field(None, description="promotes: the fingerprint of the plan applied")
    reason: str | None = Field(None, description="waits: why")

    @classmethod
    def listing(cls, found: PromotionPlan) -> list[Promotion]:
        """Each phase of a promotion, in phase order."""
        said: dict[str, Promotion] = {
            name: cls(phase=name, outcome="current") for name in found.current
        }
        for p in found.promotions:
            said[p.phase] = cls(
                phase=p.phase,
                outcome="promotes",
                from_program=p.from_program,
                to_program=p.to_program,
                approval=p.approval,
                plan=p.fingerprint,
            )
        for w in found.waiting:
            said[w.phase] = cls(phase=w.phase, outcome="waits", reason=w.reason)
        return [said[name] for name in found.order]


class RunListing(_Model):
    """What ``migrate plan|apply|promote|recover|rollback --output json`` prints."""

    schema_version: Literal[1] = Field(1, description="the version of this document's shape")
    command: Command = Field(description="the command that made the document")
    environment: str = Field(description="the environment run in")
    phases: list[PhaseRun] = Field(description="each phase the run took up, in order")
    promoted_from: str | None = Field(
        None, description="promote: the environment the phases are promoted from"
    )
    promotions: list[Promotion] | None = Field(
        None, description="promote: each phase looked at, promoted or not, and why"
    )
    estimate: EnvironmentEstimate | None = Field(
        None,
        description="a plan: the environment's monthly cost, energy and carbon over the "
        "phases of the plan, as planned, as applied, and the delta",
    )

    @classmethod
    def from_reports(
        cls,
        command: str,
        environment: str,
        reports: list[PhaseReport],
        promotion: PromotionPlan | None = None,
    ) -> RunListing:
        phases = [PhaseRun.from_report(r) for r in reports]
        return cls(
            command=command,
            environment=environment,
            phases=phases,
            estimate=EnvironmentEstimate.of(p.estimate for p in phases if p.estimate),
            promoted_from=promotion.source if promotion is not None else None,
            promotions=Promotion.listing(promotion) if promotion is not None else None,
        )

    def as_json(self) -> dict[str, Any]:
        """The document: fields a phase has nothing for left out (outputs as exported)."""
        data = self.model_dump(mode="json", exclude={"phases", "promotions"}, exclude_none=True)
        data["phases"] = []
        for phase in self.phases:
            dumped = phase.model_dump(mode="json", exclude_none=True)
            if phase.outputs is not None:  # a null output is the stack's, not a gap
                dumped["outputs"] = phase.model_dump(mode="json", include={"outputs"})["outputs"]
            data["phases"].append(dumped)
        if self.promotions is not None:  # a promotion's nulls say something: kept
            data["promotions"] = [p.model_dump(mode="json") for p in self.promotions]
        return data

    def summary(self) -> str:
        """The run's closing line, without the full stop."""
        phases = self.phases
        if self.command in ("recover", "rollback"):
            outcomes = ", ".join(f"{p.stack} {p.outcome}" for p in phases)
            done = {"recover": "recovered", "rollback": "rolled back by hand"}[self.command]
            return f"{len(phases)} stack(s) {done}: {outcomes}"
        if self.command in ("apply", "promote"):
            moved = [p for p in phases if p.outcome == "applied"]
            others = [p for p in phases if p.outcome not in ("applied", "no changes")]
            return (
                f"{len(moved)} phase(s) {'promoted' if self.command == 'promote' else 'applied'}, "
                f"{sum(p.outcome == 'no changes' for p in phases)} unchanged"
                + "".join(f", {p.phase} {p.outcome}" for p in others)
            )
        totals: dict[str, int] = {}
        for phase in phases:
            if phase.changes is not None and phase.outcome != "no changes":
                for op, n in phase.changes.items():
                    totals[op] = totals.get(op, 0) + n
        return ", ".join(
            f"{totals.get(op, 0)} to {op}"
            for op in ("create", "update", "replace", "delete", "import")
            if op != "import" or totals.get(op)
        )


class ApprovalEntry(_Model):
    """The approval on record for a phase."""

    by: str = Field(description="who approved")
    at: str = Field(description="when, UTC, ISO 8601")
    reason: str | None = Field(description="why, as given")
    plan: str | None = Field(description="the fingerprint of the plan approved")
    status: ApprovalStatus = Field(
        description="valid: it is for the plan as it stands; void: the plan changed since; "
        "unknown: not looked at"
    )


class PhaseStanding(_Model):
    """Where one phase stands."""

    phase: str = Field(description="the phase")
    stack: str = Field(description="its stack in the environment")
    status: Status = Field(description="its lifecycle status")
    fingerprint: str | None = Field(description="the fingerprint of its last plan or apply")
    step: str | None = Field(
        description="a stepped phase: the last verified step as 'n/N', or 'baseline'"
    )
    updated: str | None = Field(description="when its last transition happened")
    by: str | None = Field(description="who made its last transition")
    outputs: dict[str, Any] = Field(description="what it exports; secret ones as [secret]")
    approval: ApprovalEntry | None = Field(description="the approval on record, if any")


class StatusListing(_Model):
    """What ``migrate status --output json`` prints."""

    schema_version: Literal[1] = Field(1, description="the version of this document's shape")
    environment: str = Field(description="the environment")
    position: str | None = Field(description="the last phase in order that is verified")
    complete: bool = Field(description="whether every phase, cutover too, is verified")
    phases: list[PhaseStanding] = Field(description="each phase, in order")

    @classmethod
    def from_states(
        cls,
        environment: str,
        states: list[PhaseState],
        approvals: Mapping[str, str] | None = None,
    ) -> StatusListing:
        """``approvals``: phase -> "valid" or "void", as the caller judged them; a phase
        it does not name has an approval of "unknown" standing."""
        position = None
        for state in states:
            if state.status == "verified":
                position = state.phase
        # Complete when cutover, and so everything before it, is verified: a cutover that
        # stays verified while an earlier phase rolls back is not a finished migration.
        # A stepped phase (cutover) is done at its last step.
        complete = bool(states) and all(
            s.status == "verified" and (s.steps is None or s.step == s.steps - 1) for s in states
        )
        return cls(
            environment=environment,
            position=position,
            complete=complete,
            phases=[_standing(s, (approvals or {}).get(s.phase, "unknown")) for s in states],
        )

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _step(state: PhaseState) -> str | None:
    """Where a stepped phase stands: "2/3", or "baseline" after a rollback."""
    if state.step is None or state.steps is None:
        return None
    return "baseline" if state.step < 0 else f"{state.step + 1}/{state.steps}"


def _standing(state: PhaseState, approval: str) -> PhaseStanding:
    last = state.history[-1] if state.history else None
    recorded = state.approval
    return PhaseStanding(
        phase=state.phase,
        stack=state.stack,
        status=state.status,
        fingerprint=state.fingerprint,
        step=_step(state),
        updated=last.at if last else None,
        by=last.actor if last else None,
        outputs=state.outputs,
        approval=(
            ApprovalEntry(
                by=recorded.by,
                at=recorded.at,
                reason=recorded.reason,
                plan=recorded.fingerprint,
                status=approval if approval in ("valid", "void") else "unknown",
            )
            if recorded is not None
            else None
        ),
    )
