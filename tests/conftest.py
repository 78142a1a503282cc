"""What every test tier shares: the guards, a CLI runner, and project copies.

The guards make a test fail loudly when it would reach real AWS or the network, or
write into the repository instead of its temp dir:

* fake AWS credentials, no shared config or credentials file, no profile, HOME in tmp,
  in this process and in every ``migrate`` subprocess;
* ``_guard/netguard.py`` lets sockets connect only to loopback and resolve only local
  names, in this process and, through ``_guard/sitecustomize.py`` on the subprocesses'
  ``PYTHONPATH``, in every ``migrate`` subprocess; every attempt is logged to one file and
  fails the test even when the code under test swallowed the error;
* before and after every test and the whole session, the repository's top-level entries
  and every file of the shipped project, ``state/``, ``.phasegate/`` and ``.hypothesis/``
  are listed (size, mtime): anything created or changed there fails the test. (Not the
  whole tree: people edit ``src/`` and run ``bench/`` while the tests run.) pytest's own
  ``.pytest_cache`` is let be (it is git-ignored and holds what ``--lf`` reruns);
* the shared copy of the shipped project (below) is listed the same way: a test that
  changes it instead of copying it fails, before it can change what later tests see.

The project the tests use is the one staged in git, never the working tree's
(``_projects.py``): tests copy the parts of the project (``migration.yaml``,
``Pulumi.yaml``, ``phases/``, ``stacks/``, ``policies/``) from the git index, taken once
per test process into a temp dir, so a stack config someone is editing decides nothing.
(The index, not ``HEAD``: the same in CI, and what a developer stages is what they mean to
test; unstaged edits are listed in pytest's header. Outside a git checkout the working
tree's files are used.) One change is made to that copy: the sandbox's legacy estate is
small (``SMALL_ESTATE`` in ``_projects.py``), since every test that applies the data
layer copies it and proves the copy; tests of the shipped 5,000 objects say so
(``shipped_estate``).

Every test makes what it changes itself: ``fresh_project``, ``applied_project`` and the
copies of ``applied_before(phase)`` are private. The templates they copy take ``migrate``
runs to make, so each is made once per run, when first needed, and shared by the xdist
workers (``built_once``). So tests pass alone, in any order (pytest-randomly shuffles
them) and on any xdist worker.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

from _guard import netguard
from _projects import (
    PROJECT_FILES,
    REPO,
    built_once,
    copy_project,
    shipped_from,
    shipped_project,
    unstaged_edits,
    without_waits,
)

GUARD_DIR = Path(__file__).resolve().parent / "_guard"
"""The network guard (``netguard``) and the ``sitecustomize`` that installs it."""

FAKE_KEY = "phasegate-test-not-a-real-key"
_AWS_UNSET = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    # The user's own secrets passphrase is no test's to use.
    "PULUMI_CONFIG_PASSPHRASE",
    "PULUMI_CONFIG_PASSPHRASE_FILE",
)
# What tests could write into the repository by mistake (running `migrate` there, editing
# the shipped project instead of a copy, hypothesis caches), watched by content; and the
# repository's top-level entries, watched for anything new. Not the whole tree: people
# edit src/ and run bench/ while tests run. pytest writes .pytest_cache itself, at the
# end of a run (under xdist, while workers may still be tearing down): not a test's doing.
_WATCHED = (*PROJECT_FILES, "state", ".phasegate", ".hypothesis")
_NOT_WATCHED_TOP = {".pytest_cache"}
_SKIP_ANYWHERE = {"__pycache__"}

settings.register_profile("phasegate", database=None, deadline=None, print_blob=True)
settings.load_profile("phasegate")
# Hypothesis keeps caches (and, unless told, examples) under ./.hypothesis, some of them
# while tests are collected: point it at a temp dir before any test module is imported.
_HYPOTHESIS_HOME = Path(tempfile.mkdtemp(prefix="phasegate-tests-hypothesis-"))
set_hypothesis_home_dir(_HYPOTHESIS_HOME)
atexit.register(shutil.rmtree, _HYPOTHESIS_HOME, ignore_errors=True)


def pytest_report_header() -> list[str]:
    lines = [f"shipped project: {shipped_from()}"]
    edits = unstaged_edits()
    if edits:
        lines.append("  not tested (unstaged edits): " + ", ".join(edits))
    return lines


# --- the guards -----------------------------------------------------------------------


@dataclass
class _Guard:
    home: Path
    netlog: Path
    """Where this process and every subprocess log the network attempts they refused."""

    def attempts(self) -> list[str]:
        return [line for line in self.netlog.read_text().splitlines() if line]

    def clear(self) -> None:
        self.netlog.write_text("")

    def subprocess_env(self) -> dict[str, str]:
        """What puts a Python subprocess under the network guard, logging here."""
        return {
            # Its sitecustomize installs netguard; a PYTHONPATH already set is kept after it.
            "PYTHONPATH": os.pathsep.join(
                [str(GUARD_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            netguard.LOG_VARIABLE: str(self.netlog),
            # The package is installed editable: keep bytecode out of the repo's src/.
            "PYTHONDONTWRITEBYTECODE": "1",
        }


_CONFIG_HOME: Path | None = None
"""The test run's XDG config dir (set by the session guard), shared by its workers."""


def _fake_aws_env(home: Path) -> dict[str, str]:
    """Fake AWS credentials, no shared config or credentials file, and ``home`` as HOME."""
    return {
        "AWS_ACCESS_KEY_ID": FAKE_KEY,
        "AWS_SECRET_ACCESS_KEY": FAKE_KEY,
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
        "AWS_CONFIG_FILE": str(home / "no-aws-config"),
        "HOME": str(home),
        # The sandbox key lives in the XDG config dir: the run's own, never the user's, and
        # one for every xdist worker, as the projects built once are sealed with it.
        "XDG_CONFIG_HOME": str(_CONFIG_HOME or home / ".config"),
    }


def _fake_aws(mp: pytest.MonkeyPatch, home: Path) -> None:
    for name in _AWS_UNSET:
        mp.delenv(name, raising=False)
    for name, value in _fake_aws_env(home).items():
        mp.setenv(name, value)


def _listing(root: Path, watched: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime) of the watched files, and every top-level entry."""
    found: dict[str, tuple[int, int]] = {}
    for entry in root.iterdir():
        if entry.name not in _NOT_WATCHED_TOP:
            found[entry.name + ("/" if entry.is_dir() else "")] = (0, 0)
    for name in watched:
        for directory, dirs, files in os.walk(root / name):
            dirs[:] = [d for d in dirs if d not in _SKIP_ANYWHERE]
            for file in files:
                path = Path(directory, file)
                with contextlib.suppress(FileNotFoundError):
                    info = path.lstat()
                    found[str(path.relative_to(root))] = (info.st_size, info.st_mtime_ns)
        if (root / name).is_file():
            info = (root / name).lstat()
            found[name] = (info.st_size, info.st_mtime_ns)
    return found


def _repo_listing() -> dict[str, tuple[int, int]]:
    return _listing(REPO, _WATCHED)


def _shipped_listing() -> dict[str, tuple[int, int]]:
    return _listing(shipped_project(), PROJECT_FILES)


def _listing_changes(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> str:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(p for p in set(before) & set(after) if before[p] != after[p])
    parts = []
    for what, paths in (("created", added), ("removed", removed), ("changed", changed)):
        if paths:
            parts.append(f"{what}: {', '.join(paths[:10])}")
    return "; ".join(parts)


@pytest.fixture(scope="session", autouse=True)
def _session_guard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Guard]:
    """Fake AWS, loopback-only sockets and a repo listing for the whole session."""
    global _CONFIG_HOME
    run = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run = run.parent  # the run's temp dir, above each worker's own
    _CONFIG_HOME = run / "xdg-config"
    _CONFIG_HOME.mkdir(exist_ok=True)
    root = tmp_path_factory.mktemp("guard")
    guard = _Guard(home=root / "home", netlog=root / "netlog.txt")
    guard.home.mkdir()
    guard.clear()
    before = _repo_listing()
    with pytest.MonkeyPatch.context() as mp:
        _fake_aws(mp, guard.home)
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        # Any Python subprocess a test starts gets the network guard too.
        env = guard.subprocess_env()
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [env["PYTHONPATH"], os.getenv("PYTHONPATH")])
        )
        for name, value in env.items():
            mp.setenv(name, value)
        uninstall = netguard.install(guard.netlog)
        try:
            yield guard
        finally:
            uninstall()
    # What session-scoped fixtures did while being torn down is nobody's test: check here.
    attempts = guard.attempts()
    assert not attempts, "guard: the session tried to reach the network: " + "; ".join(attempts)
    changes = _listing_changes(before, _repo_listing())
    assert not changes, f"guard: the session wrote into the repository {REPO}: {changes}"


@pytest.fixture(autouse=True)
def _test_guard(
    _session_guard: _Guard, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[None]:
    """Per test: fresh fake AWS files and HOME; fail on network attempts or repo writes."""
    home = tmp_path / "home"
    home.mkdir()
    _fake_aws(monkeypatch, home)
    # No clear() here: attempts made while session fixtures were set up for this test
    # (the shared apply) are this test's to report.
    before, shipped_before = _repo_listing(), _shipped_listing()
    yield
    attempts = _session_guard.attempts()
    _session_guard.clear()
    changes = _listing_changes(before, _repo_listing())
    shipped_changes = _listing_changes(shipped_before, _shipped_listing())
    problems = []
    if attempts:
        problems.append("tried to reach the network: " + "; ".join(attempts))
    if changes:
        problems.append(f"wrote into the repository {REPO} instead of its temp dir: {changes}")
    if shipped_changes:
        problems.append(
            f"changed the shared shipped project {shipped_project()} instead of a copy: "
            + shipped_changes
        )
    if problems:
        pytest.fail("guard: this test " + " and ".join(problems), pytrace=False)


# --- the CLI as a user runs it --------------------------------------------------------


def _migrate_command() -> list[str]:
    script = Path(sys.executable).with_name("migrate")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "phasegate"]


class Served:
    """A running ``migrate sandbox serve``: its process, endpoint URL and output.

    Its stdout and stderr are read as they come, so a chatty server never blocks on a
    full pipe.
    """

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None and process.stderr is not None
        self.process = process
        self.url = ""
        self._stdout: queue.Queue[str] = queue.Queue()
        self._stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._pump, args=(process.stdout, self._stdout.put)),
            threading.Thread(target=self._pump, args=(process.stderr, self._stderr.append)),
        ]
        for reader in self._readers:
            reader.daemon = True
            reader.start()

    @staticmethod
    def _pump(stream: Any, sink: Callable[[str], None]) -> None:
        for line in stream:
            sink(line)
        sink("")  # end of stream

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_for_url(self, timeout: float) -> str:
        try:
            line = self._stdout.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"migrate sandbox serve printed no URL within {timeout}s")
        if not line:
            self.process.wait(timeout=30)
            self._join()
            pytest.fail(
                f"migrate sandbox serve exited {self.process.returncode} before serving:\n"
                f"{self.stderr}"
            )
        self.url = line.strip()
        return self.url

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def _join(self) -> None:
        for reader in self._readers:
            reader.join(timeout=10)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send ``sig`` (SIGTERM: stop as a user does) and wait; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                pytest.fail(f"migrate sandbox serve did not stop on signal {sig}")
        self._join()
        return self.process.returncode

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._join()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


class Cli:
    """Runs ``migrate`` as a real subprocess, in a project dir, with a clean environment."""

    def __init__(self, guard: _Guard) -> None:
        self.command = _migrate_command()
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TERM": "dumb",
            **_fake_aws_env(guard.home),
            **guard.subprocess_env(),
        }

    def run(
        self,
        project: Path,
        *args: str,
        timeout: float = 240,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """``migrate ARGS`` in ``project``; ``env`` adds to (or overrides) its environment."""
        return subprocess.run(
            [*self.command, *args],
            cwd=project,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    @contextlib.contextmanager
    def serve(self, project: Path, *args: str, timeout: float = 120) -> Iterator[Served]:
        """``migrate sandbox serve --port 0`` until the block ends (SIGTERM, then waited for)."""
        process = subprocess.Popen(
            [*self.command, "sandbox", "serve", "--port", "0", *args],
            cwd=project,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        served = Served(process)
        try:
            served.wait_for_url(timeout)
            yield served
            served.stop()
        finally:
            served.close()


@pytest.fixture(scope="session")
def cli(_session_guard: _Guard) -> Cli:
    return Cli(_session_guard)


# --- projects -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def shipped() -> Path:
    """The shipped project as staged in git, shared: read it or copy it, never change it."""
    return shipped_project()


@pytest.fixture
def fresh_project(shipped: Path, tmp_path: Path) -> Path:
    """A copy of the shipped project that has never been planned or applied."""
    return copy_project(shipped, tmp_path / "project")


@dataclass(frozen=True)
class AppliedTemplate:
    """A project after one ``migrate apply --yes``; tests copy it, never change it."""

    path: Path
    apply: subprocess.CompletedProcess[str]


@pytest.fixture(scope="session")
def applied_template(
    cli: Cli, shipped: Path, tmp_path_factory: pytest.TempPathFactory
) -> AppliedTemplate:
    """The shipped project (no waits: ``without_waits``) after one ``migrate apply
    --yes``, made once per run and shared by the xdist workers."""

    def build(project: Path) -> dict[str, Any]:
        without_waits(copy_project(shipped, project))
        result = cli.run(project, "apply", "--yes")
        return {"returncode": result.returncode, "stdout": result.stdout, "stderr": result.stderr}

    project, facts = built_once(tmp_path_factory, "applied", build)
    result = subprocess.CompletedProcess(["migrate", "apply", "--yes"], **facts)
    if result.returncode != 0:
        pytest.fail(
            f"migrate apply --yes on a fresh copy exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return AppliedTemplate(project, result)


@pytest.fixture
def applied_project(applied_template: AppliedTemplate, tmp_path: Path) -> Path:
    """A private copy of an applied project, for tests that change or damage it."""
    return copy_project(applied_template.path, tmp_path / "project")


@pytest.fixture(scope="session")
def applied_before(
    cli: Cli, shipped: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    """``applied_before(phase)``: the shipped project (no waits: ``without_waits``) with
    every phase before ``phase`` applied and verified, one ``migrate apply --yes --phase``
    at a time, and ``phase`` never applied. Each is made when first needed, once per run, and
    shared by the xdist workers: copy it, never change it."""
    from phasegate.spec import load_migration

    order = [phase.name for phase in load_migration(shipped).phases]
    made: dict[str, Path] = {}

    def before(phase: str) -> Path:
        if phase not in made:
            index = order.index(phase)
            source = before(order[index - 1]) if index else None

            def build(project: Path) -> dict[str, Any]:
                if source is None:
                    without_waits(copy_project(shipped, project))
                    return {}
                copy_project(source, project)
                previous = order[index - 1]
                result = cli.run(project, "apply", "--yes", "--phase", previous)
                if result.returncode != 0:
                    pytest.fail(
                        f"migrate apply --yes --phase {previous} exited {result.returncode}\n"
                        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
                    )
                return {}

            made[phase], _ = built_once(tmp_path_factory, f"before-{phase}", build)
        return made[phase]

    return before


def tree_digest(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


@pytest.fixture
def snapshot() -> Callable[[Path], dict[str, bytes]]:
    return tree_digest
