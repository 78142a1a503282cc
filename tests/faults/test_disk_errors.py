"""A disk that fills up or a directory that cannot be written, through the real CLI: one
line naming the path that failed and what to do, the documented exit code, no traceback,
and nothing on disk lost or half written. A failure of any kind while rolling back ends
in ``rollback_failed`` (exit 4) with the recover hint; if even that cannot be written, the
stack stays ``rolling_back`` on disk, and ``migrate recover`` finishes it later.

Some tests fill a real filesystem (a small tmpfs) or make ``state/lkg`` immutable
(``chattr +i``); both need root and skip, saying why, where they cannot. The others fill
the disk at an exact moment with the ``full`` fault (``PHASEGATE_FAULTS``) and run
anywhere."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from phasegate import faults

COMPUTE = "stacks/Pulumi.sandbox-compute.yaml"


def _state(project: Path, phase: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (project / "state" / "sandbox" / f"{phase}.yaml").read_text()
    )
    return loaded


def _moves(state: dict[str, Any]) -> list[tuple[str, str]]:
    return [(h["from"], h["to"]) for h in state["history"]]


def _replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not in {path} exactly once"
    path.write_text(text.replace(old, new))


def _no_inference_node(project: Path) -> None:
    """A change whose check fails: no inference node, so the GPU check cannot pass."""
    _replace_once(project / COMPUTE, "    desired_size: 1\n", "    desired_size: 0\n")


def _one_error_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, f"exit {result.returncode}\n{result.stderr}"
    assert "Traceback" not in result.stderr + result.stdout
    # Progress of the resource operations comes first on stderr; the error is last.
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error")]
    assert errors == lines[-1:] and lines[-1].startswith("error: "), result.stderr
    return lines[-1]


def _intact(project: Path) -> None:
    """Nothing half written: every state file reads, and no temp file is left behind."""
    for path in (project / "state" / "sandbox").glob("*.yaml"):
        assert isinstance(yaml.safe_load(path.read_text()), dict), path
    leftovers = [p for p in project.rglob(".*.tmp")]
    assert not leftovers, leftovers


def _faults(*entries: str) -> dict[str, str]:
    return {faults.VARIABLE: ",".join(entries)}


# --- a disk that fills at an exact moment (the `full` fault), anywhere ------------------


def test_a_disk_full_as_the_rollback_starts_ends_in_rollback_failed_naming_the_path(
    cli: Any, applied_project: Path
) -> None:
    _no_inference_node(applied_project)

    result = cli.run(
        applied_project, "apply", "--yes", "--phase", "compute", env=_faults("rollback:1:full")
    )

    line = _one_error_line(result, 4)
    state_file = applied_project / "state" / "sandbox" / "compute.yaml"
    assert "check inference_gpus failed" in line
    assert "and the rollback failed: " in line and "No space left on device" in line
    # Not even rollback_failed could be written: the file that refused it is named, and
    # the stack is left rolling_back on disk for `migrate recover`.
    assert (
        f"rollback_failed could not be recorded either ({state_file}: cannot write: "
        "No space left on device), so the stack stays rolling_back"
    ) in line
    assert line.endswith(
        "(the stack is left rolling_back; fix the cause, then run `migrate recover`)"
    )
    assert _state(applied_project, "compute")["status"] == "rolling_back"
    _intact(applied_project)

    recovered = cli.run(applied_project, "recover")
    assert recovered.returncode == 0, recovered.stderr
    state = _state(applied_project, "compute")
    assert state["status"] == "rolled_back"
    assert _moves(state)[-3:] == [
        ("applying", "verifying"),
        ("verifying", "rolling_back"),
        ("rolling_back", "rolled_back"),
    ]


def test_a_failure_of_any_kind_while_rolling_back_ends_in_rollback_failed(
    cli: Any, applied_project: Path
) -> None:
    _no_inference_node(applied_project)

    result = cli.run(
        applied_project, "apply", "--yes", "--phase", "compute", env=_faults("rollback:1:fail")
    )

    line = _one_error_line(result, 4)
    assert "and the rollback failed: FaultInjected: injected fault at rollback #1" in line
    assert line.endswith(
        "(the stack is in rollback_failed; fix the cause, then run `migrate recover`)"
    )
    state = _state(applied_project, "compute")
    assert state["status"] == "rollback_failed"
    assert _moves(state)[-2:] == [
        ("verifying", "rolling_back"),
        ("rolling_back", "rollback_failed"),
    ]
    assert cli.run(applied_project, "recover").returncode == 0
    assert _state(applied_project, "compute")["status"] == "rolled_back"


def test_a_disk_full_before_the_rollback_can_be_recorded_leaves_the_stack_verifying(
    cli: Any, applied_project: Path
) -> None:
    _no_inference_node(applied_project)

    # compute has five checks: the disk fills just before the last one runs.
    result = cli.run(
        applied_project, "apply", "--yes", "--phase", "compute", env=_faults("check:5:full")
    )

    line = _one_error_line(result, 4)
    state_file = applied_project / "state" / "sandbox" / "compute.yaml"
    assert (
        f"and the rollback could not start: rolling_back could not be recorded ({state_file}: "
        "cannot write: No space left on device), so the stack stays verifying"
    ) in line
    assert line.endswith("(the stack is left verifying; fix the cause, then run `migrate recover`)")
    assert _state(applied_project, "compute")["status"] == "verifying"
    _intact(applied_project)

    recovered = cli.run(applied_project, "recover")
    assert recovered.returncode == 0, recovered.stderr
    assert _state(applied_project, "compute")["status"] == "rolled_back"


def test_a_disk_full_when_the_last_known_good_is_kept_says_how_to_finish(
    cli: Any, applied_project: Path
) -> None:
    _replace_once(applied_project / COMPUTE, "    desired_size: 1\n", "    desired_size: 2\n")

    result = cli.run(
        applied_project, "apply", "--yes", "--phase", "compute", env=_faults("check:5:full")
    )

    line = _one_error_line(result, 1)
    lkg = applied_project / "state" / "lkg"
    assert line.startswith(f"error: {lkg}/config-"), line
    assert line.endswith(
        ".json: cannot write: No space left on device (sandbox-compute stays verifying: free "
        "space on its filesystem, then run `migrate recover`)"
    ), line
    assert _state(applied_project, "compute")["status"] == "verifying"
    _intact(applied_project)

    recovered = cli.run(applied_project, "recover")
    assert recovered.returncode == 0, recovered.stderr
    state = _state(applied_project, "compute")
    assert state["status"] == "verified"
    assert (lkg / f"config-{state['lkg']['config'].split(':', 1)[1][:24]}.json").is_file()


# --- a real full filesystem (tmpfs) and a real read-only directory (chattr) ------------


@contextlib.contextmanager
def _tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(directory: Path, keep: int = 0) -> Path:
    """Fill the filesystem of ``directory`` but ``keep`` bytes."""
    filler = directory / "filler"
    stat = os.statvfs(directory)
    with filler.open("wb") as handle, contextlib.suppress(OSError):
        handle.write(b"\0" * max(stat.f_bavail * stat.f_frsize - keep, 0))
    return filler


@pytest.fixture
def on_tmpfs(applied_project: Path, tmp_path: Path) -> Iterator[Path]:
    """The applied project on a tmpfs of its own (8 MiB, about 8 times its size)."""
    with _tmpfs(tmp_path / "fs", "8m") as fs:
        yield Path(shutil.copytree(applied_project, fs / "project", symlinks=True))


def test_a_full_disk_names_the_file_it_cannot_write_and_changes_nothing(
    cli: Any, on_tmpfs: Path, snapshot: Any
) -> None:
    _replace_once(on_tmpfs / COMPUTE, "    desired_size: 1\n", "    desired_size: 2\n")
    _fill(on_tmpfs.parent)
    before = snapshot(on_tmpfs)

    line = _one_error_line(cli.run(on_tmpfs, "apply", "--yes"), 1)

    # The first file the run writes is the environment's lock.
    lock = on_tmpfs / ".phasegate" / "locks" / "sandbox.lock"
    assert line == (
        f"error: {lock}: cannot write: No space left on device (free space on its "
        "filesystem, then run the command again)"
    )
    assert snapshot(on_tmpfs) == before


_FILL_DISK = """\
    import os
    from pathlib import Path


    def fill(ctx, keep):
        \"\"\"Fill the project's filesystem but `keep` bytes, and fail.\"\"\"
        filler = Path(ctx.project_root) / "filler"
        stat = os.statvfs(ctx.project_root)
        with filler.open("wb") as handle:
            handle.write(b"\\0" * (stat.f_bavail * stat.f_frsize - keep))
        return False, "filled the disk"
"""


def test_out_of_space_during_a_rollback_ends_in_rollback_failed(
    cli: Any, on_tmpfs: Path, tmp_path: Path
) -> None:
    # A check that fills the disk as it fails, leaving room for a state file (4 KB) but
    # not for the sandbox's checkpoint (140 KB) that the rollback writes.
    helpers = tmp_path / "helpers"
    helpers.mkdir()
    (helpers / "phasegate_fill_disk.py").write_text(textwrap.dedent(_FILL_DISK))
    migration = on_tmpfs / "migration.yaml"
    data = yaml.safe_load(migration.read_text())
    compute = next(p for p in data["phases"] if p["name"] == "compute")
    compute["checks"].append(
        {
            "name": "fill_disk",
            "kind": "python",
            "params": {"function": "phasegate_fill_disk:fill", "args": {"keep": 64 * 1024}},
            "retries": 0,
            "interval": 0,
        }
    )
    migration.write_text(yaml.safe_dump(data, sort_keys=False))
    env = {"PYTHONPATH": os.pathsep.join([cli.env["PYTHONPATH"], str(helpers)])}

    result = cli.run(on_tmpfs, "apply", "--yes", "--phase", "compute", env=env)

    line = _one_error_line(result, 4)
    assert "check fill_disk failed: filled the disk" in line
    # The sandbox's cloud snapshot or checkpoint, whichever it wrote first.
    sandbox = on_tmpfs / ".phasegate" / "sandbox" / "sandbox"
    assert f"and the rollback failed: {sandbox}/" in line, line
    assert ": cannot write: No space left on device (the stack is in rollback_failed" in line
    assert line.endswith(
        "(the stack is in rollback_failed; fix the cause, then run `migrate recover`)"
    )
    assert _state(on_tmpfs, "compute")["status"] == "rollback_failed"
    _intact(on_tmpfs)

    (on_tmpfs / "filler").unlink()  # the person frees space
    recovered = cli.run(on_tmpfs, "recover", env=env)
    assert recovered.returncode == 0, recovered.stderr
    assert _state(on_tmpfs, "compute")["status"] == "rolled_back"


def test_a_read_only_lkg_directory_says_which_path_and_how_to_finish(
    cli: Any, applied_project: Path
) -> None:
    lkg = applied_project / "state" / "lkg"
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed (root ignores permission bits: chattr +i it is)")
    immutable = subprocess.run(["chattr", "+i", str(lkg)], capture_output=True, text=True)
    if immutable.returncode != 0:
        pytest.skip(f"cannot make {lkg} immutable here: {immutable.stderr.strip()}")
    try:
        _replace_once(applied_project / COMPUTE, "    desired_size: 1\n", "    desired_size: 2\n")
        before = sorted(p.name for p in lkg.iterdir())

        line = _one_error_line(cli.run(applied_project, "apply", "--yes"), 1)

        assert line.startswith(f"error: {lkg}/config-"), line
        assert line.endswith(
            ".json: cannot write: Operation not permitted (sandbox-compute stays verifying: "
            "make its directory writable (is it immutable? see lsattr), then run "
            "`migrate recover`)"
        ), line
        assert _state(applied_project, "compute")["status"] == "verifying"
        assert sorted(p.name for p in lkg.iterdir()) == before
    finally:
        subprocess.run(["chattr", "-i", str(lkg)], check=False)
    _intact(applied_project)

    recovered = cli.run(applied_project, "recover")
    assert recovered.returncode == 0, recovered.stderr
    assert _state(applied_project, "compute")["status"] == "verified"
