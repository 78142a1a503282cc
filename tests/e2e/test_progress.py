"""What ``migrate apply`` shows while it works, on stderr (stdout keeps the report alone):
plain lines off a terminal, JSON lines with ``--output json``, and a live view per phase
on a terminal (a pseudo-terminal here, and a tmux pane where tmux is installed)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

PHASES = ["pilot", "data_layer", "compute", "cutover"]
HEADLINE = "Applying sandbox: pilot → data_layer → compute → cutover"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _bake(project: Path, step: int, seconds: int) -> None:
    """Make cutover step ``step`` (0-based) bake ``seconds``: the copies tests get bake 0."""
    path = project / "stacks" / "Pulumi.sandbox-cutover.yaml"
    lines = path.read_text().splitlines(keepends=True)
    steps = [i for i, line in enumerate(lines) if "bake_seconds:" in line]
    lines[steps[step]] = re.sub(
        r"bake_seconds: [0-9.]+", f"bake_seconds: {seconds}", lines[steps[step]]
    )
    path.write_text("".join(lines))


def _checks(project: Path, phase: str) -> list[dict[str, Any]]:
    state = yaml.safe_load((project / "state" / "sandbox" / f"{phase}.yaml").read_text())
    checks: list[dict[str, Any]] = state["checks"]
    return checks


# --- off a terminal -------------------------------------------------------------------


def test_off_a_terminal_each_resource_and_check_gets_a_plain_line(applied_template: Any) -> None:
    """The first apply of every phase, as CI logs it (the shared template's own run)."""
    stderr = applied_template.apply.stderr
    assert not ANSI.search(stderr) and "\x1b" not in stderr, "colour or cursor codes off a tty"
    lines = stderr.splitlines()
    assert lines[0] == HEADLINE
    assert "sandbox-pilot: created aws:ec2/vpc:Vpc vpc (" in stderr
    for phase in PHASES:
        stack = f"sandbox-{phase}"
        created = [line for line in lines if line.startswith(f"{stack}: created ")]
        summary = [line for line in lines if line.startswith(f"{stack} applied: ")]
        assert len(summary) == 1, stderr
        assert summary[0].startswith(f"{stack} applied: {len(created)} created; checks: ")
        for check in _checks(applied_template.path, phase):
            head = f"{stack}: check {check['name']} ({check['kind']}): "
            assert f"{head}attempt 1/" in stderr
            verdict = {"pass": "passed after ", "skipped": "skipped: "}[check["result"]]
            assert f"{head}{verdict}" in stderr, stderr
    # Nothing but the headline, resource, check, data copy and summary lines; the English
    # is right.
    shapes = re.compile(
        r"sandbox-\w+: (created|updated|replaced|deleted) \S+ \S+ \(\d+\.\d+s\)"
        r"|sandbox-\w+: check \w+ \(\w+\): .+"
        r"|sandbox-data_layer: copy into s3://\S+: .+"
        r"|sandbox-\w+ applied: .+"
    )
    odd = [line for line in lines[1:] if not shapes.fullmatch(line)]
    assert not odd, odd
    # The copy of the legacy estate: its listing, its start, its end, and in between at
    # most one line per 10 s, never one per object.
    copying = [line for line in lines if line.startswith("sandbox-data_layer: copy into ")]
    state = yaml.safe_load(
        (applied_template.path / "state" / "sandbox" / "data_layer.yaml").read_text()
    )
    assert 2 <= len(copying) <= 3 + state["data_copy"]["seconds"] // 10, copying
    assert ": done: " in copying[-1], copying
    assert not re.search(r"\b(createing|updateing|deleteing|replaceing)\b", stderr)


def test_off_a_terminal_a_failed_bake_and_its_rollback_read_in_order(
    cli: Any, applied_project: Path
) -> None:
    alarm = cli.run(applied_project, "sandbox", "alarm", "sandbox-app-platform-5xx", "ALARM")
    assert alarm.returncode == 0, alarm.stderr
    result = cli.run(applied_project, "apply", "--yes")
    assert result.returncode == 3, result.stderr
    assert "\x1b" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == HEADLINE
    assert lines[1:4] == [
        "sandbox-pilot no changes",
        "sandbox-data_layer no changes",
        "sandbox-compute no changes",
    ]

    def at(prefix: str) -> int:
        found = [i for i, line in enumerate(lines) if line.startswith(prefix)]
        assert found, f"no line starts with {prefix!r}:\n{result.stderr}"
        return found[0]

    check = "sandbox-cutover: check no_5xx_alarms (cloudwatch_alarm): "
    order = [
        at("sandbox-cutover: updated aws:route53/record:Record app-platform ("),
        at(f"{check}attempt 1/4"),
        at(f"{check}failed after 1 attempt ("),
        at("sandbox-cutover: rolling back"),
        at(f"{check}skipped: not re-run after a rollback"),
        at("sandbox-cutover rolled back: "),
        at("error: "),
    ]
    assert order == sorted(order), result.stderr
    assert "sandbox-app-platform-5xx is in ALARM" in lines[order[2]]
    assert "checks: " in lines[order[5]]


# --- JSON -----------------------------------------------------------------------------


def test_with_json_output_stdout_is_the_report_and_stderr_is_json_lines(
    cli: Any, applied_project: Path
) -> None:
    _bake(applied_project, 1, 1)  # the next step bakes a second: a bake is reported
    result = cli.run(applied_project, "apply", "--yes", "--output", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [p["phase"] for p in report["phases"]] == PHASES
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert all(isinstance(e, dict) and "event" in e for e in events), result.stderr
    assert events[0] == {
        "event": "run",
        "action": "apply",
        "environment": "sandbox",
        "phases": PHASES,
        "status": "start",
    }
    assert events[-1]["event"] == "run" and events[-1]["status"] == "done"
    resources = [e for e in events if e["event"] == "resource"]
    assert {(e["op"], e["name"], e["status"]) for e in resources} == {
        ("update", name, status)
        for name in ("app-legacy", "app-platform")
        for status in ("start", "done")
    }
    assert all(e["stack"] == "sandbox-cutover" and e["type"] for e in resources)
    checks = [e for e in events if e["event"] == "check"]
    by_name = {c["name"]: c for c in report["phases"][-1]["checks"]}
    for name, found in by_name.items():
        mine = [(e["status"], e["attempt"]) for e in checks if e["check"] == name]
        first = "baking" if found["kind"] == "cloudwatch_alarm" else "attempt"
        assert mine == [("start", 0), (first, 1), (found["result"], 1)], mine
    baking = next(e for e in checks if e["status"] == "baking")
    assert baking["seconds"] == 1 and baking["max_attempts"] == 4
    phases = [(e["stack"], e["status"]) for e in events if e["event"] == "phase"]
    assert ("sandbox-cutover", "applying") in phases
    assert phases[-2:] == [("sandbox-cutover", "verifying"), ("sandbox-cutover", "done")]
    applying = next(e for e in events if e["event"] == "phase" and e["status"] == "applying")
    assert applying["total"] == 2


# --- on a terminal --------------------------------------------------------------------


def _terminal_env(cli: Any) -> dict[str, str]:
    env = {**cli.env, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    env.pop("NO_COLOR", None)
    return env


def test_on_a_terminal_each_phase_gets_a_live_view_then_a_summary_line(
    cli: Any, applied_project: Path
) -> None:
    _bake(applied_project, 1, 2)
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [*cli.command, "apply", "--yes"],
        cwd=applied_project,
        env=_terminal_env(cli),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
    )
    os.close(follower)
    seen = bytearray()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            seen += chunk
        elif process.poll() is not None:
            break
    os.close(leader)
    stdout = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 0, seen.decode(errors="replace")
    screen = seen.decode(errors="replace")
    assert "\x1b[" in screen, "no live view: nothing was redrawn"
    text = ANSI.sub("", screen)
    assert HEADLINE in text
    assert re.search(r"sandbox-cutover applying .*[0-2]/2 resources", text), text
    assert re.search(r"check no_5xx_alarms attempt 1/4 baking", text), text
    assert re.search(r"✓ check weights \(route53_weights\) passed", text), text
    assert "✓ sandbox-cutover applied: 2 updated; checks: 2 passed; " in text
    assert "Apply (sandbox): 1 phase(s) applied, 3 unchanged." in stdout
    assert "\x1b" not in stdout, "the report on stdout (not a terminal) has no codes"


def test_a_tmux_capture_of_apply_shows_the_live_view(
    cli: Any, applied_project: Path, tmp_path: Path
) -> None:
    """The issue's acceptance: what a person sees in a terminal, captured from a tmux pane."""
    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.skip("tmux is not installed: the pseudo-terminal test covers the live view")
    _bake(applied_project, 1, 3)
    socket = tmp_path / "tmux.sock"
    done = tmp_path / "exit-code"
    env = {k: v for k, v in _terminal_env(cli).items() if k not in ("COLUMNS", "LINES")}
    command = " ".join(
        [
            "env",
            *(shlex.quote(f"{k}={v}") for k, v in env.items()),
            *map(shlex.quote, [*cli.command, "apply", "--yes"]),
        ]
    )
    script = f"cd {shlex.quote(str(applied_project))} && {command}; echo $? > {done}; sleep 120"
    base = [tmux, "-S", str(socket), "-f", "/dev/null"]
    started = subprocess.run(
        [*base, "new-session", "-d", "-x", "120", "-y", "40", "sh", "-c", script],
        env={**os.environ, "TMUX_TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    screens: list[str] = []
    try:
        deadline = time.monotonic() + 240
        while not done.exists() and time.monotonic() < deadline:
            shot = subprocess.run(
                [*base, "capture-pane", "-p"], capture_output=True, text=True, check=False
            ).stdout
            if not screens or screens[-1] != shot:
                screens.append(shot)
            time.sleep(0.2)
        final = subprocess.run(
            [*base, "capture-pane", "-p", "-S", "-200"], capture_output=True, text=True, check=False
        ).stdout
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True, check=False)
    assert done.exists() and done.read_text().strip() == "0", final
    live = [s for s in screens if re.search(r"sandbox-cutover (applying|verifying) ", s)]
    assert live, "no capture showed the cutover's live view:\n" + "\n---\n".join(screens)
    assert any(re.search(r"[0-2]/2 resources", s) for s in live)
    baking = [s for s in live if "… check no_5xx_alarms attempt 1/4 baking " in s]
    assert baking, "no capture showed the bake:\n" + "\n---\n".join(live)
    assert re.search(r"\d/3s", baking[-1])
    # The live view gave way to one summary line per phase; the report follows.
    assert "sandbox-pilot no changes" in final
    assert re.search(r"✓ sandbox-cutover applied: 2 updated; checks: 2 passed; \d+\.\ds", final)
    assert "Apply (sandbox): 1 phase(s) applied, 3 unchanged." in final
    assert "baking" not in final.split("sandbox-cutover applied:")[-1]
