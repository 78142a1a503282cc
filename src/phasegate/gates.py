"""The gates a phase passes before it may apply (exit 5 when one blocks): no stack left
mid-run, dependencies verified, mandatory policies, a fresh plan. The environment's own
gates live with what they guard: :mod:`~phasegate.promotion` (the same program verified
where the environment promotes from) and :mod:`~phasegate.approvals`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from phasegate.engines.base import Plan
from phasegate.errors import GateBlocked
from phasegate.machine import INTERRUPTED
from phasegate.policy import Violation
from phasegate.spec import PhaseSpec
from phasegate.state import PhaseState

__all__ = [
    "has_work",
    "refuse_interrupted",
    "refuse_policy_violations",
    "refuse_unapplied_dependencies",
]


def refuse_interrupted(
    phases: Sequence[PhaseSpec],
    states: dict[str, PhaseState],
    environment: str,
    allow: str | None = None,
) -> None:
    """Any stack of the environment left interrupted or in rollback_failed stops the
    command (all but status and recover), whichever phases it names: later phases build
    on earlier ones. ``allow``: a phase the command may take as it stands."""
    for phase in phases:
        state = states[phase.name]
        if phase.name == allow:
            continue
        if state.status in INTERRUPTED:
            raise GateBlocked(
                f"stack {state.stack} was interrupted while {state.status.replace('_', ' ')}: "
                "nothing else runs on it until it is recovered",
                hint=f"run `migrate recover --env {environment}`",
            )
        if state.status == "rollback_failed":
            raise GateBlocked(
                f"stack {state.stack} is in rollback_failed: nothing else runs on it "
                "until its rollback is finished",
                hint=f"fix the cause, then run `migrate recover --env {environment}`",
            )


def refuse_unapplied_dependencies(
    upstream: Sequence[PhaseSpec], phase: PhaseSpec, states: dict[str, PhaseState], env: str
) -> None:
    """``apply --phase P``: every phase P builds on is verified already."""
    for dep in upstream:
        if states[dep.name].status != "verified":
            raise GateBlocked(
                f"phase {phase.name} depends on {dep.name}, which is "
                f"{states[dep.name].status} in {env}",
                hint=f"apply {dep.name} first, or run apply without --phase",
            )


def dependencies_verified(
    spec: PhaseSpec, states: dict[str, PhaseState], env: str
) -> Callable[[], str | None]:
    """The lifecycle's guard of the same rule, at the moment the phase applies."""

    def guard() -> str | None:
        for dep in spec.depends_on:
            if states[dep].status != "verified":
                return f"depends on {dep}, which is {states[dep].status} in {env}"
        return None

    return guard


def plan_is_fresh(state: PhaseState, current: Callable[[], str]) -> Callable[[], str | None]:
    """The lifecycle's guard that nothing changed between the plan and the apply."""

    def guard() -> str | None:
        if current() != state.fingerprint:
            return "the program, its config or its upstream outputs changed since the plan"
        return None

    return guard


def has_work(state: PhaseState, fingerprint: str, plan: Plan) -> bool:
    """False when the phase is verified at this fingerprint and nothing would change."""
    return not (
        state.status == "verified" and state.fingerprint == fingerprint and not plan.has_changes
    )


def refuse_policy_violations(
    found: Sequence[tuple[str, Sequence[Violation]]], on_notice: Callable[[str], None]
) -> None:
    """Mandatory violations block (exit 5); advisory ones are warnings. ``found``: each
    stack's violations."""
    blocking = []
    for stack, violations in found:
        for v in violations:
            where = f"{v.resource_type} '{v.resource_name}' in {stack}"
            line = f"{v.rule}: {where}: {v.message}"
            if v.enforcement == "mandatory":
                blocking.append(line)
            else:
                on_notice(f"policy (advisory) {line}")
    if blocking:
        raise GateBlocked(
            f"{len(blocking)} mandatory policy violation(s); nothing was applied:\n  "
            + "\n  ".join(blocking)
        )
