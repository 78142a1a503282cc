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

from phasegate.engines.base import Engine, Op, ProgramSource, StackTarget
from phasegate.errors import EngineError

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
