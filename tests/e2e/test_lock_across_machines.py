"""The environment lock across machines: two "machines" (network namespaces, each with
its own checkout of the project) share one lock table on a sandbox served in a third.

Exactly one of two applies started at once runs; the other is refused (exit 5) naming
the holder. A holder killed outright blocks the next run until its lease ends; the run
after that takes the lock over with a warning. Each flock is per machine, so only the
shared lock can make any of this happen.

The namespaces are this test's own: ``lo`` up in each, a veth pair from each machine to
the server's namespace, the endpoint on an address of the server's loopback. Nothing
binds or connects outside them, and they are deleted afterwards.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from _guard import netguard
from _projects import copy_project

TABLE = "phasegate-locks"
LEASE = 10
SERVER_ADDRESS = "10.231.0.1"
REGION = "us-east-1"

_TABLE_TOOL = """
import json, sys, time
import boto3
url, table, command = sys.argv[1:4]
client = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1")
key = {"LockID": {"S": "phasegate/sandbox"}}
def item():
    found = client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
    return {k: next(iter(v.values())) for k, v in found.items()} if found else None
if command == "create":
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
elif command == "wait":  # until the lock is held by the actor named, for 60 s at most
    deadline = time.monotonic() + 60
    while (found := item()) is None or found["actor"] != sys.argv[4]:
        if time.monotonic() > deadline:
            sys.exit("the lock item never appeared")
        time.sleep(0.1)
    print(json.dumps(found))
else:
    print(json.dumps(item()))
"""


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=30)


@dataclass
class Network:
    server: str
    machines: tuple[str, str]


@pytest.fixture
def network() -> Iterator[Network]:
    """Three network namespaces: a server and two machines that reach it, and only it."""
    if os.geteuid() != 0:
        pytest.skip("creating network namespaces needs root")
    if shutil.which("ip") is None:
        pytest.skip("`ip` (iproute2) is not installed: no `ip netns` to build the machines")
    tag = f"pglk{os.getpid() % 100000}"
    server, machines = f"{tag}s", (f"{tag}a", f"{tag}b")
    made: list[str] = []
    try:
        for name in (server, *machines):
            try:
                _run("ip", "netns", "add", name)
            except subprocess.CalledProcessError as exc:
                if not made:
                    pytest.skip(f"`ip netns add` is not available here: {exc.stderr.strip()}")
                raise
            made.append(name)
            _run("ip", "-n", name, "link", "set", "lo", "up")
        _run("ip", "-n", server, "addr", "add", f"{SERVER_ADDRESS}/32", "dev", "lo")
        for i, machine in enumerate(machines, start=1):
            _run(
                "ip", "-n", machine, "link", "add", "uplink", "type", "veth",
                "peer", "name", f"down{i}", "netns", server,
            )  # fmt: skip
            _run("ip", "-n", machine, "addr", "add", f"10.231.{i}.2/24", "dev", "uplink")
            _run("ip", "-n", server, "addr", "add", f"10.231.{i}.1/24", "dev", f"down{i}")
            _run("ip", "-n", machine, "link", "set", "uplink", "up")
            _run("ip", "-n", server, "link", "set", f"down{i}", "up")
            _run(
                "ip", "-n", machine, "route", "add", f"{SERVER_ADDRESS}/32", "via", f"10.231.{i}.1"
            )
        yield Network(server, machines)
    finally:
        for name in reversed(made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def _inside(cli: Any, namespace: str, actor: str = "") -> Any:
    """The test's CLI runner, its commands run inside ``namespace`` as ``actor``."""
    runner = copy.copy(cli)
    runner.command = ["ip", "netns", "exec", namespace, *cli.command]
    runner.env = {**cli.env, netguard.ALLOW_VARIABLE: SERVER_ADDRESS}
    if actor:
        runner.env["GITHUB_ACTOR"] = actor
    return runner


def _table(runner: Any, url: str, *args: str) -> Any:
    """The lock table as boto3 sees it from a machine's namespace."""
    command = [*runner.command[:4], sys.executable, "-c", _TABLE_TOOL, url, TABLE, *args]
    done = subprocess.run(
        command, env=runner.env, capture_output=True, text=True, timeout=90, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else None


def _machine(shipped: Path, where: Path, url: str) -> Path:
    """A checkout of the shipped project whose sandbox environment locks on the table."""
    project = copy_project(shipped, where)
    path = project / "migration.yaml"
    text = path.read_text(encoding="utf-8")
    sandbox = "  - name: sandbox          # embedded emulated cloud: rehearse here first\n"
    assert text.count(sandbox) == 1
    lock = (
        f"    lock:\n      dynamodb: {{table: {TABLE}, endpoint_url: '{url}'}}\n"
        f"      lease_seconds: {LEASE}\n"
    )
    path.write_text(text.replace(sandbox, sandbox + lock), encoding="utf-8")
    return project


def _start(runner: Any, project: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*runner.command, *args],
        cwd=project,
        env=runner.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str], timeout: float = 180) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"{process.args} did not finish within {timeout}s")
    return process.returncode, out, err


def _apply(runner: Any, project: Path) -> subprocess.CompletedProcess[str]:
    return runner.run(project, "apply", "--yes", "--phase", "pilot", timeout=120)


def test_one_machine_applies_at_a_time_and_a_dead_one_s_lock_is_taken_over_after_its_lease(
    cli: Any, shipped: Path, tmp_path: Path, network: Network
) -> None:
    host = socket.gethostname()
    served_project = copy_project(shipped, tmp_path / "server")
    with _inside(cli, network.server).serve(served_project, "--host", SERVER_ADDRESS) as served:
        url = served.url
        assert url.startswith(f"http://{SERVER_ADDRESS}:"), url
        actors = ("runner-a", "runner-b")
        runners = [
            _inside(cli, ns, actor) for ns, actor in zip(network.machines, actors, strict=True)
        ]
        _table(runners[0], url, "create")
        projects = [_machine(shipped, tmp_path / actor, url) for actor in actors]

        # Two machines apply at once: their flocks are apart, the table is shared.
        started = [
            _start(r, p, "apply", "--yes", "--phase", "pilot")
            for r, p in zip(runners, projects, strict=True)
        ]
        try:
            results = [_finish(process) for process in started]
        finally:
            for process in started:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        codes = [code for code, _, _ in results]
        assert sorted(codes) == [0, 5], results
        won, lost = codes.index(0), codes.index(5)
        refused = results[lost][2].strip().splitlines()
        assert len(refused) == 1 and refused[0].startswith("error: "), results[lost][2]
        assert "Traceback" not in results[lost][2]
        assert (
            f"environment 'sandbox' is locked by {actors[won]} "
            f"(pid {started[won].pid} on {host})" in refused[0]
        ), refused[0]
        assert "lease until" in refused[0] and "wait for it to finish" in refused[0]
        assert not (projects[lost] / "state").exists(), "a refused apply writes no state"
        assert "status: verified" in (projects[won] / "state/sandbox/pilot.yaml").read_text()
        assert "took over" not in results[won][2]
        assert _table(runners[0], url, "get") is None, "the lock is released after the run"

        # A run killed while it holds the lock cannot release it.
        dying = _start(runners[lost], projects[lost], "apply", "--yes", "--phase", "pilot")
        try:
            held = _table(runners[won], url, "wait", actors[lost])
        finally:
            dying.send_signal(signal.SIGKILL)
            _finish(dying, timeout=30)
        assert held["pid"] == str(dying.pid)

        blocked = _apply(runners[won], projects[won])
        assert blocked.returncode == 5, blocked.stderr
        assert (
            f"environment 'sandbox' is locked by {actors[lost]} (pid {dying.pid} on {host})"
            in blocked.stderr
        ), blocked.stderr
        assert "if that run is dead, its lease ends at" in blocked.stderr

        # Once its lease ends the next run takes over, saying whose lock it took.
        left = _table(runners[won], url, "get")
        assert left is not None and left["pid"] == str(dying.pid)
        wait = float(left["expires"]) + 1.5 - time.time()
        assert wait <= LEASE + 1.5, left
        time.sleep(max(0.0, wait))
        after = _apply(runners[won], projects[won])
        assert after.returncode == 0, after.stderr
        warnings = [line for line in after.stderr.splitlines() if "took over the lock" in line]
        assert len(warnings) == 1, after.stderr
        assert warnings[0].startswith("warning: took over the lock of environment 'sandbox' ")
        assert f"held by {actors[lost]} (pid {dying.pid} on {host})" in warnings[0]
        assert "whose lease ended at" in warnings[0]
        assert _table(runners[won], url, "get") is None


def test_a_missing_lock_table_stops_the_run_with_one_line(
    cli: Any, shipped: Path, tmp_path: Path
) -> None:
    with cli.serve(copy_project(shipped, tmp_path / "server")) as served:
        project = _machine(shipped, tmp_path / "machine", served.url)
        done = cli.run(project, "apply", "--yes")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: lock table {TABLE} not found in {REGION} (endpoint {served.url}): "
        "create it with partition key LockID (string)"
    ]
    assert not (project / "state").exists()


def test_serve_refuses_a_host_that_is_not_an_ip_address(cli: Any, fresh_project: Path) -> None:
    done = cli.run(fresh_project, "sandbox", "serve", "--host", "example.com")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: --host: 'example.com' is not an IP address (allowed: an IPv4 or IPv6 "
        "address (127.0.0.1, 10.0.0.5, ::1) or localhost)"
    ]
