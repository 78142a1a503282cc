"""The Engine port's contract, written once; each engine's test class inherits it."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from phasegate.engines.base import Engine, Op, ProgramSource, StackTarget

PROGRAM = textwrap.dedent(
    """
    import pulumi
    import pulumi_aws as aws

    def program():
        config = pulumi.Config("phasegate")
        tier = config.get("tier") or "a"
        vpc = aws.ec2.Vpc("vpc", cidr_block=config.require("cidr"), tags={"tier": tier})
        aws.ec2.Subnet("subnet", vpc_id=vpc.id, cidr_block=config.require("subnet"))
        data = aws.s3.Bucket(
            "data",
            bucket=config.require("bucket"),
            tags={"owner": pulumi.Output.secret("team-with-a-secret-name")},
            opts=pulumi.ResourceOptions(protect=True),
        )
        pulumi.export("vpc_id", vpc.id)
        pulumi.export("bucket", data.bucket)
        pulumi.export("token", pulumi.Output.secret("s3cr3t-value"))
        pulumi.export("bucket_tags", data.tags)
    """
)
MAIN = "import importlib, pulumi\nimportlib.import_module('demo').program()\n"


def _target(config: dict[str, object], project: str = "contract") -> StackTarget:
    files = {"__main__.py": MAIN.encode(), "demo.py": PROGRAM.encode()}
    return StackTarget(
        project=project,
        environment="test",
        phase="demo",
        region="us-east-1",
        program=ProgramSource(module="demo", files=files),
        config={f"phasegate:{k}": v for k, v in config.items()},
    )


BASE = {"cidr": "10.50.0.0/16", "subnet": "10.50.1.0/24", "bucket": "contract-data-bucket"}


class EngineContract:
    """Behaviour every engine must show. Subclasses provide the ``engine`` fixture."""

    @pytest.fixture
    def engine(self, tmp_path: Path) -> Engine:
        raise AssertionError("subclasses provide the engine fixture")

    def test_outputs_none_before_any_apply(self, engine: Engine) -> None:
        assert engine.outputs("test-demo") is None

    def test_preview_lists_creates_and_changes_nothing(self, engine: Engine) -> None:
        plan = engine.preview(_target(BASE))
        assert sorted((c.op, c.type) for c in plan.changes) == [
            (Op.CREATE, "aws:ec2/subnet:Subnet"),
            (Op.CREATE, "aws:ec2/vpc:Vpc"),
            (Op.CREATE, "aws:s3/bucket:Bucket"),
        ]
        assert engine.outputs("test-demo") is None
        again = engine.preview(_target(BASE))
        assert [c.op for c in again.changes] == [Op.CREATE] * 3

    def test_up_then_nothing_to_do(self, engine: Engine) -> None:
        result = engine.up(_target(BASE))
        assert result.counts["create"] == 3
        outputs = engine.outputs("test-demo")
        assert outputs is not None
        assert outputs.values["bucket"] == "contract-data-bucket"
        assert str(outputs.values["vpc_id"]).startswith("vpc-")
        # Exported secret, and an output of a resource whose input was secret.
        assert outputs.secret == frozenset({"token", "bucket_tags"})
        assert outputs.redacted()["token"] == "[secret]"
        assert outputs.redacted()["bucket_tags"] == "[secret]"
        plan = engine.preview(_target(BASE))
        assert not plan.has_changes

    def test_one_changed_property_is_one_update(self, engine: Engine) -> None:
        engine.up(_target(BASE))
        plan = engine.preview(_target({**BASE, "tier": "b"}))
        changed = [c for c in plan.changes if c.op is not Op.SAME]
        assert [(c.op, c.name, c.changed) for c in changed] == [(Op.UPDATE, "vpc", ("tags",))]

    def test_forcing_property_is_a_replace(self, engine: Engine) -> None:
        engine.up(_target(BASE))
        plan = engine.preview(_target({**BASE, "subnet": "10.50.2.0/24"}))
        changed = {c.name: c.op for c in plan.changes if c.op is not Op.SAME}
        assert changed == {"subnet": Op.REPLACE}
        result = engine.up(_target({**BASE, "subnet": "10.50.2.0/24"}))
        assert {(c.op, c.name) for c in result.changes} >= {(Op.REPLACE, "subnet")}

    def test_destroy_keeps_protected_resources(self, engine: Engine) -> None:
        engine.up(_target(BASE))
        result = engine.destroy(_target(BASE))
        assert {c.name for c in result.changes if c.op is Op.DELETE} == {"vpc", "subnet"}
        assert any("data" in kept for kept in result.kept)
        plan = engine.preview(_target(BASE))
        ops = {c.name: c.op for c in plan.changes}
        assert ops == {"vpc": Op.CREATE, "subnet": Op.CREATE, "data": Op.SAME}


class TestSandboxEngine(EngineContract):
    @pytest.fixture
    def engine(self, tmp_path: Path) -> Iterator[Engine]:
        from phasegate.engines.sandbox import SandboxEngine

        engine = SandboxEngine(tmp_path / "sandbox", {"test": "us-east-1"})
        yield engine
        engine.close()

    def test_cloud_and_checkpoint_agree_after_up(self, engine: Engine) -> None:
        from phasegate.engines.sandbox import SandboxEngine

        assert isinstance(engine, SandboxEngine)
        engine.up(_target(BASE))
        store = engine.store("test")
        checkpoint = store.load()
        ids = {r.name: r.id for r in checkpoint.stacks["test-demo"].resources}
        session = store.cloud(checkpoint).session()
        vpcs = {v["VpcId"] for v in session.client("ec2").describe_vpcs()["Vpcs"]}
        assert ids["vpc"] in vpcs
        buckets = {b["Name"] for b in session.client("s3").list_buckets()["Buckets"]}
        assert "contract-data-bucket" in buckets

    def test_a_failed_up_leaves_nothing_running_and_cloud_and_checkpoint_agree(
        self, engine: Engine
    ) -> None:
        # Twelve independent VPCs register at once; a bucket policy on a bucket that does
        # not exist fails at create. Nothing may still be creating when up() returns.
        program = textwrap.dedent(
            """
            import json

            import pulumi_aws as aws

            def program():
                for i in range(12):
                    aws.ec2.Vpc(f"vpc-{i}", cidr_block=f"10.{60 + i}.0.0/16")
                deny = {
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": "arn:aws:s3:::no-such-bucket-anywhere/*",
                }
                aws.s3.BucketPolicy(
                    "orphan-policy",
                    bucket="no-such-bucket-anywhere",
                    policy=json.dumps({"Version": "2012-10-17", "Statement": [deny]}),
                )
            """
        )
        target = _target({})
        target = StackTarget(
            **{
                **target.__dict__,
                "program": ProgramSource(
                    "demo", {"__main__.py": MAIN.encode(), "demo.py": program.encode()}
                ),
            }
        )
        from phasegate.engines.sandbox import SandboxEngine
        from phasegate.errors import EngineError

        assert isinstance(engine, SandboxEngine)
        with pytest.raises(EngineError, match="no-such-bucket-anywhere"):
            engine.up(target)

        def program_vpcs() -> tuple[set[str], set[str]]:
            store = engine.store("test")
            checkpoint = store.load()
            stack = checkpoint.stacks.get("test-demo")
            recorded = {r.id for r in stack.resources if r.type.endswith("Vpc")} if stack else set()
            ec2 = store.cloud(checkpoint).session().client("ec2")
            cidrs = {f"10.{60 + i}.0.0/16" for i in range(12)}
            live = {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v["CidrBlock"] in cidrs}
            return recorded, live

        recorded, live = program_vpcs()
        assert recorded == live
        engine.destroy(target)
        assert program_vpcs() == (set(), set())


def _aws_plugin() -> bool:
    """The aws provider plugin, on PATH or installed in Pulumi's plugin directory."""
    plugins = Path.home() / ".pulumi" / "plugins"
    return shutil.which("pulumi-resource-aws") is not None or any(plugins.glob("resource-aws-*"))


@pytest.mark.pulumi_cli
@pytest.mark.skipif(
    shutil.which("pulumi") is None or not _aws_plugin(),
    reason="needs the Pulumi CLI and its aws provider plugin; the plugin cannot be built or "
    "downloaded on this machine (the CLI can: scripts/build-pulumi.sh)",
)
class TestPulumiEngine(EngineContract):
    @pytest.fixture
    def engine(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
        from phasegate.engines.pulumi import PulumiEngine

        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "contract-tests")
        return PulumiEngine(tmp_path, tmp_path / ".phasegate" / "pulumi")
