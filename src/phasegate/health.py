"""``migrate check``: drift and health of an environment's verified phases, for a pipeline
that runs on a schedule.

Each phase verified in the environment (or the one named) is looked at as it was
verified, its last known good: the engine says what a refresh would change (a resource
gone from the cloud, one changed outside phasegate), without refreshing, and the checks
it passed run again against the stack's outputs as they are now, with no bake.

Read only: no state file is written (people commit them: a scheduled job must not make
diffs) and the engine's own record is left as it is, so that a plan or an apply still
diffs against what was applied. Nothing is rolled back; the environment's lock is held
throughout, so that no half-applied stack is looked at. The JSON form is
:class:`HealthReport`, whose schema ``migrate schema check`` prints.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from phasegate.engines.base import Op, ResourceChange, StackOutputs
from phasegate.environment import Environment
from phasegate.errors import PhasegateError
from phasegate.events import PhaseEvent
from phasegate.gates import refuse_interrupted
from phasegate.lkg import LastKnownGoodStore
from phasegate.planning import Planner
from phasegate.rollback import Rollback
from phasegate.spec import PhaseSpec
from phasegate.state import CheckResult, PhaseState
from phasegate.verification import Verifier

__all__ = ["Drift", "HealthReport", "PhaseHealth", "check_health"]


class Drift(BaseModel):
    """One resource the cloud no longer has as the engine recorded it."""

    model_config = ConfigDict(extra="forbid")

    change: Literal["delete", "update"] = Field(
        description="what a refresh would do to the engine's record: delete (the resource "
        "is gone from the cloud) or update (it was changed outside phasegate)"
    )
    type: str = Field(description="the resource's type token")
    name: str = Field(description="the resource's name in the program")
    changed: list[str] = Field(
        default_factory=list, description="the properties that differ, where the engine tells"
    )

    def describe(self) -> str:
        what = "gone from the cloud" if self.change == "delete" else "changed outside phasegate"
        if self.changed:
            what += f" ({', '.join(self.changed)})"
        return f"{self.type} {self.name}: {what}"


class PhaseHealth(BaseModel):
    """How one phase stands against the cloud."""

    model_config = ConfigDict(extra="forbid")

    phase: str = Field(description="the phase")
    stack: str = Field(description="the phase's stack in the environment")
    status: str = Field(description="the phase's status in its state file")
    outcome: Literal["healthy", "drifted", "failing", "drifted and failing", "skipped"] = Field(
        description="healthy: no drift and every check passed (or skipped); skipped: not "
        "verified, nothing to check"
    )
    reason: str | None = Field(None, description="why the phase was skipped")
    drift: list[Drift] = Field(default_factory=list, description="what a refresh would change")
    checks: list[CheckResult] = Field(
        default_factory=list, description="the checks it was verified by, run again now"
    )

    @property
    def healthy(self) -> bool:
        return self.outcome in ("healthy", "skipped")


class HealthReport(BaseModel):
    """What ``migrate check --output json`` prints."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = Field(1, description="the version of this document's shape")
    environment: str = Field(description="the environment checked")
    healthy: bool = Field(description="no phase drifted and no check failed")
    phases: list[PhaseHealth] = Field(description="each selected phase, in apply order")

    @property
    def unhealthy(self) -> list[PhaseHealth]:
        return [p for p in self.phases if not p.healthy]

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def check_health(environment: Environment, phase: str | None = None) -> HealthReport:
    """Drift and checks of every verified phase of ``environment`` (or of ``phase``
    alone, which must be verified); the others are listed as skipped."""
    env = environment
    specs = env.phases(phase)  # an unknown phase: refused
    with env.locked():
        states = env.read_all()
        refuse_interrupted(env.project.migration.phases, states, env.name)
        if phase is not None and states[specs[0].name].status != "verified":
            state = states[specs[0].name]
            raise PhasegateError(
                f"phase {phase} is {state.status} in {env.name}: nothing to check until it "
                "is verified"
            )
        health = _Health(env)
        phases = [health.phase(spec, states[spec.name]) for spec in specs]
    return HealthReport(environment=env.name, healthy=all(p.healthy for p in phases), phases=phases)


class _Health:
    """Looks at the phases of one environment, read only."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        # Nothing is written through these: they say what the verified version is (its
        # last known good's target and checks) and run checks without recording them.
        lkgs = LastKnownGoodStore(environment.project.state_dir, environment.on_notice)
        self.lkgs = lkgs
        planner = Planner(environment)
        self.verifier = Verifier(environment, lkgs)
        self.rollback = Rollback(environment, planner, self.verifier)

    def phase(self, spec: PhaseSpec, state: PhaseState) -> PhaseHealth:
        if state.status != "verified":
            return PhaseHealth(
                phase=spec.name,
                stack=state.stack,
                status=state.status,
                outcome="skipped",
                reason=f"{state.status}: nothing to check until it is verified",
            )
        env = self.environment
        target = self.rollback.target(spec, state)
        checks = None
        if state.lkg is not None:
            target = self.lkgs.target(target, state.lkg)
            checks = self.lkgs.checks(spec, state.lkg)
        drift = [_drift(c) for c in env.engine.drift(target) if c.op is not Op.SAME]
        outputs = env.engine.outputs(state.stack) or StackOutputs()
        results = self.verifier.run_checks(spec, target, outputs, 0.0, checks=checks)
        failing = any(c.result == "fail" for c in results)
        outcome: Literal["healthy", "drifted", "failing", "drifted and failing"]
        if drift and failing:
            outcome = "drifted and failing"
        else:
            outcome = "drifted" if drift else "failing" if failing else "healthy"
        env.on_progress(PhaseEvent(state.stack, spec.name, "done", outcome=outcome))
        return PhaseHealth(
            phase=spec.name,
            stack=state.stack,
            status=state.status,
            outcome=outcome,
            drift=drift,
            checks=results,
        )


def _drift(change: ResourceChange) -> Drift:
    gone = change.op is Op.DELETE
    return Drift(
        change="delete" if gone else "update",
        type=change.type,
        name=change.name,
        changed=[] if gone else list(change.changed),
    )
