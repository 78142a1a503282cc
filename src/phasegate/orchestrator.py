"""Drives one environment: phase order and each phase's lifecycle, plan -> gates ->
apply -> verify -> rollback.

Planning is a pure step (engine previews, no cloud changes) whose result renders as
text or JSON; apply executes phase by phase, each planned again just before it applies,
so a phase always sees the outputs its upstream phases have now. The concerns it
sequences live in their own modules: :mod:`~phasegate.planning`, :mod:`~phasegate.gates`,
:mod:`~phasegate.verification`, :mod:`~phasegate.lkg`, :mod:`~phasegate.rollback` and
:mod:`~phasegate.recovery`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from phasegate import gates
from phasegate.approvals import Approvals, unapproved
from phasegate.engines.base import Engine, EventSink, Op, _ignore
from phasegate.environment import Environment
from phasegate.errors import (
    EngineError,
    GateBlocked,
    Interrupted,
    StorageError,
    describe,
)
from phasegate.events import PhaseEvent, RunEvent, RunSink, ignore
from phasegate.lkg import LastKnownGoodStore
from phasegate.machine import PhaseLifecycle, RunContext
from phasegate.planning import Planned, Planner, RunMemory
from phasegate.project import Project
from phasegate.promotion import Promoter, unpromoted
from phasegate.recovery import Recovery, saying_where_stopped
from phasegate.reports import PhaseReport
from phasegate.rollback import Rollback
from phasegate.saved_plan import SavedGate, SavedPlan, phase_entry
from phasegate.spec import EnvironmentSpec, PhaseSpec
from phasegate.state import PhaseState, redact
from phasegate.verification import Verifier

__all__ = ["Orchestrator", "PhaseReport"]


class Orchestrator:
    """One environment of one project."""

    def __init__(
        self,
        project: Project,
        environment: str | None,
        context: RunContext,
        *,
        engine: Engine | None = None,
        on_event: EventSink = _ignore,
        on_progress: RunSink = ignore,
        on_notice: Callable[[str], None] = lambda _: None,
        no_rollback: bool = False,
        stop: threading.Event | None = None,
    ) -> None:
        self.project = project
        self.no_rollback = no_rollback
        """Leave a failed phase as it is (for a person to inspect) instead of rolling back."""
        self.environment = Environment(
            project,
            environment,
            context,
            engine=engine,
            on_event=on_event,
            on_progress=on_progress,
            on_notice=on_notice,
            stop=stop,
        )
        self.env: EnvironmentSpec = self.environment.spec
        self.planner = Planner(self.environment)
        self.verifier = Verifier(self.environment, LastKnownGoodStore(project.state_dir, on_notice))
        self.rollbacks = Rollback(self.environment, self.planner, self.verifier)
        self.approvals = Approvals(self.environment, self.planner)
        self.promotions = Promoter(self.environment, self.planner)

    # -- plan -----------------------------------------------------------------------------

    def plan(self, phase: str | None = None, out: Path | None = None) -> list[PhaseReport]:
        """Preview every selected phase in order. Read-only: no state file is written, and
        no cloud changed; with ``out``, the plan is saved there for ``apply``."""
        env = self.environment
        phases = env.phases(phase)
        with saying_where_stopped(self.environment, []), env.opened(phases, shared=False) as states:
            names = tuple(spec.name for spec in phases)
            env.on_progress(RunEvent("plan", env.name, names))
            run = RunMemory()
            reports: list[PhaseReport] = []
            entries = []
            for spec in phases:
                state = states[spec.name]
                planned = self.planner.plan_phase(spec, run, state)
                found = self._gates(spec, planned, states, {p.name for p in phases})
                reports.append(
                    PhaseReport(
                        spec.name,
                        state.stack,
                        state.status,
                        "planned" if planned.plan.has_changes or planned.copies else "no changes",
                        planned.plan,
                        violations=planned.violations,
                        blocked_by=[g.detail for g in found if not g.ok],
                        copy_pending=planned.copy,
                        estimate=planned.estimate,
                        applied_estimate=state.estimate,
                    )
                )
                entries.append(phase_entry(planned, state, found, planned.violations))
            if out is not None:
                context = env.context
                saved = SavedPlan(
                    environment=env.name,
                    phase=phase,
                    created=context.clock(),
                    actor=context.actor,
                    git_commit=context.git_commit,
                    phases=entries,
                )
                saved.write(out, self.project.secrets)
            env.on_progress(RunEvent("plan", env.name, names, status="done"))
            return reports

    def _gates(
        self, spec: PhaseSpec, planned: Planned, states: dict[str, PhaseState], selected: set[str]
    ) -> list[SavedGate]:
        """The gates an apply of this plan would meet, as they stand now."""
        state = states[spec.name]
        found = []
        for dep in spec.depends_on:
            status = states[dep].status
            ok = status == "verified" or dep in selected
            first = " (applied first by this plan)" if ok and status != "verified" else ""
            detail = f"{dep} is {status}{first}"
            found.append(SavedGate(gate="dependencies", ok=ok, detail=detail))
        if planned.has_work(state):
            target = planned.target
            if self.env.promote_from is not None:
                blocked = unpromoted(
                    self.env, self.project.state_dir, spec, target.program.digest, state.stack
                )
                detail = str(blocked) if blocked else f"verified in {self.env.promote_from}"
                found.append(SavedGate(gate="promotion", ok=blocked is None, detail=detail))
            if self.env.approval == "required":
                refused = unapproved(self.env, spec, state, planned.fingerprint)
                detail = str(refused) if refused else "approved"
                found.append(SavedGate(gate="approval", ok=refused is None, detail=detail))
        mandatory = [v for v in planned.violations if v.enforcement == "mandatory"]
        found.append(
            SavedGate(
                gate="policy",
                ok=not mandatory,
                detail=f"{len(mandatory)} mandatory violation(s)" if mandatory else "passes",
            )
        )
        return found

    # -- apply ----------------------------------------------------------------------------

    def apply(
        self,
        phase: str | None = None,
        saved: SavedPlan | None = None,
        *,
        only: Sequence[str] | None = None,
        refresh: bool = False,
    ) -> list[PhaseReport]:
        """Plan, gate, apply and verify each selected phase in order; stop at a failure.

        With ``saved`` (``apply FILE``), exactly that plan: every phase it names is planned
        again and refused, before anything is applied, if what it was computed from, or
        what it would change, differs from the saved plan. With ``only`` (``promote``),
        those phases, in phase order. With ``refresh``, each stack's record is made to
        match the cloud first, so what was deleted behind phasegate's back (as ``migrate
        check`` finds) is planned, and made, again."""
        env = self.environment
        phases = env.phases(phase if saved is None else saved.phase)
        if only is not None:
            phases = [p for p in phases if p.name in only]
        if saved is not None:
            saved.refuse_other_selection(env.name, [p.name for p in phases])
        reports: list[PhaseReport] = []
        with saying_where_stopped(self.environment, reports), env.opened(phases) as states:
            if phase is not None:
                upstream = self.project.migration.upstream(phases[0])
                gates.refuse_unapplied_dependencies(upstream, phases[0], states, env.name)
            names = tuple(spec.name for spec in phases)
            env.on_progress(RunEvent("apply", env.name, names))
            run = RunMemory()
            if refresh:
                self._refresh(phases, states, run)
            # Plan every phase first, so a policy violation anywhere stops the run before
            # anything changes. A first plan is reused unless an upstream phase changed.
            first = {
                spec.name: self.planner.plan_phase(
                    spec, run, states[spec.name], reuse_verified=saved is None
                )
                for spec in phases
            }
            if saved is not None:
                for spec in phases:
                    config = self.project.stack_config_path(env.name, spec.name)
                    saved.refuse_stale(
                        spec.name,
                        first[spec.name],
                        states[spec.name],
                        config.relative_to(self.project.root),
                    )
            gates.refuse_policy_violations([p.policy for p in first.values()], env.on_notice)
            for spec in phases:
                if first[spec.name].has_work(states[spec.name]):
                    self._refuse_unpromoted(spec, first[spec.name], states[spec.name])
            changed: set[str] = set()
            for spec in phases:
                upstream_names = {p.name for p in self.project.migration.upstream(spec)}
                planned = None if upstream_names & changed else first[spec.name]
                report = self._apply_phase(spec, states, run, first[spec.name], planned, saved)
                reports.append(report)
                env.on_progress(PhaseEvent(report.stack, spec.name, "done", outcome=report.outcome))
                if report.outcome == "applied":
                    changed.add(spec.name)
                if report.outcome in ("rolled back", "rollback failed", "failed"):
                    break  # later phases build on this one: they wait for it
            env.on_progress(RunEvent("apply", env.name, names, status="done"))
            return reports

    def _refresh(
        self, phases: Sequence[PhaseSpec], states: dict[str, PhaseState], run: RunMemory
    ) -> None:
        """The engine's record of each stack ever applied made to match the cloud; each
        resource found gone is said."""
        env = self.environment
        for spec in phases:
            state = states[spec.name]
            if state.status == "pending":
                continue
            run.refreshed.add(spec.name)
            for change in env.engine.refresh(self.planner.stage(spec, state).target):
                if change.op is Op.DELETE:
                    env.on_notice(
                        f"{state.stack}: {change.type} '{change.name}' is no longer in the "
                        "cloud: planned again"
                    )

    def _refuse_unpromoted(
        self, spec: PhaseSpec, planned: Planned, state: PhaseState, approved: str | None = None
    ) -> None:
        """The environment's own gates: the same program verified where it promotes from,
        and a recorded approval of the plan where one is required."""
        program = planned.target.program.digest
        blocked = unpromoted(
            self.env, self.project.state_dir, spec, program, state.stack
        ) or unapproved(self.env, spec, state, approved or planned.fingerprint)
        if blocked is not None:
            raise blocked

    def _apply_phase(
        self,
        spec: PhaseSpec,
        states: dict[str, PhaseState],
        run: RunMemory,
        first: Planned,
        planned: Planned | None,
        saved: SavedPlan | None,
    ) -> PhaseReport:
        env = self.environment
        state = states[spec.name]
        lifecycle = env.lifecycle(
            state,
            guards={
                "dependencies_verified": gates.dependencies_verified(spec, states, env.name),
                "plan_is_fresh": gates.plan_is_fresh(
                    state, lambda: self.planner.current_fingerprint(spec, state, run)
                ),
            },
        )
        if planned is None:  # re-planned on an upstream's new outputs: gate it again
            planned = self.planner.plan_phase(spec, run, state, reuse_verified=saved is None)
            if saved is not None:  # the upstream outputs are this plan's own doing
                saved.refuse_other_changes(spec.name, planned.plan)
            gates.refuse_policy_violations([planned.policy], env.on_notice)
            if planned.has_work(state):
                # Approved was the plan as first made: these outputs are its own doing.
                self._refuse_unpromoted(spec, planned, state, approved=first.fingerprint)
        target, plan, fingerprint = planned.target, planned.plan, planned.fingerprint
        if plan.refused:
            names = "; ".join(f"{c.type} '{c.name}': {c.refused}" for c in plan.refused)
            raise EngineError(f"the plan refuses {names}", stack=target.name)
        if not planned.has_work(state):
            run.planned.pop(spec.name, None)
            return PhaseReport(spec.name, state.stack, state.status, "no changes", plan)
        self.planner.note(state, plan, fingerprint)
        state.checks = []  # this apply's own, once it has any; none left from an earlier one
        if not lifecycle.fire("apply"):
            raise GateBlocked(f"{state.stack}: {lifecycle.blocked}")
        total = sum(c.op is not Op.SAME for c in plan.changes)
        env.on_progress(PhaseEvent(target.name, spec.name, "applying", total=total))
        try:
            result = env.engine.up(target, on_event=env.on_event)
        except EngineError as exc:
            if env.stop.is_set():  # an engine that stops by failing the operation under way
                raise Interrupted(f"{state.stack}: stopped on request ({exc})") from exc
            return self._failed(lifecycle, spec, planned, f"apply failed: {exc}")
        run.planned.pop(spec.name, None)
        state.outputs = redact(dict(result.outputs.values), result.outputs.secret)
        lifecycle.fire("ok")
        failed = self.verifier.verify(
            lifecycle, spec, planned.stage, fingerprint, result.outputs, planned.estimate
        )
        if failed:
            return self._failed(lifecycle, spec, planned, failed)
        return PhaseReport(
            spec.name,
            state.stack,
            state.status,
            "applied",
            plan,
            result,
            checks=state.checks,
            data_copy=state.data_copy,
        )

    def _failed(
        self, lifecycle: PhaseLifecycle, spec: PhaseSpec, planned: Planned, reason: str
    ) -> PhaseReport:
        """An apply or a check failed: roll back at once, unless told not to."""
        state = lifecycle.state
        if self.no_rollback:
            self.environment.states.write(state)  # the check results that failed, for the person
            return PhaseReport(
                spec.name,
                state.stack,
                state.status,
                "failed",
                planned.plan,
                message=f"{reason}; not rolled back (--no-rollback): the stack stays "
                f"{state.status} until `migrate rollback` or `migrate recover`",
                checks=state.checks,
            )
        try:
            lifecycle.fire("fail", message=reason)
        except StorageError as exc:
            # Not even rolling_back could be written: no rollback may start unrecorded.
            return PhaseReport(
                spec.name,
                state.stack,
                state.status,
                "rollback failed",
                planned.plan,
                message=f"{reason}; and the rollback could not start: rolling_back could not "
                f"be recorded ({describe(exc)}), so the stack stays {state.status}",
                checks=state.checks,
            )
        return self.rollbacks.roll_back(lifecycle, spec, planned.target, reason, planned.plan)

    # -- rollback, recovery, status --------------------------------------------------------

    def rollback(self, phase: str) -> PhaseReport:
        """``migrate rollback``: the rollback a failed apply does, asked for by a person."""
        with saying_where_stopped(self.environment, []):
            return self.rollbacks.by_hand(phase)

    def recover(self) -> list[PhaseReport]:
        """``migrate recover``: finish what a killed run left."""
        with saying_where_stopped(self.environment, []):
            return Recovery(self.environment, self.planner, self.rollbacks).recover()

    def status(self) -> list[PhaseState]:
        states = self.environment.read_all()
        return [states[p.name] for p in self.project.migration.phases]
