"""The Engine port's contract on a program both engines run: Pulumi dynamic resources
(``tests/_dynamic.py``), whose "cloud" is a directory of JSON files. Every test runs on
each engine, ``[sandbox]`` always, ``[pulumi]`` where the Pulumi CLI is on PATH."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from _dynamic import files, pulumi_engine, target
from phasegate.engines.base import Engine, Op
from phasegate.errors import EngineError

_NO_CLI = "needs the Pulumi CLI on PATH (scripts/build-pulumi.sh builds it where go is)"
DYNAMIC = "pulumi-python:dynamic:Resource"


@pytest.fixture(
    params=[
        "sandbox",
        pytest.param(
            "pulumi",
            marks=[
                pytest.mark.pulumi_cli,
                pytest.mark.skipif(shutil.which("pulumi") is None, reason=_NO_CLI),
            ],
        ),
    ]
)
def engine(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    if request.param == "sandbox":
        from phasegate.engines.sandbox import SandboxEngine

        sandbox = SandboxEngine(tmp_path / "sandbox", {"test": "us-east-1"})
        yield sandbox
        sandbox.close()
        return
    yield from pulumi_engine(tmp_path, monkeypatch)


@pytest.fixture
def cloud(tmp_path: Path) -> Path:
    root = tmp_path / "cloud"
    root.mkdir()
    return root


def _ops(changes: object) -> list[tuple[Op, str]]:
    """What changes, by op and name, in a stable order; what stays the same left out."""
    return sorted((c.op, c.name) for c in changes if c.op is not Op.SAME)  # type: ignore[attr-defined]


def _counted(counts: dict[str, int]) -> dict[str, int]:
    return {op: n for op, n in counts.items() if n}


def test_a_preview_creates_nothing_and_an_up_creates_what_it_listed(
    engine: Engine, cloud: Path
) -> None:
    assert engine.outputs("test-volumes") is None
    plan = engine.preview(target(cloud, 10))
    assert _ops(plan.changes) == [(Op.CREATE, "data"), (Op.CREATE, "keep")]
    assert {c.type for c in plan.changes} == {DYNAMIC}
    assert files(cloud) == {}

    result = engine.up(target(cloud, 10))

    assert _counted(result.counts) == {"create": 2}
    assert files(cloud) == {"data": 10, "keep": 1}
    assert not engine.preview(target(cloud, 10)).has_changes


def test_exports_keep_their_shape_and_secrets(engine: Engine, cloud: Path) -> None:
    engine.up(target(cloud, 10))

    outputs = engine.outputs("test-volumes")

    assert outputs is not None
    assert outputs.values["path"] == str(cloud / "data.json")
    assert outputs.values["summary"] == {"sizes": [10, 1], "where": {"key": "data"}}
    assert outputs.values["login"] == {"user": "ops", "pins": [4, 2]}
    assert outputs.values["token"] == "s3cr3t-value"
    assert outputs.secret == {"token", "login"}
    assert outputs.redacted()["login"] == "[secret]"


def test_a_changed_input_is_one_update_in_place(engine: Engine, cloud: Path) -> None:
    engine.up(target(cloud, 10))

    plan = engine.preview(target(cloud, 20))
    result = engine.up(target(cloud, 20))

    # The provider's own diff says whether, not which properties.
    assert [(c.op, c.name, c.changed) for c in plan.changes if c.op is not Op.SAME] == [
        (Op.UPDATE, "data", ())
    ]
    assert _ops(result.changes) == [(Op.UPDATE, "data")]
    assert files(cloud) == {"data": 20, "keep": 1}
    outputs = engine.outputs("test-volumes")
    assert outputs is not None and outputs.values["summary"]["sizes"] == [20, 1]


def test_a_provider_without_diff_or_update_compares_inputs_and_changes_nothing(
    engine: Engine, cloud: Path
) -> None:
    engine.up(target(cloud, 10, note="first"))

    plan = engine.preview(target(cloud, 10, note="second"))
    result = engine.up(target(cloud, 10, note="second"))

    assert [(c.op, c.name, c.changed) for c in plan.changes if c.op is not Op.SAME] == [
        (Op.UPDATE, "note", ("text",))
    ]
    assert _ops(result.changes) == [(Op.UPDATE, "note")]
    # The base class's update does nothing and returns no outputs: the file keeps its
    # text, and the outputs it no longer returns are gone.
    assert (cloud / "note.txt").read_text() == "first"
    outputs = engine.outputs("test-volumes")
    assert outputs is not None and outputs.values.get("note_path") is None


def test_a_property_the_provider_replaces_on_is_one_replacement(
    engine: Engine, cloud: Path
) -> None:
    engine.up(target(cloud, 10))

    plan = engine.preview(target(cloud, 10, data_key="data2"))
    result = engine.up(target(cloud, 10, data_key="data2"))

    assert _ops(plan.changes) == [(Op.REPLACE, "data")]
    assert _counted(result.counts) == {"replace": 1}
    assert files(cloud) == {"data2": 10, "keep": 1}
    outputs = engine.outputs("test-volumes")
    assert outputs is not None and outputs.values["path"] == str(cloud / "data2.json")


def test_a_resource_dropped_from_the_program_is_deleted(engine: Engine, cloud: Path) -> None:
    engine.up(target(cloud, 10, extra=True))
    assert files(cloud) == {"data": 10, "extra": 3, "keep": 1}

    plan = engine.preview(target(cloud, 10))
    result = engine.up(target(cloud, 10))

    assert _ops(plan.changes) == [(Op.DELETE, "extra")]
    assert _ops(result.changes) == [(Op.DELETE, "extra")]
    assert files(cloud) == {"data": 10, "keep": 1}


def test_a_failed_create_names_the_resource_and_the_providers_message(
    engine: Engine, cloud: Path
) -> None:
    with pytest.raises(EngineError) as failed:
        engine.up(target(cloud, 500))

    said = str(failed.value)
    assert "data" in said and DYNAMIC in said
    assert "volume quota exceeded: 500" in said
    assert "\n" not in said
    # What was done before the failure is recorded: the next up creates only the rest
    # (the provider refuses to create a volume that exists).
    assert "data" not in files(cloud)
    again = engine.up(target(cloud, 10))
    assert (Op.CREATE, "data") in _ops(again.changes)
    assert files(cloud) == {"data": 10, "keep": 1}
    assert not engine.preview(target(cloud, 10)).has_changes


def test_a_component_and_its_children(engine: Engine, cloud: Path) -> None:
    plan = engine.preview(target(cloud, 10, shelf=True))
    engine.up(target(cloud, 10, shelf=True))

    created = [c for c in plan.changes if c.type == DYNAMIC and c.op is Op.CREATE]
    children = {c.name: c.urn for c in created if c.name.startswith("shelf-")}
    assert sorted(children) == ["shelf-1", "shelf-2"]
    assert all(f"contract:index:Shelf${DYNAMIC}::" in urn for urn in children.values())
    assert files(cloud) == {"data": 10, "keep": 1, "shelf-1": 1, "shelf-2": 2}
    outputs = engine.outputs("test-volumes")
    assert outputs is not None
    assert outputs.values["shelf_paths"] == [
        str(cloud / "shelf-1.json"),
        str(cloud / "shelf-2.json"),
    ]

    engine.up(target(cloud, 10))

    assert files(cloud) == {"data": 10, "keep": 1}
    assert not engine.preview(target(cloud, 10)).has_changes


def test_a_stack_reads_another_stacks_outputs(engine: Engine, cloud: Path) -> None:
    engine.up(target(cloud, 10))
    reader = target(cloud / "reader", 5, phase="reader", upstream="test-volumes")
    (cloud / "reader").mkdir()

    engine.up(reader)

    outputs = engine.outputs("test-reader")
    assert outputs is not None
    assert outputs.values["upstream_path"] == str(cloud / "data.json")
    assert outputs.values["upstream_token"] == "s3cr3t-value"
    assert "upstream_token" in outputs.secret


def test_a_reference_to_a_stack_never_applied_fails_the_up(engine: Engine, cloud: Path) -> None:
    with pytest.raises(EngineError, match="test-nowhere"):
        engine.up(target(cloud, 10, phase="reader", upstream="test-nowhere"))
    # What the failed up created is recorded: the provider refuses to create it again.
    engine.up(target(cloud, 10, phase="reader"))
    assert files(cloud) == {"data": 10, "keep": 1}


def test_destroy_keeps_what_is_protected_and_says_so(engine: Engine, cloud: Path) -> None:
    engine.up(target(cloud, 10, extra=True))

    result = engine.destroy(target(cloud, 10, extra=True))

    assert _ops(result.changes) == [(Op.DELETE, "data"), (Op.DELETE, "extra")]
    assert result.kept == (f"{DYNAMIC} keep",)
    assert files(cloud) == {"keep": 1}


def test_destroy_reports_a_retained_resource_kept_with_the_protected_ones(
    engine: Engine, cloud: Path
) -> None:
    engine.up(target(cloud, 10, scratch=True))

    result = engine.destroy(target(cloud, 10, scratch=True))

    assert _ops(result.changes) == [(Op.DELETE, "data")]
    assert sorted(result.kept) == [f"{DYNAMIC} keep", f"{DYNAMIC} scratch"]
    assert files(cloud) == {"keep": 1, "scratch": 2}


def test_a_retained_resource_dropped_from_the_program_is_kept_not_deleted(
    engine: Engine, cloud: Path
) -> None:
    engine.up(target(cloud, 10, scratch=True))

    plan = engine.preview(target(cloud, 10))
    result = engine.up(target(cloud, 10))

    assert _ops(plan.changes) == [(Op.DELETE, "scratch")]  # as the CLI plans it
    assert _ops(result.changes) == []
    assert result.kept == (f"{DYNAMIC} scratch",)
    assert files(cloud) == {"data": 10, "keep": 1, "scratch": 2}
    assert not engine.preview(target(cloud, 10)).has_changes


def test_refresh_drops_what_the_provider_no_longer_reads(engine: Engine, cloud: Path) -> None:
    engine.up(target(cloud, 10, extra=True))
    (cloud / "extra.json").unlink()  # deleted by hand

    drift = engine.refresh(target(cloud, 10, extra=True))

    assert _ops(drift) == [(Op.DELETE, "extra")]
    plan = engine.preview(target(cloud, 10, extra=True))
    assert _ops(plan.changes) == [(Op.CREATE, "extra")]


def test_drift_names_what_a_refresh_would_drop_and_leaves_the_record_as_it_is(
    engine: Engine, cloud: Path
) -> None:
    engine.up(target(cloud, 10, extra=True))
    (cloud / "extra.json").unlink()  # deleted by hand

    drift = engine.drift(target(cloud, 10, extra=True))

    assert _ops(drift) == [(Op.DELETE, "extra")]
    assert {c.type for c in drift} == {DYNAMIC}
    # Nothing forgotten: the record still has it, so a preview diffs as before, and the
    # next look (or a refresh) still finds it gone.
    assert not engine.preview(target(cloud, 10, extra=True)).has_changes
    assert _ops(engine.drift(target(cloud, 10, extra=True))) == [(Op.DELETE, "extra")]
    assert _ops(engine.refresh(target(cloud, 10, extra=True))) == [(Op.DELETE, "extra")]
    assert _ops(engine.drift(target(cloud, 10, extra=True))) == []
