"""A saved plan refuses to be applied when the engine would now change something else
than what was saved and reviewed: the cloud or the engine's record moved since."""

from __future__ import annotations

from pathlib import Path

import pytest

from phasegate.engines.base import Op, Plan, ResourceChange
from phasegate.errors import GateBlocked, InputError
from phasegate.redaction import SecretValues
from phasegate.saved_plan import SavedPhase, SavedPlan, changes_of

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"


def _plan(*changes: tuple[Op, str]) -> Plan:
    return Plan(
        "sandbox-compute",
        [ResourceChange(op, NODE_GROUP, name, changed=("scalingConfig",)) for op, name in changes],
    )


def _saved(tmp_path: Path, plan: Plan) -> SavedPlan:
    saved = SavedPlan(
        environment="sandbox",
        phase="compute",
        created="2026-12-02T00:00:00Z",
        actor="ann@host",
        git_commit=None,
        phases=[
            SavedPhase(
                phase="compute",
                stack="sandbox-compute",
                status="verified",
                applied="sha256:a",
                step=None,
                fingerprint="sha256:b",
                inputs={},
                changes=plan.counts,
                resources=changes_of(plan),
                gates=[],
                policy=[],
            )
        ],
    )
    path = tmp_path / "plan.json"
    saved.write(path, SecretValues())
    return SavedPlan.load(path)


def test_the_same_changes_pass(tmp_path: Path) -> None:
    plan = _plan((Op.UPDATE, "gpu-inference"), (Op.SAME, "gpu-training"))
    _saved(tmp_path, plan).refuse_other_changes("compute", plan)


@pytest.mark.parametrize(
    ("now", "says"),
    [
        (_plan(), "differs in: update gpu-inference"),
        (_plan((Op.UPDATE, "gpu-inference"), (Op.DELETE, "gpu-training")), "delete gpu-training"),
        (_plan((Op.REPLACE, "gpu-inference")), "replace gpu-inference, update gpu-inference"),
    ],
)
def test_other_changes_are_refused_by_name(tmp_path: Path, now: Plan, says: str) -> None:
    saved = _saved(tmp_path, _plan((Op.UPDATE, "gpu-inference")))
    with pytest.raises(GateBlocked) as refused:
        saved.refuse_other_changes("compute", now)
    assert str(refused.value).startswith("sandbox-compute: the saved plan")
    assert "no longer matches what the engine would change" in str(refused.value)
    assert says in str(refused.value)


def test_a_plan_of_another_environment_is_refused(tmp_path: Path) -> None:
    saved = _saved(tmp_path, _plan())
    with pytest.raises(InputError) as wrong:
        saved.refuse_other_selection("prod", ["compute"])
    assert "plan.json: environment: the saved plan is of environment sandbox" in str(wrong.value)
    with pytest.raises(GateBlocked) as stale:
        saved.refuse_other_selection("sandbox", ["compute", "gpu_cache"])
    assert "it plans compute and migration.yaml now selects compute, gpu_cache" in str(stale.value)
