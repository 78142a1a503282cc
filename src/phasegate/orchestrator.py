"""Drives one environment: phase order, gates, plan, apply -> verify -> rollback.

Planning is a pure step (engine previews, no cloud changes) whose result renders as
text or JSON; apply executes phase by phase, each planned again just before it applies,
so a phase always sees the outputs its upstream phases have now.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from phasegate.atomic import write_atomic
from phasegate.engines.base import (
    Engine,
    EventSink,
    Plan,
    ProgramSource,
    StackOutputs,
    StackTarget,
    UpResult,
    _ignore,
)
from phasegate.errors import EngineError, GateBlocked, RollbackFailed, RolledBack
from phasegate.machine import INTERRUPTED, PhaseLifecycle, RunContext
from phasegate.project import Project
from phasegate.spec import EnvironmentSpec, PhaseSpec
from phasegate.state import (
    EnvironmentLock,
    LastKnownGood,
    PhaseState,
    PlanSummary,
    StateStore,
    now,
    redact,
)

__all__ = ["Orchestrator", "PhaseReport"]


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
            out["outputs"] = redact(dict(self.plan.outputs.values), self.plan.outputs.secret)
        if self.result is not None:
            out["applied"] = self.result.counts
        if self.message:
            out["message"] = self.message
        if self.kept:
            out["kept"] = list(self.kept)
        return out


@dataclass
class _Run:
    """What one command has learned so far: planned outputs of phases not applied yet."""

    planned: dict[str, StackOutputs] = field(default_factory=dict)


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


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
        on_notice: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.project = project
        self.env: EnvironmentSpec = project.migration.environment(environment)
        self.context = context
        self._engine = engine
        self.on_event = on_event
        self.on_notice = on_notice
        self.states = StateStore(project.state_dir, self.env.name)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self.project.engine(self.env)
        return self._engine

    # -- selection and state ------------------------------------------------------------

    def _selected(self, phase: str | None) -> list[PhaseSpec]:
        if phase is None:
            return list(self.project.migration.phases)
        return [self.project.migration.phase(phase)]

    def read_all(self) -> dict[str, PhaseState]:
        """Every phase's state; a damaged file stops here, before anything is written."""
        return {p.name: self.states.read(p.name) for p in self.project.migration.phases}

    def _lock(self) -> EnvironmentLock:
        lock = EnvironmentLock(self.project.work_dir / "locks", self.env.name, self.context.command)
        return lock

    def _acquire(self, lock: EnvironmentLock) -> None:
        lock.acquire()
        if lock.took_over:
            held = lock.took_over
            self.on_notice(
                f"took over the lock of environment '{self.env.name}' left by pid "
                f"{held.get('pid')} on {held.get('host')} (started {held.get('started')}), "
                "which is no longer running"
            )

    def _refuse_interrupted(self, states: dict[str, PhaseState], phases: list[PhaseSpec]) -> None:
        for phase in phases:
            state = states[phase.name]
            if state.status in INTERRUPTED:
                raise GateBlocked(
                    f"stack {state.stack} was interrupted while {state.status.replace('_', ' ')}: "
                    "nothing else runs on it until it is recovered",
                    hint=f"run `migrate recover --env {self.env.name}`",
                )

    # -- fingerprints -------------------------------------------------------------------

    def _upstream_outputs(self, phase: PhaseSpec, run: _Run) -> dict[str, StackOutputs]:
        """Outputs of the phases this one depends on: planned in this run, else current."""
        found: dict[str, StackOutputs] = {}
        for dep in self.project.migration.upstream(phase):
            stack = f"{self.env.name}-{dep.name}"
            if dep.name in run.planned:
                found[stack] = run.planned[dep.name]
            else:
                outputs = self.engine.outputs(stack)
                if outputs is not None:
                    found[stack] = outputs
        return found

    def _fingerprint(self, target: StackTarget, upstream: dict[str, StackOutputs]) -> str:
        return _digest(
            {
                "program": target.program.digest,
                "config": target.config_digest,
                "upstream": {k: v.digest for k, v in sorted(upstream.items())},
            }
        )

    # -- plan -----------------------------------------------------------------------------

    def _plan_phase(
        self, phase: PhaseSpec, state: PhaseState, run: _Run
    ) -> tuple[StackTarget, Plan, str]:
        target = self.project.target(self.env, phase)
        upstream = self._upstream_outputs(phase, run)
        plan = self.engine.preview(target, upstream=upstream, on_event=self.on_event)
        fingerprint = self._fingerprint(target, upstream)
        if plan.has_changes:
            run.planned[phase.name] = plan.outputs
        return target, plan, fingerprint

    def _record_plan(self, lifecycle: PhaseLifecycle, plan: Plan, fingerprint: str) -> None:
        state = lifecycle.state
        if state.fingerprint == fingerprint and (
            (state.status == "verified" and not plan.has_changes) or state.status == "planned"
        ):
            return  # nothing new: the same plan is on record, or nothing to do at all
        state.fingerprint = fingerprint
        state.plan = PlanSummary(
            at=self.context.clock(),
            fingerprint=fingerprint,
            changes=plan.counts,
            resources=[
                f"{c.op.value} {c.type} {c.name}" for c in plan.changes if c.op.value != "same"
            ],
        )
        lifecycle.fire("plan")

    def plan(self, phase: str | None = None) -> list[PhaseReport]:
        """Preview every selected phase in order and record each plan in its state file."""
        phases = self._selected(phase)
        lock = self._lock()
        self._acquire(lock)
        try:
            states = self.read_all()
            self._refuse_interrupted(states, phases)
            run = _Run()
            reports: list[PhaseReport] = []
            for spec in phases:
                lifecycle = PhaseLifecycle(states[spec.name], self.states, self.context)
                _, plan, fingerprint = self._plan_phase(spec, lifecycle.state, run)
                if not plan.refused:
                    self._record_plan(lifecycle, plan, fingerprint)
                outcome = "planned" if plan.has_changes else "no changes"
                reports.append(
                    PhaseReport(spec.name, lifecycle.state.stack, lifecycle.status, outcome, plan)
                )
            return reports
        finally:
            lock.release()

    # -- apply ----------------------------------------------------------------------------

    def apply(self, phase: str | None = None) -> list[PhaseReport]:
        """Plan, gate, apply and verify each selected phase in order; stop at a failure."""
        phases = self._selected(phase)
        lock = self._lock()
        self._acquire(lock)
        try:
            states = self.read_all()
            self._refuse_interrupted(states, phases)
            if phase is not None:
                self._refuse_unapplied_dependencies(phases[0], states)
            run = _Run()
            reports = []
            for spec in phases:
                reports.append(self._apply_phase(spec, states, run))
            return reports
        finally:
            lock.release()

    def _refuse_unapplied_dependencies(
        self, phase: PhaseSpec, states: dict[str, PhaseState]
    ) -> None:
        for dep in self.project.migration.upstream(phase):
            if states[dep.name].status != "verified":
                raise GateBlocked(
                    f"phase {phase.name} depends on {dep.name}, which is "
                    f"{states[dep.name].status} in {self.env.name}",
                    hint=f"apply {dep.name} first, or run apply without --phase",
                )

    def _apply_phase(
        self, spec: PhaseSpec, states: dict[str, PhaseState], run: _Run
    ) -> PhaseReport:
        state = states[spec.name]

        def dependencies_verified() -> str | None:
            for dep in spec.depends_on:
                if states[dep].status != "verified":
                    return f"depends on {dep}, which is {states[dep].status} in {self.env.name}"
            return None

        def plan_is_fresh() -> str | None:
            target = self.project.target(self.env, spec)
            now_fp = self._fingerprint(target, self._upstream_outputs(spec, run))
            if now_fp != state.fingerprint:
                return "the program, its config or its upstream outputs changed since the plan"
            return None

        lifecycle = PhaseLifecycle(
            state,
            self.states,
            self.context,
            guards={"dependencies_verified": dependencies_verified, "plan_is_fresh": plan_is_fresh},
        )
        target, plan, fingerprint = self._plan_phase(spec, state, run)
        if plan.refused:
            names = "; ".join(f"{c.type} '{c.name}': {c.refused}" for c in plan.refused)
            raise EngineError(f"the plan refuses {names}", stack=target.name)
        if state.status == "verified" and state.fingerprint == fingerprint and not plan.has_changes:
            run.planned.pop(spec.name, None)
            return PhaseReport(spec.name, state.stack, state.status, "no changes", plan)
        self._record_plan(lifecycle, plan, fingerprint)
        if not lifecycle.fire("apply"):
            raise GateBlocked(f"{state.stack}: {lifecycle.blocked}")
        try:
            result = self.engine.up(target, on_event=self.on_event)
        except EngineError as exc:
            lifecycle.fire("fail", message=str(exc))
            self._raise_for(self._roll_back(lifecycle, target, str(exc)))
        run.planned.pop(spec.name, None)
        state.outputs = redact(dict(result.outputs.values), result.outputs.secret)
        lifecycle.fire("ok")
        self._verify(lifecycle, spec, target, fingerprint)
        return PhaseReport(spec.name, state.stack, state.status, "applied", plan, result)

    def _verify(
        self, lifecycle: PhaseLifecycle, spec: PhaseSpec, target: StackTarget, fingerprint: str
    ) -> None:
        """verifying -> verified; keeps the last known good."""
        state = lifecycle.state
        # Checks come per phase from migration.yaml; with none declared, a successful
        # apply is all there is to verify.
        state.checks = []
        state.lkg = self._keep_lkg(target, fingerprint)
        lifecycle.fire("pass", message=None if spec.checks else "no checks declared")

    # -- last known good and rollback -----------------------------------------------------

    @property
    def _lkg_dir(self) -> Path:
        return self.project.state_dir / "lkg"

    def _keep_lkg(self, target: StackTarget, fingerprint: str) -> LastKnownGood:
        """Store the program snapshot and config content-addressed beside the state files."""
        program = {
            "module": target.program.module,
            "files": {k: v.decode("utf-8") for k, v in sorted(target.program.files.items())},
        }
        program_id = target.program.digest
        config_id = target.config_digest
        for kind, digest, data in (
            ("program", program_id, program),
            ("config", config_id, dict(target.config)),
        ):
            path = self._lkg_dir / f"{kind}-{digest.split(':', 1)[1][:24]}.json"
            if not path.exists():
                write_atomic(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
        return LastKnownGood(
            fingerprint=fingerprint, program=program_id, config=config_id, at=now()
        )

    def _lkg_target(self, target: StackTarget, lkg: LastKnownGood) -> StackTarget:
        def load(kind: str, digest: str) -> Any:
            path = self._lkg_dir / f"{kind}-{digest.split(':', 1)[1][:24]}.json"
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise EngineError(f"last known good {kind} {path} is unreadable: {exc}") from None

        program = load("program", lkg.program)
        source = ProgramSource(
            module=program["module"],
            files={k: v.encode("utf-8") for k, v in program["files"].items()},
        )
        if source.digest != lkg.program:
            raise EngineError(f"last known good program {lkg.program} does not match its content")
        return StackTarget(
            **{**target.__dict__, "program": source, "config": load("config", lkg.config)}
        )

    def _roll_back(
        self, lifecycle: PhaseLifecycle, target: StackTarget, reason: str
    ) -> PhaseReport:
        """rolling_back -> rolled_back (or rollback_failed); the report says which."""
        state = lifecycle.state
        try:
            if state.lkg is not None:
                result = self.engine.up(self._lkg_target(target, state.lkg), on_event=self.on_event)
                state.outputs = redact(dict(result.outputs.values), result.outputs.secret)
                kept: tuple[str, ...] = ()
            else:
                result = self.engine.destroy(target, on_event=self.on_event)
                state.outputs = {}
                kept = result.kept
        except EngineError as exc:
            lifecycle.fire("error", message=f"rollback failed: {exc}")
            return PhaseReport(
                state.phase,
                state.stack,
                state.status,
                "rollback failed",
                message=f"{reason}; and the rollback failed: {exc}",
            )
        lifecycle.fire("ok", message=f"rolled back after: {reason}")
        what = (
            "its last known good"
            if state.lkg is not None
            else "nothing (destroyed what it created)"
        )
        return PhaseReport(
            state.phase,
            state.stack,
            state.status,
            "rolled back",
            message=f"{reason}; rolled back to {what}",
            kept=kept,
        )

    @staticmethod
    def _raise_for(report: PhaseReport) -> NoReturn:
        kept = f"; kept protected: {', '.join(report.kept)}" if report.kept else ""
        if report.outcome == "rolled back":
            raise RolledBack(f"{report.stack}: apply failed: {report.message}{kept}")
        raise RollbackFailed(
            f"{report.stack}: apply failed: {report.message}",
            hint="the stack is in rollback_failed; fix the cause, then run `migrate recover`",
        )

    # -- recovery -------------------------------------------------------------------------

    def recover(self) -> list[PhaseReport]:
        """Finish what a killed run left: refresh each interrupted or failed stack, then
        roll back an interrupted apply, finish an interrupted verification, or redo an
        interrupted (or failed) rollback. Stacks in other states are left alone."""
        lock = self._lock()
        self._acquire(lock)
        try:
            states = self.read_all()
            reports = []
            for spec in self.project.migration.phases:
                state = states[spec.name]
                if state.status in (*INTERRUPTED, "rollback_failed"):
                    reports.append(self._recover_phase(spec, state))
            return reports
        finally:
            lock.release()

    def _recover_phase(self, spec: PhaseSpec, state: PhaseState) -> PhaseReport:
        lifecycle = PhaseLifecycle(state, self.states, self.context)
        target = self.project.target(self.env, spec)
        drift = self.engine.refresh(target)
        note = f" (refresh: {len(drift)} resource(s) no longer in the cloud)" if drift else ""
        if state.status == "verifying":
            self._verify(lifecycle, spec, target, state.fingerprint or "")
            return PhaseReport(
                spec.name, state.stack, state.status, "verified", message="verified" + note
            )
        if state.status == "applying":
            lifecycle.fire("fail", message="the run applying it was interrupted")
        elif state.status == "rollback_failed":
            lifecycle.fire("retry", message="rollback retried by recover")
        return self._roll_back(lifecycle, target, "interrupted or failed run recovered" + note)

    # -- status and reset -----------------------------------------------------------------

    def status(self) -> list[PhaseState]:
        states = self.read_all()
        return [states[p.name] for p in self.project.migration.phases]

    def reset_sandbox(self) -> list[str]:
        """Empty the environment's emulated cloud and checkpoints; every stack back to
        pending with its history kept. Only for environments on the sandbox engine."""
        engine = self._sandbox_engine()
        lock = self._lock()
        self._acquire(lock)
        try:
            states = self.read_all()
            engine.store(self.env.name, self.env.region).reset()
            done = []
            for spec in self.project.migration.phases:
                state = states[spec.name]
                if state.status == "pending" and not state.outputs:
                    continue
                state.outputs, state.lkg, state.plan, state.fingerprint = {}, None, None, None
                state.checks = []
                PhaseLifecycle(state, self.states, self.context).fire(
                    "reset", message="sandbox reset: the emulated cloud was emptied"
                )
                done.append(state.stack)
            return done
        finally:
            lock.release()

    # -- the sandbox ----------------------------------------------------------------------

    def _sandbox_engine(self) -> Any:
        from phasegate.engines.sandbox import SandboxEngine

        engine = self.engine
        if not isinstance(engine, SandboxEngine):
            raise GateBlocked(
                f"environment '{self.env.name}' uses the {self.env.engine} engine, not the sandbox"
            )
        return engine

    def sandbox_inventory(self) -> dict[str, Any]:
        return dict(self._sandbox_engine().inventory(self.env.name))

    def serve_sandbox(self, *, port: int, ready: Callable[[str], None], stop: Any) -> None:
        """Serve the emulated cloud on loopback, holding the environment lock meanwhile."""
        engine = self._sandbox_engine()
        lock = self._lock()
        self._acquire(lock)
        try:
            engine.serve(self.env.name, port=port, ready=ready, stop=stop)
        finally:
            lock.release()
