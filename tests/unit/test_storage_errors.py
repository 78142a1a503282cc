"""Writes the filesystem refuses (a full disk, a read-only directory): the error names the
path and what to do, the old file is intact, no temp file is left, and a transition that
cannot be written is not made."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from phasegate import atomic, faults
from phasegate.atomic import write_atomic
from phasegate.errors import StorageError, describe
from phasegate.machine import PhaseLifecycle, RunContext
from phasegate.state import EnvironmentLock, PhaseState, StateStore


def _raise(code: int) -> Any:
    def fail(*_: Any, **__: Any) -> Any:
        raise OSError(code, os.strerror(code))

    return fail


def test_a_full_disk_names_the_file_and_keeps_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state" / "pilot.yaml"
    write_atomic(path, b"old\n")
    monkeypatch.setattr(atomic.os, "fsync", _raise(errno.ENOSPC))

    with pytest.raises(StorageError) as caught:
        write_atomic(path, b"new\n" * 1000)

    assert str(caught.value) == (
        f"{path}: cannot write: No space left on device (free space on its filesystem, "
        "then run the command again)"
    )
    assert caught.value.path == path and caught.value.errno == errno.ENOSPC
    assert path.read_bytes() == b"old\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["pilot.yaml"]


def test_a_directory_that_cannot_be_written_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root ignores permission bits: the refusal is made here as the kernel would make it.
    monkeypatch.setattr(tempfile, "mkstemp", _raise(errno.EACCES))
    path = tmp_path / "lkg" / "config-0123.json"

    with pytest.raises(StorageError) as caught:
        write_atomic(path, b"{}")

    assert str(caught.value) == (
        f"{path}: cannot write: Permission denied (make its directory writable for this "
        "user, then run the command again)"
    )
    assert not path.exists()


def test_a_storage_error_names_the_stacks_it_leaves_mid_run(tmp_path: Path) -> None:
    error = StorageError(tmp_path / "x", OSError(errno.EROFS, os.strerror(errno.EROFS)))
    error.mid_run([("sandbox-compute", "verifying")])
    assert error.hint == (
        "sandbox-compute stays verifying: mount its filesystem read-write, then run "
        "`migrate recover`"
    )
    assert describe(error) == f"{tmp_path / 'x'}: cannot write: Read-only file system"


def test_describe_names_the_path_of_any_os_error() -> None:
    assert describe(PermissionError(errno.EACCES, "Permission denied", "/p/x")) == (
        "/p/x: Permission denied"
    )
    assert describe(OSError(errno.ENOSPC, "No space left on device")) == (
        "OSError: [Errno 28] No space left on device"
    )
    assert describe(KeyError("k")) == "KeyError: 'k'"


class _FullDisk(StateStore):
    def write(self, state: PhaseState) -> None:
        raise StorageError(self.path(state.phase), OSError(errno.ENOSPC, "No space left"))


def _lifecycle(tmp_path: Path, status: str) -> PhaseLifecycle:
    state = PhaseState(
        stack="sandbox-compute",
        environment="sandbox",
        phase="compute",
        status=status,
    )
    context = RunContext(command="migrate apply --yes", actor="alice@laptop")
    return PhaseLifecycle(state, _FullDisk(tmp_path, "sandbox"), context)


def test_a_transition_that_cannot_be_written_is_not_made(tmp_path: Path) -> None:
    lifecycle = _lifecycle(tmp_path, "rolling_back")

    with pytest.raises(StorageError):
        lifecycle.fire("ok")

    # Memory says what the file says: still rolling_back, no history entry, and the
    # rollback can still be recorded as failed from there.
    assert lifecycle.status == lifecycle.state.status == "rolling_back"
    assert lifecycle.state.history == []
    with pytest.raises(StorageError):
        lifecycle.fire("error")
    assert lifecycle.status == "rolling_back"


def test_a_lock_that_cannot_be_written_is_named_and_let_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = EnvironmentLock(tmp_path / "locks", "sandbox", "migrate apply")
    with monkeypatch.context() as patch:
        patch.setattr(os, "pwrite", _raise(errno.ENOSPC))
        with pytest.raises(StorageError) as caught:
            lock.acquire()
    assert str(caught.value).startswith(f"{lock.path}: cannot write: No space left on device")
    again = EnvironmentLock(tmp_path / "locks", "sandbox", "migrate apply")
    with again.held():
        pass  # not held by the failed attempt


@pytest.fixture
def disk_fills_at_the_second_pass(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(faults.VARIABLE, "somewhere:2:full")
    monkeypatch.setattr(faults, "_hits", faults.Counter())
    monkeypatch.setattr(faults, "_disk_full", faults.threading.Event())
    yield


@pytest.mark.usefixtures("disk_fills_at_the_second_pass")
def test_the_full_fault_fills_the_disk_from_its_point_on(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    faults.point("somewhere")
    write_atomic(directory / "a", b"1")
    faults.point("somewhere")
    with pytest.raises(StorageError, match="No space left on device"):
        write_atomic(directory / "b", b"2")
    assert sorted(p.name for p in directory.iterdir()) == ["a"]
