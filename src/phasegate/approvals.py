"""Approvals: a person's consent to one plan of a phase, where the environment requires
one before it applies.

An approval names the plan it was given for (its fingerprint: program, config, checks,
policies and upstream outputs), so it holds for that plan only: any change to what the
plan is made of voids it, and the gate asks for a new one. Each approval is kept on the
phase's state file with who gave it, when and why, and a history entry records it, so a
pull request that carries the state file shows the approval to its reviewers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from phasegate.errors import GateBlocked, PhasegateError
from phasegate.planning import Planner, RunMemory
from phasegate.spec import EnvironmentSpec, PhaseSpec
from phasegate.state import Approval, PhaseState

if TYPE_CHECKING:
    from phasegate.environment import Environment
    from phasegate.saved_plan import SavedPlan

__all__ = ["Approvals", "Verdict", "short", "unapproved", "verdict"]

Verdict = Literal["valid", "void"]


def short(digest: str) -> str:
    """A fingerprint or program digest as people read it: its first 12 hex digits."""
    return digest.split(":", 1)[-1][:12]


def verdict(approval: Approval, fingerprint: str) -> Verdict:
    """Whether ``approval`` is of the plan ``fingerprint``."""
    return "valid" if approval.fingerprint == fingerprint else "void"


def unapproved(
    env: EnvironmentSpec, spec: PhaseSpec, state: PhaseState, fingerprint: str
) -> GateBlocked | None:
    """The approval gate: where the environment requires one, an approval on record of
    this very plan (its fingerprint). The refusal, or None when it holds."""
    if env.approval != "required":
        return None
    approval = state.approval
    if approval is not None and verdict(approval, fingerprint) == "valid":
        return None
    hint = f"review the plan, then `migrate approve --env {env.name} --phase {spec.name}`"
    if approval is None:
        found = "none is recorded"
    else:
        what = f"plan {short(approval.fingerprint)}" if approval.fingerprint else "a program"
        found = f"the approval on record ({what}, by {approval.by}) is void: the plan changed"
    return GateBlocked(
        f"{state.stack}: environment {env.name} requires an approval of plan "
        f"{short(fingerprint)} of phase {spec.name}, and {found}",
        hint=hint,
    )


@dataclass(frozen=True)
class Approvals:
    """The approvals of one environment."""

    environment: Environment
    planner: Planner

    def approve(
        self, phase: str | None = None, saved: SavedPlan | None = None, reason: str | None = None
    ) -> list[PhaseState]:
        """Record the actor's approval of each selected phase's plan: the one made now, or
        the saved one a reviewer read. It holds for as long as the plan stays the same."""
        env = self.environment
        phases = env.phases(phase if saved is None else saved.phase)
        if saved is not None:
            saved.refuse_other_selection(env.name, [p.name for p in phases])
        with env.opened(phases) as states:
            run = RunMemory()
            approved = []
            for spec in phases:
                state = states[spec.name]
                if saved is not None:
                    fingerprint = saved.entry(spec.name).fingerprint
                else:
                    fingerprint = self.planner.plan_phase(spec, run, state).fingerprint
                context = env.context
                state.approval = Approval(
                    by=context.actor,
                    at=context.clock(),
                    program=env.project.program(spec).digest,
                    fingerprint=fingerprint,
                    reason=env.states.shown(reason) if reason else None,
                )
                why = f": {reason}" if reason else ""
                state.history.append(
                    context.entry(
                        "approve",
                        state.status,
                        state.status,
                        env.states.shown(f"approved plan {short(fingerprint)}{why}"),
                    )
                )
                env.states.write(state)
                approved.append(state)
            return approved

    def verdicts(self) -> dict[str, Verdict]:
        """Each phase with an approval on record: whether it is of the plan an apply
        would carry out now. That plan takes its upstream's outputs: as planned, where an
        apply of the whole environment applies them first, or as they are, for
        ``apply --phase`` (or a promotion) taking the phase alone; an approval of either
        is valid. Writes nothing."""
        env = self.environment
        states = env.read_all()
        approved = [p for p in env.phases() if states[p.name].approval is not None]
        if not approved:
            return {}
        found: dict[str, Verdict] = {}
        with env.opened(approved, shared=False) as states:
            run = RunMemory()
            for spec in env.phases():
                state = states[spec.name]
                fingerprint = self.planner.plan_phase(spec, run, state).fingerprint
                approval = state.approval
                if approval is not None:
                    found[spec.name] = verdict(approval, fingerprint)
                    if found[spec.name] == "void" and run.planned.keys() - {spec.name}:
                        alone = self.planner.plan_phase(spec, RunMemory(), state).fingerprint
                        found[spec.name] = verdict(approval, alone)
                if spec.name == approved[-1].name:
                    break
        return found

    def verdicts_or_none(self) -> dict[str, Verdict] | None:
        """:meth:`verdicts`, or None when they cannot be told now (another run holds the
        lock, a stack is mid-run, a config does not validate): ``status`` still shows
        where the phases stand, and says so."""
        try:
            return self.verdicts()
        except PhasegateError as exc:
            self.environment.on_notice(f"approvals not checked against the plan: {exc}")
            return None
