"""The GitHub workflow (.github/workflows/migrate.yml) and its local actions, checked
offline: against the GitHub schemas that check-jsonschema vendors, every `migrate` line
against the real CLI, the environments against migration.yaml, and the shape a user
counts on: one concurrency group per environment, the protected prod environment, state
committed back after every run that writes it."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from _projects import REPO

WORKFLOW = REPO / ".github" / "workflows" / "migrate.yml"
ACTIONS = sorted((REPO / ".github" / "actions").glob("*/action.yml"))
ENVIRONMENTS = ("sandbox", "staging", "prod")
CHANGING = ("apply", "promote", "check")
"""The commands that change an environment, or must not see one changing (check): one run
at a time."""
WRITING = ("apply", "promote")
"""The commands that write state files, which the job commits back."""


def _load(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), path
    if True in loaded:  # YAML 1.1 reads the key `on` as true; GitHub does not
        loaded["on"] = loaded.pop(True)
    return loaded


def _schema_check(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with the schema it ships: nothing is fetched (the session's
    network guard fails any test whose subprocess tries)."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# ------------------------------------------------------------------ the schemas


def test_the_workflow_is_valid_under_the_github_workflow_schema() -> None:
    done = _schema_check("vendor.github-workflows", WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("action", ACTIONS, ids=lambda p: p.parent.name)
def test_each_local_action_is_valid_under_the_github_action_schema(action: Path) -> None:
    done = _schema_check("vendor.github-actions", action)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_workflow_uses_only_actions_that_exist_here() -> None:
    used = {
        step["uses"]
        for job in _load(WORKFLOW)["jobs"].values()
        for step in job.get("steps", [])
        if str(step.get("uses", "")).startswith("./")
    }
    assert used, "the workflow uses none of its local actions"
    for local in used:
        assert (REPO / local / "action.yml").is_file(), f"{local} has no action.yml"


def _copy(tmp_path: Path, workflow: dict[str, Any]) -> Path:
    copy = tmp_path / "migrate.yml"
    copy.write_text(yaml.safe_dump(workflow, sort_keys=False), encoding="utf-8")
    return copy


def test_a_copy_as_the_broken_ones_are_written_is_valid(tmp_path: Path) -> None:
    """So each broken copy below is refused for its breakage, not for the copying."""
    done = _schema_check("vendor.github-workflows", _copy(tmp_path, _load(WORKFLOW)))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("breakage", "where"),
    [
        (
            lambda wf: wf["jobs"]["apply-staging"].pop("runs-on"),
            "$.jobs['apply-staging']: 'runs-on' is a required property",
        ),
        (lambda wf: wf["jobs"]["plan"].update(step=wf["jobs"]["plan"].pop("steps")), "$.jobs.plan"),
        (
            lambda wf: wf["jobs"]["check-prod"]["concurrency"].update(cancel=True),
            "$.jobs['check-prod'].concurrency",
        ),
        (lambda wf: wf["on"]["push"].update(branch=wf["on"]["push"].pop("branches")), "$.on"),
        (
            lambda wf: wf["on"]["schedule"][0].update(cronn=wf["on"]["schedule"][0].pop("cron")),
            "$.on",
        ),
    ],
    ids=[
        "runs-on missing",
        "steps misspelt",
        "unknown concurrency key",
        "push branches misspelt",
        "cron misspelt",
    ],
)
def test_the_schema_check_rejects_a_broken_copy(tmp_path: Path, breakage: Any, where: str) -> None:
    workflow = _load(WORKFLOW)
    breakage(workflow)
    done = _schema_check("vendor.github-workflows", _copy(tmp_path, workflow))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Schema validation errors were encountered" in done.stdout, done.stdout
    best = done.stdout.partition("Best Match:")[2]
    assert where in best, done.stdout


# ------------------------------------------------------------------ the migrate lines

_SAMPLES = {"ENVIRONMENT": "staging", "PHASE": "pilot"}
"""Values for the shell variables on the migrate lines (anything else: a word)."""


def _migrate_lines() -> list[tuple[str, str]]:
    """Every `migrate ...` command the workflow runs: its job, and the line as written
    with its continuation lines joined."""
    found = []
    for name, job in _load(WORKFLOW)["jobs"].items():
        for step in job.get("steps", []):
            script = str(step.get("run", "")).replace("\\\n", " ")
            for line in script.splitlines():
                if re.match(r"\s*migrate\s", line):
                    found.append((name, " ".join(line.split())))
    return found


def _argv(line: str) -> list[str]:
    """The arguments the shell would pass, with sample values for its variables and
    without its redirections."""
    line = re.sub(r"\$\{(\w+):\+([^}]*)\}", r"\2", line)  # ${PHASE:+--phase "$PHASE"}
    line = re.sub(r"\$\{?(\w+)\}?", lambda m: _SAMPLES.get(m[1], "value"), line)
    words = []
    for word in shlex.split(line)[1:]:
        if word.startswith((">", "2>")):
            break
        words.append(word)
    return words


def _parse(argv: list[str]) -> None:
    """As `migrate` parses them, without running anything: unknown commands, options or
    values fail here as they would on the runner."""
    from phasegate.cli import cli

    name, *rest = argv
    group = click.Context(cli, info_name="migrate")
    command = cli.get_command(group, name)
    if command is None:
        raise click.UsageError(f"No such command '{name}'.", group)
    with command.make_context(name, rest, parent=group):
        pass


def _line_id(job: str, line: str) -> str:
    return job if job != "promote-prod" else f"{job}/{line.split()[1]}"


def _cases() -> list[Any]:
    return [pytest.param(line, id=_line_id(job, line)) for job, line in _migrate_lines()]


def test_the_workflow_runs_the_commands_it_is_meant_to() -> None:
    commands = [(job, line.split()[1]) for job, line in _migrate_lines()]
    assert commands == [
        ("plan", "plan"),
        ("apply-sandbox", "apply"),
        ("apply-staging", "apply"),
        ("plan-prod", "plan"),
        ("promote-prod", "approve"),
        ("promote-prod", "promote"),
        ("check-prod", "check"),
    ]


@pytest.mark.parametrize("line", _cases())
def test_each_migrate_line_parses_with_the_real_cli(line: str) -> None:
    try:
        _parse(_argv(line))
    except click.UsageError as exc:
        raise AssertionError(f"{line}: {exc.format_message()}") from exc


def test_the_line_parser_sees_what_the_shell_would_pass() -> None:
    line = 'migrate approve --env prod ${PHASE:+--phase "$PHASE"} --reason "$REASON (by $who)"'
    assert _argv(line) == [
        "approve",
        "--env",
        "prod",
        "--phase",
        "pilot",
        "--reason",
        "value (by value)",
    ]
    assert _argv('migrate plan --env "$ENVIRONMENT" > plan/plan.md 2> >(tee x >&2)') == [
        "plan",
        "--env",
        "staging",
    ]
    with pytest.raises(click.UsageError, match="No such option '--nope'"):
        _parse(["apply", "--nope"])
    with pytest.raises(click.UsageError, match="'yaml' is not one of"):
        _parse(["status", "--output", "yaml"])


# ------------------------------------------------------------------ the shape a user counts on


def _environment_of(job: dict[str, Any]) -> str | None:
    """The environment a job's migrate lines name (--env E or --to E)."""
    named = set()
    for step in job.get("steps", []):
        named.update(re.findall(r"migrate \w+.*?--(?:env|to) (\w+)", str(step.get("run", ""))))
    assert len(named) <= 1, named
    return next(iter(named), None)


def _changing_jobs(commands: tuple[str, ...] = CHANGING) -> dict[str, dict[str, Any]]:
    return {
        name: job
        for name, job in _load(WORKFLOW)["jobs"].items()
        if any(
            re.search(rf"\bmigrate ({'|'.join(commands)})\b", str(s.get("run", "")))
            for s in job.get("steps", [])
        )
    }


def test_the_environments_are_the_migrations() -> None:
    migration = _load(REPO / "migration.yaml")
    by_name = {e["name"]: e for e in migration["environments"]}
    assert tuple(by_name) == ENVIRONMENTS
    plan = _load(WORKFLOW)["jobs"]["plan"]
    assert [m["env"] for m in plan["strategy"]["matrix"]["include"]] == list(ENVIRONMENTS)
    assert {_environment_of(job) for job in _changing_jobs().values()} == set(ENVIRONMENTS)
    # prod is promoted into from staging and wants an approval: the job records one.
    assert by_name["prod"]["promote_from"] == "staging"
    assert by_name["prod"].get("approval") == "required"


def test_every_job_that_changes_an_environment_waits_its_turn_in_that_environments_group() -> None:
    jobs = _changing_jobs()
    assert set(jobs) == {"apply-sandbox", "apply-staging", "promote-prod", "check-prod"}
    for name, job in jobs.items():
        assert job.get("concurrency") == {
            "group": f"migrate-{_environment_of(job)}",
            "cancel-in-progress": False,
        }, name
    # Plans stay out of those groups: a queued plan would replace a waiting apply.
    for name, job in _load(WORKFLOW)["jobs"].items():
        if name not in jobs and "concurrency" in job:
            assert not str(job["concurrency"]["group"]).startswith("migrate-"), name


def test_prod_is_promoted_in_the_protected_environment_after_recording_the_approval() -> None:
    jobs = _load(WORKFLOW)["jobs"]
    job = jobs["promote-prod"]
    assert job["environment"] == "prod"
    # What is approved is the plan the reviewers read: saved by plan-prod, before them.
    assert job["needs"] == "plan-prod" and "environment" not in jobs["plan-prod"]
    planned = " ".join(str(s.get("run", "")) for s in jobs["plan-prod"]["steps"])
    assert "--out plan/prod.plan.json" in planned
    runs = [str(s.get("run", "")) for s in job["steps"]]
    approve = next(i for i, r in enumerate(runs) if "migrate approve --plan" in r)
    promote = next(i for i, r in enumerate(runs) if "migrate promote --to prod" in r)
    assert "plan/prod.plan.json" in runs[approve]
    assert approve < promote
    # The dispatch inputs reach the shell as variables, never pasted into the script.
    assert not any("${{" in r for r in runs), "an expression inside a run script"
    assert "REASON" in job["steps"][approve]["env"]


def test_apply_goes_sandbox_then_staging_on_main_only() -> None:
    workflow = _load(WORKFLOW)
    assert workflow["on"]["push"] == {"branches": ["main"]}
    assert workflow["jobs"]["apply-staging"]["needs"] == "apply-sandbox"


def test_each_writing_job_commits_state_back_whatever_the_exit_code() -> None:
    jobs = _changing_jobs(WRITING)
    assert set(jobs) == {"apply-sandbox", "apply-staging", "promote-prod"}
    for name, job in jobs.items():
        steps = job["steps"]
        run = next(
            i
            for i, s in enumerate(steps)
            if re.search(rf"\bmigrate ({'|'.join(WRITING)})\b", str(s.get("run", "")))
        )
        assert "set +e" in steps[run]["run"], f"{name}: the exit code is kept for the end"
        commit = next(
            i for i, s in enumerate(steps) if s.get("uses") == "./.github/actions/commit-state"
        )
        assert run < commit < len(steps) - 1, name
        assert steps[commit]["if"].startswith("always()"), name
        assert "exit" in steps[-1]["run"], f"{name}: the last step fails with the exit code"
        assert job["permissions"].get("contents") == "write", name


def test_permissions_are_asked_per_job() -> None:
    workflow = _load(WORKFLOW)
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, name
        writes = {k for k, v in job["permissions"].items() if v == "write"}
        allowed = {"contents", "id-token", "pull-requests"}
        assert writes <= allowed, (name, writes)
        if job["permissions"].get("contents") == "write":
            assert name in _changing_jobs(WRITING), f"{name} may push but writes nothing"
