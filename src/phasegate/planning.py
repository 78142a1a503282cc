"""Planning one phase: the stage it runs (a stepped phase's next step), its fingerprint,
the engine's preview and the policy verdict. Nothing here writes a state file or changes
a cloud: a plan is recorded only by the apply that carries it out (:meth:`Planner.note`)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phasegate.copystep import PendingCopy, pending_copy
from phasegate.engines.base import Plan, ProgramSource, StackOutputs, StackTarget
from phasegate.estimates import PhaseEstimate, cap_violations, estimate_phase, load_tables
from phasegate.estimates.cap import RULE as COST_CARBON_CAP
from phasegate.estimates.stored import stored_data
from phasegate.events import PhaseEvent
from phasegate.gates import has_work
from phasegate.placement import check_placement
from phasegate.policy import Violation, core_rule_level, crossguard_config, evaluate
from phasegate.project import CONFIG_NAMESPACE
from phasegate.spec import PhaseSpec
from phasegate.state import PhaseState, PlanSummary

if TYPE_CHECKING:
    from phasegate.environment import Environment

__all__ = ["DATA_SOURCE", "STEP", "STEPS", "Planned", "Planner", "RunMemory", "Stage", "digest"]

STEPS = f"{CONFIG_NAMESPACE}:steps"
STEP = f"{CONFIG_NAMESPACE}:step"
"""A stepped phase's steps (its config) and the one a run applies (set by phasegate)."""
DATA_SOURCE = f"{CONFIG_NAMESPACE}:data_source"
"""A phase with a data copy: where readers of its data are pointed (set by phasegate):
``legacy`` while it applies and copies, ``lake`` once the copy is proved, ``legacy``
again after a rollback."""


def digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Stage:
    """What a phase is about to run: its target (the step set, for a stepped phase), its
    config with the model's defaults, and the step with its bake time."""

    target: StackTarget
    config: dict[str, Any]
    step: int | None = None
    steps: int | None = None
    bake: float = 0.0


@dataclass(frozen=True)
class Planned:
    stage: Stage
    plan: Plan
    fingerprint: str
    violations: list[Violation]
    inputs: dict[str, Any] = field(default_factory=dict)
    """What the fingerprint is made of, each part digested on its own: a saved plan keeps
    them to say which one changed since."""
    copy: PendingCopy | None = None
    """A phase with a data copy: what an apply would copy now (None: not known yet)."""
    estimate: PhaseEstimate | None = None
    """Its monthly cost, energy and carbon as planned (None: not estimated)."""

    @property
    def target(self) -> StackTarget:
        return self.stage.target

    @property
    def policy(self) -> tuple[str, list[Violation]]:
        """The stack's policy findings, as the policy gate takes them."""
        return self.target.name, self.violations

    @property
    def copies(self) -> bool:
        """The phase's data copy has objects to copy."""
        return self.copy is not None and self.copy.objects > 0

    def has_work(self, state: PhaseState) -> bool:
        """False when the phase is verified at this fingerprint, nothing would change and
        its data copy (if it has one) has nothing to copy."""
        return self.copies or has_work(state, self.fingerprint, self.plan)


@dataclass
class RunMemory:
    """What one command has learned so far: planned outputs of phases not applied yet."""

    planned: dict[str, StackOutputs] = field(default_factory=dict)
    refreshed: set[str] = field(default_factory=set)
    """Phases whose engine record this run refreshed: their plans preview, whatever the
    record said before."""


class Planner:
    """Plans the phases of one environment."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.project = environment.project
        self._pack_digests: dict[Path, str] = {}

    def stage(self, phase: PhaseSpec, state: PhaseState) -> Stage:
        """The target to run now. A stepped phase (its config has ``steps``) runs one step
        per apply: the one after its last verified step, the last one again once done."""
        env = self.environment.spec
        config = self.project.validate_config(env.name, phase)
        pack = self.project.root / "policies"
        target = dataclasses.replace(
            self.project.target(env, phase),
            policy_pack=pack if pack.is_dir() else None,
            policy_config=crossguard_config(config, f"{env.name}-{phase.name}"),
        )
        if phase.copy_data is not None:  # readers stay on legacy until the copy is proved
            target = dataclasses.replace(target, config={**target.config, DATA_SOURCE: "legacy"})
        steps = config.get(STEPS)
        if not isinstance(steps, list) or not steps:
            return Stage(target, config)
        done = state.step
        step = 0 if done is None or done < 0 else min(done + 1, len(steps) - 1)
        bake = float(steps[step].get("bake_seconds", 0) if isinstance(steps[step], dict) else 0)
        target = dataclasses.replace(target, config={**target.config, STEP: step})
        return Stage(target, {**config, STEP: step}, step, len(steps), bake)

    def upstream_outputs(self, phase: PhaseSpec, run: RunMemory) -> dict[str, StackOutputs]:
        """Outputs of the phases this one depends on: planned in this run, else current."""
        found: dict[str, StackOutputs] = {}
        for dep in self.project.migration.upstream(phase):
            stack = f"{self.environment.name}-{dep.name}"
            if dep.name in run.planned:
                found[stack] = run.planned[dep.name]
            else:
                outputs = self.environment.engine.outputs(stack)
                if outputs is not None:
                    found[stack] = outputs
        return found

    def _inputs(
        self, spec: PhaseSpec, target: StackTarget, upstream: dict[str, StackOutputs]
    ) -> dict[str, Any]:
        """Everything a plan of the stack depends on besides the engine's own state, and
        the checks it is verified by: a check added to a verified phase runs on the next
        apply, rather than that apply saying "no changes"."""
        return {
            "program": target.program.digest,
            "config": target.config_digest,
            "checks": [c.model_dump(mode="json") for c in spec.checks],
            "protected": sorted(target.protected),
            "policy": self._pack_digest(target.policy_pack),
            "upstream": {k: v.digest for k, v in sorted(upstream.items())},
        }

    def fingerprint(
        self, spec: PhaseSpec, target: StackTarget, upstream: dict[str, StackOutputs]
    ) -> str:
        return digest(self._inputs(spec, target, upstream))

    def current_fingerprint(self, spec: PhaseSpec, state: PhaseState, run: RunMemory) -> str:
        """The fingerprint of the phase as the working tree and upstream stand now."""
        target = self.stage(spec, state).target
        return self.fingerprint(spec, target, self.upstream_outputs(spec, run))

    def _pack_digest(self, pack: Path | None) -> str | None:
        """The policy pack's files, hashed once per run."""
        if pack is None:
            return None
        if pack not in self._pack_digests:
            # The same snapshot rules as a phase program's: every file, no caches.
            source = ProgramSource.from_directory(pack, "__main__", set())
            self._pack_digests[pack] = source.digest
        return self._pack_digests[pack]

    def plan_phase(
        self, phase: PhaseSpec, run: RunMemory, state: PhaseState, *, reuse_verified: bool = False
    ) -> Planned:
        """Validate the stack config, check its GPU pools have zones to go into, preview,
        fingerprint, and check the policies.

        With ``reuse_verified`` (an apply), a phase verified at this very fingerprint is not
        previewed where the engine can tell its plan without (the sandbox): that preview
        could only say "no changes", and the policies passed on the same inputs when it
        was verified."""
        engine = self.environment.engine
        stage = self.stage(phase, state)
        target = stage.target
        upstream = self.upstream_outputs(phase, run)
        inputs = self._inputs(phase, target, upstream)
        fingerprint = digest(inputs)
        parts = {k: v if k in ("upstream", "policy") else digest(v) for k, v in inputs.items()}
        reuse = reuse_verified and phase.name not in run.refreshed
        if reuse and state.status == "verified" and state.fingerprint == fingerprint:
            unchanged = engine.unchanged_plan(target.name)
            if unchanged is not None:
                copy = pending_copy(self.environment, phase, target, unchanged.outputs)
                # Verified at these very inputs: its estimate is the one recorded then.
                return Planned(stage, unchanged, fingerprint, [], parts, copy, state.estimate)
        self.environment.on_progress(PhaseEvent(target.name, phase.name, "planning"))
        # Before the program's own choice: a GPU pool no chosen zone offers is bad config.
        check_placement(self.environment, phase, target, stage.config)
        plan = engine.preview(target, upstream=upstream, on_event=self.environment.on_event)
        if plan.has_changes:
            run.planned[phase.name] = plan.outputs
        policy = evaluate(
            plan.resources,
            stack=target.name,
            config=stage.config,
            pack_dir=self.project.root / "policies",
        )
        copy = pending_copy(self.environment, phase, target, plan.outputs)
        estimate = self.estimate(phase, state, stage, plan)
        capped = cap_violations(
            estimate,
            stack=target.name,
            config=stage.config,
            level=core_rule_level(stage.config, target.name, COST_CARBON_CAP),
        )
        findings = [*policy.violations, *capped, *plan.findings]
        return Planned(stage, plan, fingerprint, findings, parts, copy, estimate)

    def estimate(
        self, phase: PhaseSpec, state: PhaseState, stage: Stage, plan: Plan
    ) -> PhaseEstimate:
        """The phase's monthly cost, energy and carbon, from what its plan declares."""
        from phasegate.checks.base import CheckError
        from phasegate.checks.compute import load_gpu_catalog

        try:
            gpus: dict[str, int] | None = load_gpu_catalog(self.project.root)
        except CheckError:
            gpus = None  # no catalog to count GPUs with: energy is unknown, said per pool
        target = stage.target
        return estimate_phase(
            plan.resources,
            config=stage.config,
            region=target.region,
            tables=load_tables(),
            gpus=gpus,
            stored=stored_data(self.environment, phase, state, target, plan.outputs),
            config_file=target.config_file,
        )

    def note(self, state: PhaseState, plan: Plan, fingerprint: str) -> None:
        """The plan an apply carries out, on the state (written with its ``apply``)."""
        state.fingerprint = fingerprint
        state.plan = PlanSummary(
            at=self.environment.context.clock(),
            fingerprint=fingerprint,
            changes=plan.counts,
            resources=[
                f"{c.op.value} {c.type} {c.name}" for c in plan.changes if c.op.value != "same"
            ],
        )
