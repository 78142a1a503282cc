"""The pulumi engine on the real Pulumi CLI, with a program that needs no downloaded
plugin (``tests/_dynamic.py``, a dynamic provider the engine contract shares). What only
this engine shows is here: the CLI's own words. `scripts/build-pulumi.sh` builds the CLI
where Go is."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from _dynamic import files as _files
from _dynamic import pulumi_engine
from _dynamic import target as _target
from phasegate.engines.base import Engine, Op
from phasegate.errors import EngineError

pytestmark = [
    pytest.mark.pulumi_cli,
    pytest.mark.skipif(
        shutil.which("pulumi") is None,
        reason="needs the Pulumi CLI on PATH (scripts/build-pulumi.sh builds it where go is)",
    ),
]


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    yield from pulumi_engine(tmp_path, monkeypatch)


@pytest.fixture
def cloud(tmp_path: Path) -> Path:
    root = tmp_path / "cloud"
    root.mkdir()
    return root


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
    assert outputs.secret == {"token", "login"}


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
    renamed = _target(cloud, 10, data_key="data2")

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
    engine.up(_target(cloud, 10, scratch=True))
    assert _files(cloud) == {"data": 10, "keep": 1, "scratch": 2}

    result = engine.up(_target(cloud, 10))

    assert _files(cloud) == {"data": 10, "keep": 1, "scratch": 2}  # still there
    assert [c for c in result.changes if c.op is Op.DELETE] == []
    assert result.kept == ("pulumi-python:dynamic:Resource scratch",)
