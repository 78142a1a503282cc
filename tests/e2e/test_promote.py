"""`migrate promote` rehearsed on the sandbox alone: a second sandbox environment,
``rehearsal``, promotes from ``sandbox``. It takes only what sandbox verified, at the
program in phases/, and, where it requires one, only a plan with a valid approval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from _projects import TESTS_ESTATE_LINE

PHASES = ("pilot", "data_layer", "compute", "cutover")


def _with_rehearsal(project: Path, approval: str = "none") -> None:
    """A second sandbox environment that promotes from the first, its stacks configured
    as the first's."""
    migration = project / "migration.yaml"
    rehearsal = (
        "\n  - name: rehearsal\n    engine: sandbox\n    promote_from: sandbox\n"
        f"    approval: {approval}\n{TESTS_ESTATE_LINE}"
    )
    text = migration.read_text()
    migration.write_text(text.replace("\n  - name: staging", rehearsal + "  - name: staging", 1))
    stacks = project / "stacks"
    for phase in PHASES:
        source = stacks / f"Pulumi.sandbox-{phase}.yaml"
        # Its own sandbox, so its own legacy bucket to copy from.
        config = source.read_text().replace(
            "phasegate-legacy-sandbox", "phasegate-legacy-rehearsal"
        )
        (stacks / f"Pulumi.rehearsal-{phase}.yaml").write_text(config)


def _status(project: Path, env: str, phase: str) -> str:
    """As the state file says; a phase never run has none yet."""
    path = project / "state" / env / f"{phase}.yaml"
    return str(yaml.safe_load(path.read_text())["status"]) if path.exists() else "pending"


def _last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


def test_promote_takes_what_the_source_verified_and_nothing_else(
    cli: Any, fresh_project: Path
) -> None:
    _with_rehearsal(fresh_project)
    assert cli.run(fresh_project, "apply", "--yes", "--phase", "pilot").returncode == 0

    # A phase the source has not verified: refused by name, nothing applied.
    refused = cli.run(fresh_project, "promote", "--to", "rehearsal", "--phase", "data_layer", "-y")
    assert refused.returncode == 5, refused.stderr
    assert "Traceback" not in refused.stderr
    line = _last_line(refused.stderr)
    assert "phase data_layer does not promote to rehearsal: it is pending in sandbox" in line
    assert "migrate apply --env sandbox --phase data_layer" in line
    assert _status(fresh_project, "rehearsal", "data_layer") == "pending"

    # Without --phase: what sandbox verified goes, the rest waits and is said to.
    first = cli.run(fresh_project, "promote", "--to", "rehearsal", "--yes")
    assert first.returncode == 0, first.stderr
    said = {line.split()[0]: line for line in first.stdout.splitlines() if line.startswith("  ")}
    assert "never verified ->" in said["pilot"]
    assert "waits: it is pending in sandbox" in said["data_layer"]
    assert _status(fresh_project, "rehearsal", "pilot") == "verified"
    assert _status(fresh_project, "rehearsal", "data_layer") == "pending"

    # As a program reads it: one document, valid by the schema phasegate ships.
    listed = cli.run(fresh_project, "promote", "--to", "rehearsal", "--yes", "--output", "json")
    assert listed.returncode == 5, listed.stderr  # nothing promotes, and some waits
    document = json.loads(listed.stdout)
    schema = json.loads(cli.run(fresh_project, "schema", "promote").stdout)
    jsonschema.validate(document, schema)
    assert document["promoted_from"] == "sandbox" and document["phases"] == []
    assert [(p["phase"], p["outcome"]) for p in document["promotions"]] == [
        ("pilot", "current"),
        ("data_layer", "waits"),
        ("compute", "waits"),
        ("cutover", "waits"),
    ]

    # Once sandbox verifies it, it promotes.
    assert cli.run(fresh_project, "apply", "--yes", "--phase", "data_layer").returncode == 0
    second = cli.run(fresh_project, "promote", "--to", "rehearsal", "--phase", "data_layer", "-y")
    assert second.returncode == 0, second.stderr
    assert _status(fresh_project, "rehearsal", "data_layer") == "verified"

    again = cli.run(fresh_project, "promote", "--to", "rehearsal", "--phase", "data_layer", "-y")
    assert again.returncode == 0, again.stderr
    assert "Nothing to promote" in again.stdout

    # A change to phases/ is not what sandbox verified: refused until sandbox verifies it.
    program = fresh_project / "phases" / "data_layer.py"
    program.write_text(program.read_text() + "\n# changed after the sandbox run\n")
    changed = cli.run(fresh_project, "promote", "--to", "rehearsal", "--phase", "data_layer", "-y")
    assert changed.returncode == 5, changed.stderr
    assert "phases/ changed since it was verified in sandbox" in _last_line(changed.stderr)
    assert cli.run(fresh_project, "apply", "--yes", "--phase", "data_layer").returncode == 0
    redone = cli.run(fresh_project, "promote", "--to", "rehearsal", "--phase", "data_layer", "-y")
    assert redone.returncode == 0, redone.stderr
    assert _status(fresh_project, "rehearsal", "data_layer") == "verified"


def test_promote_to_an_environment_that_requires_approval(cli: Any, applied_project: Path) -> None:
    _with_rehearsal(applied_project, approval="required")
    args = ("promote", "--to", "rehearsal", "--phase", "pilot", "--yes")

    missing = cli.run(applied_project, *args)
    assert missing.returncode == 5, missing.stderr
    assert "approval missing" in missing.stdout
    line = _last_line(missing.stderr)
    assert "pilot (plan " in line and "approval missing" in line
    assert "migrate approve --env rehearsal --phase pilot" in line
    assert _status(applied_project, "rehearsal", "pilot") == "pending"

    reason = "reviewed in pull request 42"
    approved = cli.run(
        applied_project, "approve", "--env", "rehearsal", "--phase", "pilot", "--reason", reason
    )
    assert approved.returncode == 0, approved.stderr
    status = json.loads(
        cli.run(applied_project, "status", "--env", "rehearsal", "--output", "json").stdout
    )
    approval = {p["phase"]: p["approval"] for p in status["phases"]}["pilot"]
    assert approval["status"] == "valid" and approval["reason"] == reason

    done = cli.run(applied_project, *args, "--output", "markdown")
    assert done.returncode == 0, done.stderr
    assert "### phasegate promote: rehearsal" in done.stdout
    assert "(approval valid)" in done.stdout
    assert _status(applied_project, "rehearsal", "pilot") == "verified"
    history = json.loads(
        cli.run(applied_project, "history", "--env", "rehearsal", "--output", "json").stdout
    )["history"]
    approve = [t for t in history if t["event"] == "approve"]
    assert len(approve) == 1 and reason in approve[0]["message"]

    # The next phase: approved, then its plan changes: the approval is void, and refused.
    data = ("--env", "rehearsal", "--phase", "data_layer")
    assert cli.run(applied_project, "approve", *data, "--reason", reason).returncode == 0
    stack = applied_project / "stacks" / "Pulumi.rehearsal-data_layer.yaml"
    stack.write_text(stack.read_text().replace("ia_after_days: 30", "ia_after_days: 45"))
    listed = cli.run(applied_project, "status", "--env", "rehearsal")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("data_layer"))
    assert "void" in row
    void = cli.run(applied_project, "promote", "--to", "rehearsal", "--phase", "data_layer", "-y")
    assert void.returncode == 5, void.stderr
    assert "approval void" in _last_line(void.stderr)
    assert _status(applied_project, "rehearsal", "data_layer") == "pending"


def test_promote_to_an_environment_that_promotes_from_none_names_the_field(
    cli: Any, fresh_project: Path
) -> None:
    result = cli.run(fresh_project, "promote", "--to", "sandbox", "--yes")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    line = _last_line(result.stderr)
    assert "migration.yaml: environments.sandbox.promote_from" in line


def test_a_phase_waits_for_a_dependency_not_as_the_source_verified_it(
    cli: Any, fresh_project: Path
) -> None:
    _with_rehearsal(fresh_project)
    both = ("--phase", "pilot"), ("--phase", "data_layer")
    for only in both:
        assert cli.run(fresh_project, "apply", "--yes", *only).returncode == 0
    assert cli.run(fresh_project, "promote", "--to", "rehearsal", "--yes").returncode == 0

    # Both change, and sandbox verifies both again: the new data_layer was verified on the
    # new pilot, so it does not promote alone onto the pilot rehearsal has.
    for phase in ("pilot", "data_layer"):
        program = fresh_project / "phases" / f"{phase}.py"
        program.write_text(program.read_text() + "\n# the next version\n")
    for only in both:
        assert cli.run(fresh_project, "apply", "--yes", *only).returncode == 0
    alone = cli.run(fresh_project, "promote", "--to", "rehearsal", "--phase", "data_layer", "-y")
    assert alone.returncode == 5, alone.stderr
    assert (
        "phase data_layer does not promote to rehearsal: waits for pilot, which is not in "
        "rehearsal as sandbox verified it" in _last_line(alone.stderr)
    )

    together = cli.run(fresh_project, "promote", "--to", "rehearsal", "--yes")
    assert together.returncode == 0, together.stderr
    said = {line.split()[0]: line for line in together.stdout.splitlines() if line[:2] == "  "}
    assert "program " in said["pilot"] and "program " in said["data_layer"]
    for phase in ("pilot", "data_layer"):
        state = yaml.safe_load((fresh_project / "state/rehearsal" / f"{phase}.yaml").read_text())
        there = yaml.safe_load((fresh_project / "state/sandbox" / f"{phase}.yaml").read_text())
        assert state["lkg"]["program"] == there["lkg"]["program"]


def test_a_stepped_cutover_promotes_one_step_at_a_time_up_to_the_sources(
    cli: Any, completed_project: Path
) -> None:
    _with_rehearsal(completed_project)

    def step() -> Any:
        return yaml.safe_load((completed_project / "state/rehearsal/cutover.yaml").read_text())[
            "step"
        ]

    first = cli.run(completed_project, "promote", "--to", "rehearsal", "--yes")
    assert first.returncode == 0, first.stderr
    assert step() == 0
    for expected in (1, 2):
        more = cli.run(completed_project, "promote", "--to", "rehearsal", "--yes")
        assert more.returncode == 0, more.stderr
        assert "cutover " in more.stdout and step() == expected
    done = cli.run(completed_project, "promote", "--to", "rehearsal", "--yes")
    assert done.returncode == 0, done.stderr
    assert "Nothing to promote" in done.stdout and step() == 2
