"""The sandbox engine's drift: what a refresh would drop, found without writing anything,
on resources of the emulated cloud deleted behind the engine's back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from phasegate.engines.base import Op, ProgramSource, StackTarget
from phasegate.engines.sandbox import SandboxEngine

PROGRAM = """
import pulumi
import pulumi_aws as aws

logs = aws.s3.Bucket("logs", bucket="drift-logs")
aws.s3.Bucket("assets", bucket="drift-assets")
aws.s3.BucketVersioning(
    "logs-versioning",
    bucket=logs.id,
    versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
        status="Enabled"
    ),
)
pulumi.export("logs", logs.bucket)
"""

STACK = StackTarget(
    project="phasegate",
    environment="sandbox",
    phase="drift",
    region="us-east-1",
    program=ProgramSource(module="drift", files={"__main__.py": PROGRAM.encode()}),
    config={},
)


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxEngine]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    made = SandboxEngine(tmp_path / "sandbox")
    made.up(STACK)
    yield made
    made.close()


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_nothing_gone_is_no_drift(engine: SandboxEngine) -> None:
    assert engine.drift(STACK) == []


def test_a_deleted_bucket_is_a_delete_and_nothing_is_written(engine: SandboxEngine) -> None:
    s3 = engine.aws_client(STACK, "s3")
    s3.delete_bucket(Bucket="drift-assets")  # in the engine's cloud, not committed by it
    written = _files(engine.root)

    drift = engine.drift(STACK)

    assert [(c.op, c.type, c.name) for c in drift] == [
        (Op.DELETE, "aws:s3/bucket:Bucket", "assets")
    ]
    assert _files(engine.root) == written
    assert engine.drift(STACK) == drift  # still on record, so still found
    names = {r.name for r in engine.store("sandbox").load().stacks["sandbox-drift"].resources}
    assert "assets" in names

    # A refresh, by contrast, drops it from the checkpoint, and writes that down.
    assert [c.name for c in engine.refresh(STACK)] == ["assets"]
    assert _files(engine.root) != written
    assert engine.drift(STACK) == []
