"""Bad input gets one clear `error:` line and exit 1, never a traceback, and nothing on
disk changes: each test runs on a private copy of an applied project (state files, the
sandbox cloud, the lock file) and compares every byte of it before and after."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Snapshot = Callable[[Path], dict[str, bytes]]


def _fails_cleanly(result: Any) -> str:
    """The one error line of a run that failed on bad input."""
    assert result.returncode == 1, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert lines[0].startswith("error: "), lines[0]
    assert result.stdout == ""
    return lines[0]


def _replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not in {path} exactly once"
    path.write_text(text.replace(old, new))


def test_unknown_environment(cli: Any, applied_project: Path, snapshot: Snapshot) -> None:
    before = snapshot(applied_project)
    line = _fails_cleanly(cli.run(applied_project, "apply", "--yes", "--env", "qa"))
    assert "--env" in line and "'qa'" in line
    assert "allowed: sandbox, staging, prod" in line
    assert snapshot(applied_project) == before


def test_unknown_phase(cli: Any, applied_project: Path, snapshot: Snapshot) -> None:
    before = snapshot(applied_project)
    line = _fails_cleanly(cli.run(applied_project, "apply", "--yes", "--phase", "gpu"))
    assert "--phase" in line and "'gpu'" in line
    assert "allowed: pilot, data_layer, compute, cutover" in line
    assert snapshot(applied_project) == before


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        pytest.param(
            "    depends_on: [compute, data_layer]",
            "    depends_om: [compute, data_layer]",
            "depends_om",
            id="depends_on",
        ),
        pytest.param("    program: compute\n", "    progam: compute\n", "progam", id="program"),
    ],
)
def test_misspelled_key_in_migration_yaml(
    cli: Any, applied_project: Path, snapshot: Snapshot, old: str, new: str, key: str
) -> None:
    _replace_once(applied_project / "migration.yaml", old, new)
    before = snapshot(applied_project)
    line = _fails_cleanly(cli.run(applied_project, "plan"))
    assert "migration.yaml:" in line
    assert f"'{key}'" in line
    assert "allowed:" in line
    assert snapshot(applied_project) == before


def test_state_file_with_invalid_yaml(cli: Any, applied_project: Path, snapshot: Snapshot) -> None:
    state_file = applied_project / "state" / "sandbox" / "compute.yaml"
    state_file.write_bytes(state_file.read_bytes() + b"outputs: {unclosed: [\n")
    damaged = state_file.read_bytes()
    before = snapshot(applied_project)
    line = _fails_cleanly(cli.run(applied_project, "apply", "--yes"))
    assert str(state_file) in line
    assert "invalid YAML" in line
    assert state_file.read_bytes() == damaged
    assert snapshot(applied_project) == before


def test_state_file_of_an_unknown_schema_version(
    cli: Any, applied_project: Path, snapshot: Snapshot
) -> None:
    state_file = applied_project / "state" / "sandbox" / "pilot.yaml"
    _replace_once(state_file, "schema_version: 1\n", "schema_version: 9\n")
    before = snapshot(applied_project)
    line = _fails_cleanly(cli.run(applied_project, "plan"))
    assert str(state_file) in line and "schema_version 9" in line
    assert snapshot(applied_project) == before


def test_bad_flag(cli: Any, applied_project: Path, snapshot: Snapshot) -> None:
    before = snapshot(applied_project)
    line = _fails_cleanly(cli.run(applied_project, "plan", "--bogus"))
    assert "--bogus" in line
    assert snapshot(applied_project) == before


def test_apply_without_yes_and_without_a_terminal(
    cli: Any, applied_project: Path, snapshot: Snapshot
) -> None:
    before = snapshot(applied_project)
    line = _fails_cleanly(cli.run(applied_project, "apply"))
    assert "--yes" in line
    assert snapshot(applied_project) == before


def test_debug_shows_the_traceback(cli: Any, applied_project: Path, snapshot: Snapshot) -> None:
    before = snapshot(applied_project)
    result = cli.run(applied_project, "--debug", "plan", "--env", "qa")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "InputError" in result.stderr and "unknown environment 'qa'" in result.stderr
    assert snapshot(applied_project) == before
