"""End to end: the CLI on the sandbox engine, and plain boto3 on `migrate sandbox serve`."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.config import Config

REGION = "us-east-1"


@pytest.fixture(scope="module")
def applied(applied_template: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One applied project the module's tests share, in order (some of them change it)."""
    dest = tmp_path_factory.mktemp("e2e") / "project"
    shutil.copytree(applied_template.path, dest, symlinks=True)
    return dest


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
