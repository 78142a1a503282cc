"""A damaged state file is refused, and nothing in the cloud changes: no rollback acts on
a state it cannot prove, and the destroy path needs two witnesses that agree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from phasegate.errors import StateFileError
from phasegate.state import StateStore

PILOT = Path("state/sandbox/pilot.yaml")
SANDBOX = Path(".phasegate/sandbox")


def _cloud(project: Path) -> dict[str, bytes]:
    """The emulated cloud and every stack's record of it, byte for byte."""
    root = project / SANDBOX
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "locks" not in p.parts
    }


def _pilot_resources(cli: Any, project: Path) -> list[dict[str, Any]]:
    """The pilot stack's resources in the emulated cloud, with their ids."""
    result = cli.run(project, "sandbox", "status", "--output", "json")
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)["stacks"]["sandbox-pilot"]
    return sorted(found, key=lambda r: (r["type"], r["name"]))


def _failing_pilot_check(project: Path) -> None:
    path = project / "migration.yaml"
    data = yaml.safe_load(path.read_text())
    for spec in data["phases"]:
        if spec["name"] == "pilot":
            spec["checks"].append(
                {
                    "name": "never",
                    "kind": "outputs",
                    "params": {"present": ["no_such_output"]},
                    "interval": 0,
                    "retries": 0,
                }
            )
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert "Traceback" not in stderr
    return lines[0]


def test_every_state_file_of_an_applied_project_cut_at_every_line_is_refused(
    applied_template: Any, tmp_path: Path
) -> None:
    """In process: the state files a real apply wrote, each cut at every line boundary."""
    source = applied_template.path / "state" / "sandbox"
    files = sorted(source.glob("*.yaml"))
    assert [f.stem for f in files] == sorted(["pilot", "data_layer", "compute", "cutover"])
    store = StateStore(tmp_path, "sandbox")
    cuts = 0
    for file in files:
        lines = file.read_text().splitlines(keepends=True)
        path = store.path(file.stem)
        path.parent.mkdir(parents=True, exist_ok=True)
        for cut in range(len(lines)):
            path.write_text("".join(lines[:cut]))
            with pytest.raises(StateFileError) as refused:
                store.read(file.stem)
            assert str(path) in str(refused.value), f"{file.name} cut at line {cut}"
            cuts += 1
        path.write_text("".join(lines))
        assert store.read(file.stem).status == "verified"
    assert cuts > 200


@pytest.mark.parametrize("where", ["first line", "middle", "last line"])
def test_a_cut_state_file_is_refused_by_status_and_apply_and_the_cloud_stays(
    cli: Any, applied_project: Path, where: str
) -> None:
    path = applied_project / PILOT
    lines = path.read_text().splitlines(keepends=True)
    cut = {"first line": 1, "middle": len(lines) // 2, "last line": len(lines) - 1}[where]
    path.write_text("".join(lines[:cut]))
    damaged = path.read_bytes()
    _failing_pilot_check(applied_project)
    cloud = _cloud(applied_project)

    status = cli.run(applied_project, "status")
    assert status.returncode == 1, status.stdout
    assert str(path) in _one_error_line(status.stderr)

    apply = cli.run(applied_project, "apply", "--yes")
    assert apply.returncode == 1, apply.stdout
    line = _one_error_line(apply.stderr)
    assert str(path) in line and "the file is left as it is" in line
    assert path.read_bytes() == damaged, "a damaged state file is never overwritten"
    assert _cloud(applied_project) == cloud, "nothing in the emulated cloud changed"


def test_a_rollback_without_a_last_known_good_destroys_nothing_the_engine_saw_verified(
    cli: Any, applied_project: Path
) -> None:
    """A person removes the last known good and seals the file: the state file now says
    "never verified", the engine's record says verified. The rollback refuses (exit 4)."""
    path = applied_project / PILOT
    data = yaml.safe_load(path.read_text())
    data.pop("lkg")
    data["history"] = [h for h in data["history"] if h["event"] not in ("pass",)]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    repair = cli.run(
        applied_project, "state", "repair", "--phase", "pilot", "--reason", "drop the lkg"
    )
    assert repair.returncode == 0, repair.stderr
    _failing_pilot_check(applied_project)
    before = _pilot_resources(cli, applied_project)

    result = cli.run(applied_project, "apply", "--yes", "--phase", "pilot")

    assert result.returncode == 4, result.stderr
    # The checks and the rollback report their progress first; the error is the last line.
    *progress, line = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    assert "sandbox-pilot: rolling back" in progress
    assert not [earlier for earlier in progress if earlier.startswith("error")], result.stderr
    assert "refusing to destroy" in line and "nothing was deleted" in line
    assert _pilot_resources(cli, applied_project) == before
    assert yaml.safe_load(path.read_text())["status"] == "rollback_failed"


def test_the_same_failure_on_an_intact_file_rolls_back_and_deletes_nothing(
    cli: Any, applied_project: Path
) -> None:
    _failing_pilot_check(applied_project)
    before = _pilot_resources(cli, applied_project)

    result = cli.run(applied_project, "apply", "--yes", "--phase", "pilot")

    assert result.returncode == 3, result.stderr
    assert "rolled back to its last known good" in result.stderr
    assert _pilot_resources(cli, applied_project) == before


def test_repair_refuses_without_a_reason(cli: Any, applied_project: Path) -> None:
    result = cli.run(applied_project, "state", "repair", "--phase", "pilot")
    assert result.returncode == 1
    assert "--reason" in _one_error_line(result.stderr)
