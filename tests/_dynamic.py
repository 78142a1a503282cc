"""A phase program both engines run with no downloaded plugin: a Pulumi dynamic provider
(pure Python) whose "cloud" is a directory of JSON files a test can look into.

Config (namespace ``phasegate``) picks what it declares: ``root`` (the cloud directory),
``size`` of the volume ``data`` and its ``data_key`` (a new key replaces it), ``note``
(the text of a note, whose provider has no diff or update of its own), ``scratch``
(a volume retained on delete), ``extra`` (one more volume), ``shelf`` (a component with
two volumes in it), ``upstream`` (a stack whose outputs it reads). The volume ``keep`` is
always there, protected.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from phasegate.engines.base import Engine, ProgramSource, StackTarget

__all__ = ["MAIN", "PROGRAM", "files", "pulumi_engine", "target"]

PROGRAM = textwrap.dedent(
    """
    import json
    from pathlib import Path

    import pulumi
    from pulumi.dynamic import (
        CreateResult,
        DiffResult,
        ReadResult,
        Resource,
        ResourceProvider,
        UpdateResult,
    )


    class Files(ResourceProvider):
        def create(self, props):
            if props["size"] > 100:
                raise ValueError(f"volume quota exceeded: {props['size']} GiB asked, 100 allowed")
            path = Path(props["root"]) / f"{props['key']}.json"
            if path.exists():
                raise FileExistsError(f"volume {props['key']} exists already")
            path.write_text(json.dumps({"size": props["size"]}))
            return CreateResult(id_=str(path), outs={**props, "path": str(path)})

        def diff(self, _id, olds, news):
            changed = [k for k in ("size", "key") if olds.get(k) != news.get(k)]
            return DiffResult(changes=bool(changed), replaces=["key"] if "key" in changed else [])

        def update(self, _id, olds, news):
            Path(olds["path"]).write_text(json.dumps({"size": news["size"]}))
            return UpdateResult(outs={**news, "path": olds["path"]})

        def read(self, id_, props):
            return ReadResult(id_ if Path(id_).exists() else "", props)

        def delete(self, _id, props):
            Path(props["path"]).unlink(missing_ok=True)


    class Notes(ResourceProvider):
        # Only create and delete of its own: the base class's diff (compare the inputs)
        # and update (change nothing, return no outputs).

        def create(self, props):
            path = Path(props["root"]) / f"{props['name']}.txt"
            path.write_text(props["text"])
            return CreateResult(id_=str(path), outs={**props, "path": str(path)})

        def delete(self, id_, props):
            Path(id_).unlink(missing_ok=True)


    class Note(Resource):
        path: pulumi.Output[str]

        def __init__(self, name, root, text):
            props = {"root": root, "name": name, "text": text, "path": None}
            super().__init__(Notes(), name, props)


    class Volume(Resource):
        path: pulumi.Output[str]
        key: pulumi.Output[str]
        size: pulumi.Output[float]

        def __init__(self, name, root, key, size, opts=None):
            props = {"root": root, "key": key, "size": size, "path": None}
            super().__init__(Files(), name, props, opts)


    class Shelf(pulumi.ComponentResource):
        def __init__(self, name, root, opts=None):
            super().__init__("contract:index:Shelf", name, None, opts)
            inside = pulumi.ResourceOptions(parent=self)
            self.volumes = [
                Volume(f"{name}-{i}", root, f"{name}-{i}", i, opts=inside) for i in (1, 2)
            ]
            self.register_outputs({"paths": [v.path for v in self.volumes]})


    def program():
        config = pulumi.Config("phasegate")
        root = config.require("root")
        data = Volume("data", root, config.get("data_key") or "data", config.require_int("size"))
        Volume("keep", root, "keep", 1, opts=pulumi.ResourceOptions(protect=True))
        if config.get_bool("scratch"):
            retained = pulumi.ResourceOptions(retain_on_delete=True)
            Volume("scratch", root, "scratch", 2, opts=retained)
        if config.get("note"):
            pulumi.export("note_path", Note("note", root, config.get("note")).path)
        if config.get_bool("extra"):
            Volume("extra", root, "extra", 3)
        if config.get_bool("shelf"):
            shelf = Shelf("shelf", root)
            pulumi.export("shelf_paths", [v.path for v in shelf.volumes])
        pulumi.export("path", data.path)
        pulumi.export("token", pulumi.Output.secret("s3cr3t-value"))
        pulumi.export("summary", {"sizes": [data.size, 1], "where": {"key": data.key}})
        pulumi.export("login", pulumi.Output.secret({"user": "ops", "pins": [4, 2]}))
        upstream = config.get("upstream")
        if upstream:
            other = pulumi.StackReference(upstream)
            pulumi.export("upstream_path", other.get_output("path"))
            pulumi.export("upstream_token", other.get_output("token"))
    """
)
MAIN = "import importlib\nimportlib.import_module('volumes').program()\n"


def target(root: Path, size: int, *, phase: str = "volumes", **config: Any) -> StackTarget:
    """The program as stack ``test-<phase>`` of project ``contract``."""
    sources = {"__main__.py": MAIN.encode(), "volumes.py": PROGRAM.encode()}
    settings = {"root": str(root), "size": size, **config}
    return StackTarget(
        project="contract",
        environment="test",
        phase=phase,
        region="us-east-1",
        program=ProgramSource(module="volumes", files=sources),
        config={f"phasegate:{k}": v for k, v in settings.items()},
    )


def files(cloud: Path) -> dict[str, int]:
    """The cloud's volumes, key to size."""
    return {p.stem: json.loads(p.read_text())["size"] for p in sorted(cloud.glob("*.json"))}


def pulumi_engine(root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The pulumi engine on a file backend under ``root``, for project ``contract``."""
    from phasegate.engines.pulumi import PulumiEngine

    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "contract-tests")
    (root / "Pulumi.yaml").write_text("name: contract\nruntime: python\n")  # the project's
    yield PulumiEngine(root, root / ".phasegate" / "pulumi")
