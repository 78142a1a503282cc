"""A state file proves it is whole: cut, edited, merged or stripped, it is refused with the
file named; a deliberate repair seals it again and says so in its history."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from phasegate.errors import StateFileError
from phasegate.machine import PhaseLifecycle, RunContext
from phasegate.state import LastKnownGood, PhaseState, StateStore

ENV = "sandbox"


def _context(actor: str = "tester@host") -> RunContext:
    clock = iter(f"2026-12-02T00:{m:02d}:00Z" for m in range(60))
    return RunContext(command="migrate apply --yes", actor=actor, clock=lambda: next(clock))


def _applied(root: Path, phase: str = "pilot", context: RunContext | None = None) -> Path:
    """A state file as an apply that verified leaves it: three transitions, outputs, lkg."""
    store = StateStore(root, ENV)
    state = store.read(phase)
    state.outputs = {"vpc_id": "vpc-0123", "subnets": ["subnet-1", "subnet-2"]}
    state.lkg = LastKnownGood(
        fingerprint="sha256:f", program="sha256:p", config="sha256:c", at="2026-12-02T00:00:00Z"
    )
    lifecycle = PhaseLifecycle(state, store, context or _context())
    for event in ("apply", "ok", "pass"):
        lifecycle.fire(event, message=f"{event} done")
    return store.path(phase)


def _read(root: Path, phase: str = "pilot") -> PhaseState:
    return StateStore(root, ENV).read(phase)


def test_a_written_state_file_reads_back_whole(tmp_path: Path) -> None:
    path = _applied(tmp_path)
    state = _read(tmp_path)
    assert state.status == "verified"
    assert [h.event for h in state.history] == ["apply", "ok", "pass"]
    text = path.read_text()
    assert text.splitlines()[-1].startswith("integrity: sha256:"), "the seal is the last line"
    assert all(h.prev and h.prev.startswith("sha256:") for h in state.history)


def test_every_cut_at_a_line_boundary_is_refused_with_the_file_named(tmp_path: Path) -> None:
    for phase in ("pilot", "data_layer", "compute", "cutover"):
        path = _applied(tmp_path, phase)
        lines = path.read_text().splitlines(keepends=True)
        assert len(lines) > 30
        for cut in range(len(lines)):  # every proper prefix, the empty file included
            path.write_text("".join(lines[:cut]))
            with pytest.raises(StateFileError) as refused:
                _read(tmp_path, phase)
            assert str(path) in str(refused.value), f"cut at line {cut}: {refused.value}"
            # Refusing never rewrites: the file is as the cut left it.
            assert path.read_text() == "".join(lines[:cut])
        path.write_text("".join(lines))
        assert _read(tmp_path, phase).status == "verified"


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda d: d.pop("lkg"), "does not match its integrity seal"),
        (lambda d: d.__setitem__("history", []), "does not match its integrity seal"),
        (lambda d: d["history"].pop(1), "history entry 2 (pass at"),
        (lambda d: d["history"].pop(0), "history entry 1 (ok at"),
        (lambda d: d["history"].reverse(), "history entry 1 (pass at"),
        (lambda d: d.__setitem__("status", "pending"), "does not match its integrity seal"),
        (lambda d: d["history"][0].__setitem__("actor", "someone"), "history entry 2"),
        (lambda d: d["outputs"].__setitem__("vpc_id", "vpc-evil"), "integrity seal"),
        (lambda d: d.pop("integrity"), "integrity seal (the last key) is missing"),
    ],
)
def test_a_hand_edited_file_is_refused_and_says_where(
    tmp_path: Path, damage: object, says: str
) -> None:
    path = _applied(tmp_path)
    data = yaml.safe_load(path.read_text())
    damage(data)  # type: ignore[operator]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(StateFileError, match=str(path)) as refused:
        _read(tmp_path)
    assert says in str(refused.value)
    assert "migrate state repair --env sandbox --phase pilot" in str(refused.value)


def test_a_merge_of_two_branches_histories_is_named_a_merge(tmp_path: Path) -> None:
    """Two runs on two branches each append to the same file; a merge that keeps both
    histories (and either seal) is caught where the histories fork."""
    left, right = tmp_path / "left", tmp_path / "right"
    base = _applied(left)
    (right / ENV).mkdir(parents=True)
    (right / ENV / base.name).write_bytes(base.read_bytes())
    for root, actor in ((left, "ann@a"), (right, "bob@b")):
        store = StateStore(root, ENV)
        state = store.read("pilot")
        PhaseLifecycle(state, store, _context(actor)).fire("apply", message=f"by {actor}")
    ours = yaml.safe_load((left / ENV / base.name).read_text())
    theirs = yaml.safe_load((right / ENV / base.name).read_text())
    ours["history"].append(theirs["history"][-1])
    base.write_text(yaml.safe_dump(ours, sort_keys=False))
    with pytest.raises(StateFileError) as refused:
        _read(left)
    assert "history entry 5" in str(refused.value)
    assert "merged (the histories fork after entry 3)" in str(refused.value)


def test_a_history_moved_from_another_stack_is_refused(tmp_path: Path) -> None:
    _applied(tmp_path, "pilot")
    path = _applied(tmp_path, "compute")
    pilot = yaml.safe_load(StateStore(tmp_path, ENV).path("pilot").read_text())
    compute = yaml.safe_load(path.read_text())
    compute["history"] = pilot["history"]
    path.write_text(yaml.safe_dump(compute, sort_keys=False))
    with pytest.raises(StateFileError, match="does not start this stack's history"):
        _read(tmp_path, "compute")


def test_repair_seals_a_deliberate_fix_and_records_it(tmp_path: Path) -> None:
    path = _applied(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["history"].pop(1)  # a person removes an entry on purpose
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    store = StateStore(tmp_path, ENV)
    context = _context("fixer@host")

    found = store.repair(
        "pilot", lambda status, what: context.entry("repair", status, status, what)
    )

    assert found.startswith("history entry 2 (pass at")
    state = _read(tmp_path)
    assert [h.event for h in state.history] == ["apply", "pass", "repair"]
    assert state.history[-1].actor == "fixer@host"
    assert state.history[-1].message == found


def test_a_file_that_is_no_state_file_is_not_repaired(tmp_path: Path) -> None:
    path = _applied(tmp_path)
    path.write_text(path.read_text().replace("status: verified", "status: sideways"))
    before = path.read_bytes()
    store = StateStore(tmp_path, ENV)
    with pytest.raises(StateFileError):
        store.repair("pilot", lambda status, what: _context().entry("repair", status, status, what))
    assert path.read_bytes() == before


def test_an_older_unsealed_file_is_refused_until_a_person_seals_it(tmp_path: Path) -> None:
    path = _applied(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["schema_version"] = 1
    data.pop("integrity")
    for entry in data["history"]:
        entry.pop("prev")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(StateFileError, match="schema_version 1 is from an older phasegate"):
        _read(tmp_path)
    StateStore(tmp_path, ENV).repair(
        "pilot", lambda status, what: _context().entry("repair", status, status, what)
    )
    assert _read(tmp_path).schema_version == 2
