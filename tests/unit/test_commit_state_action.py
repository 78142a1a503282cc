"""The workflow's commit-state action (.github/actions/commit-state), its script run as
the runner would run it, against a real git remote in a temp dir: it commits state/ as
the bot with [skip ci], does nothing when nothing changed, and when another job pushed
first it rebases on that and pushes again."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from _projects import REPO

ACTION = REPO / ".github" / "actions" / "commit-state" / "action.yml"
BOT = "github-actions[bot]"


def _script() -> str:
    [step] = yaml.safe_load(ACTION.read_text(encoding="utf-8"))["runs"]["steps"]
    assert step["shell"] == "bash"
    return str(step["run"])


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "dev",
            "GIT_AUTHOR_EMAIL": "dev@example.com",
            "GIT_COMMITTER_NAME": "dev",
            "GIT_COMMITTER_EMAIL": "dev@example.com",
        },
    )
    return done.stdout.strip()


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A remote whose main has one state file per environment."""
    seed = tmp_path / "seed"
    seed.mkdir()
    _git(seed, "init", "--quiet", "--initial-branch=main")
    for env in ("sandbox", "staging"):
        (seed / "state" / env).mkdir(parents=True)
        (seed / "state" / env / "pilot.yaml").write_text(f"status: pending  # {env}\n")
    _git(seed, "add", "-A")
    _git(seed, "commit", "--quiet", "-m", "seed")
    remote = tmp_path / "origin.git"
    _git(tmp_path, "clone", "--quiet", "--bare", str(seed), str(remote))
    return remote


def _checkout(origin: Path, where: Path) -> Path:
    """As actions/checkout leaves it: a shallow clone with no git identity configured."""
    _git(origin.parent, "clone", "--quiet", "--depth=1", f"file://{origin}", str(where))
    return where


def _commit_state(checkout: Path, message: str) -> subprocess.CompletedProcess[str]:
    # No identity anywhere but what the script sets: HOME is the test's, git's global
    # and system config are not read.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GIT_") and key not in ("EMAIL",)
    }
    env.update(
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        MESSAGE=message,
        GITHUB_REF_NAME="main",
        GITHUB_SERVER_URL="https://github.example",
        GITHUB_REPOSITORY="acme/platform",
        GITHUB_RUN_ID="42",
    )
    return subprocess.run(
        ["bash", "-eo", "pipefail", "-c", _script()],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_commits_state_as_the_bot_and_skips_ci(origin: Path, tmp_path: Path) -> None:
    job = _checkout(origin, tmp_path / "job")
    (job / "state" / "sandbox" / "pilot.yaml").write_text("status: verified\n")
    (job / "state" / "lkg").mkdir()
    (job / "state" / "lkg" / "program-abc.json").write_text("{}\n")
    (job / "notes.txt").write_text("not state\n")

    done = _commit_state(job, "state(sandbox): migrate apply")

    assert done.returncode == 0, done.stderr
    log = _git(origin, "log", "-1", "--format=%an <%ae>|%cn|%s|%b", "main")
    author, committer, subject, body = log.split("|")
    assert author == f"{BOT} <41898282+{BOT}@users.noreply.github.com>"
    assert committer == BOT
    assert subject == "state(sandbox): migrate apply [skip ci]"
    assert "https://github.example/acme/platform/actions/runs/42" in body
    files = _git(origin, "show", "--name-only", "--format=", "main").splitlines()
    assert sorted(files) == ["state/lkg/program-abc.json", "state/sandbox/pilot.yaml"]


def test_nothing_changed_nothing_committed(origin: Path, tmp_path: Path) -> None:
    job = _checkout(origin, tmp_path / "job")
    before = _git(origin, "rev-parse", "main")

    done = _commit_state(job, "state(prod): migrate check")

    assert done.returncode == 0, done.stderr
    assert "state/ unchanged" in done.stdout
    assert _git(origin, "rev-parse", "main") == before


def test_a_push_that_lost_the_race_rebases_and_pushes_again(origin: Path, tmp_path: Path) -> None:
    sandbox_job = _checkout(origin, tmp_path / "sandbox-job")
    staging_job = _checkout(origin, tmp_path / "staging-job")
    # Each job writes its own environment's file; both keep the same content-addressed
    # snapshot under state/lkg/, which two jobs adding alike is no conflict.
    for job, env in ((sandbox_job, "sandbox"), (staging_job, "staging")):
        (job / "state" / env / "pilot.yaml").write_text("status: verified\n")
        (job / "state" / "lkg").mkdir()
        (job / "state" / "lkg" / "program-abc.json").write_text('{"same": true}\n')
    assert _commit_state(sandbox_job, "state(sandbox): migrate apply").returncode == 0

    done = _commit_state(staging_job, "state(staging): migrate apply")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "push refused (attempt 1): rebasing on origin/main" in done.stdout
    subjects = _git(origin, "log", "--format=%s", "main").splitlines()
    assert subjects == [
        "state(staging): migrate apply [skip ci]",
        "state(sandbox): migrate apply [skip ci]",
        "seed",
    ]
    assert _git(origin, "show", "main:state/sandbox/pilot.yaml") == "status: verified"
    assert _git(origin, "show", "main:state/staging/pilot.yaml") == "status: verified"
