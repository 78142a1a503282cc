"""Ctrl-C (SIGINT) or SIGTERM in the middle of `migrate apply`: the run finishes the
resource operation under way, starts no other, says what it did and where it leaves each
stack, and exits 130; `migrate recover` then finishes cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from _projects import copy_project


def _apply_until(cli: Any, project: Path, seen: str, sig: int) -> tuple[int, list[str], str]:
    """`migrate apply --yes`, sent ``sig`` once a progress line on stderr names ``seen``
    (the process's own output, as a person at the terminal would see it)."""
    lines: list[str] = []
    deadline = time.monotonic() + 180
    sent = False
    with subprocess.Popen(
        [*cli.command, "apply", "--yes"],
        cwd=project,
        env=cli.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stderr is not None and process.stdout is not None
        try:
            for line in process.stderr:  # ends when the process closes it, at its exit
                lines.append(line.rstrip("\n"))
                if not sent and seen in line:
                    process.send_signal(sig)
                    sent = True
                assert time.monotonic() < deadline, "apply neither reached the point nor ended"
            stdout = process.stdout.read()
            code = process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    assert sent, f"no progress line named {seen!r}:\n" + "\n".join(lines)
    return code, lines, stdout


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stopped_apply_says_where_it_leaves_each_stack_and_recover_finishes(
    cli: Any, applied_before: Any, tmp_path: Path, sig: int
) -> None:
    project = copy_project(applied_before("data_layer"), tmp_path / "project")

    code, lines, _ = _apply_until(cli, project, "sandbox-compute", sig)

    assert code == 130, "\n".join(lines)
    said = lines[-1]
    assert said.startswith("interrupted: "), "\n".join(lines)  # the last word: nothing after it
    assert "Traceback" not in "\n".join(lines)
    assert "sandbox-data_layer applied (verified)" in said
    assert "sandbox-compute is left applying" in said
    assert "migrate recover --env sandbox" in said
    assert "nothing was changed" not in said
    assert "sandbox-pilot" not in said  # verified before this run: not changed by it
    status = json.loads(cli.run(project, "status", "--output", "json").stdout)
    assert {p["phase"]: p["status"] for p in status["phases"]} == {
        "pilot": "verified",
        "data_layer": "verified",
        "compute": "applying",
        "cutover": "pending",
    }
    blocked = cli.run(project, "apply", "--yes")
    assert blocked.returncode == 5, blocked.stderr

    recovered = cli.run(project, "recover")

    assert recovered.returncode == 0, recovered.stderr
    status = json.loads(cli.run(project, "status", "--output", "json").stdout)
    compute = next(p for p in status["phases"] if p["phase"] == "compute")
    assert compute["status"] == "rolled_back"  # never verified: what it created is gone
    inventory = json.loads(cli.run(project, "sandbox", "status", "--output", "json").stdout)
    assert inventory["stacks"].get("sandbox-compute", []) == []
    again = cli.run(project, "apply", "--yes", "--phase", "compute")
    assert again.returncode == 0, again.stderr


def test_a_stop_while_checks_run_leaves_the_stack_verifying_for_recover(
    cli: Any, applied_before: Any, tmp_path: Path
) -> None:
    project = copy_project(applied_before("compute"), tmp_path / "project")

    code, lines, _ = _apply_until(cli, project, "check inference_gpus", signal.SIGINT)

    assert code == 130, "\n".join(lines)
    assert "sandbox-compute is left verifying" in lines[-1]
    recovered = cli.run(project, "recover")
    assert recovered.returncode == 0, recovered.stderr
    state = cli.run(project, "status", "--output", "json")
    phases = {p["phase"]: p["status"] for p in json.loads(state.stdout)["phases"]}
    assert phases["compute"] == "verified"
