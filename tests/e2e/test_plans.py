"""`migrate plan` is read-only, and a saved plan (`plan --out FILE`, `apply FILE`) is
applied exactly or refused: what a team running plans on every pull request relies on."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from _projects import copy_project

COMPUTE = Path("stacks") / "Pulumi.sandbox-compute.yaml"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"


def _git(project: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(project), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def _committed(project: Path) -> Path:
    """The project as a team keeps it: in git, state files included, .phasegate/ ignored."""
    (project / ".gitignore").write_text(".phasegate/\n")
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "applied")
    return project


def _edit(project: Path, old: str, new: str, path: Path = COMPUTE) -> None:
    text = (project / path).read_text()
    assert text.count(old) >= 1, f"{old!r} not in {path}"
    (project / path).write_text(text.replace(old, new, 1))


def _state(project: Path, phase: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (project / "state" / "sandbox" / f"{phase}.yaml").read_text()
    )
    return loaded


def test_no_plan_changes_a_file_people_commit(
    cli: Any, applied_project: Path, tmp_path: Path
) -> None:
    project = _committed(applied_project)
    _edit(project, "desired_size: 1", "desired_size: 2")  # a change for the plans to find
    _git(project, "commit", "-q", "-am", "two inference nodes")
    out = tmp_path / "saved.json"  # a saved plan goes where it is asked to, outside the tree
    variants = [
        (("plan",), 0),
        (("plan", "--output", "json"), 0),
        (("plan", "--detailed-exitcode"), 2),
        (("plan", "--env", "sandbox", "--phase", "compute"), 0),
        (("plan", "--phase", "cutover", "--output", "json", "--detailed-exitcode"), 2),
        (("plan", "--out", str(out)), 0),
    ]
    for args, code in variants:
        result = cli.run(project, *args)
        assert result.returncode == code, f"{args}: {result.stderr}"
        assert _git(project, "status", "--porcelain") == "", f"{args} changed the tree"
    assert json.loads(out.read_text())["format"] == "phasegate-plan"

    # A plan of a change that is then dropped leaves no trace either: compute stays
    # verified, and the phase after it applies as before.
    _git(project, "revert", "--no-edit", "HEAD")
    status = json.loads(cli.run(project, "status", "--output", "json").stdout)
    assert [p["status"] for p in status["phases"]][:3] == ["verified"] * 3
    cutover = cli.run(project, "apply", "--yes", "--phase", "cutover")
    assert cutover.returncode == 0, cutover.stderr
    assert _state(project, "compute")["history"][-1]["event"] == "pass"


def test_a_saved_plan_is_applied_exactly(cli: Any, applied_project: Path, tmp_path: Path) -> None:
    _edit(applied_project, "desired_size: 1", "desired_size: 2")
    saved = tmp_path / "compute.plan.json"
    planned = cli.run(applied_project, "plan", "--phase", "compute", "--out", str(saved))
    assert planned.returncode == 0, planned.stderr
    [entry] = json.loads(saved.read_text())["phases"]
    assert entry["stack"] == "sandbox-compute"
    assert entry["resources"] == [
        {"op": "update", "type": NODE_GROUP, "name": "gpu-inference", "changed": ["scalingConfig"]}
    ]
    assert {g["gate"]: g["ok"] for g in entry["gates"]} == {"dependencies": True, "policy": True}
    history = len(_state(applied_project, "compute")["history"])

    applied = cli.run(applied_project, "apply", "--yes", "--output", "json", str(saved))

    assert applied.returncode == 0, applied.stderr
    [report] = json.loads(applied.stdout)["phases"]
    assert report["outcome"] == "applied"
    assert {op: n for op, n in report["applied"].items() if n} == {"update": 1}
    done = [
        {k: r[k] for k in ("op", "type", "name", "changed")}
        for r in report["resources"]
        if r["op"] != "same"
    ]
    assert done == entry["resources"]
    state = _state(applied_project, "compute")
    assert state["status"] == "verified"
    assert state["fingerprint"] == entry["fingerprint"]
    assert [h["event"] for h in state["history"][history:]] == ["apply", "ok", "pass"]

    # Applied once, the same plan is stale: the stack moved on since it was made.
    again = cli.run(applied_project, "apply", "--yes", str(saved))
    assert again.returncode == 5, again.stderr
    assert "sandbox-compute: the saved plan" in again.stderr
    assert "has been applied or rolled back since" in again.stderr


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (
            (COMPUTE, "max_size: 2", "max_size: 3"),
            "its stack config (stacks/Pulumi.sandbox-compute.yaml)",
        ),
        ((Path("phases") / "compute.py", "\n", "\n# reviewed later\n"), "its program (phases/)"),
        (
            (Path("policies") / "rules.py", "\n", "\n# a rule for later\n"),
            "the policy pack (policies/)",
        ),
    ],
)
def test_a_saved_plan_whose_inputs_changed_is_refused_by_name(
    cli: Any, applied_project: Path, tmp_path: Path, edit: tuple[Path, str, str], named: str
) -> None:
    _edit(applied_project, "desired_size: 1", "desired_size: 2")
    saved = tmp_path / "plan.json"
    assert cli.run(applied_project, "plan", "--out", str(saved)).returncode == 0
    path, old, new = edit
    _edit(applied_project, old, new, path)
    before = {p.name: p.read_bytes() for p in (applied_project / "state" / "sandbox").iterdir()}

    refused = cli.run(applied_project, "apply", "--yes", str(saved))

    assert refused.returncode == 5, refused.stderr
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("error: sandbox-")
    assert named in line
    assert "nothing was applied" in line
    assert "Traceback" not in refused.stderr
    after = {p.name: p.read_bytes() for p in (applied_project / "state" / "sandbox").iterdir()}
    assert after == before


def test_a_saved_plan_of_phases_that_build_on_each_other_applies(
    cli: Any, applied_before: Any, tmp_path: Path
) -> None:
    """The cutover was planned on the compute phase's planned outputs; once compute is
    applied it is planned again, on the real ones, and must change exactly what was saved."""
    project = copy_project(applied_before("compute"), tmp_path / "project")
    saved = tmp_path / "plan.json"
    assert cli.run(project, "plan", "--out", str(saved)).returncode == 0
    entries = [p for p in json.loads(saved.read_text())["phases"] if p["changes"]["create"]]
    assert [e["phase"] for e in entries] == ["compute", "cutover"]

    applied = cli.run(project, "apply", "--yes", "--output", "json", str(saved))

    assert applied.returncode == 0, applied.stderr
    reports = [r for r in json.loads(applied.stdout)["phases"] if r["outcome"] == "applied"]
    assert [r["status"] for r in reports] == ["verified"] * 2
    for report, entry in zip(reports, entries, strict=True):
        assert report["applied"]["create"] == entry["changes"]["create"] > 0


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ("not json at all", "not JSON"),
        ('{"format": "terraform"}', "format"),
        ('{"format": "phasegate-plan", "version": 1}', "environment"),
    ],
)
def test_a_file_that_is_no_saved_plan_is_refused_in_one_line(
    cli: Any, fresh_project: Path, tmp_path: Path, content: str, field: str
) -> None:
    path = tmp_path / "plan.json"
    path.write_text(content)
    result = cli.run(fresh_project, "apply", "--yes", str(path))
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"error: {path}")
    assert field in result.stderr
    assert not (fresh_project / "state").exists()
