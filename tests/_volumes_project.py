"""A four-phase migration whose resources are Pulumi dynamic-provider "volumes" (JSON files
in a directory the tests look into), so it runs on the real Pulumi CLI with no provider
plugin to download, and on the sandbox engine alike.

base → store → work → front, each phase reading the one before through a StackReference;
checks of kind ``outputs`` and ``python``; ``vault`` in store is protected; a CrossGuard
pack (the shipped ``policies/__main__.py`` over rules of its own) caps a volume at 60 GiB.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Any

import yaml

from _projects import REPO

PHASES = ("base", "store", "work", "front")

VOLUMES = '''
"""A volume: a JSON file holding its size, made by a Pulumi dynamic provider."""

import json
import time
from pathlib import Path

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult


class Files(ResourceProvider):
    def create(self, props):
        time.sleep(float(props.get("pause") or 0))
        path = Path(props["root"]) / f"{props['key']}.json"
        path.write_text(json.dumps({"size": props["size"]}))
        return CreateResult(id_=str(path), outs={**props, "path": str(path)})

    def diff(self, _id, olds, news):
        changed = [k for k in ("root", "key", "size") if olds.get(k) != news.get(k)]
        replaces = [k for k in changed if k in ("root", "key")]
        return DiffResult(changes=bool(changed), replaces=replaces)

    def update(self, _id, olds, news):
        time.sleep(float(news.get("pause") or 0))
        Path(olds["path"]).write_text(json.dumps({"size": news["size"]}))
        return UpdateResult(outs={**news, "path": olds["path"]})

    def delete(self, _id, props):
        Path(props["path"]).unlink(missing_ok=True)


class Volume(Resource):
    path: pulumi.Output[str]
    key: pulumi.Output[str]
    size: pulumi.Output[int]

    def __init__(self, name, key, size, opts=None):
        config = pulumi.Config("phasegate")
        protect = name in (config.get_object("protected") or [])
        props = {
            "root": config.require("root"),
            "key": key,
            "size": size,
            "pause": config.get_float("pause") or 0,
            "path": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=protect))
        super().__init__(Files(), name, props, opts)


def upstream(phase):
    """The stack of an earlier phase of this environment."""
    environment = pulumi.get_stack().split("-", 1)[0]
    org, project = pulumi.get_organization(), pulumi.get_project()
    name = f"{org}/{project}/{environment}-{phase}"
    return pulumi.StackReference(f"{phase}-ref", stack_name=name)
'''

PROGRAMS = {
    "base": """
        import pulumi
        from volumes import Volume


        def program():
            config = pulumi.Config("phasegate")
            environment = pulumi.get_stack().split("-", 1)[0]
            base = Volume("base", f"{environment}-base", config.require_int("size"))
            pulumi.export("key", base.key)
            pulumi.export("path", base.path)
    """,
    "store": """
        import pulumi
        from volumes import Volume, upstream


        def program():
            config = pulumi.Config("phasegate")
            key = upstream("base").get_output("key").apply(lambda k: f"{k}-vault")
            vault = Volume("vault", key, 5)
            cache = Volume(
                "cache", "cache", config.require_int("size"),
                opts=pulumi.ResourceOptions(depends_on=[vault]),
            )
            pulumi.export("paths", pulumi.Output.all(vault.path, cache.path))
    """,
    "work": """
        import pulumi
        from volumes import Volume, upstream


        def program():
            config = pulumi.Config("phasegate")
            paths = upstream("store").get_output("paths")
            jobs = Volume("jobs", paths.apply(lambda p: "jobs"), config.require_int("size"))
            pulumi.export("path", jobs.path)
    """,
    "front": """
        import pulumi
        from volumes import Volume, upstream


        def program():
            config = pulumi.Config("phasegate")
            jobs = upstream("work").get_output("path")
            front = Volume("front", jobs.apply(lambda p: "front"), config.require_int("size"))
            pulumi.export("path", front.path)
    """,
}

MAIN = """
import importlib

import pulumi

importlib.import_module(pulumi.Config("phasegate").require("program")).program()
"""

CHECKS = '''
"""The project's own checks (kind: python)."""

import json
from pathlib import Path


def files_in_place(ctx):
    paths = ctx.outputs.get("paths") or []
    missing = [p for p in paths if not Path(p).is_file()]
    if ctx.config.get("broken"):
        return False, "the store is marked broken"
    return not missing, f"missing: {missing}" if missing else f"{len(paths)} file(s) in place"


def size_at_most(ctx, limit):
    size = json.loads(Path(ctx.outputs["path"]).read_text())["size"]
    return size <= limit, f"jobs is {size:g} GiB (limit {limit})"
'''

RULES = '''
"""The pack's rules, as plain functions (the sandbox runs them; __main__.py wraps them)."""

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

UNKNOWN = "(known after apply)"
STACK_TYPE = "pulumi:pulumi:Stack"
_CROSSGUARD_UNKNOWNS = {"04da6b54-80e4-46f7-96ec-b56ff0331ba9"}


@dataclass(frozen=True)
class Resource:
    type: str
    name: str
    props: Mapping[str, Any]


@dataclass(frozen=True)
class Context:
    stack: str | None = None
    environment: str | None = None
    max_gpus: int | None = None


@dataclass(frozen=True)
class Finding:
    resource_type: str
    resource_name: str
    message: str


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    enforcement: str
    scope: str
    check: Callable[[Sequence[Resource], Context], Iterable[Finding]]


def is_unknown(value: Any) -> bool:
    return isinstance(value, str) and (value == UNKNOWN or value in _CROSSGUARD_UNKNOWNS)


def size_cap(resources, _context):
    for r in resources:
        size = r.props.get("size")
        if isinstance(size, (int, float)) and size > 60:
            yield Finding(r.type, r.name, f"{r.name} asks {size:g} GiB, over the cap of 60")


RULES = (
    Rule("volume-size-cap", "Volumes are 60 GiB at most.", "mandatory", "resource", size_cap),
)
'''


def _migration(engine: str) -> dict[str, Any]:
    def phase(name: str, checks: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
        return {"name": name, "program": name, **more, "checks": checks}

    return {
        "schema_version": 1,
        "environments": [{"name": "staging", "engine": engine, "region": "us-east-1"}],
        "phases": [
            phase(
                "base",
                [{"name": "base_out", "kind": "outputs", "params": {"present": ["key", "path"]}}],
            ),
            phase(
                "store",
                [
                    {
                        "name": "store_files",
                        "kind": "python",
                        "params": {"function": "checks:files_in_place"},
                    }
                ],
                depends_on=["base"],
                protected=["vault"],
            ),
            phase(
                "work",
                [
                    {
                        "name": "jobs_size",
                        "kind": "python",
                        "params": {"function": "checks:size_at_most", "args": {"limit": 30}},
                    }
                ],
                depends_on=["store"],
            ),
            phase(
                "front",
                [{"name": "front_out", "kind": "outputs", "params": {"present": ["path"]}}],
                depends_on=["work"],
            ),
        ],
    }


def build(root: Path, cloud: Path, engine: str = "pulumi") -> Path:
    """The project at ``root``, its volumes in ``cloud``; every phase's size 10."""
    (root / "phases").mkdir(parents=True)
    (root / "stacks").mkdir()
    cloud.mkdir(parents=True, exist_ok=True)
    (root / "Pulumi.yaml").write_text(
        "name: volumes\nruntime:\n  name: python\nmain: phases/\nstackConfigDir: stacks\n"
    )
    (root / "migration.yaml").write_text(yaml.safe_dump(_migration(engine), sort_keys=False))
    (root / "phases" / "__main__.py").write_text(MAIN.lstrip())
    (root / "phases" / "volumes.py").write_text(VOLUMES.lstrip())
    (root / "phases" / "checks.py").write_text(CHECKS.lstrip())
    for name, text in PROGRAMS.items():
        (root / "phases" / f"{name}.py").write_text(textwrap.dedent(text).lstrip())
        stack_config(root, name, {"root": str(cloud), "size": 10})
    pack = root / "policies"
    pack.mkdir()
    shutil.copyfile(REPO / "policies" / "__main__.py", pack / "__main__.py")
    (pack / "rules.py").write_text(RULES.lstrip())
    (pack / "PulumiPolicy.yaml").write_text("runtime: python\ndescription: volume rules\n")
    return root


def stack_config(root: Path, phase: str, values: dict[str, Any]) -> None:
    """Set ``phasegate:<key>`` values in the phase's staging stack file."""
    path = root / "stacks" / f"Pulumi.staging-{phase}.yaml"
    data = yaml.safe_load(path.read_text()) if path.exists() else {"config": {}}
    data["config"].update({f"phasegate:{k}": v for k, v in values.items()})
    path.write_text(yaml.safe_dump(data))
