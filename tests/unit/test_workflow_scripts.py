"""The workflow's own scripts, run as the runner would run them, with `gh` and `migrate`
stood in for by recorders on PATH (`gh`'s --jq filters go through the real jq): the
pull request's one plan comment, created then edited in place, and the prod approval,
recorded only when a reviewer approved the run in the prod environment. And the setup
action's check of the environment, with the real phasegate."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from _projects import REPO

WORKFLOW = REPO / ".github" / "workflows" / "migrate.yml"
MARKER = "<!-- phasegate-plan -->"

needs_jq = pytest.mark.skipif(shutil.which("jq") is None, reason="needs jq (as gh --jq)")

_RECORDER = """\
import json, os, subprocess, sys
args = sys.argv[1:]
with open(os.environ["CALLS"], "a", encoding="utf-8") as calls:
    calls.write(json.dumps([os.path.basename(sys.argv[0]), *args]) + "\\n")
if "--jq" in args:
    answer = os.environ["GH_ANSWER"]
    expr = args[args.index("--jq") + 1]
    sys.exit(subprocess.run(["jq", "-r", expr, answer]).returncode)
sys.stdout.write(os.environ.get("STUB_STDOUT", ""))
sys.stderr.write(os.environ.get("STUB_STDERR", ""))
sys.exit(int(os.environ.get("STUB_EXIT", "0")))
"""


def _step(job: str, name: str) -> dict[str, Any]:
    jobs = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]
    [step] = [s for s in jobs[job]["steps"] if s.get("name") == name]
    return dict(step)


def _run(
    tmp_path: Path, job: str, name: str, env: dict[str, str], answer: Any = ()
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("gh", "migrate"):
        stub = bin_dir / tool
        stub.write_text(f"#!{sys.executable}\n{_RECORDER}")
        stub.chmod(0o755)
    (tmp_path / "answer.json").write_text(json.dumps(list(answer)))
    calls = tmp_path / "calls.jsonl"
    calls.write_text("")
    done = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", _step(job, name)["run"]],
        cwd=tmp_path,
        env={
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "CALLS": str(calls),
            "GH_ANSWER": str(tmp_path / "answer.json"),
            "GITHUB_REPOSITORY": "acme/platform",
            "GITHUB_RUN_ID": "42",
            "GITHUB_SERVER_URL": "https://github.example",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done, [json.loads(line) for line in calls.read_text().splitlines()]


# ------------------------------------------------------------------ exit codes


@pytest.mark.parametrize(("code", "passes"), [(0, True), (2, True), (1, False), (5, False)])
def test_a_plan_with_changes_is_not_a_failure_and_any_other_code_is(
    tmp_path: Path, code: int, passes: bool
) -> None:
    outputs = tmp_path / "github-output"
    summary = tmp_path / "summary.md"
    env = {
        "ENVIRONMENT": "staging",
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_STEP_SUMMARY": str(summary),
        "STUB_EXIT": str(code),
        "STUB_STDOUT": "### Plan (staging)\n",
        "STUB_STDERR": "why it stopped\n",
    }

    done, calls = _run(tmp_path, "plan", "migrate plan", env)

    assert done.returncode == 0, "the plan step keeps the code for the last step"
    assert calls == [
        ["migrate", "plan", "--env", "staging", "--output", "markdown", "--detailed-exitcode"]
    ]
    assert outputs.read_text() == f"code={code}\n"
    assert (tmp_path / "plan" / "exit-code").read_text() == f"{code}\n"
    assert (tmp_path / "plan" / "stderr.txt").read_text() == "why it stopped\n"
    assert summary.read_text() == "### Plan (staging)\n"
    judged, _ = _run(tmp_path, "plan", "Fail unless the plan ran", {"CODE": str(code)})
    assert judged.returncode == (0 if passes else code)


@pytest.mark.parametrize("code", [0, 2, 3, 5])
def test_an_apply_keeps_its_code_until_the_state_is_committed(tmp_path: Path, code: int) -> None:
    outputs = tmp_path / "github-output"
    summary = tmp_path / "summary.md"
    env = {
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_STEP_SUMMARY": str(summary),
        "STUB_EXIT": str(code),
        "STUB_STDOUT": "### Apply (staging)\n",
    }

    done, calls = _run(tmp_path, "apply-staging", "migrate apply", env)

    assert done.returncode == 0
    assert calls == [["migrate", "apply", "--env", "staging", "--yes", "--output", "markdown"]]
    assert outputs.read_text() == f"code={code}\n"
    assert summary.read_text() == "### Apply (staging)\n"
    judged, _ = _run(
        tmp_path, "apply-staging", "Fail unless the apply succeeded", {"CODE": str(code)}
    )
    assert judged.returncode == code


@pytest.mark.parametrize(("code", "says"), [(0, ""), (2, "found drift"), (1, "exited 1")])
def test_drift_fails_the_scheduled_check(tmp_path: Path, code: int, says: str) -> None:
    judged, _ = _run(
        tmp_path, "check-prod", "Fail on drift or a failing check", {"CODE": str(code)}
    )
    assert judged.returncode == code
    assert says in judged.stdout


# ------------------------------------------------------------------ the plan comment


def _plans(tmp_path: Path, results: dict[str, tuple[int, str, str]]) -> None:
    """What the plan jobs upload: each environment's exit code, markdown and stderr."""
    for env, (code, markdown, stderr) in results.items():
        where = tmp_path / "plans" / f"plan-{env}"
        where.mkdir(parents=True)
        (where / "exit-code").write_text(f"{code}\n")
        (where / "plan.md").write_text(markdown)
        (where / "stderr.txt").write_text(stderr)


COMMENT_ENV = {"PR": "7", "HEAD": "0123456789abcdef", "RUN_URL": "https://github.example/run"}


@needs_jq
def test_a_first_plan_comment_is_posted_with_every_environment(tmp_path: Path) -> None:
    _plans(
        tmp_path,
        {
            "sandbox": (0, "### Plan (sandbox)\nno changes\n", ""),
            "staging": (2, "### Plan (staging)\n1 to update\n", "progress\n"),
            "prod": (5, "", "error: staging-pilot is not verified in staging\n"),
        },
    )
    others = [{"id": 1, "user": {"login": "alice"}, "body": f"{MARKER} quoted by a person"}]

    done, calls = _run(tmp_path, "comment", "Post or update the plan comment", COMMENT_ENV, others)

    assert done.returncode == 0, done.stderr
    assert calls[-1][:4] == ["gh", "api", "--method", "POST"]
    assert calls[-1][4] == "repos/acme/platform/issues/7/comments"
    body = (tmp_path / "comment.md").read_text()
    assert body.startswith(f"{MARKER}\n## migrate plan at 0123456\n")
    assert "<details><summary><b>sandbox</b>: no changes</summary>" in body
    assert "<details open><summary><b>staging</b>: changes</summary>" in body
    assert "1 to update" in body
    assert "<summary><b>prod</b>: blocked by a gate (exit 5)</summary>" in body
    assert "error: staging-pilot is not verified in staging" in body
    assert "progress" not in body, "stderr is shown only for a plan that did not run"


@needs_jq
def test_the_bots_plan_comment_is_edited_in_place(tmp_path: Path) -> None:
    _plans(tmp_path, {env: (0, f"### Plan ({env})\n", "") for env in ("sandbox", "staging")})
    comments = [
        {"id": 11, "user": {"login": "github-actions[bot]"}, "body": "thanks for the PR"},
        {"id": 12, "user": {"login": "github-actions[bot]"}, "body": f"{MARKER}\nold plan"},
        {"id": 13, "user": {"login": "alice"}, "body": "looks good"},
    ]

    done, calls = _run(
        tmp_path, "comment", "Post or update the plan comment", COMMENT_ENV, comments
    )

    assert done.returncode == 0, done.stderr
    assert calls[-1][:5] == [
        "gh",
        "api",
        "--method",
        "PATCH",
        "repos/acme/platform/issues/comments/12",
    ]
    assert "<summary><b>prod</b>: did not run</summary>" in (tmp_path / "comment.md").read_text()


@needs_jq
def test_a_plan_too_long_for_a_comment_points_to_the_run(tmp_path: Path) -> None:
    huge = "".join(
        f"   + create  aws:s3/bucket:Bucket  bucket-{i:05}  {'x' * 200}\n" for i in range(400)
    )
    _plans(tmp_path, {env: (2, huge, "") for env in ("sandbox", "staging", "prod")})

    done, _ = _run(tmp_path, "comment", "Post or update the plan comment", COMMENT_ENV)

    assert done.returncode == 0, done.stderr
    body = (tmp_path / "comment.md").read_text()
    assert len(body.encode()) < 65536
    assert body.startswith(MARKER)
    assert "(https://github.example/run)" in body


# ------------------------------------------------------------------ the prod approval


def _review(login: str, state: str, env: str = "prod") -> dict[str, Any]:
    return {"state": state, "user": {"login": login}, "environments": [{"name": env}]}


@needs_jq
def test_the_reviewers_approval_of_the_saved_plan_is_recorded_with_the_reason(
    tmp_path: Path,
) -> None:
    reviews = [
        _review("bob", "approved"),
        _review("carol", "rejected"),
        _review("dave", "approved", env="staging"),
        _review("alice", "approved"),
        _review("bob", "approved"),
    ]
    env = {"GH_TOKEN": "t", "REASON": 'quarterly "GPU" bump; $(rm -rf /)'}

    done, calls = _run(tmp_path, "promote-prod", "migrate approve", env, reviews)

    assert done.returncode == 0, done.stderr
    approve = calls[-1]
    assert approve[:4] == ["migrate", "approve", "--plan", "plan/prod.plan.json"]
    assert approve[4] == "--reason"
    assert approve[5].startswith('quarterly "GPU" bump; $(rm -rf /) (approved in GitHub ')
    assert "by alice, bob, run https://github.example/acme/platform/actions/runs/42)" in approve[5]


@needs_jq
def test_no_approval_is_recorded_when_no_reviewer_approved_prod(tmp_path: Path) -> None:
    env = {"GH_TOKEN": "t", "PHASE": "", "REASON": "r"}
    reviews = [_review("dave", "approved", env="staging")]

    done, calls = _run(tmp_path, "promote-prod", "migrate approve", env, reviews)

    assert done.returncode == 5
    assert "no reviewer approved this run in the prod environment" in done.stdout
    assert [c[0] for c in calls] == ["gh"]


# ------------------------------------------------------------------ the setup action

SETUP = REPO / ".github" / "actions" / "setup-migrate" / "action.yml"


def _engine_of(project: Path, environment: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """The setup action's step that reads the environment's engine, run in ``project``
    with this interpreter (phasegate installed) as the runner's python."""
    steps = yaml.safe_load(SETUP.read_text(encoding="utf-8"))["runs"]["steps"]
    [step] = [s for s in steps if s.get("id") == "engine"]
    bin_dir = project.parent / "bin"
    bin_dir.mkdir(exist_ok=True)
    python = bin_dir / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    outputs = project.parent / "github-output"
    outputs.write_text("")
    done = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", step["run"]],
        cwd=project,
        env={
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "ENVIRONMENT": environment,
            "GITHUB_OUTPUT": str(outputs),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done, outputs.read_text()


def test_setup_names_the_sandbox_engine(fresh_project: Path) -> None:
    done, outputs = _engine_of(fresh_project, "sandbox")
    assert done.returncode == 0, done.stdout + done.stderr
    assert outputs == "engine=sandbox\n"


def test_setup_refuses_a_pulumi_environment_whose_stacks_would_die_with_the_runner(
    fresh_project: Path,
) -> None:
    done, outputs = _engine_of(fresh_project, "staging")
    assert done.returncode == 1
    assert done.stdout.startswith(
        "::error file=migration.yaml::environment staging: set `backend:`"
    )
    assert outputs == ""


def test_setup_names_the_pulumi_engine_with_a_shared_backend(fresh_project: Path) -> None:
    migration = fresh_project / "migration.yaml"
    migration.write_text(
        migration.read_text().replace(
            "    promote_from: sandbox\n",
            "    promote_from: sandbox\n    backend: s3://acme-state/phasegate?region=us-east-1\n",
        )
    )
    done, outputs = _engine_of(fresh_project, "staging")
    assert done.returncode == 0, done.stdout + done.stderr
    assert outputs == "engine=pulumi\n"


def test_setup_names_an_unknown_environment_in_one_line(fresh_project: Path) -> None:
    done, _ = _engine_of(fresh_project, "qa")
    assert done.returncode == 1
    assert done.stdout == (
        "::error file=migration.yaml::--env: unknown environment 'qa' "
        "(allowed: sandbox, staging, prod)\n"
    )
    assert "Traceback" not in done.stderr
