"""State files and the environment lock (DESIGN §7).

Atomic, deterministic writes; damaged or unknown-version files refused by name and never
touched; secrets never shown; one run per environment, and a dead holder's lock taken over.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from phasegate.errors import ExitCode, LockHeld, StateFileError
from phasegate.state import (
    EnvironmentLock,
    HistoryEntry,
    LastKnownGood,
    PhaseState,
    PlanSummary,
    StateStore,
    redact,
)

TOP_LEVEL_ORDER = [
    "schema_version",
    "stack",
    "environment",
    "phase",
    "status",
    "fingerprint",
    "plan",
    "outputs",
    "lkg",
    "checks",
    "history",
    "integrity",
]


def _entry(event: str, src: str, dest: str, at: str = "2026-01-02T03:04:05Z") -> HistoryEntry:
    return HistoryEntry.model_validate(
        {
            "at": at,
            "event": event,
            "from": src,
            "to": dest,
            "actor": "ci@runner",
            "command": "migrate apply --yes",
            "git_commit": "0123456789ab",
            "ci_run": "42",
        }
    )


def _full_state() -> PhaseState:
    """A verified compute stack with every part of a state file filled in."""
    return PhaseState(
        stack="sandbox-compute",
        environment="sandbox",
        phase="compute",
        status="verified",
        fingerprint="sha256:" + "a" * 64,
        plan=PlanSummary(
            at="2026-01-02T03:04:05Z",
            fingerprint="sha256:" + "a" * 64,
            changes={"create": 1, "update": 0, "replace": 0, "delete": 0, "same": 5},
            resources=["create aws:eks/nodeGroup:NodeGroup gpu-inference"],
        ),
        outputs={"inference_dns": "x.elb.amazonaws.com", "node_groups": ["gpu-inference"]},
        lkg=LastKnownGood(
            fingerprint="sha256:" + "a" * 64,
            program="sha256:" + "b" * 64,
            config="sha256:" + "c" * 64,
            at="2026-01-02T03:04:06Z",
        ),
        history=[
            _entry("plan", "pending", "planned"),
            _entry("apply", "planned", "applying"),
            _entry("ok", "applying", "verifying"),
            _entry("pass", "verifying", "verified"),
        ],
    )


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "state", "sandbox")


# --- reading and writing --------------------------------------------------------------


def test_a_stack_never_written_reads_as_pending_and_is_not_created(store: StateStore) -> None:
    state = store.read("pilot")
    assert (state.stack, state.status, state.history) == ("sandbox-pilot", "pending", [])
    assert not store.path("pilot").exists()


def test_write_then_read_round_trips(store: StateStore) -> None:
    state = _full_state()
    store.write(state)
    assert store.path("compute") == store.root / "sandbox" / "compute.yaml"
    assert store.read("compute") == state


def test_write_leaves_no_temp_file_behind(store: StateStore) -> None:
    store.write(_full_state())
    store.write(_full_state())
    assert sorted(p.name for p in store.path("compute").parent.iterdir()) == ["compute.yaml"]


def test_a_failed_write_keeps_the_old_file_whole(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write(_full_state())
    before = store.path("compute").read_bytes()
    changed = _full_state()
    changed.status = "rolled_back"

    def crash(*_: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr("phasegate.atomic.os.replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        store.write(changed)
    assert store.path("compute").read_bytes() == before
    assert sorted(p.name for p in store.path("compute").parent.iterdir()) == ["compute.yaml"]


def test_output_is_deterministic_block_yaml_in_a_fixed_key_order(store: StateStore) -> None:
    store.write(_full_state())
    first = store.path("compute").read_bytes()
    store.write(_full_state())
    assert store.path("compute").read_bytes() == first
    text = first.decode()
    top = [line.split(":", 1)[0] for line in text.splitlines() if line and line[0].isalpha()]
    assert top == TOP_LEVEL_ORDER
    assert "{" not in text and "&" not in text, "block style, no flow mappings, no anchors"
    assert text == _full_state().to_yaml()


def test_equal_states_give_identical_files(store: StateStore) -> None:
    """Outputs come from the engine as maps whose order changes from run to run (the
    sandbox's protobuf Structs iterate in a per-process order): two equal states must
    still write the same bytes, or every apply is noise in the pull request."""
    one = _full_state()
    one.outputs = {"app_host": "app.corp.example.com", "weights": {"legacy": 90, "platform": 10}}
    other = _full_state()
    other.outputs = {"weights": {"platform": 10, "legacy": 90}, "app_host": "app.corp.example.com"}
    assert one == other
    assert one.to_yaml() == other.to_yaml()


def test_unknown_schema_version_is_refused_and_the_file_left_alone(store: StateStore) -> None:
    store.write(_full_state())
    path = store.path("compute")
    text = path.read_text().replace("schema_version: 2", "schema_version: 3")
    path.write_text(text)
    stat = path.stat()
    with pytest.raises(StateFileError) as caught:
        store.read("compute")
    message = str(caught.value)
    assert str(path) in message and "schema_version 3" in message
    assert caught.value.exit_code == ExitCode.ERROR
    assert path.read_text() == text
    assert path.stat().st_mtime_ns == stat.st_mtime_ns


def test_missing_schema_version_is_refused(store: StateStore) -> None:
    store.write(_full_state())
    path = store.path("compute")
    path.write_text(path.read_text().replace("schema_version: 2\n", ""))
    with pytest.raises(StateFileError, match="schema_version None"):
        store.read("compute")


def test_damaged_yaml_is_refused_naming_file_and_line(store: StateStore) -> None:
    store.write(_full_state())
    path = store.path("compute")
    damaged = path.read_bytes() + b"outputs: {unclosed\n"
    path.write_bytes(damaged)
    with pytest.raises(StateFileError) as caught:
        store.read("compute")
    assert re.match(rf"{re.escape(str(path))}:\d+: invalid YAML: ", str(caught.value))
    assert path.read_bytes() == damaged


def test_a_file_that_is_not_a_mapping_is_refused(store: StateStore) -> None:
    path = store.path("compute")
    path.parent.mkdir(parents=True)
    path.write_text("- just\n- a list\n")
    with pytest.raises(StateFileError, match="expected a mapping"):
        store.read("compute")


def test_an_unknown_status_names_line_field_and_allowed(store: StateStore) -> None:
    store.write(_full_state())
    path = store.path("compute")
    path.write_text(path.read_text().replace("status: verified", "status: done", 1))
    with pytest.raises(StateFileError) as caught:
        store.read("compute")
    message = str(caught.value)
    assert message.startswith(f"{path}:5: status: ")
    assert "'verified'" in message and "'rollback_failed'" in message


def test_a_state_file_of_another_stack_is_refused(store: StateStore) -> None:
    store.write(_full_state())
    store.path("pilot").write_bytes(store.path("compute").read_bytes())
    with pytest.raises(
        StateFileError, match="stack is 'sandbox-compute', expected 'sandbox-pilot'"
    ):
        store.read("pilot")


# --- redaction ------------------------------------------------------------------------


def test_redact_hides_secret_outputs_and_secret_sounding_names() -> None:
    values = {
        "vpc_id": "vpc-1",
        "admin_kubeconfig": "apiVersion: v1 ...",
        "db_password": "hunter2",
        "API_TOKEN": "t0k3n",
        "ClientSecret": "s3cr3t",
        "tls_private_key": "-----BEGIN",
        "registry_credentials": "user:pass",
        "cluster_endpoint": "https://x",
    }
    shown = redact(values, {"admin_kubeconfig"})
    assert shown == {
        "API_TOKEN": "[secret]",
        "ClientSecret": "[secret]",
        "admin_kubeconfig": "[secret]",
        "cluster_endpoint": "https://x",
        "db_password": "[secret]",
        "registry_credentials": "[secret]",
        "tls_private_key": "[secret]",
        "vpc_id": "vpc-1",
    }
    assert list(shown) == sorted(shown)
    assert values["db_password"] == "hunter2", "redact() must not change its argument"


def test_redact_hides_secret_sounding_names_inside_structured_outputs() -> None:
    """State files are committed: a password nested in a structured output must not
    reach git in clear any more than a top-level one."""
    shown = redact({"database": {"host": "db.internal", "password": "hunter2"}}, set())
    assert "hunter2" not in repr(shown)


@given(
    st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=12), max_size=8),
    st.data(),
)
def test_redact_never_shows_a_secret_value(values: dict[str, str], data: st.DataObject) -> None:
    secret = data.draw(st.sets(st.sampled_from(sorted(values)))) if values else set()
    shown = redact(values, secret)
    assert set(shown) == set(values)
    for key in secret:
        assert shown[key] == "[secret]"
    for key in set(values) - secret:
        assert shown[key] in (values[key], "[secret]")


# --- the environment lock -------------------------------------------------------------

_HOLDER = """
import sys, time
from pathlib import Path
from phasegate.state import EnvironmentLock
lock = EnvironmentLock(Path(sys.argv[1]), "sandbox", "migrate apply --yes")
lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process that holds the sandbox lock until it is killed."""
    locks = tmp_path / "locks"
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(locks)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stderr is not None
    try:
        ready, _, _ = select.select([child.stdout], [], [], 60)
        line = child.stdout.readline() if ready else ""
        assert line == "held\n", f"the lock holder did not start: {child.stderr.read()}"
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        child.stdout.close()
        child.stderr.close()


def test_a_second_lock_in_this_process_is_refused_naming_the_holder(tmp_path: Path) -> None:
    first = EnvironmentLock(tmp_path / "locks", "sandbox", "migrate apply --yes")
    with first.held():
        with pytest.raises(LockHeld) as caught:
            EnvironmentLock(tmp_path / "locks", "sandbox", "migrate plan").acquire()
        assert f"pid {os.getpid()} on {socket.gethostname()}" in str(caught.value)
    again = EnvironmentLock(tmp_path / "locks", "sandbox", "migrate plan")
    with again.held():
        assert again.took_over is None, "a lock released normally is not taken over"


def test_another_environment_has_its_own_lock(tmp_path: Path) -> None:
    sandbox = EnvironmentLock(tmp_path / "locks", "sandbox", "migrate apply")
    staging = EnvironmentLock(tmp_path / "locks", "staging", "migrate apply")
    with sandbox.held(), staging.held() as other:
        assert other.took_over is None


def test_a_lock_held_by_another_process_is_refused_naming_pid_and_host(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    lock = EnvironmentLock(tmp_path / "locks", "sandbox", "migrate plan")
    with pytest.raises(LockHeld) as caught:
        lock.acquire()
    message = str(caught.value)
    assert f"pid {holder.pid} on {socket.gethostname()}" in message
    assert "environment 'sandbox'" in message and "migrate apply --yes" in message
    assert caught.value.exit_code == ExitCode.BLOCKED


def test_the_lock_of_a_killed_holder_is_taken_over_and_reported(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    lock = EnvironmentLock(tmp_path / "locks", "sandbox", "migrate plan")
    with lock.held():
        assert lock.took_over is not None
        assert lock.took_over["pid"] == holder.pid
        assert lock.took_over["host"] == socket.gethostname()
        record = yaml.safe_load((tmp_path / "locks" / "sandbox.lock").read_text())
        assert record["pid"] == os.getpid()
    assert (tmp_path / "locks" / "sandbox.lock").read_text() == ""


def test_held_releases_on_error(tmp_path: Path) -> None:
    lock = EnvironmentLock(tmp_path / "locks", "sandbox", "migrate apply")
    with pytest.raises(RuntimeError), lock.held():
        raise RuntimeError("apply failed")
    with EnvironmentLock(tmp_path / "locks", "sandbox", "migrate apply").held() as again:
        assert again.took_over is None
