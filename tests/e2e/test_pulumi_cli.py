"""The pulumi engine on the real Pulumi CLI, with a program that needs no downloaded
plugin: a Pulumi dynamic provider (pure Python) whose "cloud" is a directory of JSON
files the test can look into. `scripts/build-pulumi.sh` builds the CLI where Go is."""

from __future__ import annotations

import dataclasses
import json
import shutil
import textwrap
from pathlib import Path

import pytest

from phasegate.engines.base import UNKNOWN, Engine, Op, ProgramSource, StackOutputs, StackTarget
from phasegate.errors import EngineError, GateBlocked

pytestmark = [
    pytest.mark.pulumi_cli,
    pytest.mark.skipif(
        shutil.which("pulumi") is None,
        reason="needs the Pulumi CLI on PATH (scripts/build-pulumi.sh builds it where go is)",
    ),
]

PROGRAM = textwrap.dedent(
    """
    import json
    from pathlib import Path

    import pulumi
    from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult


    class Files(ResourceProvider):
        def create(self, props):
            if props["size"] > 100:
                raise ValueError(f"volume quota exceeded: {props['size']} GiB asked, 100 allowed")
            path = Path(props["root"]) / f"{props['key']}.json"
            path.write_text(json.dumps({"size": props["size"]}))
            return CreateResult(id_=str(path), outs={**props, "path": str(path)})

        def diff(self, _id, olds, news):
            changed = [k for k in ("size", "key") if olds.get(k) != news.get(k)]
            return DiffResult(changes=bool(changed), replaces=["key"] if "key" in changed else [])

        def update(self, _id, olds, news):
            Path(olds["path"]).write_text(json.dumps({"size": news["size"]}))
            return UpdateResult(outs={**news, "path": olds["path"]})

        def delete(self, _id, props):
            Path(props["path"]).unlink(missing_ok=True)


    class Volume(Resource):
        path: pulumi.Output[str]

        def __init__(self, name, root, key, size, opts=None):
            props = {"root": root, "key": key, "size": size, "path": None}
            super().__init__(Files(), name, props, opts)


    def program():
        config = pulumi.Config("phasegate")
        root = config.require("root")
        data = Volume("data", root, "data", config.require_int("size"))
        Volume("keep", root, "keep", 1, opts=pulumi.ResourceOptions(protect=True))
        if config.get_bool("scratch"):
            retained = pulumi.ResourceOptions(retain_on_delete=True)
            Volume("scratch", root, "scratch", 2, opts=retained)
        pulumi.export("path", data.path)
        pulumi.export("token", pulumi.Output.secret("s3cr3t-value"))
    """
)
MAIN = "import importlib\nimportlib.import_module('volumes').program()\n"


def _target(root: Path, size: int) -> StackTarget:
    files = {"__main__.py": MAIN.encode(), "volumes.py": PROGRAM.encode()}
    return StackTarget(
        project="contract",
        environment="test",
        phase="volumes",
        region="us-east-1",
        program=ProgramSource(module="volumes", files=files),
        config={"phasegate:root": str(root), "phasegate:size": size},
    )


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    from phasegate.engines.pulumi import PulumiEngine

    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "cli-tests")
    (tmp_path / "Pulumi.yaml").write_text("name: contract\nruntime: python\n")  # the project's
    return PulumiEngine(tmp_path, tmp_path / ".phasegate" / "pulumi")


@pytest.fixture
def cloud(tmp_path: Path) -> Path:
    root = tmp_path / "cloud"
    root.mkdir()
    return root


def _files(cloud: Path) -> dict[str, int]:
    return {p.stem: json.loads(p.read_text())["size"] for p in sorted(cloud.glob("*.json"))}


def test_a_preview_changes_nothing_and_an_up_creates_what_it_listed(
    engine: Engine, cloud: Path
) -> None:
    assert engine.outputs("test-volumes") is None
    plan = engine.preview(_target(cloud, 10))
    assert sorted((c.op, c.name) for c in plan.changes) == [
        (Op.CREATE, "data"),
        (Op.CREATE, "keep"),
    ]
    assert _files(cloud) == {}

    result = engine.up(_target(cloud, 10))

    assert {op: n for op, n in result.counts.items() if n} == {"create": 2}
    assert _files(cloud) == {"data": 10, "keep": 1}
    outputs = engine.outputs("test-volumes")
    assert outputs is not None
    assert outputs.values["path"] == str(cloud / "data.json")
    assert outputs.secret == {"token"}


def test_an_unchanged_program_plans_nothing_and_a_changed_input_updates(
    engine: Engine, cloud: Path
) -> None:
    engine.up(_target(cloud, 10))
    again = engine.preview(_target(cloud, 10))
    assert not again.has_changes

    changed = engine.preview(_target(cloud, 20))
    assert [(c.op, c.name) for c in changed.changes if c.op is not Op.SAME] == [(Op.UPDATE, "data")]
    engine.up(_target(cloud, 20))
    assert _files(cloud) == {"data": 20, "keep": 1}


def test_destroy_keeps_what_is_protected_and_says_so(engine: Engine, cloud: Path) -> None:
    engine.up(_target(cloud, 10))

    result = engine.destroy(_target(cloud, 10))

    assert _files(cloud) == {"keep": 1}
    assert [(c.op, c.name) for c in result.changes if c.op is Op.DELETE] == [(Op.DELETE, "data")]
    assert any(k.endswith(" keep") for k in result.kept)


def test_a_replacement_is_one_change_in_the_plan_and_in_the_result(
    engine: Engine, cloud: Path
) -> None:
    """The CLI reports a replacement as three steps (create-replacement, replace,
    delete-replaced); a plan and a result each count it once."""
    engine.up(_target(cloud, 10))
    program = PROGRAM.replace('Volume("data", root, "data",', 'Volume("data", root, "data2",')
    files = {"__main__.py": MAIN.encode(), "volumes.py": program.encode()}
    renamed = dataclasses.replace(
        _target(cloud, 10), program=ProgramSource(module="volumes", files=files)
    )

    plan = engine.preview(renamed)
    result = engine.up(renamed)

    assert [(c.op, c.name) for c in plan.changes if c.op is not Op.SAME] == [(Op.REPLACE, "data")]
    # As the sandbox reports it: what changed, not what stayed the same.
    assert {op: n for op, n in result.counts.items() if n} == {"replace": 1}
    assert _files(cloud) == {"data2": 10, "keep": 1}


def test_a_failed_create_names_the_resource_and_the_providers_own_message(
    engine: Engine, cloud: Path
) -> None:
    with pytest.raises(EngineError) as failed:
        engine.up(_target(cloud, 500))
    said = str(failed.value)
    assert said.startswith("test-volumes: ")
    assert said.startswith("test-volumes: data (pulumi-python:dynamic:Resource): ")
    assert "volume quota exceeded: 500" in said  # numbers reach a provider as floats
    for noise in ("Program failed with an unhandled exception", "error occurred", "stderr:"):
        assert noise not in said
    assert "\n" not in said


def test_a_retained_resource_dropped_from_the_program_is_reported_kept_not_deleted(
    engine: Engine, cloud: Path
) -> None:
    first = _target(cloud, 10)
    engine.up(dataclasses.replace(first, config={**first.config, "phasegate:scratch": True}))
    assert _files(cloud) == {"data": 10, "keep": 1, "scratch": 2}

    result = engine.up(_target(cloud, 10))

    assert _files(cloud) == {"data": 10, "keep": 1, "scratch": 2}  # still there
    assert [c for c in result.changes if c.op is Op.DELETE] == []
    assert result.kept == ("pulumi-python:dynamic:Resource scratch",)


CONSUMER = textwrap.dedent(
    """
    import pulumi

    from volumes import Volume


    def program():
        config = pulumi.Config("phasegate")
        org, project = pulumi.get_organization(), pulumi.get_project()
        upstream = pulumi.StackReference("up", stack_name=f"{org}/{project}/test-volumes")
        key = upstream.get_output("path").apply(lambda p: p.rsplit("/", 1)[-1][:-5] + "-copy")
        Volume("copy", config.require("root"), key, 1)
    """
)


def _consumer(root: Path) -> StackTarget:
    files = {
        "__main__.py": b"import importlib\nimportlib.import_module('consumer').program()\n",
        "volumes.py": PROGRAM.encode(),
        "consumer.py": CONSUMER.encode(),
    }
    return dataclasses.replace(
        _target(root, 1), phase="consumer", program=ProgramSource(module="consumer", files=files)
    )


def test_a_stack_a_preview_made_has_no_outputs(engine: Engine, cloud: Path) -> None:
    """Defect 3: a preview creates the stack in the backend with no checkpoint, and its
    outputs were then `{}`, as if it had been applied and exported nothing."""
    engine.preview(_target(cloud, 10))
    assert engine.outputs("test-volumes") is None


def test_a_downstream_stack_of_a_fresh_environment_previews_with_its_upstream_unknown(
    engine: Engine, cloud: Path
) -> None:
    """Defect 2: the StackReference read a stack that did not exist yet and the preview
    failed; it must see the upstream's planned outputs, unknown until its apply."""
    planned = StackOutputs(values={"path": UNKNOWN, "token": UNKNOWN}, secret=frozenset({"token"}))

    plan = engine.preview(_consumer(cloud), upstream={"test-volumes": planned})

    assert [(c.op, c.name) for c in plan.changes] == [(Op.CREATE, "copy")]
    assert engine.outputs("test-volumes") is None  # nothing of the upstream was made
    # Once the upstream is applied, its real outputs are read from the backend.
    engine.up(_target(cloud, 10))
    engine.up(_consumer(cloud))
    assert _files(cloud) == {"data": 10, "data-copy": 1, "keep": 1}


POLICIES = textwrap.dedent(
    """
    from pulumi_policy import (
        EnforcementLevel,
        PolicyPack,
        ResourceValidationPolicy,
        StackValidationPolicy,
    )


    def size_cap(args, report_violation):
        size = args.props.get("size")
        if isinstance(size, (int, float)) and size > 50:
            report_violation(f"{args.name} asks {size:g} GiB, over the cap of 50")


    def small(args, report_violation):
        size = args.props.get("size")
        if isinstance(size, (int, float)) and size < 2:
            report_violation(f"{args.name} asks {size:g} GiB: volumes under 2 GiB waste a slot")


    def no_scratch_files(args, report_violation):
        for resource in args.resources:
            path = resource.props.get("path")  # known only once the volume exists
            if isinstance(path, str) and path.endswith("scratch.json"):
                report_violation(f"{path} is a scratch file", resource.urn)


    PolicyPack(
        name="volumes",
        enforcement_level=EnforcementLevel.MANDATORY,
        policies=[
            ResourceValidationPolicy(
                name="volume-size-cap", description="Volumes are 50 GiB at most.",
                validate=size_cap,
            ),
            ResourceValidationPolicy(
                name="volume-size-floor", description="Volumes are 2 GiB at least.",
                validate=small, enforcement_level=EnforcementLevel.ADVISORY,
            ),
            StackValidationPolicy(
                name="no-scratch-files", description="No scratch files in the stack.",
                validate=no_scratch_files,
            ),
        ],
    )
    """
)


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    root = tmp_path / "policies"
    root.mkdir()
    (root / "PulumiPolicy.yaml").write_text("runtime: python\ndescription: volume rules\n")
    (root / "__main__.py").write_text(POLICIES)
    return root


def test_crossguard_findings_in_a_plan_name_rule_resource_and_reason(
    engine: Engine, cloud: Path, pack: Path
) -> None:
    """Defect 6, on the real CLI: the reason, not the rule's description, no colour
    markup, and the advisory findings too; a mandatory one goes to the policy gate."""
    plan = engine.preview(dataclasses.replace(_target(cloud, 80), policy_pack=pack))

    found = sorted((v.rule, v.enforcement, v.resource_name, v.message) for v in plan.findings)
    assert found == [
        # CrossGuard's own note: the stack policy reads a value only an up knows.
        (
            "no-scratch-files",
            "advisory",
            "test-volumes",
            "can't run policy 'no-scratch-files' from policy pack 'volumes@v0.0.1' during "
            "preview: string value at .path can't be known during preview",
        ),
        ("volume-size-cap", "mandatory", "data", "data asks 80 GiB, over the cap of 50"),
        (
            "volume-size-floor",
            "advisory",
            "keep",
            "keep asks 1 GiB: volumes under 2 GiB waste a slot",
        ),
    ]
    assert {v.resource_type for v in plan.findings} == {"pulumi-python:dynamic:Resource", "stack"}
    assert _files(cloud) == {}


def test_a_stack_policy_that_fails_during_up_is_an_apply_failure(
    engine: Engine, cloud: Path, pack: Path
) -> None:
    """Defect 1: a stack policy sees values only an up knows; its mandatory violation
    was reported as "nothing was applied" (a gate), though the up had created resources.
    It is an apply failure, which the orchestrator rolls back."""
    target = _target(cloud, 10)
    target = dataclasses.replace(
        target, policy_pack=pack, config={**target.config, "phasegate:scratch": True}
    )
    plan = engine.preview(target)
    assert [v for v in plan.findings if v.enforcement == "mandatory"] == []

    with pytest.raises(EngineError) as failed:
        engine.up(target)

    said = str(failed.value)
    assert not isinstance(failed.value, GateBlocked)
    assert "1 mandatory policy violation(s) during the apply" in said
    assert "no-scratch-files: pulumi-python:dynamic:Resource 'scratch': " in said
    assert f"{cloud / 'scratch.json'} is a scratch file" in said
