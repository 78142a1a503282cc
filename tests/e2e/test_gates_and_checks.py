"""Gates and checks through the real CLI: declared checks decide verified or rolled back,
and an environment that promotes from another applies only what was verified there and
approved here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from phasegate.state import StateStore

REHEARSAL = """
  - name: rehearsal        # a second sandbox that promotes from the first
    engine: sandbox
    promote_from: sandbox
    approval: required
"""


def _add_check(project: Path, phase: str, check: dict[str, Any]) -> None:
    path = project / "migration.yaml"
    data = yaml.safe_load(path.read_text())
    for spec in data["phases"]:
        if spec["name"] == phase:
            spec.setdefault("checks", []).append(check)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _state(project: Path, env: str, phase: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((project / "state" / env / f"{phase}.yaml").read_text())
    return loaded


def _inventory(cli: Any, project: Path) -> dict[str, Any]:
    result = cli.run(project, "sandbox", "status", "--output", "json")
    assert result.returncode == 0, result.stderr
    stacks: dict[str, Any] = json.loads(result.stdout)["stacks"]
    return stacks


def test_a_failing_check_rolls_a_first_apply_back_and_reports_it(
    cli: Any, fresh_project: Path
) -> None:
    _add_check(
        fresh_project,
        "pilot",
        {
            "name": "exports",
            "kind": "outputs",
            "params": {"present": ["vpc_id", "no_such"]},
            "interval": 0,
        },
    )
    result = cli.run(fresh_project, "apply", "--yes", "--phase", "pilot", "--output", "json")

    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    (report,) = json.loads(result.stdout)["phases"]
    assert report["outcome"] == "rolled back"
    assert "check exports failed: missing outputs: no_such" in report["message"]
    state = _state(fresh_project, "sandbox", "pilot")
    assert state["status"] == "rolled_back"
    check = next(c for c in state["checks"] if c["name"] == "exports")
    assert (check["result"], check["attempts"]) == ("fail", 4)
    moves = [(h["from"], h["to"]) for h in state["history"]]
    assert moves[-3:] == [
        ("applying", "verifying"),
        ("verifying", "rolling_back"),
        ("rolling_back", "rolled_back"),
    ]
    # No last known good: what the apply created is gone again.
    assert _inventory(cli, fresh_project).get("sandbox-pilot", []) == []


def test_a_passing_check_is_recorded(cli: Any, fresh_project: Path) -> None:
    _add_check(
        fresh_project,
        "pilot",
        {
            "name": "cluster",
            "kind": "outputs",
            "params": {"present": ["vpc_id"], "equals": {"cluster_name": "sandbox-ai-platform"}},
            "interval": 0,
        },
    )
    result = cli.run(fresh_project, "apply", "--yes", "--phase", "pilot")
    assert result.returncode == 0, result.stderr
    state = _state(fresh_project, "sandbox", "pilot")
    assert state["status"] == "verified"
    results = {c["name"]: c["result"] for c in state["checks"]}
    assert results["cluster"] == "pass"
    assert set(results.values()) == {"pass"}  # the shipped checks of pilot too


def test_a_stack_in_rollback_failed_blocks_plan_and_apply(cli: Any, applied_project: Path) -> None:
    # As a run whose rollback failed leaves it (written, and sealed, as phasegate does).
    states = StateStore(applied_project / "state", "sandbox")
    state = states.read("compute")
    state.status = "rollback_failed"
    states.write(state)
    for args in (("plan",), ("apply", "--yes")):
        result = cli.run(applied_project, *args)
        assert result.returncode == 5, result.stderr
        assert "Traceback" not in result.stderr
        line = result.stderr.strip().splitlines()[-1]
        assert "sandbox-compute is in rollback_failed" in line
        assert "migrate recover --env sandbox" in line


def test_promotion_needs_the_same_program_verified_upstream_and_an_approval(
    cli: Any, applied_project: Path
) -> None:
    migration = applied_project / "migration.yaml"
    text = migration.read_text()
    migration.write_text(text.replace("\n  - name: staging", REHEARSAL + "  - name: staging", 1))
    stacks = applied_project / "stacks"
    (stacks / "Pulumi.rehearsal-pilot.yaml").write_text(
        (stacks / "Pulumi.sandbox-pilot.yaml").read_text()
    )

    blocked = cli.run(applied_project, "apply", "--yes", "--env", "rehearsal", "--phase", "pilot")
    assert blocked.returncode == 5, blocked.stderr
    assert "requires an approval of plan" in blocked.stderr
    assert "migrate approve --env rehearsal --phase pilot" in blocked.stderr

    approved = cli.run(applied_project, "approve", "--env", "rehearsal", "--phase", "pilot")
    assert approved.returncode == 0, approved.stderr
    assert _state(applied_project, "rehearsal", "pilot")["approval"]["program"].startswith(
        "sha256:"
    )
    done = cli.run(applied_project, "apply", "--yes", "--env", "rehearsal", "--phase", "pilot")
    assert done.returncode == 0, done.stderr
    assert _state(applied_project, "rehearsal", "pilot")["status"] == "verified"

    # A program that was never verified in the source environment does not promote.
    program = applied_project / "phases" / "pilot.py"
    program.write_text(program.read_text() + "\n# a change made after the sandbox run\n")
    changed = cli.run(applied_project, "apply", "--yes", "--env", "rehearsal", "--phase", "pilot")
    assert changed.returncode == 5, changed.stderr
    assert "is not verified in sandbox" in changed.stderr
    assert _state(applied_project, "rehearsal", "pilot")["status"] == "verified"


def test_an_approval_holds_for_the_plan_it_approved_only(
    cli: Any, applied_project: Path, tmp_path: Path
) -> None:
    migration = applied_project / "migration.yaml"
    text = migration.read_text()
    migration.write_text(text.replace("\n  - name: staging", REHEARSAL + "  - name: staging", 1))
    stack = applied_project / "stacks" / "Pulumi.rehearsal-pilot.yaml"
    stack.write_text((applied_project / "stacks" / "Pulumi.sandbox-pilot.yaml").read_text())
    saved = tmp_path / "pilot.plan.json"
    args = ("--env", "rehearsal", "--phase", "pilot")

    planned = cli.run(applied_project, "plan", *args, "--out", str(saved))
    assert planned.returncode == 0, planned.stderr
    [entry] = json.loads(saved.read_text())["phases"]
    gates = {g["gate"]: g for g in entry["gates"]}
    assert gates["promotion"]["ok"] is True
    assert gates["approval"]["ok"] is False and "none is recorded" in gates["approval"]["detail"]

    approved = cli.run(applied_project, "approve", "--env", "rehearsal", "--plan", str(saved))
    assert approved.returncode == 0, approved.stderr
    assert f"approved plan {entry['fingerprint'][7:19]}" in approved.stdout
    assert (
        _state(applied_project, "rehearsal", "pilot")["approval"]["fingerprint"]
        == (entry["fingerprint"])
    )

    # The config changes after the approval: the plan is another one, the approval void.
    stack.write_text(stack.read_text().replace("disk_size_gib: 100", "disk_size_gib: 120"))
    void = cli.run(applied_project, "apply", "--yes", *args)
    assert void.returncode == 5, void.stderr
    assert "is void: the plan changed" in void.stderr
    assert "migrate approve --env rehearsal --phase pilot" in void.stderr

    # Back as it was approved: the saved plan applies, approved.
    stack.write_text(stack.read_text().replace("disk_size_gib: 120", "disk_size_gib: 100"))
    done = cli.run(applied_project, "apply", "--yes", str(saved))
    assert done.returncode == 0, done.stderr
    assert _state(applied_project, "rehearsal", "pilot")["status"] == "verified"
