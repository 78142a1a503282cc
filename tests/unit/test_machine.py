"""The phase lifecycle (DESIGN §3), one machine per stack.

The expected transitions are written out here from the design, not imported from the
machine, so a changed table in ``machine.py`` fails these tests.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phasegate.errors import GateBlocked
from phasegate.machine import INTERRUPTED, PhaseLifecycle, RunContext
from phasegate.state import STATUSES, PhaseState, StateStore

STATES = (
    "pending",
    "planned",
    "applying",
    "verifying",
    "verified",
    "rolling_back",
    "rolled_back",
    "rollback_failed",
)
EVENTS = ("apply", "ok", "pass", "fail", "error", "reset")

EXPECTED: dict[tuple[str, str], str] = {
    # plan is read-only: no event. apply (guarded) from every state a run ends in, and
    # from planned, which earlier versions' plan wrote.
    ("pending", "apply"): "applying",
    ("planned", "apply"): "applying",
    ("verified", "apply"): "applying",
    ("rolled_back", "apply"): "applying",
    ("applying", "ok"): "verifying",
    ("verifying", "pass"): "verified",
    ("applying", "fail"): "rolling_back",
    ("verifying", "fail"): "rolling_back",
    ("rolling_back", "ok"): "rolled_back",
    ("rolling_back", "error"): "rollback_failed",
    # `migrate sandbox reset` empties the cloud: every stack goes back to pending
    **{(state, "reset"): "pending" for state in STATES},
}
REFUSED = [(s, e) for s in STATES for e in EVENTS if (s, e) not in EXPECTED]

CLOCK = "2026-03-04T05:06:07Z"


def _context(**changes: object) -> RunContext:
    context = RunContext(
        command="migrate apply --yes",
        actor="alice@laptop",
        git_commit="0123456789ab",
        ci_run="77",
        clock=lambda: CLOCK,
    )
    for name, value in changes.items():
        setattr(context, name, value)
    return context


def _lifecycle(
    root: Path,
    status: str,
    guards: dict[str, Callable[[], str | None]] | None = None,
    *,
    on_disk: bool = True,
) -> PhaseLifecycle:
    store = StateStore(root, "sandbox")
    state = PhaseState(stack="sandbox-compute", environment="sandbox", phase="compute")
    state.status = status
    if on_disk:
        store.write(state)
    return PhaseLifecycle(state, store, _context(), guards)


def _on_disk(lifecycle: PhaseLifecycle) -> PhaseState:
    return lifecycle.store.read(lifecycle.state.phase)


def test_the_states_are_the_designs() -> None:
    assert tuple(STATUSES) == STATES
    assert set(INTERRUPTED) == {"applying", "verifying", "rolling_back"}


@pytest.mark.parametrize(("status", "event"), sorted(EXPECTED))
def test_an_allowed_event_moves_writes_and_records_one_entry(
    tmp_path: Path, status: str, event: str
) -> None:
    lifecycle = _lifecycle(tmp_path, status)
    assert lifecycle.fire(event, message="because") is True
    dest = EXPECTED[(status, event)]
    assert lifecycle.status == dest
    assert lifecycle.blocked is None
    # Written before fire() returned, with exactly one new entry.
    saved = _on_disk(lifecycle)
    assert saved == lifecycle.state
    assert saved.status == dest
    assert len(saved.history) == 1
    entry = saved.history[0]
    assert (entry.event, entry.from_status, entry.to_status) == (event, status, dest)
    assert (entry.at, entry.actor, entry.command) == (CLOCK, "alice@laptop", "migrate apply --yes")
    assert (entry.git_commit, entry.ci_run, entry.message) == ("0123456789ab", "77", "because")


@pytest.mark.parametrize(("status", "event"), REFUSED)
def test_a_refused_event_changes_nothing(tmp_path: Path, status: str, event: str) -> None:
    lifecycle = _lifecycle(tmp_path, status)
    path = lifecycle.store.path("compute")
    before = path.read_bytes(), path.stat().st_mtime_ns
    with pytest.raises(GateBlocked, match=f"is {status}: '{event}' is not allowed from there"):
        lifecycle.fire(event)
    assert lifecycle.status == status
    assert lifecycle.state.status == status
    assert lifecycle.state.history == []
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


@pytest.mark.parametrize(
    ("deps", "fresh", "blocked"),
    [
        ("depends on pilot, which is pending in sandbox", None, "depends on pilot"),
        (None, "the program changed since the plan", "the program changed"),
        ("depends on pilot, which is pending in sandbox", "stale", "depends on pilot"),
    ],
)
def test_a_guard_that_does_not_hold_blocks_apply_and_writes_nothing(
    tmp_path: Path, deps: str | None, fresh: str | None, blocked: str
) -> None:
    lifecycle = _lifecycle(
        tmp_path,
        "planned",
        {"dependencies_verified": lambda: deps, "plan_is_fresh": lambda: fresh},
    )
    path = lifecycle.store.path("compute")
    before = path.read_bytes(), path.stat().st_mtime_ns
    assert lifecycle.fire("apply") is False
    assert lifecycle.blocked is not None and lifecycle.blocked.startswith(blocked)
    assert lifecycle.status == "planned"
    assert lifecycle.state.history == []
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_a_blocked_apply_can_go_ahead_once_the_guards_hold(tmp_path: Path) -> None:
    reason: list[str | None] = ["depends on pilot, which is planned in sandbox"]
    lifecycle = _lifecycle(tmp_path, "planned", {"dependencies_verified": lambda: reason[0]})
    assert lifecycle.fire("apply") is False
    reason[0] = None
    assert lifecycle.fire("apply") is True
    assert lifecycle.blocked is None, "a successful fire clears the last block"
    assert lifecycle.status == "applying"
    assert [h.event for h in _on_disk(lifecycle).history] == ["apply"]


def test_guards_are_asked_only_for_apply(tmp_path: Path) -> None:
    asked: list[str] = []

    def guard() -> str | None:
        asked.append("asked")
        return "never"

    guards = {"dependencies_verified": guard, "plan_is_fresh": guard}
    lifecycle = _lifecycle(tmp_path, "applying", guards)
    for event in ("ok", "fail", "ok", "reset"):
        assert lifecycle.fire(event) is True
    assert asked == []


def test_plan_is_no_event_of_the_lifecycle(tmp_path: Path) -> None:
    lifecycle = _lifecycle(tmp_path, "verified")
    with pytest.raises(AttributeError):
        lifecycle.fire("plan")
    assert _on_disk(lifecycle).history == []


def test_the_first_transition_creates_the_state_file(tmp_path: Path) -> None:
    lifecycle = _lifecycle(tmp_path, "pending", on_disk=False)
    path = lifecycle.store.path("compute")
    assert not path.exists()
    lifecycle.fire("apply")
    assert path.exists()
    assert _on_disk(lifecycle).status == "applying"


def test_a_machine_resumes_from_the_status_on_disk(tmp_path: Path) -> None:
    lifecycle = _lifecycle(tmp_path, "pending")
    for event in ("apply", "ok"):
        lifecycle.fire(event)
    resumed = PhaseLifecycle(_on_disk(lifecycle), lifecycle.store, _context())
    assert resumed.status == "verifying"
    resumed.fire("fail", message="check gpu-nodes failed")
    resumed.fire("ok")
    saved = _on_disk(resumed)
    assert saved.status == "rolled_back"
    assert [(h.event, h.to_status) for h in saved.history] == [
        ("apply", "applying"),
        ("ok", "verifying"),
        ("fail", "rolling_back"),
        ("ok", "rolled_back"),
    ]
    assert saved.history[2].message == "check gpu-nodes failed"


_steps = st.lists(
    st.tuples(st.sampled_from(EVENTS), st.booleans(), st.booleans()), min_size=1, max_size=14
)


@settings(max_examples=60)
@given(start=st.sampled_from(STATES), steps=_steps)
def test_any_sequence_keeps_history_append_only_and_status_consistent(
    start: str, steps: list[tuple[str, bool, bool]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        holds = {"deps": True, "fresh": True}
        guards = {
            "dependencies_verified": lambda: None if holds["deps"] else "deps not verified",
            "plan_is_fresh": lambda: None if holds["fresh"] else "stale plan",
        }
        lifecycle = _lifecycle(Path(tmp), start, guards)
        status = start
        for event, deps_hold, fresh_holds in steps:
            holds.update(deps=deps_hold, fresh=fresh_holds)
            before = list(lifecycle.state.history)
            expected = EXPECTED.get((status, event))
            if expected is None:
                with pytest.raises(GateBlocked):
                    lifecycle.fire(event)
                assert lifecycle.state.history == before
            elif event == "apply" and not (deps_hold and fresh_holds):
                assert lifecycle.fire(event) is False
                assert lifecycle.blocked in ("deps not verified", "stale plan")
                assert lifecycle.state.history == before
            else:
                assert lifecycle.fire(event) is True
                status = expected
                history = lifecycle.state.history
                assert history[: len(before)] == before, "history is append-only"
                assert len(history) == len(before) + 1
                assert (history[-1].from_status, history[-1].to_status) == (
                    before[-1].to_status if before else start,
                    status,
                )
            assert lifecycle.status == status == lifecycle.state.status
            saved = _on_disk(lifecycle)
            assert saved == lifecycle.state, "the file on disk is what the machine holds"
            if saved.history:
                assert saved.history[-1].to_status == saved.status


# --- who ran it -----------------------------------------------------------------------


def test_run_context_takes_actor_and_run_id_from_ci(tmp_path: Path) -> None:
    context = RunContext.detect(
        tmp_path,
        "migrate apply --yes",
        environ={"GITHUB_ACTOR": "octocat", "GITHUB_RUN_ID": "991"},
    )
    assert (context.actor, context.ci_run, context.command) == (
        "octocat",
        "991",
        "migrate apply --yes",
    )


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {
                "GITHUB_ACTOR": "octocat",
                "GITHUB_RUN_ID": "991",
                "GITHUB_REPOSITORY": "acme/platform",
                "GITHUB_SERVER_URL": "https://github.example.com",
                "GITHUB_REF": "refs/pull/42/merge",
                "GITHUB_SHA": "f00dfeed",
            },
            (
                "octocat",
                "991",
                "https://github.example.com/acme/platform/actions/runs/991",
                "42",
                "f00dfeed",
            ),
        ),
        (
            {
                "GITLAB_USER_LOGIN": "ada",
                "CI_PIPELINE_ID": "7",
                "CI_PIPELINE_URL": "https://gitlab.example.com/acme/platform/-/pipelines/7",
                "CI_MERGE_REQUEST_IID": "12",
                "CI_COMMIT_SHA": "c0ffee",
            },
            ("ada", "7", "https://gitlab.example.com/acme/platform/-/pipelines/7", "12", "c0ffee"),
        ),
        (
            {
                "GITHUB_ACTOR": "octocat",
                "GITHUB_RUN_ID": "5",
                "GITHUB_REPOSITORY": "acme/platform",
                "GITHUB_REF": "refs/heads/main",
            },
            ("octocat", "5", "https://github.com/acme/platform/actions/runs/5", None, None),
        ),
        (
            {
                "BUILDKITE_BUILD_CREATOR": "kim",
                "BUILDKITE_BUILD_ID": "b-1",
                "BUILDKITE_BUILD_URL": "https://buildkite.com/acme/platform/builds/3",
                "BUILDKITE_PULL_REQUEST": "false",
            },
            ("kim", "b-1", "https://buildkite.com/acme/platform/builds/3", None, None),
        ),
    ],
    ids=["github-pull-request", "gitlab-merge-request", "github-push", "buildkite-branch"],
)
def test_history_entries_carry_the_ci_run_its_page_and_pull_request(
    tmp_path: Path, environ: dict[str, str], expected: tuple[str | None, ...]
) -> None:
    context = RunContext.detect(tmp_path, "migrate apply --yes", environ=environ)
    entry = context.entry("apply", "pending", "applying", None)
    assert (
        entry.actor,
        entry.ci_run,
        entry.ci_url,
        entry.pull_request,
        entry.git_commit,
    ) == expected


def test_run_context_without_ci_is_user_at_host(tmp_path: Path) -> None:
    context = RunContext.detect(tmp_path, "migrate plan", environ={})
    assert "@" in context.actor
    assert context.ci_run is None


def test_run_context_records_the_projects_git_commit(tmp_path: Path) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "migration.yaml").write_text("schema_version: 1\n")
    subprocess.run([*git, "add", "migration.yaml"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "--short=12", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert RunContext.detect(tmp_path, "migrate plan", environ={}).git_commit == head
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / ".git").write_text("not a repository\n")
    assert RunContext.detect(outside, "migrate plan", environ={}).git_commit is None
