"""A corpus of small ordinary Pulumi programs (``tests/corpus/``), each a family of
resources a platform program uses, taken through a phase's whole life on the sandbox:
plan, apply, an apply with nothing to do, a change, its apply, destroy. After each apply
boto3 through ``migrate sandbox serve`` finds what the program declared (the module's
``check``); after the destroy, nothing of it (``gone``).

A corpus module holds ``MAIN`` (the program: stage 1 or 2 from config ``corpus:stage``),
``check(aws, outputs, stage)`` and ``gone(aws, outputs)``; ``aws(service, region=...)``
is a boto3 client on the served sandbox (us-east-1 unless told).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
import yaml
from botocore.config import Config

from _projects import only_phase

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
PROGRAMS = sorted(p.stem for p in CORPUS.glob("*.py") if not p.name.startswith("_"))

_DESTROY = """
import sys
from pathlib import Path
from phasegate.project import Project

project = Project.load(Path(sys.argv[1]))
env = project.migration.environment("sandbox")
try:
    project.engine(env).destroy(project.target(env, project.migration.phase(sys.argv[2])))
finally:
    project.close()
"""
"""The stack destroyed through the engine's port, as `pulumi destroy` would."""


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def _advisory(project: Path) -> dict[str, Any]:
    """Every rule of the project's policy pack advisory: the corpus programs are
    ordinary programs, not the project's idea of a compliant one."""
    rules = _load(project / "policies" / "rules.py", "corpus_policy_rules")
    return {"phasegate:policy": {rule.name: "advisory" for rule in rules.RULES}}


def _stage(project: Path, stack: Path, stage: int) -> None:
    config = {**_advisory(project), "corpus:stage": stage}
    stack.write_text(yaml.safe_dump({"config": config}))


def _ok(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def _phase(cli: Any, project: Path, *args: str) -> dict[str, Any]:
    """The one phase of ``migrate ARGS --output json``."""
    (phase,) = json.loads(_ok(cli.run(project, *args, "--output", "json")))["phases"]
    assert isinstance(phase, dict)
    return phase


def _outputs(cli: Any, project: Path) -> dict[str, Any]:
    (phase,) = json.loads(_ok(cli.run(project, "status", "--output", "json")))["phases"]
    outputs: dict[str, Any] = phase["outputs"]
    return outputs


@pytest.fixture
def served(cli: Any) -> Iterator[Callable[[Path], Any]]:
    """A block in which ``aws(service, region="us-east-1")`` is a client of the
    project's served sandbox."""
    clients: list[Any] = []

    @contextlib.contextmanager
    def serving(project: Path) -> Iterator[Callable[..., Any]]:
        with cli.serve(project) as serve:

            def client(service: str, region: str = "us-east-1") -> Any:
                made = boto3.session.Session().client(
                    service,
                    endpoint_url=serve.url,
                    region_name=region,
                    aws_access_key_id="testing",
                    aws_secret_access_key="testing",
                    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
                )
                clients.append(made)
                return made

            yield client

    yield serving
    for made in clients:
        made.close()


def test_the_corpus_has_a_program_per_family() -> None:
    assert len(PROGRAMS) >= 15, PROGRAMS


@pytest.mark.parametrize("name", PROGRAMS)
def test_a_program_from_plan_to_destroy(
    cli: Any, fresh_project: Path, served: Callable[[Path], Any], name: str
) -> None:
    corpus = _load(CORPUS / f"{name}.py", f"corpus_{name}")
    stack = only_phase(fresh_project, name, corpus.MAIN, {})
    _stage(fresh_project, stack, 1)

    planned = _phase(cli, fresh_project, "plan")
    assert not [r for r in planned["resources"] if r.get("refused")], planned["resources"]
    assert planned["changes"]["create"] > 0
    applied = _phase(cli, fresh_project, "apply", "--yes")
    assert applied["outcome"] == "applied"
    first = _outputs(cli, fresh_project)
    assert applied["outputs"] == first  # as applied, not as planned
    with served(fresh_project) as aws:
        corpus.check(aws, first, 1)

    assert _phase(cli, fresh_project, "apply", "--yes")["outcome"] == "no changes"

    _stage(fresh_project, stack, 2)
    changed = _phase(cli, fresh_project, "plan")
    assert changed["outcome"] == "planned", changed
    assert _phase(cli, fresh_project, "apply", "--yes")["outcome"] == "applied"
    second = _outputs(cli, fresh_project)
    with served(fresh_project) as aws:
        corpus.check(aws, second, 2)

    _ok(
        subprocess.run(
            [sys.executable, "-c", _DESTROY, str(fresh_project), name],
            env=cli.env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    )
    with served(fresh_project) as aws:
        corpus.gone(aws, second)
