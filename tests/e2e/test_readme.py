"""The README's walkthrough, run as written, in order, on a fresh copy of the project:
every command gives the exit code its line states (0 when it states none) and the
figures it promises. A change to the walkthrough that this list does not follow fails
here, so the README cannot drift from what the commands do."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from _projects import REPO, without_waits

STATE = Path("state") / "sandbox"

Check = Callable[[Path, subprocess.CompletedProcess[str]], None]


def _says(*figures: str) -> Check:
    def check(project: Path, done: subprocess.CompletedProcess[str]) -> None:
        for figure in figures:
            assert figure in done.stdout + done.stderr, f"{figure!r} not in:\n{done.stdout}"

    return check


def _cutover(step: int) -> Check:
    """The cutover at ``step`` of 3 (from 1), as its state file has it."""

    def check(project: Path, done: subprocess.CompletedProcess[str]) -> None:
        state = yaml.safe_load((project / STATE / "cutover.yaml").read_text())
        assert (state["status"], state["step"] + 1, state["steps"]) == ("verified", step, 3)

    return check


def _json_plan(project: Path, done: subprocess.CompletedProcess[str]) -> None:
    plan = json.loads(done.stdout)
    assert [p["outcome"] for p in plan["phases"]] == ["no changes"] * 3 + ["planned"]


def _saved(project: Path, done: subprocess.CompletedProcess[str]) -> None:
    saved = json.loads((project / "compute.plan.json").read_text())
    [compute] = [p for p in saved["phases"] if p["changes"]["update"]]
    assert compute["stack"] == "sandbox-compute"


def _inventory_in_phase_order(project: Path, done: subprocess.CompletedProcess[str]) -> None:
    stacks = re.findall(r"sandbox-(pilot|data_layer|compute|cutover)", done.stdout)
    order = list(dict.fromkeys(stacks))
    assert order == ["pilot", "data_layer", "compute", "cutover"], done.stdout


# Each command of the walkthrough, in order: what it must say or leave behind.
WALKTHROUGH: list[tuple[str, list[Check]]] = [
    ("migrate apply --yes", [_says("Apply (sandbox): 4 phase(s) applied"), _cutover(1)]),
    (". .venv/bin/activate", []),
    ("migrate status", [_says("(4/4 phases verified)", "verified  1/3")]),
    ("migrate plan", [_says("sandbox-cutover (planned, verified)", "2 to update")]),
    ("migrate plan --output json", [_json_plan]),
    ("migrate apply --yes", [_says("weights legacy=50, platform=50"), _cutover(2)]),
    ("migrate apply --yes", [_says("weights legacy=0, platform=100"), _cutover(3)]),
    ("migrate apply --yes", [_says("0 phase(s) applied, 4 unchanged")]),
    ("sed -i 's/desired_size: 1/desired_size: 2/' stacks/Pulumi.sandbox-compute.yaml", []),
    (
        "migrate plan --detailed-exitcode",
        [_says("1 to update", "NodeGroup  gpu-inference  (changed: scalingConfig)")],
    ),
    ("migrate plan --out compute.plan.json", [_saved]),
    ("migrate apply --yes compute.plan.json", [_says("1 phase(s) applied, 3 unchanged")]),
    (
        "export AWS_ACCESS_KEY_ID=sandbox AWS_SECRET_ACCESS_KEY=sandbox "
        "AWS_DEFAULT_REGION=us-east-1",
        [],
    ),
    ("migrate sandbox serve --port 5000 &", []),
    (
        "aws --endpoint-url http://127.0.0.1:5000 eks describe-nodegroup "
        "--cluster-name sandbox-ai-platform --nodegroup-name gpu-inference",
        [_says('"desiredSize": 2')],
    ),
    ("kill %1", []),
    ("migrate sandbox status", [_inventory_in_phase_order]),
    ("migrate sandbox reset --yes", [_says("4 stack(s) back to pending")]),
    ("migrate apply --yes", [_says("4 phase(s) applied"), _cutover(1)]),
    ("migrate sandbox alarm sandbox-app-platform-5xx ALARM", [_says("is now ALARM")]),
    ("migrate apply --yes", [_says("platform-5xx is in ALARM", "all traffic on legacy")]),
    ("migrate sandbox alarm sandbox-app-platform-5xx OK", [_says("is now OK")]),
    ("migrate apply --yes", [_says("weights legacy=90, platform=10"), _cutover(1)]),
]


def _migrate() -> str:
    return str(Path(sys.executable).with_name("migrate"))


def _readme_commands() -> list[tuple[str, int]]:
    """The walkthrough's commands as the README has them, with the exit code each states:
    the install-and-apply line at the top (its `migrate` part), the Walkthrough section,
    and the cutover rehearsal."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    first = blocks[0].strip()
    assert first.endswith(".venv/bin/migrate apply --yes"), first
    walkthrough = text[text.index("## Walkthrough") : text.index("## Checks, rollback")]
    rehearsal = text[text.index("Rehearse one in the sandbox") :]
    chosen = re.findall(r"```sh\n(.*?)```", walkthrough, re.S)
    chosen.append(re.findall(r"```sh\n(.*?)```", rehearsal, re.S)[0])
    commands = [("migrate apply --yes", 0)]
    for block in chosen:
        for line in block.replace("\\\n", " ").splitlines():
            command, _, comment = line.partition(" #")
            stated = re.match(r"\s*exit (\d+):", comment)
            commands.append((" ".join(command.split()), int(stated[1]) if stated else 0))
    return commands


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_walkthrough_commands_are_the_ones_this_test_runs() -> None:
    assert [c for c, _ in _readme_commands()] == [c for c, _ in WALKTHROUGH]


def test_every_walkthrough_command_does_what_the_readme_says(cli: Any, fresh_project: Path) -> None:
    aws = Path(sys.executable).with_name("aws")
    if not aws.exists() and shutil.which("aws") is None:
        pytest.skip("the AWS CLI (the awscli package of the test extra) is not installed")
    # Bakes of 0 s: the figures are the same, the cutover's three steps are not waited out.
    without_waits(fresh_project)
    port = str(_free_port())
    env = {**cli.env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{cli.env['PATH']}"}
    served: subprocess.Popen[str] | None = None
    try:
        for (command, code), (_, checks) in zip(_readme_commands(), WALKTHROUGH, strict=True):
            command = command.replace("5000", port)
            if command.startswith(". "):
                continue  # the venv is this one, on PATH already
            if command.startswith("export "):
                env.update(pair.split("=", 1) for pair in command.split()[1:])
                continue
            if command.endswith("&"):
                served = subprocess.Popen(
                    command[:-1].split(),
                    cwd=fresh_project,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
                assert served.stdout is not None
                assert served.stdout.readline().strip() == f"http://127.0.0.1:{port}"
                continue
            if command == "kill %1":
                assert served is not None
                served.send_signal(signal.SIGTERM)
                assert served.wait(timeout=60) == 0
                continue
            state_before = _state_files(fresh_project)
            done = subprocess.run(
                ["bash", "-c", command],
                cwd=fresh_project,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            assert done.returncode == code, (
                f"{command}: exit {done.returncode}, the README says {code}\n"
                f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
            )
            if command.startswith("migrate plan"):
                assert _state_files(fresh_project) == state_before, f"{command} wrote state/"
            for check in checks:
                check(fresh_project, done)
    finally:
        if served is not None and served.poll() is None:
            served.kill()
            served.wait()
        if served is not None and served.stdout is not None:
            served.stdout.close()


def _state_files(project: Path) -> dict[str, bytes]:
    root = project / "state"
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_the_readme_lists_what_the_sandbox_emulates_as_its_handlers_say() -> None:
    """Written from the handlers; stale the moment one emulates another input."""
    from phasegate.engines.sandbox import catalog

    readme = (REPO / "README.md").read_text()
    assert catalog.rewrite(readme) == readme, (
        "the README's list of what the sandbox emulates is stale: run "
        "`python -m phasegate.engines.sandbox.catalog README.md`"
    )
    assert "| `aws:s3/bucket:Bucket` | `bucket`, `bucketPrefix`, `forceDestroy`, " in readme
