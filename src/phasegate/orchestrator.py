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

from collections.abc import Callable

from phasegate import gates
from phasegate.engines.base import Engine, EventSink, Op, _ignore
from phasegate.environment import Environment
from phasegate.errors import EngineError, GateBlocked, StorageError, describe
from phasegate.events import PhaseEvent, RunEvent, RunSink, ignore
from phasegate.lkg import LastKnownGoodStore
from phasegate.machine import PhaseLifecycle, RunContext
from phasegate.planning import Planned, Planner, RunMemory
from phasegate.project import Project
from phasegate.recovery import Recovery
from phasegate.reports import PhaseReport
from phasegate.rollback import Rollback
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
        )
        self.env: EnvironmentSpec = self.environment.spec
        self.planner = Planner(self.environment)
        self.verifier = Verifier(self.environment, LastKnownGoodStore(project.state_dir, on_notice))
        self.rollbacks = Rollback(self.environment, self.planner, self.verifier)

    # -- plan -----------------------------------------------------------------------------

    def plan(self, phase: str | None = None) -> list[PhaseReport]:
        """Preview every selected phase in order and record each plan in its state file."""
        env = self.environment
        phases = env.phases(phase)
        with env.opened(phases) as states:
            names = tuple(spec.name for spec in phases)
            env.on_progress(RunEvent("plan", env.name, names))
            run = RunMemory()
            reports: list[PhaseReport] = []
            for spec in phases:
                lifecycle = env.lifecycle(states[spec.name])
                planned = self.planner.plan_phase(spec, run, lifecycle.state)
                plan = planned.plan
                if not plan.refused:
                    self.planner.record(lifecycle, plan, planned.fingerprint)
                outcome = "planned" if plan.has_changes else "no changes"
                reports.append(
                    PhaseReport(
                        spec.name,
                        lifecycle.state.stack,
                        lifecycle.status,
                        outcome,
                        plan,
                        violations=planned.violations,
                    )
                )
            env.on_progress(RunEvent("plan", env.name, names, status="done"))
            return reports

    # -- apply ----------------------------------------------------------------------------

    def apply(self, phase: str | None = None) -> list[PhaseReport]:
        """Plan, gate, apply and verify each selected phase in order; stop at a failure."""
        env = self.environment
        phases = env.phases(phase)
        with env.opened(phases) as states:
            if phase is not None:
                upstream = self.project.migration.upstream(phases[0])
                gates.refuse_unapplied_dependencies(upstream, phases[0], states, env.name)
            names = tuple(spec.name for spec in phases)
            env.on_progress(RunEvent("apply", env.name, names))
            # Plan every phase first, so a policy violation anywhere stops the run before
            # anything changes. A first plan is reused unless an upstream phase changed.
            run = RunMemory()
            first = {
                spec.name: self.planner.plan_phase(
                    spec, run, states[spec.name], reuse_verified=True
                )
                for spec in phases
            }
            gates.refuse_policy_violations([p.policy for p in first.values()], env.on_notice)
            for spec in phases:
                if first[spec.name].has_work(states[spec.name]):
                    self._refuse_unpromoted(spec, first[spec.name], states[spec.name])
            reports = []
            changed: set[str] = set()
            for spec in phases:
                upstream_names = {p.name for p in self.project.migration.upstream(spec)}
                planned = None if upstream_names & changed else first[spec.name]
                report = self._apply_phase(spec, states, run, planned)
                reports.append(report)
                env.on_progress(PhaseEvent(report.stack, spec.name, "done", outcome=report.outcome))
                if report.outcome == "applied":
                    changed.add(spec.name)
                if report.outcome in ("rolled back", "rollback failed", "failed"):
                    break  # later phases build on this one: they wait for it
            env.on_progress(RunEvent("apply", env.name, names, status="done"))
            return reports

    def _refuse_unpromoted(self, spec: PhaseSpec, planned: Planned, state: PhaseState) -> None:
        gates.refuse_unpromoted(self.env, self.project.state_dir, spec, planned.target, state)

    def _apply_phase(
        self,
        spec: PhaseSpec,
        states: dict[str, PhaseState],
        run: RunMemory,
        planned: Planned | None = None,
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
            planned = self.planner.plan_phase(spec, run, state, reuse_verified=True)
            gates.refuse_policy_violations([planned.policy], env.on_notice)
            if planned.has_work(state):
                self._refuse_unpromoted(spec, planned, state)
        target, plan, fingerprint = planned.target, planned.plan, planned.fingerprint
        if plan.refused:
            names = "; ".join(f"{c.type} '{c.name}': {c.refused}" for c in plan.refused)
            raise EngineError(f"the plan refuses {names}", stack=target.name)
        if not planned.has_work(state):
            run.planned.pop(spec.name, None)
            return PhaseReport(spec.name, state.stack, state.status, "no changes", plan)
        self.planner.record(lifecycle, plan, fingerprint)
        state.checks = []  # this apply's own, once it has any; none left from an earlier one
        if not lifecycle.fire("apply"):
            raise GateBlocked(f"{state.stack}: {lifecycle.blocked}")
        total = sum(c.op is not Op.SAME for c in plan.changes)
        env.on_progress(PhaseEvent(target.name, spec.name, "applying", total=total))
        try:
            result = env.engine.up(target, on_event=env.on_event)
        except EngineError as exc:
            return self._failed(lifecycle, spec, planned, f"apply failed: {exc}")
        run.planned.pop(spec.name, None)
        state.outputs = redact(dict(result.outputs.values), result.outputs.secret)
        lifecycle.fire("ok")
        failed = self.verifier.verify(lifecycle, spec, planned.stage, fingerprint, result.outputs)
        if failed:
            return self._failed(lifecycle, spec, planned, failed)
        return PhaseReport(
            spec.name, state.stack, state.status, "applied", plan, result, checks=state.checks
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

    # -- approvals, rollback, recovery, status ---------------------------------------------

    def approve(self, phase: str | None = None) -> list[PhaseState]:
        """Record the actor's approval of each selected phase's current program."""
        env = self.environment
        phases = env.phases(phase)
        with env.opened(phases) as states:
            approved = []
            for spec in phases:
                state = states[spec.name]
                program = self.project.program(spec).digest
                gates.approve(state, env.context.actor, env.context.clock(), program)
                env.states.write(state)
                approved.append(state)
            return approved

    def rollback(self, phase: str) -> PhaseReport:
        """``migrate rollback``: the rollback a failed apply does, asked for by a person."""
        return self.rollbacks.by_hand(phase)

    def recover(self) -> list[PhaseReport]:
        """``migrate recover``: finish what a killed run left."""
        return Recovery(self.environment, self.planner, self.rollbacks).recover()

    def status(self) -> list[PhaseState]:
        states = self.environment.read_all()
        return [states[p.name] for p in self.project.migration.phases]
