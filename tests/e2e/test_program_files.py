"""A phase's program snapshot holds every file under phases/, text or not: a binary one
(an image, a zip, model weights) is kept in the last known good and restored byte for
byte, and never wedges an environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from phasegate.lkg import LastKnownGoodStore
from phasegate.project import Project
from phasegate.state import StateStore

BLOB = bytes(range(256)) * 4 + b"\xff\xfe\x00PK\x03\x04 not text"


def test_a_binary_file_under_phases_is_kept_and_restored_byte_for_byte(
    cli: Any, applied_project: Path
) -> None:
    """It made the last-known-good snapshot fail after the resources existed: the stack
    stayed `verifying` and `recover` failed too."""
    (applied_project / "phases" / "assets").mkdir()
    (applied_project / "phases" / "assets" / "weights.bin").write_bytes(BLOB)

    apply = cli.run(applied_project, "apply", "--yes")

    assert apply.returncode == 0, apply.stdout + apply.stderr
    project = Project.load(applied_project)
    states = StateStore(project.state_dir, "sandbox")
    kept = LastKnownGoodStore(project.state_dir, lambda _: None)
    for phase in project.migration.phases:
        state = states.read(phase.name)
        assert state.status == "verified", phase.name
        assert state.lkg is not None
        target = project.target(project.migration.environment("sandbox"), phase)
        restored = kept.target(target, state.lkg).program.files
        assert restored["assets/weights.bin"] == BLOB
        assert restored == target.program.files

    rollback = cli.run(applied_project, "rollback", "--phase", "compute")

    assert rollback.returncode == 0, rollback.stdout + rollback.stderr
    compute = yaml.safe_load((applied_project / "state" / "sandbox" / "compute.yaml").read_text())
    assert compute["status"] == "rolled_back"
