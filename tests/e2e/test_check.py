"""`migrate check`: drift and health of the verified phases, for a scheduled pipeline.

Read only: whatever it finds, the state files and the sandbox's own record stay byte for
byte as they were, and nothing is rolled back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from _projects import one_error_line

CHECKPOINT = Path(".phasegate/sandbox/sandbox/checkpoint.json")
PHASES = ("pilot", "data_layer", "compute", "cutover")


def _state(project: Path, phase: str) -> dict[str, Any]:
    return yaml.safe_load((project / "state" / "sandbox" / f"{phase}.yaml").read_text())


def _records(project: Path) -> dict[str, bytes]:
    """The state files, the sandbox checkpoint and the cloud snapshot it names."""
    found = {
        str(p.relative_to(project)): p.read_bytes()
        for p in (project / "state").rglob("*")
        if p.is_file()
    }
    checkpoint = project / CHECKPOINT
    found[str(CHECKPOINT)] = checkpoint.read_bytes()
    cloud = json.loads(checkpoint.read_text())["cloud"]
    found[cloud] = (checkpoint.parent / cloud).read_bytes()
    return found


def _checked(cli: Any, project: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """``migrate check --output json``: its exit code and its document, once it is shown
    to have the shape ``migrate schema check`` promises."""
    run = cli.run(project, "check", "--output", "json", *args)
    assert run.returncode in (0, 2), run.stdout + run.stderr
    report = json.loads(run.stdout)
    jsonschema.validate(report, json.loads(cli.run(project, "schema", "check").stdout))
    return run.returncode, report


def test_a_healthy_environment_exits_0_and_writes_nothing(cli: Any, applied_project: Path) -> None:
    before = _records(applied_project)

    run = cli.run(applied_project, "check")

    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.rstrip().endswith("Check (sandbox): healthy (4 phase(s) checked)."), (
        run.stdout
    )
    assert "✓ check artifacts_private (s3_bucket): pass" in run.stdout
    assert "✗" not in run.stdout and "drift" not in run.stdout
    code, report = _checked(cli, applied_project)
    assert code == 0
    assert report["healthy"] is True
    assert [(p["phase"], p["outcome"]) for p in report["phases"]] == [
        (phase, "healthy") for phase in PHASES
    ]
    assert _records(applied_project) == before


def test_a_resource_deleted_behind_phasegates_back_is_drift_named_and_kept_on_record(
    cli: Any, applied_project: Path, aws: Any
) -> None:
    project = applied_project
    bucket = _state(project, "pilot")["outputs"]["artifacts_bucket"]
    with cli.serve(project) as served:
        aws("s3", served.url).delete_bucket(Bucket=bucket)
    before = _records(project)

    run = cli.run(project, "check")

    assert run.returncode == 2, run.stdout + run.stderr
    assert "drift aws:s3/bucket:Bucket artifacts: gone from the cloud" in run.stdout, run.stdout
    assert "✗ check artifacts_private (s3_bucket): fail" in run.stdout
    last = run.stdout.rstrip().splitlines()[-1]
    assert last == "Check (sandbox): 1 phase(s) drifted or failing: pilot drifted and failing."
    assert _records(project) == before  # no state file, no sandbox record written

    # Looked at again, it is still there to find: the check did not forget it, as a
    # refresh would (after which a plan diffs against a record without the bucket).
    code, report = _checked(cli, project, "--phase", "pilot")
    assert code == 2
    [pilot] = report["phases"]
    assert pilot["outcome"] == "drifted and failing"
    assert {"change": "delete", "type": "aws:s3/bucket:Bucket", "name": "artifacts"} in [
        {k: v for k, v in d.items() if k != "changed"} for d in pilot["drift"]
    ]
    assert _records(project) == before
    assert {_state(project, phase)["status"] for phase in PHASES} == {"verified"}

    # What check found, apply --refresh makes again; then the phase is healthy.
    repair = "migrate apply --env sandbox --phase pilot --refresh"
    assert f"`{repair}` makes again what is gone" in run.stdout
    repaired = cli.run(project, *repair.split()[1:], "--yes")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "'artifacts' is no longer in the cloud: planned again" in repaired.stderr
    assert "+ create  aws:s3/bucket:Bucket  artifacts" in repaired.stdout
    code, report = _checked(cli, project, "--phase", "pilot")
    assert code == 0, report

    # Not with a saved plan: it applies what it saw, which a refresh would change.
    saved = cli.run(project, "apply", "--yes", "--refresh", "pilot.plan.json")
    assert saved.returncode == 1, saved.stderr
    assert saved.stderr.startswith("error: --refresh: a saved plan applies what it saw")


def test_a_failing_check_exits_2_and_rolls_nothing_back(cli: Any, applied_project: Path) -> None:
    project = applied_project
    [alarm, *_] = _state(project, "cutover")["outputs"]["alarm_names"]
    assert cli.run(project, "sandbox", "alarm", alarm, "ALARM").returncode == 0
    before = _records(project)

    code, report = _checked(cli, project)

    assert code == 2
    assert report["healthy"] is False
    outcomes = {p["phase"]: p["outcome"] for p in report["phases"]}
    assert outcomes == {
        "pilot": "healthy",
        "data_layer": "healthy",
        "compute": "healthy",
        "cutover": "failing",
    }
    [cutover] = [p for p in report["phases"] if p["phase"] == "cutover"]
    assert cutover["drift"] == []
    failed = [c for c in cutover["checks"] if c["result"] == "fail"]
    assert [c["name"] for c in failed] == ["no_5xx_alarms"]
    assert f"{alarm} is in ALARM" in failed[0]["message"]
    assert _records(project) == before
    assert _state(project, "cutover")["status"] == "verified"


def test_only_verified_phases_are_checked(cli: Any, fresh_project: Path) -> None:
    run = cli.run(fresh_project, "check")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "sandbox-pilot (skipped: pending: nothing to check until it is verified)" in run.stdout
    assert run.stdout.rstrip().endswith("Check (sandbox): nothing to check: no phase is verified.")

    named = cli.run(fresh_project, "check", "--phase", "pilot")
    assert named.returncode == 1, named.stdout + named.stderr
    assert one_error_line(named.stderr) == (
        "error: phase pilot is pending in sandbox: nothing to check until it is verified"
    )
    assert not (fresh_project / "state" / "sandbox" / "pilot.yaml").exists()
