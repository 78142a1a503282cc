"""Snapshots are trusted only when they verify: the last-known-good program, config and
checks against the digests they are kept under, the sandbox's cloud snapshot against its
seal (an HMAC under a key of the user's, outside the project) before it is unpickled.

A snapshot that does not verify is refused with one line naming the file and what to do;
nothing is applied from it, no code in it runs, and a run that meets one writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shlex
import stat
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml

ENV = "sandbox"


# --- helpers --------------------------------------------------------------------------


def _state(project: Path, phase: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((project / "state" / ENV / f"{phase}.yaml").read_text())
    return loaded


def _state_files(project: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((project / "state" / ENV).glob("*.yaml"))}


def _said(result: Any) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def _error_line(result: Any) -> str:
    """The one line a refused command prints (and nothing like a traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, _said(result)
    return errors[0]


def _cloud_snapshot(project: Path) -> Path:
    directory = project / ".phasegate" / "sandbox" / ENV
    checkpoint = json.loads((directory / "checkpoint.json").read_text())
    return directory / str(checkpoint["cloud"])


class _RunsCode:
    """What a malicious pickle holds: unpickling it runs a shell command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


def _old_style_forgery(marker: Path) -> bytes:
    """A cloud snapshot in the format before seals, its checksum valid, its state a
    pickle that touches ``marker`` when loaded."""
    import moto

    state = zlib.compress(pickle.dumps(_RunsCode(f"touch {shlex.quote(str(marker))}")))
    envelope = {
        "format": 1,
        "moto": moto.__version__,
        "services": ("s3",),
        "sha256": hashlib.sha256(state).hexdigest(),
        "state": state,
    }
    return pickle.dumps(envelope, protocol=5)


def _lkg_file(project: Path, phase: str, kind: str) -> Path:
    content = _state(project, phase)["lkg"][kind]
    return project / "state" / "lkg" / f"{kind}-{content.split(':', 1)[1][:24]}.json"


def _rewrite_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def _inference_desired_size(project: Path) -> int:
    checkpoint = json.loads(
        (project / ".phasegate" / "sandbox" / ENV / "checkpoint.json").read_text()
    )
    [group] = [
        r
        for r in checkpoint["stacks"][f"{ENV}-compute"]["resources"]
        if r["type"] == "aws:eks/nodeGroup:NodeGroup" and r["name"] == "gpu-inference"
    ]
    return int(group["inputs"]["scalingConfig"]["desiredSize"])


def _make_compute_fail(project: Path) -> None:
    """No inference node: the compute phase's GPU check fails and it is rolled back."""
    path = project / "stacks" / "Pulumi.sandbox-compute.yaml"
    text = path.read_text()
    assert text.count("    desired_size: 1\n") == 1
    path.write_text(text.replace("    desired_size: 1\n", "    desired_size: 0\n"))


# --- last known good ------------------------------------------------------------------


def _tamper_program(data: dict[str, Any]) -> dict[str, Any]:
    name = sorted(data["files"])[0]
    data["files"][name] += "\n# changed after it was kept\n"
    return data


def _tamper_config(data: dict[str, Any]) -> dict[str, Any]:
    data["phasegate:inference_pool"]["desired_size"] = 2  # valid, and not what was verified
    return data


def _tamper_checks(data: list[Any]) -> list[Any]:
    return []  # a rollback judged by nothing would always pass


@pytest.mark.parametrize(
    ("kind", "tamper"),
    [("program", _tamper_program), ("config", _tamper_config), ("checks", _tamper_checks)],
)
def test_a_rollback_refuses_a_last_known_good_changed_since_it_was_kept(
    cli: Any, applied_project: Path, kind: str, tamper: Any
) -> None:
    snapshot = _lkg_file(applied_project, "compute", kind)
    _rewrite_json(snapshot, tamper(json.loads(snapshot.read_text())))
    _make_compute_fail(applied_project)

    result = cli.run(applied_project, "apply", "--yes", "--phase", "compute", "--output", "json")

    assert result.returncode == 4, _said(result)
    [report] = json.loads(result.stdout)["phases"]
    assert report["outcome"] == "rollback failed", report
    assert (
        f"{snapshot}: the last known good {kind} does not match its digest" in (report["message"])
    )
    assert "restore the file from version control, then `migrate recover`" in report["message"]
    state = _state(applied_project, "compute")
    assert state["status"] == "rollback_failed"
    assert "rollback_checks" not in state  # nothing of it was applied, so nothing checked
    # What the failed apply left (no inference node), not the tampered config's 2.
    assert _inference_desired_size(applied_project) == 0


# --- the cloud snapshot ---------------------------------------------------------------


def test_a_forged_cloud_snapshot_with_a_valid_checksum_runs_nothing(
    cli: Any, applied_project: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    snapshot = _cloud_snapshot(applied_project)
    snapshot.write_bytes(_old_style_forgery(marker))
    before = _state_files(applied_project)

    results = [
        cli.run(applied_project, "apply", "--yes"),  # the cutover's next step
        cli.run(applied_project, "plan"),
        cli.run(applied_project, "sandbox", "serve", "--port", "0", timeout=60),
        cli.run(applied_project, "sandbox", "alarm", "sandbox-app-platform-5xx", "ALARM"),
        cli.run(applied_project, "sandbox", "status"),
    ]

    assert not marker.exists(), "a command unpickled the forged snapshot and ran its code"
    for result in results:
        assert result.returncode == 1, _said(result)
        line = _error_line(result)
        assert str(snapshot) in line and "`migrate sandbox reset`" in line, line
    assert _state_files(applied_project) == before


def test_a_cloud_snapshot_sealed_with_another_key_runs_nothing(
    cli: Any, applied_project: Path, tmp_path: Path
) -> None:
    from phasegate.engines.sandbox import cloud_seal

    marker = tmp_path / "pwned"
    snapshot = _cloud_snapshot(applied_project)
    # The forger knows the format, not the user's key.
    snapshot.write_bytes(cloud_seal.seal(os.urandom(32), _old_style_forgery(marker)))

    result = cli.run(applied_project, "apply", "--yes")

    assert result.returncode == 1, _said(result)
    assert not marker.exists()
    line = _error_line(result)
    assert str(snapshot) in line and "seal does not match" in line, line


def test_a_damaged_cloud_snapshot_is_refused_before_any_transition(
    cli: Any, applied_project: Path
) -> None:
    snapshot = _cloud_snapshot(applied_project)
    data = bytearray(snapshot.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    snapshot.write_bytes(bytes(data))
    before = _state_files(applied_project)

    applied = cli.run(applied_project, "apply", "--yes")  # would take the cutover's next step
    planned = cli.run(applied_project, "plan")

    for result in (applied, planned):
        assert result.returncode == 1, _said(result)
        line = _error_line(result)
        assert str(snapshot) in line and "`migrate sandbox reset`" in line, line
    assert _state_files(applied_project) == before, "a transition was written"


def test_a_cloud_snapshot_from_before_seals_is_refused_and_reset_starts_over(
    cli: Any, applied_project: Path
) -> None:
    from phasegate.engines.sandbox import cloud_seal

    snapshot = _cloud_snapshot(applied_project)
    sealed = snapshot.read_bytes()
    # What an older phasegate wrote: the same dump, bare.
    snapshot.write_bytes(sealed[sealed.index(b"\n", len(cloud_seal.MAGIC)) + 1 :])

    refused = cli.run(applied_project, "plan")
    assert refused.returncode == 1, _said(refused)
    line = _error_line(refused)
    assert str(snapshot) in line and "no seal (written by an older phasegate)" in line, line
    assert "`migrate sandbox reset` starts the sandbox over" in line

    reset = cli.run(applied_project, "sandbox", "reset", "--yes")
    assert reset.returncode == 0, _said(reset)
    assert not snapshot.exists()
    assert {_state(applied_project, p)["status"] for p in ("pilot", "cutover")} == {"pending"}
    planned = cli.run(applied_project, "plan", "--phase", "pilot")
    assert planned.returncode == 0, _said(planned)


def test_a_sandbox_key_readable_by_others_is_refused(
    cli: Any, fresh_project: Path, tmp_path: Path
) -> None:
    home = tmp_path / "own-home"
    key = home / ".config" / "phasegate" / "sandbox.key"
    key.parent.mkdir(parents=True)
    key.write_text(os.urandom(32).hex() + "\n")
    key.chmod(0o644)

    own = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    result = cli.run(fresh_project, "plan", "--phase", "pilot", env=own)

    assert result.returncode == 1, _said(result)
    line = _error_line(result)
    assert str(key) in line and "readable by group or others (mode 0644)" in line, line
    assert f"chmod 600 {key}" in line
    assert stat.S_IMODE(key.stat().st_mode) == 0o644  # not changed behind the user's back
    assert not (fresh_project / "state" / ENV / "pilot.yaml").exists()  # nothing written
