"""End to end: the CLI on the sandbox engine, and plain boto3 on `migrate sandbox serve`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.config import Config

from _projects import built_once, copy_project

REGION = "us-east-1"


@pytest.fixture(scope="session")
def completed_template(
    cli: Any, applied_template: Any, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The applied template taken through the rest of the cutover, one step per
    ``migrate apply --yes``: the migration complete. Made once per run; tests copy it."""

    def build(project: Path) -> dict[str, Any]:
        copy_project(applied_template.path, project)
        steps = stack_config(project, "sandbox-cutover")["steps"]
        for _ in steps[1:]:  # the first apply took the first step
            result = cli.run(project, "apply", "--yes")
            if result.returncode != 0:
                pytest.fail(
                    f"migrate apply --yes of a further cutover step exited {result.returncode}"
                    f"\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
                )
        return {}

    project, _ = built_once(tmp_path_factory, "completed", build)
    return project


@pytest.fixture
def completed_project(completed_template: Path, tmp_path: Path) -> Path:
    """A private copy of a project whose migration is complete (every cutover step taken)."""
    return copy_project(completed_template, tmp_path / "project")


@pytest.fixture
def aws() -> Iterator[Callable[[str, str], Any]]:
    """Plain boto3 clients on an endpoint URL, as anyone with the AWS SDK would make them."""
    clients: list[Any] = []

    def client(service: str, endpoint_url: str) -> Any:
        made = boto3.session.Session().client(
            service,
            endpoint_url=endpoint_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )
        clients.append(made)
        return made

    yield client
    for made in clients:
        made.close()


def stack_config(project: Path, stack: str) -> dict[str, Any]:
    """The ``phasegate:`` keys of ``stacks/Pulumi.<stack>.yaml``, without the namespace."""
    data = yaml.safe_load((project / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    return {k.split(":", 1)[1]: v for k, v in data["config"].items() if k.startswith("phasegate:")}


@pytest.fixture
def config() -> Callable[[Path, str], dict[str, Any]]:
    return stack_config
