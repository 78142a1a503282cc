"""Promotion: an environment applies only what the environment it promotes from
(``promote_from``) verified, program for program.

The gate (:func:`unpromoted`) holds on every apply of such an environment; ``migrate
promote --to ENV`` (:class:`Promoter`) goes the other way round: it finds every phase
verified upstream at the program in ``phases/`` and not yet verified in ENV at it, says
what it will promote and which approvals that needs, and refuses before anything runs
when a phase it was asked for cannot go.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from phasegate.approvals import short, unapproved, verdict
from phasegate.errors import GateBlocked, InputError
from phasegate.planning import Planner, RunMemory
from phasegate.spec import MIGRATION_FILE, EnvironmentSpec, PhaseSpec
from phasegate.state import PhaseState, StateStore

if TYPE_CHECKING:
    from phasegate.environment import Environment

__all__ = ["Promoter", "Promotion", "PromotionPlan", "Waiting", "unpromoted"]

ApprovalNeed = Literal["not required", "valid", "void", "missing"]


def unpromoted(
    env: EnvironmentSpec, state_dir: Path, spec: PhaseSpec, program: str, stack: str
) -> GateBlocked | None:
    """The promotion gate: the same program verified in the environment this one
    promotes from. The refusal, or None when it holds (or there is no such source)."""
    source = env.promote_from
    if source is None:
        return None
    there = StateStore(state_dir, source).read(spec.name)
    if _verified_at(there, program):
        return None
    seen = (
        f"{there.status} at program {short(there.lkg.program)}"
        if there.lkg is not None
        else there.status
    )
    return GateBlocked(
        f"{stack}: program {short(program)} of phase {spec.name} is not verified in "
        f"{source}, which this environment promotes from (there: {seen})",
        hint=f"apply this version in {source} first",
    )


def _verified_at(state: PhaseState, program: str) -> bool:
    return state.status == "verified" and state.lkg is not None and state.lkg.program == program


def _as_verified_there(state: PhaseState, there: PhaseState) -> bool:
    """The phase is verified here at the program (and step) it is verified at there."""
    return (
        there.status == "verified"
        and there.lkg is not None
        and _verified_at(state, there.lkg.program)
        and not _behind(state, there)
    )


def _behind(state: PhaseState, there: PhaseState) -> bool:
    """A stepped phase (the cutover) at an earlier step than where it promotes from: it
    is verified at its program, and not done; it promotes one step at a time, up to the
    step verified there."""
    return state.step is not None and there.step is not None and state.step < there.step


@dataclass(frozen=True)
class Promotion:
    """One phase ``promote`` will apply."""

    phase: str
    stack: str
    from_program: str | None
    """The program the target has verified now (None: never verified there)."""
    to_program: str
    """The program verified upstream, which is the one in ``phases/``."""
    approval: ApprovalNeed
    fingerprint: str
    """The plan the promotion applies (what an approval must be of)."""


@dataclass(frozen=True)
class Waiting:
    """A phase ``promote`` leaves where it is, and why."""

    phase: str
    reason: str


@dataclass
class PromotionPlan:
    """What ``migrate promote --to ENV`` would do, found before anything runs."""

    source: str
    target: str
    promotions: list[Promotion] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)
    current: list[str] = field(default_factory=list)
    """Phases the target has verified at the program upstream verified already."""
    order: list[str] = field(default_factory=list)
    """The phases looked at, in phase order."""

    def refusal(self, phase: str | None) -> GateBlocked | None:
        """Why the promotion may not start, or None. A named phase must promote; without
        one, whatever can promote does, unless nothing can and something waits. Any
        approval missing or void stops it all before anything is applied."""
        if phase is not None and self.waiting:
            [waiting] = self.waiting
            return GateBlocked(
                f"phase {waiting.phase} does not promote to {self.target}: {waiting.reason}",
                hint=_hint(waiting, self.source),
            )
        if not self.promotions and self.waiting:
            listed = "; ".join(f"{w.phase}: {w.reason}" for w in self.waiting)
            return GateBlocked(
                f"nothing promotes from {self.source} to {self.target}: {listed}",
                hint=_hint(self.waiting[0], self.source),
            )
        unapproved = [p for p in self.promotions if p.approval in ("missing", "void")]
        if unapproved:
            listed = "; ".join(
                f"{p.phase} (plan {short(p.fingerprint)}): approval {p.approval}"
                for p in unapproved
            )
            flags = " ".join(f"--phase {p.phase}" for p in unapproved[:1])
            return GateBlocked(
                f"environment {self.target} requires an approval of each plan it applies, "
                f"and {listed}",
                hint=f"review the plan (`migrate plan --env {self.target}`), then "
                f"`migrate approve --env {self.target} {flags}`"
                + (" (and the others)" if len(unapproved) > 1 else ""),
            )
        return None


def _hint(waiting: Waiting, source: str) -> str:
    if waiting.reason.startswith("waits for"):
        return "promote the phases it depends on first"
    return f"apply it in {source} first: `migrate apply --env {source} --phase {waiting.phase}`"


@dataclass(frozen=True)
class Promoter:
    """Finds what one environment can promote."""

    environment: Environment
    planner: Planner

    def plan(self, phase: str | None = None) -> PromotionPlan:
        """The phases ``promote`` would apply, in phase order, each with its plan's
        approval; those it would not, with why. Reads; writes nothing."""
        env = self.environment
        source = env.spec.promote_from
        if source is None:
            raise InputError(
                f"environment {env.name} promotes from no environment, so nothing promotes to it",
                file=MIGRATION_FILE,
                field=f"environments.{env.name}.promote_from",
                hint="name the environment whose verified phases it takes, or use "
                f"`migrate apply --env {env.name}`",
            )
        upstream = StateStore(env.project.state_dir, source, env.project.secrets)
        selected = {spec.name for spec in env.phases(phase)}
        found = PromotionPlan(source=source, target=env.name)
        if not selected:
            return found
        with env.opened(env.phases(phase), shared=False) as states:
            run = RunMemory()
            ready: set[str] = set()
            """Phases a later one may build on in this promotion: as the source verified
            them already, or promoted by it."""
            for spec in env.phases():
                state = states[spec.name]
                program = env.project.program(spec).digest
                there = upstream.read(spec.name)
                if _as_verified_there(state, there):
                    ready.add(spec.name)
                waits = self._waits(spec, program, there, ready)
                if waits is None and spec.name in ready:  # at the program in phases/ too
                    if spec.name in selected:
                        found.order.append(spec.name)
                        found.current.append(spec.name)
                    continue
                if spec.name not in selected:
                    continue
                found.order.append(spec.name)
                if waits is not None:
                    found.waiting.append(Waiting(spec.name, waits))
                    continue
                ready.add(spec.name)
                # Planned as the apply that follows plans it: the phases it promotes, in
                # order, each on its upstream's planned outputs (what an approval is of).
                planned = self.planner.plan_phase(spec, run, state, reuse_verified=True)
                found.promotions.append(
                    Promotion(
                        phase=spec.name,
                        stack=state.stack,
                        from_program=state.lkg.program if state.lkg is not None else None,
                        to_program=program,
                        approval=self._approval(spec, state, planned.fingerprint),
                        fingerprint=planned.fingerprint,
                    )
                )
        return found

    def _waits(
        self, spec: PhaseSpec, program: str, there: PhaseState, ready: set[str]
    ) -> str | None:
        """Why the phase cannot promote now, or None."""
        env = self.environment
        source = env.spec.promote_from
        if there.status != "verified" or there.lkg is None:
            return f"it is {there.status} in {source}"
        if there.lkg.program != program:
            return (
                f"phases/ changed since it was verified in {source} (verified there: program "
                f"{short(there.lkg.program)}; phases/ now: {short(program)})"
            )
        for dep in spec.depends_on:
            if dep not in ready:
                return (
                    f"waits for {dep}, which is not in {env.name} as {source} verified it "
                    "(promote it first, or with it)"
                )
        return None

    def _approval(self, spec: PhaseSpec, state: PhaseState, fingerprint: str) -> ApprovalNeed:
        env = self.environment.spec
        if unapproved(env, spec, state, fingerprint) is None:
            return "not required" if env.approval != "required" else "valid"
        if state.approval is None:
            return "missing"
        return verdict(state.approval, fingerprint)
