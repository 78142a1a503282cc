"""`migrate history`: every transition the phases' state files record, oldest first, as
a person reads it and as a pipeline parses it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from _projects import one_error_line


def _recorded(project: Path, phase: str) -> list[dict[str, Any]]:
    """The phase's history as its state file holds it, without the hash chain's links."""
    state = yaml.safe_load((project / "state" / "sandbox" / f"{phase}.yaml").read_text())
    return [{k: v for k, v in e.items() if k != "prev"} for e in state["history"]]


def test_history_lists_every_transition_of_every_phase_oldest_first(
    cli: Any, applied_project: Path
) -> None:
    run = cli.run(applied_project, "history", "--output", "json")
    schema = json.loads(cli.run(applied_project, "schema", "history").stdout)

    assert run.returncode == 0, run.stdout + run.stderr
    listed = json.loads(run.stdout)
    jsonschema.validate(listed, schema)  # the shape a pipeline may rely on
    assert listed["environment"] == "sandbox"
    entries = listed["history"]
    times = [e["at"] for e in entries]
    assert times == sorted(times)
    for phase in ("pilot", "data_layer", "compute", "cutover"):
        # Every key listed (null where the file leaves it out), so a pipeline reads one shape.
        assert all(e.keys() >= {"git_commit", "ci_run", "message"} for e in entries)
        mine = [
            {k: v for k, v in e.items() if k not in ("phase", "stack") and v is not None}
            for e in entries
        ]
        ours = [m for m, e in zip(mine, entries, strict=True) if e["phase"] == phase]
        assert ours == _recorded(applied_project, phase), phase
        assert {e["stack"] for e in entries if e["phase"] == phase} == {f"sandbox-{phase}"}
    assert entries[0]["phase"] == "pilot" and entries[0]["event"] == "apply"
    assert entries[-1]["to"] == "verified"


def test_history_of_one_phase_and_as_lines(cli: Any, applied_project: Path) -> None:
    as_json = cli.run(applied_project, "history", "--phase", "compute", "--output", "json")
    as_text = cli.run(applied_project, "history", "--phase", "compute")

    entries = json.loads(as_json.stdout)["history"]
    assert {e["phase"] for e in entries} == {"compute"}
    assert len(entries) == len(_recorded(applied_project, "compute"))
    lines = as_text.stdout.splitlines()
    assert lines[0] == f"sandbox: {len(entries)} transition(s)"
    for line, entry in zip(lines[1:], entries, strict=True):
        assert line.split()[:3] == [entry["at"], "compute", entry["event"]]
        assert f"{entry['from']} -> {entry['to']}" in line


def test_history_of_a_phase_the_migration_does_not_have_is_one_line(
    cli: Any, fresh_project: Path
) -> None:
    run = cli.run(fresh_project, "history", "--phase", "nope")
    assert run.returncode == 1
    assert one_error_line(run.stderr) == (
        "error: --phase: unknown phase 'nope' (allowed: pilot, data_layer, compute, cutover)"
    )


def test_history_of_a_fresh_environment_is_empty(cli: Any, fresh_project: Path) -> None:
    run = cli.run(fresh_project, "history", "--output", "json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"schema_version": 1, "environment": "sandbox", "history": []}


GITHUB = {
    "GITHUB_ACTOR": "octocat",
    "GITHUB_RUN_ID": "991",
    "GITHUB_REPOSITORY": "acme/platform",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REF": "refs/pull/42/merge",
}
"""What GitHub Actions sets for a pull request's run (the fake CI of this test)."""


def test_a_run_in_ci_is_recorded_with_its_actor_run_page_and_pull_request(
    cli: Any, fresh_project: Path
) -> None:
    applied = cli.run(fresh_project, "apply", "--yes", "--phase", "pilot", env=GITHUB)
    assert applied.returncode == 0, applied.stdout + applied.stderr

    listed = cli.run(fresh_project, "history", "--output", "json")
    lines = cli.run(fresh_project, "history").stdout.splitlines()

    entries = json.loads(listed.stdout)["history"]
    assert entries and {
        (e["actor"], e["ci_run"], e["ci_url"], e["pull_request"]) for e in entries
    } == {("octocat", "991", "https://github.com/acme/platform/actions/runs/991", "42")}
    assert all("octocat" in line and "(pull request 42)" in line for line in lines[1:])
