"""The projects tests start from: the shipped one, as staged in git, and copies of it.

People edit ``stacks/`` and ``migration.yaml`` in their working tree to try things; the
tests must not pass or fail on that. So the project's parts are taken from the git index
(``git checkout-index``) into a temp dir, once per test process (each xdist worker has
its own), and every test reads or copies that. The index, not ``HEAD``: in a fresh clone
and in CI they are the same, and a developer who changes a phase program or a stack
config on purpose stages it to test it. Unstaged edits are listed in pytest's header.
Outside a git checkout (an unpacked sdist), the working tree's files are copied instead.

Projects that take ``migrate`` runs to make (applied, applied up to a phase) are made
once per test run by ``built_once``, however many xdist workers use them, and copied.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("migration.yaml", "Pulumi.yaml", "phases", "stacks", "policies")
"""What a phasegate project is made of; tests copy these, never run in the repo."""

_IGNORED = shutil.ignore_patterns("__pycache__")


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        # No optional locks: reading must not refresh (write) the repository's index.
        ["git", "--no-optional-locks", "-C", str(REPO), *args],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _staged_files() -> tuple[list[str], str] | None:
    """The project's files in the git index (relative to the top of the checkout) and
    where the project sits in the checkout; None when this is not a git checkout."""
    try:
        where = _git("rev-parse", "--show-prefix")
    except FileNotFoundError:  # no git
        return None
    if where.returncode != 0:
        return None
    prefix = where.stdout.strip()
    listed = _git("ls-files", "-z", "--cached", "--full-name", "--", *PROJECT_FILES)
    files = [f for f in listed.stdout.split("\0") if f]
    if listed.returncode != 0 or f"{prefix}migration.yaml" not in files:
        return None  # a checkout that does not track the project: nothing staged to use
    return files, prefix


def _extract(dest: Path) -> tuple[Path, str]:
    staged = _staged_files()
    if staged is None:
        project = dest / "project"
        project.mkdir()
        for name in PROJECT_FILES:
            if (REPO / name).is_dir():
                shutil.copytree(REPO / name, project / name, ignore=_IGNORED)
            elif (REPO / name).is_file():
                shutil.copy2(REPO / name, project / name)
        return project, f"the working tree of {REPO} (not a git checkout)"
    files, prefix = staged
    # checkout-index writes each file at --prefix plus its path from the checkout's top.
    result = subprocess.run(
        ["git", "-C", str(REPO), "checkout-index", "-z", "--stdin", f"--prefix={dest}/"],
        input="\0".join(f.removeprefix(prefix) for f in files),  # relative to REPO
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"git checkout-index of the shipped project: {result.stderr}")
    return dest / prefix, f"the git index of {REPO}"


@functools.cache
def _shipped() -> tuple[Path, str]:
    dest = Path(tempfile.mkdtemp(prefix="phasegate-tests-shipped-"))
    atexit.register(shutil.rmtree, dest, ignore_errors=True)
    project, source = _extract(dest)
    _small_estate(project)
    return project, source


SMALL_ESTATE = "{objects: 300, large: 1, large_mib: 2, multipart: 3, overwrites: 5, deleted: 5}"
"""The sandbox's legacy estate in the tests' copy of the project: every kind of object
of the shipped 5,000 (awkward keys, multipart, large, overwritten, deleted), few of each.
Every test that applies the data layer copies the estate and proves the copy; at 5,000
objects that is a minute or more each. Tests of the shipped size call
:func:`shipped_estate`."""
_ESTATE_LINE = f"    legacy_estate: {SMALL_ESTATE}  # the tests' size (tests/_projects.py)\n"


def _small_estate(project: Path) -> None:
    path = project / "migration.yaml"
    text = path.read_text()
    small, found = re.subn(
        r"(?m)^(    engine: sandbox\n)", lambda m: m.group(1) + _ESTATE_LINE, text
    )
    assert found == 1 and "legacy_estate" not in text, f"no single sandbox engine in {path}"
    path.write_text(small)


def shipped_estate(project: Path) -> Path:
    """Give a copy of the project back the shipped legacy estate (5,000 objects)."""
    path = project / "migration.yaml"
    text = path.read_text()
    assert _ESTATE_LINE in text, f"not the tests' small estate in {path}"
    path.write_text(text.replace(_ESTATE_LINE, ""))
    return project


def shipped_project() -> Path:
    """The shipped project (its parts only), shared by every test of this process: read it
    or copy it, never change it (the guard in conftest.py fails a test that does)."""
    return _shipped()[0]


def shipped_from() -> str:
    """Where :func:`shipped_project` came from, for pytest's header."""
    return _shipped()[1]


def copy_project(source: Path, dest: Path) -> Path:
    """Copy a project, the shipped one or a used one: everything but bytecode."""
    shutil.copytree(source, dest, symlinks=True, ignore=_IGNORED)
    return dest


def unstaged_edits() -> list[str]:
    """The project files that differ in the working tree from what the tests use."""
    if _staged_files() is None:
        return []
    changed = _git("diff", "--name-only", "--relative", "--", *PROJECT_FILES)
    new = _git("ls-files", "--others", "--exclude-standard", "--", *PROJECT_FILES)
    return sorted({*changed.stdout.split(), *new.stdout.split()})


def without_waits(project: Path) -> Path:
    """Make the sandbox's cutover steps bake for 0 s instead of a few seconds each, and
    every check of ``migration.yaml`` try again at once instead of 2 s later.

    For the templates tests copy: a test that copies one is about what the cutover does
    and what a failed check sets off, not how long the cutover watches or a failing
    check waits (the shipped compute check takes 6 s to give up). (The golden files,
    made from a fresh copy, and the checks' own tests keep the waits.) The stack config
    keeps its lines, so tests that point at a line of it still can."""
    path = project / "stacks" / "Pulumi.sandbox-cutover.yaml"
    text = path.read_text()
    quick, found = re.subn(r"(?m)(bake_seconds: )[0-9.]+", r"\g<1>0", text)
    assert found, f"no bake_seconds in {path}"
    path.write_text(quick)
    path = project / "migration.yaml"
    text = path.read_text()
    # Each check is a "- name:" item of a phase's checks list, six spaces in.
    quick, found = re.subn(r"(?m)^(      - name: .*)$", r"\1\n        interval: 0", text)
    assert found and "interval:" not in text, f"checks not where expected in {path}"
    path.write_text(quick)
    return project


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], dict[str, Any]]
) -> tuple[Path, dict[str, Any]]:
    """``build(dest)`` makes a project at ``dest`` and returns facts about it (JSON); it
    runs once per test run: xdist workers share the result through the run's temp dir,
    each waiting under a file lock for the one that builds it. Returns dest and facts.

    What is built is read and copied, never changed. A build that raised is tried again
    by the next worker that needs it."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's temp dir, above each worker's own
    root = base / "built-once"
    root.mkdir(exist_ok=True)
    dest, done = root / name, root / f"{name}.json"
    with _locked(root / f"{name}.lock"):
        if not done.is_file():
            if dest.exists():
                shutil.rmtree(dest)
            done.write_text(json.dumps(build(dest)))
    facts: dict[str, Any] = json.loads(done.read_text())
    return dest, facts


def one_error_line(stderr: str) -> str:
    """What a refused command printed: exactly one line, ``error: …``, no traceback."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in stderr
    return lines[0]


RELAXED = {"phasegate:policy": {"required-tags": "advisory"}}
"""Stack config for a test program that does not carry the project's required tags."""


def only_phase(project: Path, name: str, main: str, config: dict[str, Any]) -> Path:
    """Make ``project`` one of a single phase, an ordinary program ``phases/NAME/``;
    returns its sandbox stack file."""
    folder = project / "phases" / name
    folder.mkdir()
    (folder / "__main__.py").write_text(main)
    spec = yaml.safe_load((project / "migration.yaml").read_text())
    spec["phases"] = [{"name": name, "program": name}]
    (project / "migration.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    stack = project / "stacks" / f"Pulumi.sandbox-{name}.yaml"
    stack.write_text(yaml.safe_dump({"config": config}))
    return stack
