"""`migrate init` and `migrate new-phase`: from an empty directory to a phase of your own,
verified on the sandbox; and what each refuses, with one line and nothing written.

Projects are made with ``init --from`` the shipped project as staged in git (what every
test uses, whatever the working tree holds); one test runs ``init`` as a user does, with
no ``--from``, and compares what it wrote with the example this installation ships.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from _projects import PROJECT_FILES, one_error_line, without_waits
from phasegate.scaffold import example_dir

SHIPPED_PHASES = ["pilot", "data_layer", "compute", "cutover"]
GITIGNORE = ".gitignore"


def tree_digest(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its bytes."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _parts(root: Path) -> dict[str, bytes]:
    """The files of a project's parts (what init copies), by relative path."""
    return {
        rel: data
        for rel, data in tree_digest(root).items()
        if rel.split("/", 1)[0] in PROJECT_FILES and "__pycache__" not in rel
    }


def _init(cli: Any, shipped: Path, tmp_path: Path, *args: str) -> Path:
    result = cli.run(tmp_path, "init", "mine", "--from", str(shipped), *args)
    assert result.returncode == 0, result.stderr
    return tmp_path / "mine"


def _status(cli: Any, project: Path) -> dict[str, Any]:
    result = cli.run(project, "status", "--output", "json")
    assert result.returncode == 0, result.stderr
    status: dict[str, Any] = json.loads(result.stdout)
    return status


def _state(project: Path, phase: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((project / f"state/sandbox/{phase}.yaml").read_text())
    return data


def _assert_gpu_cache_verified(cli: Any, project: Path) -> None:
    """gpu_cache is verified, its bucket made and judged by the checks new-phase wrote."""
    phases = {p["phase"]: p for p in _status(cli, project)["phases"]}
    assert phases["gpu_cache"]["status"] == "verified"
    state = _state(project, "gpu_cache")
    assert state["status"] == "verified"
    assert state["outputs"]["bucket"] == "phasegate-sandbox-gpu-cache"
    checks = {c["name"]: c for c in state["checks"]}
    assert {name: c["result"] for name, c in checks.items()} == {
        "bucket_private": "pass",
        "outputs_exported": "pass",
    }
    # The s3_bucket check asked the emulated cloud: the bucket is there, as declared.
    assert checks["bucket_private"]["message"] == (
        "bucket phasegate-sandbox-gpu-cache: exists, aws:kms, versioning Enabled, "
        "public access blocked"
    )


# --- migrate init ----------------------------------------------------------------------


def test_init_writes_the_example_and_it_plans(cli: Any, shipped: Path, tmp_path: Path) -> None:
    result = cli.run(tmp_path, "init", "mine", "--from", str(shipped))
    assert result.returncode == 0, result.stderr
    project = tmp_path / "mine"
    written = tree_digest(project)
    assert set(written) - set(_parts(shipped)) == {GITIGNORE}
    assert _parts(project) == _parts(shipped)
    assert ".phasegate/" in written[GITIGNORE].decode().splitlines()
    assert "Next:\n  cd mine\n  migrate plan\n  migrate apply --yes\n" in result.stdout

    plan = cli.run(project, "plan", "--output", "json")
    assert plan.returncode == 0, plan.stderr
    assert [p["phase"] for p in json.loads(plan.stdout)["phases"]] == SHIPPED_PHASES


def test_init_copies_the_example_this_installation_ships(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / ".git").mkdir()  # `git init` first is fine
    result = cli.run(tmp_path / "mine", "init")
    assert result.returncode == 0, result.stderr
    assert "cd " not in result.stdout, "init here needs no cd"
    assert _parts(tmp_path / "mine") == _parts(example_dir())


def test_init_empty_has_the_environments_and_no_phase_and_plans_nothing(
    cli: Any, shipped: Path, tmp_path: Path
) -> None:
    project = _init(cli, shipped, tmp_path, "--empty")
    assert sorted(tree_digest(project)) == [
        GITIGNORE,
        "Pulumi.yaml",
        "migration.yaml",
        "phases/__main__.py",
        "phases/catalog.py",
        *sorted(f"policies/{p.name}" for p in (shipped / "policies").iterdir() if p.is_file()),
    ]
    assert (project / "stacks").is_dir()
    migration = yaml.safe_load((project / "migration.yaml").read_text())
    shipped_migration = yaml.safe_load((shipped / "migration.yaml").read_text())
    assert migration == {**shipped_migration, "phases": []}

    plan = cli.run(project, "plan")
    assert plan.returncode == 0, plan.stderr
    assert "No phases yet: add one with `migrate new-phase NAME`." in plan.stdout
    assert json.loads(cli.run(project, "plan", "--output", "json").stdout)["phases"] == []


def test_new_phase_in_an_empty_project_is_applied_and_verified(
    cli: Any, shipped: Path, tmp_path: Path
) -> None:
    project = _init(cli, shipped, tmp_path, "--empty")
    added = cli.run(project, "new-phase", "gpu_cache")
    assert added.returncode == 0, added.stderr
    assert not (project / "phases/config.py").exists(), "the program needs no shared module"

    result = cli.run(project, "apply", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sandbox-gpu_cache (applied, verified)" in result.stdout
    _assert_gpu_cache_verified(cli, project)


def test_new_phase_beside_the_shipped_four_keeps_migration_yaml_and_is_verified(
    cli: Any, shipped: Path, tmp_path: Path
) -> None:
    project = without_waits(_init(cli, shipped, tmp_path))
    before = (project / "migration.yaml").read_text()
    result = cli.run(project, "new-phase", "gpu_cache", "--depends-on", "pilot")
    assert result.returncode == 0, result.stderr
    stacks = [f"stacks/Pulumi.{env}-gpu_cache.yaml" for env in ("sandbox", "staging", "prod")]
    for rel in ["phases/gpu_cache.py", *stacks, "migration.yaml"]:
        assert rel in result.stdout
    after = (project / "migration.yaml").read_text()
    assert after.startswith(before), "every byte of migration.yaml is kept, comments too"
    entry = yaml.safe_load(after)["phases"][-1]
    assert (entry["name"], entry["program"], entry["depends_on"]) == (
        "gpu_cache",
        "gpu_cache",
        ["pilot"],
    )
    assert [c["kind"] for c in entry["checks"]] == ["s3_bucket", "outputs"]
    for rel in stacks:
        config = yaml.safe_load((project / rel).read_text())["config"]
        assert config["phasegate:owner"] and config["phasegate:cost_center"]

    result = cli.run(project, "apply", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    status = _status(cli, project)
    assert [p["phase"] for p in status["phases"]] == [*SHIPPED_PHASES, "gpu_cache"]
    assert {p["status"] for p in status["phases"]} == {"verified"}
    _assert_gpu_cache_verified(cli, project)


# --- what they refuse --------------------------------------------------------------------


def test_init_refuses_a_directory_that_is_not_empty(
    cli: Any, shipped: Path, tmp_path: Path, snapshot: Callable[[Path], dict[str, bytes]]
) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine\n")
    before = snapshot(tmp_path)
    for args in ([], ["--empty"]):
        result = cli.run(tmp_path, "init", "mine", "--from", str(shipped), *args)
        assert result.returncode == 1
        line = one_error_line(result.stderr)
        assert str(tmp_path / "mine") in line and "not empty" in line and "notes.txt" in line
        assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["GpuCache"], "NAME: 'GpuCache' is not a phase name (allowed: a lower-case letter"),
        (["gpu-cache"], "NAME: 'gpu-cache' is not a phase name"),
        (["class"], "NAME: 'class' is a Python keyword"),
        (["json"], "NAME: 'json' is a Python module already"),
        (["common"], "phases/common.py: NAME: 'common' is a module of phases/ already"),
        (["pilot"], "migration.yaml: NAME: a phase 'pilot' exists already"),
        (["gpu_cache", "--depends-on", "nope"], "--depends-on: unknown phase 'nope' (allowed:"),
        (["gpu_cache", "--env", "qa"], "--env: unknown environment 'qa' (allowed:"),
    ],
)
def test_new_phase_refuses_with_one_line_and_writes_nothing(
    cli: Any,
    shipped: Path,
    tmp_path: Path,
    snapshot: Callable[[Path], dict[str, bytes]],
    args: list[str],
    expected: str,
) -> None:
    project = _init(cli, shipped, tmp_path)
    before = snapshot(project)
    result = cli.run(project, "new-phase", *args)
    assert result.returncode == 1, result.stdout
    assert expected in one_error_line(result.stderr)
    assert snapshot(project) == before


def test_new_phase_refuses_a_stack_config_left_from_before(
    cli: Any, shipped: Path, tmp_path: Path, snapshot: Callable[[Path], dict[str, bytes]]
) -> None:
    project = _init(cli, shipped, tmp_path, "--empty")
    (project / "stacks/Pulumi.prod-gpu_cache.yaml").write_text("config: {}\n")
    before = snapshot(project)
    result = cli.run(project, "new-phase", "gpu_cache")
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "stacks/Pulumi.prod-gpu_cache.yaml: NAME: exists already" in line
    assert snapshot(project) == before


def test_a_write_that_fails_takes_back_what_was_written(
    cli: Any, shipped: Path, tmp_path: Path, snapshot: Callable[[Path], dict[str, bytes]]
) -> None:
    fail_at = {"PHASEGATE_FAULTS": "scaffold-write:3:fail"}
    result = cli.run(tmp_path, "init", "mine", "--from", str(shipped), env=fail_at)
    assert result.returncode == 1
    assert not (tmp_path / "mine").exists(), "init took back the directory it made"

    project = _init(cli, shipped, tmp_path)
    before = snapshot(project)
    # The program and three stack configs are written, then migration.yaml fails.
    last = {"PHASEGATE_FAULTS": "scaffold-write:5:fail"}
    for env in (fail_at, last):
        result = cli.run(project, "new-phase", "gpu_cache", env=env)
        assert result.returncode == 1
        assert "injected fault at scaffold-write" in one_error_line(result.stderr)
        assert snapshot(project) == before
