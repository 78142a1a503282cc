"""Saved plans: ``migrate plan --out FILE`` writes one, ``migrate apply FILE`` carries it
out exactly, the way Terraform's saved plans work.

A saved plan holds, per phase, the fingerprint the plan was computed from (and each of
its parts, to say which one changed), where the stack stood, the resource changes, the
gates as they stood and the policy findings. Applying it plans again first; a phase
whose inputs, stack or changes differ from the saved ones is refused (exit 5) by name,
before anything is applied.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from phasegate.atomic import write_atomic
from phasegate.engines.base import Plan
from phasegate.errors import GateBlocked, InputError
from phasegate.planning import Planned
from phasegate.policy import Violation
from phasegate.redaction import SecretValues
from phasegate.state import PhaseState

__all__ = [
    "FORMAT",
    "SavedGate",
    "SavedPhase",
    "SavedPlan",
    "changes_of",
    "phase_entry",
]

FORMAT: Literal["phasegate-plan"] = "phasegate-plan"

_PARTS = {
    "program": "its program (phases/)",
    "config": "its stack config ({config})",
    "checks": "its checks in migration.yaml",
    "protected": "its protected names in migration.yaml",
    "policy": "the policy pack (policies/)",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SavedChange(_Model):
    op: str = Field(description="create, update, replace, delete or import")
    type: str = Field(description="the resource type token")
    name: str = Field(description="the resource's logical name")
    changed: list[str] = Field(default_factory=list, description="properties that differ")


class SavedGate(_Model):
    gate: str = Field(description="dependencies, promotion, approval or policy")
    ok: bool = Field(description="whether it would let the phase apply as things stood")
    detail: str = Field(description="why, in words")


class SavedPhase(_Model):
    phase: str
    stack: str
    status: str = Field(description="the stack's status when it was planned")
    applied: str | None = Field(
        description="the fingerprint the stack was last applied at, when it was planned"
    )
    step: int | None = Field(description="a stepped phase: the step this plan takes, from 0")
    fingerprint: str = Field(description="what the plan was computed from, as one digest")
    inputs: dict[str, Any] = Field(description="the fingerprint's parts, each as a digest")
    changes: dict[str, int] = Field(description="resource count per operation")
    resources: list[SavedChange] = Field(description="each resource that changes")
    gates: list[SavedGate]
    policy: list[dict[str, str]] = Field(description="policy findings")


class SavedPlan(_Model):
    format: Literal["phasegate-plan"] = FORMAT
    version: Literal[1] = 1
    environment: str
    phase: str | None = Field(description="the one phase planned, or null for all")
    created: str = Field(description="UTC time, ISO 8601")
    actor: str
    git_commit: str | None
    phases: list[SavedPhase]
    _path: Path = PrivateAttr(default=Path("plan.json"))

    @classmethod
    def load(cls, path: Path) -> SavedPlan:
        """The plan in ``path``, or one line naming the file and what is wrong with it."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read the saved plan: {exc.strerror}", file=path) from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InputError(f"not a saved plan (not JSON: {exc})", file=path) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputError(
                f"not a saved plan: its format is not {FORMAT!r}",
                file=path,
                field="format",
                hint="write one with `migrate plan --out FILE`",
            )
        try:
            saved = cls.model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"])
            raise InputError(error["msg"], file=path, field=where) from None
        saved._path = path
        return saved

    def write(self, path: Path, secrets: SecretValues) -> None:
        text = json.dumps(secrets.mask_data(self.model_dump(mode="json")), indent=2) + "\n"
        write_atomic(path, text.encode())

    def entry(self, phase: str) -> SavedPhase:
        for saved in self.phases:
            if saved.phase == phase:
                return saved
        raise KeyError(phase)

    def refuse_other_selection(self, environment: str, phases: list[str]) -> None:
        """The plan is of this environment, and of the phases migration.yaml has now."""
        if environment != self.environment:
            raise InputError(
                f"the saved plan is of environment {self.environment}, not {environment}",
                file=self._path,
                field="environment",
                hint=f"pass --env {self.environment}, or no --env",
            )
        planned = [p.phase for p in self.phases]
        if planned != phases:
            raise GateBlocked(
                f"the saved plan {self._path} is stale: it plans {', '.join(planned) or 'nothing'} "
                f"and migration.yaml now selects {', '.join(phases) or 'nothing'}; nothing "
                "was applied",
                hint="run `migrate plan --out FILE` again and review it",
            )

    def refuse_stale(self, phase: str, planned: Planned, state: PhaseState, config: Path) -> None:
        """Exit 5, naming the phase and what changed, unless applying now would carry out
        exactly the saved plan: the same stack, the same inputs, the same changes."""
        saved = self.entry(phase)
        changed: list[str] = []
        if (state.status, state.fingerprint) != (saved.status, saved.applied):
            changed.append(
                f"the stack (it was {saved.status} when planned, and has been applied or "
                f"rolled back since: {state.status} now)"
            )
        elif planned.stage.step != saved.step:
            changed.append("the step it takes")
        for part, words in _PARTS.items():
            if planned.inputs.get(part) != saved.inputs.get(part):
                changed.append(words.format(config=config))
        now, then_ = planned.inputs.get("upstream", {}), saved.inputs.get("upstream", {})
        if now != then_:
            stacks = sorted(k for k in {*now, *then_} if now.get(k) != then_.get(k))
            changed.append("the outputs of " + ", ".join(stacks))
        if changed:
            raise GateBlocked(
                f"{saved.stack}: the saved plan {self._path} is stale: "
                + "; ".join(changed)
                + " changed since it was made; nothing was applied",
                hint="run `migrate plan --out FILE` again and review it",
            )
        self.refuse_other_changes(phase, planned.plan)

    def refuse_other_changes(self, phase: str, plan: Plan) -> None:
        """The engine would now change other resources than the saved plan says (the
        cloud or the engine's record moved): refuse what nobody reviewed."""
        saved = self.entry(phase)
        now = {(c.op, c.type, c.name) for c in changes_of(plan)}
        then = {(c.op, c.type, c.name) for c in saved.resources}
        if now == then:
            return
        differ = sorted(now ^ then)
        shown = ", ".join(f"{op} {name}" for op, _, name in differ[:3])
        more = f" and {len(differ) - 3} more" if len(differ) > 3 else ""
        raise GateBlocked(
            f"{saved.stack}: the saved plan {self._path} no longer matches what the engine "
            f"would change (differs in: {shown}{more}); it was not applied",
            hint="run `migrate plan --out FILE` again and review it",
        )


def changes_of(plan: Plan) -> list[SavedChange]:
    return [
        SavedChange(op=c.op.value, type=c.type, name=c.name, changed=list(c.changed))
        for c in plan.changes
        if c.op.value != "same"
    ]


def phase_entry(
    planned: Planned, state: PhaseState, gates: list[SavedGate], violations: list[Violation]
) -> SavedPhase:
    """What a saved plan keeps of one phase's plan."""
    plan = planned.plan
    return SavedPhase(
        phase=state.phase,
        stack=state.stack,
        status=state.status,
        applied=state.fingerprint,
        step=planned.stage.step,
        fingerprint=planned.fingerprint,
        inputs=planned.inputs,
        changes=plan.counts,
        resources=changes_of(plan),
        gates=gates,
        policy=[
            {
                "rule": v.rule,
                "enforcement": v.enforcement,
                "resource": f"{v.resource_type} {v.resource_name}",
                "message": v.message,
            }
            for v in violations
        ],
    )
