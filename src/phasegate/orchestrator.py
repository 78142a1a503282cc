"""Drives one environment: phase order, gates, plan, apply -> verify -> rollback.

Planning is a pure step (engine previews, no cloud changes) whose result renders as
text or JSON; apply executes phase by phase, each planned again just before it applies,
so a phase always sees the outputs its upstream phases have now.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phasegate import faults
from phasegate.atomic import write_atomic
from phasegate.checks import KINDS, CheckContext, run_check
from phasegate.engines.base import (
    Engine,
    EventSink,
    Op,
    Plan,
    ProgramSource,
    StackOutputs,
    StackTarget,
    UpResult,
    _ignore,
)
from phasegate.errors import EngineError, GateBlocked, InputError
from phasegate.machine import INTERRUPTED, PhaseLifecycle, RunContext
from phasegate.policy import Violation, crossguard_config, evaluate
from phasegate.project import CONFIG_NAMESPACE, Project
from phasegate.spec import CheckSpec, EnvironmentSpec, PhaseSpec
from phasegate.state import (
    Approval,
    CheckResult,
    EnvironmentLock,
    LastKnownGood,
    PhaseState,
    PlanSummary,
    StateStore,
    now,
    redact,
)

__all__ = ["Orchestrator", "PhaseReport"]

_STEPS = f"{CONFIG_NAMESPACE}:steps"
_STEP = f"{CONFIG_NAMESPACE}:step"
"""A stepped phase's steps (its config) and the one a run applies (set by phasegate)."""

"""An alarm that fired is why a rollback happened; it stays in ALARM until its datapoints
clear, so checking it again right after the rollback would fail every cutover rollback."""


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
            out["outputs"] = redact(dict(self.plan.outputs.values), self.plan.outputs.secret)
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


@dataclass(frozen=True)
class _Stage:
    """What a phase is about to run: its target (the step set, for a stepped phase), its
    config with the model's defaults, and the step with its bake time."""

    target: StackTarget
    config: dict[str, Any]
    step: int | None = None
    steps: int | None = None
    bake: float = 0.0


@dataclass(frozen=True)
class _Planned:
    stage: _Stage
    plan: Plan
    fingerprint: str
    violations: list[Violation]

    @property
    def target(self) -> StackTarget:
        return self.stage.target


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
        no_rollback: bool = False,
    ) -> None:
        self.project = project
        self.no_rollback = no_rollback
        """Leave a failed phase as it is (for a person to inspect) instead of rolling back."""
        self.env: EnvironmentSpec = project.migration.environment(environment)
        self.context = context
        self._engine = engine
        self.on_event = on_event
        self.on_notice = on_notice
        self.states = StateStore(project.state_dir, self.env.name)
        self._pack_digests: dict[Path, str] = {}

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

    def _open(self, phases: list[PhaseSpec]) -> tuple[EnvironmentLock, dict[str, PhaseState]]:
        """Take the environment's lock, read every state file, refuse interrupted stacks;
        the caller releases the lock."""
        lock = self._lock()
        self._acquire(lock)
        try:
            states = self.read_all()
            self._refuse_interrupted(states)
            # Every stack config first: a bad value in a late phase must not leave the
            # earlier phases' plans recorded.
            for spec in phases:
                self.project.validate_config(self.env.name, spec)
        except BaseException:
            lock.release()
            raise
        return lock, states

    def _refuse_interrupted(self, states: dict[str, PhaseState], allow: str | None = None) -> None:
        """Any stack of the environment left interrupted or in rollback_failed stops the
        command (all but status and recover), whichever phases it names: later phases
        build on earlier ones. ``allow``: a phase the command may take as it stands."""
        for phase in self.project.migration.phases:
            state = states[phase.name]
            if phase.name == allow:
                continue
            if state.status in INTERRUPTED:
                raise GateBlocked(
                    f"stack {state.stack} was interrupted while {state.status.replace('_', ' ')}: "
                    "nothing else runs on it until it is recovered",
                    hint=f"run `migrate recover --env {self.env.name}`",
                )
            if state.status == "rollback_failed":
                raise GateBlocked(
                    f"stack {state.stack} is in rollback_failed: nothing else runs on it "
                    "until its rollback is finished",
                    hint=f"fix the cause, then run `migrate recover --env {self.env.name}`",
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

    def _fingerprint(
        self, spec: PhaseSpec, target: StackTarget, upstream: dict[str, StackOutputs]
    ) -> str:
        """Everything a plan of the stack depends on besides the engine's own state, and
        the checks it is verified by: a check added to a verified phase runs on the next
        apply, rather than that apply saying "no changes"."""
        return _digest(
            {
                "program": target.program.digest,
                "config": target.config_digest,
                "checks": [c.model_dump(mode="json") for c in spec.checks],
                "protected": sorted(target.protected),
                "policy": self._pack_digest(target.policy_pack),
                "upstream": {k: v.digest for k, v in sorted(upstream.items())},
            }
        )

    def _pack_digest(self, pack: Path | None) -> str | None:
        """The policy pack's files, hashed once per run."""
        if pack is None:
            return None
        if pack not in self._pack_digests:
            # The same snapshot rules as a phase program's: every file, no caches.
            source = ProgramSource.from_directory(pack, "__main__", set())
            self._pack_digests[pack] = source.digest
        return self._pack_digests[pack]

    # -- plan -----------------------------------------------------------------------------

    def _stage(self, phase: PhaseSpec, state: PhaseState) -> _Stage:
        """The target to run now. A stepped phase (its config has ``steps``) runs one step
        per apply: the one after its last verified step, the last one again once done."""
        config = self.project.validate_config(self.env.name, phase)
        pack = self.project.root / "policies"
        target = dataclasses.replace(
            self.project.target(self.env, phase),
            policy_pack=pack if pack.is_dir() else None,
            policy_config=crossguard_config(config, f"{self.env.name}-{phase.name}"),
        )
        steps = config.get(_STEPS)
        if not isinstance(steps, list) or not steps:
            return _Stage(target, config)
        done = state.step
        step = 0 if done is None or done < 0 else min(done + 1, len(steps) - 1)
        bake = float(steps[step].get("bake_seconds", 0) if isinstance(steps[step], dict) else 0)
        target = dataclasses.replace(target, config={**target.config, _STEP: step})
        return _Stage(target, {**config, _STEP: step}, step, len(steps), bake)

    def _plan_phase(
        self, phase: PhaseSpec, run: _Run, state: PhaseState, *, reuse_verified: bool = False
    ) -> _Planned:
        """Validate the stack config, preview, fingerprint, and check the policies.

        With ``reuse_verified`` (an apply), a phase verified at this very fingerprint is not
        previewed where the engine can tell its plan without (the sandbox): that preview
        could only say "no changes", and the policies passed on the same inputs when it
        was verified."""
        stage = self._stage(phase, state)
        target = stage.target
        upstream = self._upstream_outputs(phase, run)
        fingerprint = self._fingerprint(phase, target, upstream)
        if reuse_verified and state.status == "verified" and state.fingerprint == fingerprint:
            unchanged = self.engine.unchanged_plan(target.name)
            if unchanged is not None:
                return _Planned(stage, unchanged, fingerprint, [])
        plan = self.engine.preview(target, upstream=upstream, on_event=self.on_event)
        if plan.has_changes:
            run.planned[phase.name] = plan.outputs
        policy = evaluate(
            plan.resources,
            stack=target.name,
            config=stage.config,
            pack_dir=self.project.root / "policies",
        )
        return _Planned(stage, plan, fingerprint, policy.violations)

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
        lock, states = self._open(phases)
        try:
            run = _Run()
            reports: list[PhaseReport] = []
            for spec in phases:
                lifecycle = PhaseLifecycle(states[spec.name], self.states, self.context)
                planned = self._plan_phase(spec, run, lifecycle.state)
                plan = planned.plan
                if not plan.refused:
                    self._record_plan(lifecycle, plan, planned.fingerprint)
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
            return reports
        finally:
            lock.release()

    # -- apply ----------------------------------------------------------------------------

    def apply(self, phase: str | None = None) -> list[PhaseReport]:
        """Plan, gate, apply and verify each selected phase in order; stop at a failure."""
        phases = self._selected(phase)
        lock, states = self._open(phases)
        try:
            if phase is not None:
                self._refuse_unapplied_dependencies(phases[0], states)
            # Plan every phase first, so a policy violation anywhere stops the run before
            # anything changes. A first plan is reused unless an upstream phase changed.
            run = _Run()
            first = {
                spec.name: self._plan_phase(spec, run, states[spec.name], reuse_verified=True)
                for spec in phases
            }
            self._gate_policies(list(first.values()))
            for spec in phases:
                if self._has_work(states[spec.name], first[spec.name]):
                    self._gate_promotion(spec, first[spec.name].target, states[spec.name])
            reports = []
            changed: set[str] = set()
            for spec in phases:
                upstream = {p.name for p in self.project.migration.upstream(spec)}
                planned = None if upstream & changed else first[spec.name]
                report = self._apply_phase(spec, states, run, planned)
                reports.append(report)
                if report.outcome == "applied":
                    changed.add(spec.name)
                if report.outcome in ("rolled back", "rollback failed", "failed"):
                    break  # later phases build on this one: they wait for it
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

    def _gate_promotion(self, spec: PhaseSpec, target: StackTarget, state: PhaseState) -> None:
        """The environment's own gates: the same program verified in the promotion
        source, and a recorded approval of that program where one is required."""
        program = target.program.digest
        short = program.split(":", 1)[-1][:12]
        source = self.env.promote_from
        if source is not None:
            there = StateStore(self.project.state_dir, source).read(spec.name)
            if there.status != "verified" or there.lkg is None or there.lkg.program != program:
                seen = (
                    f"{there.status} at program {there.lkg.program.split(':', 1)[-1][:12]}"
                    if there.lkg is not None
                    else there.status
                )
                raise GateBlocked(
                    f"{state.stack}: program {short} of phase {spec.name} is not verified in "
                    f"{source}, which this environment promotes from (there: {seen})",
                    hint=f"apply this version in {source} first",
                )
        approved = state.approval is not None and state.approval.program == program
        if self.env.approval == "required" and not approved:
            raise GateBlocked(
                f"{state.stack}: environment {self.env.name} requires an approval of "
                f"program {short} of phase {spec.name}, and none is recorded",
                hint=f"migrate approve --env {self.env.name} --phase {spec.name}",
            )

    def approve(self, phase: str | None = None) -> list[PhaseState]:
        """Record the actor's approval of each selected phase's current program."""
        phases = self._selected(phase)
        lock, states = self._open(phases)
        try:
            approved = []
            for spec in phases:
                state = states[spec.name]
                state.approval = Approval(
                    by=self.context.actor,
                    at=self.context.clock(),
                    program=self.project.program(spec).digest,
                )
                self.states.write(state)
                approved.append(state)
            return approved
        finally:
            lock.release()

    @staticmethod
    def _has_work(state: PhaseState, planned: _Planned) -> bool:
        """False when the phase is verified at this fingerprint and nothing would change."""
        return not (
            state.status == "verified"
            and state.fingerprint == planned.fingerprint
            and not planned.plan.has_changes
        )

    def _gate_policies(self, planned: list[_Planned]) -> None:
        """Mandatory violations block (exit 5); advisory ones are warnings."""
        blocking = []
        for item in planned:
            for v in item.violations:
                where = f"{v.resource_type} '{v.resource_name}' in {item.target.name}"
                line = f"{v.rule}: {where}: {v.message}"
                if v.enforcement == "mandatory":
                    blocking.append(line)
                else:
                    self.on_notice(f"policy (advisory) {line}")
        if blocking:
            raise GateBlocked(
                f"{len(blocking)} mandatory policy violation(s); nothing was applied:\n  "
                + "\n  ".join(blocking)
            )

    def _apply_phase(
        self,
        spec: PhaseSpec,
        states: dict[str, PhaseState],
        run: _Run,
        planned: _Planned | None = None,
    ) -> PhaseReport:
        state = states[spec.name]

        def dependencies_verified() -> str | None:
            for dep in spec.depends_on:
                if states[dep].status != "verified":
                    return f"depends on {dep}, which is {states[dep].status} in {self.env.name}"
            return None

        def plan_is_fresh() -> str | None:
            target = self._stage(spec, state).target
            now_fp = self._fingerprint(spec, target, self._upstream_outputs(spec, run))
            if now_fp != state.fingerprint:
                return "the program, its config or its upstream outputs changed since the plan"
            return None

        lifecycle = PhaseLifecycle(
            state,
            self.states,
            self.context,
            guards={"dependencies_verified": dependencies_verified, "plan_is_fresh": plan_is_fresh},
        )
        if planned is None:  # re-planned on an upstream's new outputs: gate it again
            planned = self._plan_phase(spec, run, state, reuse_verified=True)
            self._gate_policies([planned])
            if self._has_work(state, planned):
                self._gate_promotion(spec, planned.target, state)
        target, plan, fingerprint = planned.target, planned.plan, planned.fingerprint
        if plan.refused:
            names = "; ".join(f"{c.type} '{c.name}': {c.refused}" for c in plan.refused)
            raise EngineError(f"the plan refuses {names}", stack=target.name)
        if not self._has_work(state, planned):
            run.planned.pop(spec.name, None)
            return PhaseReport(spec.name, state.stack, state.status, "no changes", plan)
        self._record_plan(lifecycle, plan, fingerprint)
        state.checks = []  # this apply's own, once it has any; none left from an earlier one
        if not lifecycle.fire("apply"):
            raise GateBlocked(f"{state.stack}: {lifecycle.blocked}")
        try:
            result = self.engine.up(target, on_event=self.on_event)
        except EngineError as exc:
            return self._failed(lifecycle, spec, planned, f"apply failed: {exc}")
        run.planned.pop(spec.name, None)
        state.outputs = redact(dict(result.outputs.values), result.outputs.secret)
        lifecycle.fire("ok")
        failed = self._verify(lifecycle, spec, planned.stage, fingerprint, result.outputs)
        if failed:
            return self._failed(lifecycle, spec, planned, failed)
        return PhaseReport(
            spec.name, state.stack, state.status, "applied", plan, result, checks=state.checks
        )

    def _failed(
        self, lifecycle: PhaseLifecycle, spec: PhaseSpec, planned: _Planned, reason: str
    ) -> PhaseReport:
        """An apply or a check failed: roll back at once, unless told not to."""
        state = lifecycle.state
        if self.no_rollback:
            self.states.write(state)  # the check results that failed, for the person
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
        lifecycle.fire("fail", message=reason)
        return self._roll_back(lifecycle, spec, planned.target, reason, planned.plan)

    def _verify(
        self,
        lifecycle: PhaseLifecycle,
        spec: PhaseSpec,
        stage: _Stage,
        fingerprint: str,
        outputs: StackOutputs,
    ) -> str | None:
        """Run the phase's checks. Passed: verifying -> verified, keeping the last known
        good (and the step); failed: returns why, and the caller rolls back."""
        state = lifecycle.state
        state.checks = self._run_checks(spec, stage.target, outputs, stage.bake)
        failed = [c for c in state.checks if c.result == "fail"]
        if failed:
            return "; ".join(f"check {c.name} failed: {c.message}" for c in failed)
        state.lkg = self._keep_lkg(stage.target, fingerprint, spec.checks)
        state.rollback_checks = None
        if stage.step is not None:
            state.step, state.steps = stage.step, stage.steps
        passed = sum(c.result == "pass" for c in state.checks)
        where = f" at step {stage.step + 1} of {stage.steps}" if stage.step is not None else ""
        lifecycle.fire(
            "pass",
            message=f"{passed} check(s) passed{where}" if spec.checks else "no checks declared",
        )
        return None

    def _run_checks(
        self,
        spec: PhaseSpec,
        target: StackTarget,
        outputs: StackOutputs,
        bake: float,
        checks: Sequence[CheckSpec] | None = None,
        after_rollback: bool = False,
    ) -> list[CheckResult]:
        """Run ``checks`` (the phase's own by default) against ``outputs``; after a
        rollback, kinds that say so are skipped."""
        ctx = CheckContext(
            environment=self.env.name,
            stack=target.name,
            outputs=dict(outputs.values),
            config=self._plain_config(spec, target.config),
            aws=lambda service: self.engine.aws_client(target, service),
            sandbox=self.env.engine == "sandbox",
            kubeconfig=self.env.kubeconfig,
            bake_seconds=bake,
            project_root=self.project.root,
            # Config has no clear-text secrets to hide: `secure:` values stay ciphertext.
            secret_values=tuple(
                outputs.values[k] for k in sorted(outputs.secret) if k in outputs.values
            ),
        )
        results = []
        for check in spec.checks if checks is None else checks:
            skipped = KINDS[check.kind].not_rerun_after_rollback if after_rollback else None
            if skipped is not None:
                results.append(
                    CheckResult(name=check.name, kind=check.kind, result="skipped", message=skipped)
                )
                continue
            faults.point("check")
            results.append(run_check(check, ctx))
        return results

    def _plain_config(self, spec: PhaseSpec, config: Mapping[str, Any]) -> dict[str, Any]:
        """A stack config as checks read it: the model's defaults filled in, no namespace."""
        prefix = f"{CONFIG_NAMESPACE}:"
        values = {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}
        model = self.project.config_models().get(spec.name)
        if model is None:
            return values
        fields = {k: v for k, v in values.items() if k in model.model_fields}
        try:
            return {**values, **model.model_validate(fields).model_dump(mode="json")}
        except ValueError:
            return values  # an older config (a last known good) the model no longer reads

    # -- last known good and rollback -----------------------------------------------------

    def _lkg_path(self, kind: str, digest: str) -> Path:
        """Where a last-known-good program or config is kept, by its content address."""
        return self.project.state_dir / "lkg" / f"{kind}-{digest.split(':', 1)[1][:24]}.json"

    def _keep_lkg(
        self, target: StackTarget, fingerprint: str, checks: Sequence[CheckSpec]
    ) -> LastKnownGood:
        """Store the program snapshot, the config and the checks it passed, content-addressed
        beside the state files: a rollback restores that version and judges it by those."""
        program = {
            "module": target.program.module,
            "files": {k: v.decode("utf-8") for k, v in sorted(target.program.files.items())},
        }
        program_id = target.program.digest
        config_id = target.config_digest
        checked = [c.model_dump(mode="json") for c in checks]
        checks_id = _digest(checked)
        for kind, digest, data in (
            ("program", program_id, program),
            ("config", config_id, dict(target.config)),
            ("checks", checks_id, checked),
        ):
            path = self._lkg_path(kind, digest)
            if not path.exists():
                write_atomic(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
        return LastKnownGood(
            fingerprint=fingerprint,
            program=program_id,
            config=config_id,
            checks=checks_id,
            at=now(),
        )

    def _lkg_load(self, kind: str, digest: str) -> Any:
        path = self._lkg_path(kind, digest)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise EngineError(f"last known good {kind} {path} is unreadable: {exc}") from None

    def _lkg_target(self, target: StackTarget, lkg: LastKnownGood) -> StackTarget:
        program = self._lkg_load("program", lkg.program)
        source = ProgramSource(
            module=program["module"],
            files={k: v.encode("utf-8") for k, v in program["files"].items()},
        )
        if source.digest != lkg.program:
            raise EngineError(f"last known good program {lkg.program} does not match its content")
        return StackTarget(
            **{**target.__dict__, "program": source, "config": self._lkg_load("config", lkg.config)}
        )

    def _lkg_checks(self, spec: PhaseSpec, lkg: LastKnownGood) -> list[CheckSpec]:
        """The checks the last known good passed (the phase's current ones for a last
        known good kept before checks were kept with it)."""
        if lkg.checks is None:
            return list(spec.checks)
        try:
            return [CheckSpec.model_validate(c) for c in self._lkg_load("checks", lkg.checks)]
        except (EngineError, ValueError) as exc:
            # A check kind changed since (or its file is gone): the restore is judged by
            # the phase's checks as they are now rather than not at all, and said so.
            self.on_notice(
                f"{spec.name}: the last known good's checks no longer read "
                f"({str(exc).splitlines()[0]}); checking it with the phase's current checks"
            )
            return list(spec.checks)

    def _rollback_target(self, spec: PhaseSpec, state: PhaseState) -> StackTarget:
        """The stack as a rollback or a recovery addresses it. A rollback with a last known
        good needs nothing of the working tree, so a stack config broken since (the likely
        cause of the failure) does not stop it."""
        try:
            return self._stage(spec, state).target
        except InputError:
            if state.lkg is None:
                raise
        # The stack file unvalidated: its settings (secrets provider, salt) still count.
        with contextlib.suppress(InputError):
            return self.project.target(self.env, spec)
        # Not even readable: the last known good is all there is.
        program = self._lkg_load("program", state.lkg.program)
        return StackTarget(
            project=self.project.name,
            environment=self.env.name,
            phase=spec.name,
            region=self.env.region,
            program=ProgramSource(module=program["module"], files={}),
            config={},
            protected=frozenset(spec.protected),
            endpoint_url=self.env.aws.endpoint_url,
            profile=self.env.aws.profile,
            backend=self.env.backend,
        )

    def _roll_back(
        self,
        lifecycle: PhaseLifecycle,
        spec: PhaseSpec,
        target: StackTarget,
        reason: str,
        plan: Plan | None = None,
    ) -> PhaseReport:
        """rolling_back -> rolled_back (or rollback_failed); the report says which.

        The last known good is re-applied and checked again; with none, what the failed
        apply created is destroyed, protected resources kept. A stepped phase goes back to
        its baseline (cutover: all traffic on legacy) instead, on its last known good."""
        state = lifecycle.state
        started = time.monotonic()
        faults.point("rollback")
        kept: tuple[str, ...] = ()
        state.rollback_checks = None  # this rollback's own, once it gets that far
        try:
            base = self._lkg_target(target, state.lkg) if state.lkg is not None else target
            stepped = _STEP in base.config
            if stepped or state.lkg is not None:
                if stepped:
                    base = dataclasses.replace(base, config={**base.config, _STEP: -1})
                # Protected resources only the failed version had stay, released.
                result = self.engine.up(base, on_event=self.on_event, release_protected=True)
                kept = result.kept
                state.outputs = redact(dict(result.outputs.values), result.outputs.secret)
                checks = self._run_checks(
                    spec,
                    base,
                    result.outputs,
                    0.0,
                    checks=self._lkg_checks(spec, state.lkg) if state.lkg is not None else None,
                    after_rollback=True,
                )
                state.rollback_checks = checks
                failed = [c for c in checks if c.result == "fail"]
                if failed:
                    raise EngineError(
                        "after the rollback "
                        + "; ".join(f"check {c.name} failed: {c.message}" for c in failed)
                    )
            else:
                result = self.engine.destroy(target, on_event=self.on_event)
                state.outputs = {}
                kept = result.kept
        except (EngineError, GateBlocked) as exc:
            # A policy pack that now rejects the last known good fails the rollback too.
            lifecycle.fire("error", message=f"rollback failed: {exc}")
            return PhaseReport(
                state.phase,
                state.stack,
                state.status,
                "rollback failed",
                plan,
                message=f"{reason}; and the rollback failed: {exc}",
                kept=kept,
                rollback_seconds=time.monotonic() - started,
                checks=state.checks,
                rollback_checks=state.rollback_checks or [],
            )
        if _STEP in base.config:
            state.step = -1
            what = "its baseline (all traffic on legacy)"
        elif state.lkg is not None:
            what = "its last known good"
        else:
            what = "nothing (destroyed what it created)"
        lifecycle.fire("ok", message=f"rolled back to {what} after: {reason}")
        return PhaseReport(
            state.phase,
            state.stack,
            state.status,
            "rolled back",
            plan,
            message=f"{reason}; rolled back to {what}",
            kept=kept,
            rollback_seconds=time.monotonic() - started,
            checks=state.checks,
            rollback_checks=state.rollback_checks or [],
        )

    def rollback(self, phase: str) -> PhaseReport:
        """``migrate rollback``: what a failed apply does, by hand, from wherever the stack
        stands (an interrupted or failed run included)."""
        spec = self.project.migration.phase(phase)
        lock = self._lock()
        self._acquire(lock)
        try:
            states = self.read_all()
            self._refuse_interrupted(states, allow=spec.name)
            state = states[spec.name]
            if state.status == "pending":
                raise GateBlocked(f"{state.stack} was never applied: there is nothing to roll back")
            target = self._rollback_target(spec, state)  # before any transition is written
            lifecycle = PhaseLifecycle(state, self.states, self.context)
            reason = "rolled back by hand"
            if state.status in ("applying", "verifying"):
                lifecycle.fire("fail", message=reason)
            elif state.status == "rollback_failed":
                lifecycle.fire("retry", message=reason)
            else:
                lifecycle.fire("rollback", message=reason)
            return self._roll_back(lifecycle, spec, target, reason)
        finally:
            lock.release()

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
        target = self._rollback_target(spec, state)
        # Gone from the cloud, that is; a property drift (Pulumi's refresh updates) is not.
        drift = [c for c in self.engine.refresh(target) if c.op is Op.DELETE]
        note = f" (refresh: {len(drift)} resource(s) no longer in the cloud)" if drift else ""
        if state.status == "verifying":
            # Finish the verification only of what was applied, intact: if the program,
            # config or upstream outputs changed since, the applied version cannot be kept
            # as known good from the working tree; if some of it is gone from the cloud,
            # it is not what was applied. Either way it is rolled back instead.
            stage: _Stage | None
            try:
                stage = self._stage(spec, state)
                upstream = self._upstream_outputs(spec, _Run())
                fingerprint = self._fingerprint(spec, stage.target, upstream)
            except InputError:
                stage, fingerprint = None, ""
            reason = None
            if stage is None or fingerprint != state.fingerprint:
                reason = "the working tree changed since the interrupted apply"
            elif drift:
                reason = "what the interrupted apply made is no longer all in the cloud"
            if stage is None or reason is not None:
                reason = (reason or "") + note
                lifecycle.fire("fail", message=reason)
                return self._roll_back(lifecycle, spec, target, reason)
            outputs = self.engine.outputs(state.stack) or StackOutputs()
            failed = self._verify(lifecycle, spec, stage, fingerprint, outputs)
            if failed:
                lifecycle.fire("fail", message=failed)
                return self._roll_back(lifecycle, spec, target, failed + note)
            return PhaseReport(
                spec.name, state.stack, state.status, "verified", message="verified" + note
            )
        if state.status == "applying":
            lifecycle.fire("fail", message="the run applying it was interrupted")
        elif state.status == "rollback_failed":
            lifecycle.fire("retry", message="rollback retried by recover")
        return self._roll_back(
            lifecycle, spec, target, "interrupted or failed run recovered" + note
        )

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
                state.checks, state.rollback_checks = [], None
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
            envs = self.project.migration.environments
            sandboxes = [e.name for e in envs if e.engine == "sandbox"]
            raise InputError(
                f"environment '{self.env.name}' uses the {self.env.engine} engine, not the sandbox",
                field="--env",
                hint=f"allowed: {', '.join(sandboxes) or 'none (no environment uses the sandbox)'}",
            )
        return engine

    def sandbox_alarm(self, name: str, state: str) -> None:
        """Set an alarm of the emulated cloud to ALARM or OK, as its metric would."""
        engine = self._sandbox_engine()
        lock = self._lock()
        self._acquire(lock)
        try:
            self._refuse_interrupted(self.read_all())
            engine.set_alarm(self.env.name, name, state)
        finally:
            lock.release()

    def sandbox_inventory(self) -> dict[str, Any]:
        return dict(self._sandbox_engine().inventory(self.env.name))

    def serve_sandbox(self, *, port: int, ready: Callable[[str], None], stop: Any) -> None:
        """Serve the emulated cloud on loopback, holding the environment lock meanwhile."""
        engine = self._sandbox_engine()
        lock = self._lock()
        self._acquire(lock)
        try:
            # What a client changes while a stack is mid-run would be taken for its drift.
            self._refuse_interrupted(self.read_all())
            engine.serve(self.env.name, port=port, ready=ready, stop=stop)
        finally:
            lock.release()
