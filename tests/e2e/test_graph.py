"""`migrate graph`: the migration as a Mermaid flowchart whose structure is the
migration's (phases, dependencies, promotions) and whose states are the state files';
`--lifecycle`: the phase lifecycle, drawn by transitions from the machine itself."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from _projects import one_error_line
from phasegate.machine import TRANSITIONS
from phasegate.state import STATUSES

_NODE = re.compile(r'^    (\w+)__(\w+)\["(\w+)<br/>(\w+)"\]:::(\w+)$')
_EDGE = re.compile(r"^    (\w+)__(\w+) --> (\w+)__(\w+)$")
_PROMOTE = re.compile(r"^  (\w+)__(\w+) -\. promote \.-> (\w+)__(\w+)$")
_CLASS = re.compile(r"^  classDef (\w+) fill:#[0-9a-f]{6},stroke:#[0-9a-f]{6}$")


def _parsed(text: str) -> dict[str, Any]:
    """The flowchart's parts; a line that is none of them fails the test."""
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    found: dict[str, Any] = {"subgraphs": [], "nodes": {}, "edges": set(), "promotes": set()}
    found["classes"] = set()
    open_graph = None
    for line in lines[1:]:
        if m := re.match(r'^  subgraph (\w+)\["(\w+)"\]$', line):
            assert open_graph is None and m[1] == m[2]
            open_graph = m[1]
            found["subgraphs"].append(open_graph)
        elif line == "  end":
            assert open_graph is not None
            open_graph = None
        elif line == "    direction TB":
            assert open_graph is not None
        elif m := _NODE.match(line):
            assert m[1] == open_graph and m[2] == m[3] and m[4] == m[5]
            found["nodes"][(m[1], m[2])] = m[4]
        elif m := _EDGE.match(line):
            assert m[1] == m[3] == open_graph
            found["edges"].add((m[1], m[2], m[4]))
        elif m := _PROMOTE.match(line):
            assert open_graph is None and m[2] == m[4]
            found["promotes"].add((m[1], m[3], m[2]))
        elif m := _CLASS.match(line):
            found["classes"].add(m[1])
        else:
            raise AssertionError(f"not a line of the flowchart: {line!r}")
    assert open_graph is None
    return found


def test_the_graph_is_the_migration_with_each_phase_where_its_state_file_says(
    cli: Any, applied_project: Path
) -> None:
    run = cli.run(applied_project, "graph")

    assert run.returncode == 0, run.stderr
    graph = _parsed(run.stdout)
    spec = yaml.safe_load((applied_project / "migration.yaml").read_text())
    environments = [e["name"] for e in spec["environments"]]
    phases = [p["name"] for p in spec["phases"]]
    assert graph["subgraphs"] == environments
    assert set(graph["nodes"]) == {(e, p) for e in environments for p in phases}
    assert {p: graph["nodes"][("sandbox", p)] for p in phases} == dict.fromkeys(phases, "verified")
    assert {graph["nodes"][("staging", p)] for p in phases} == {"pending"}
    assert graph["edges"] == {
        (e, upstream, p["name"])
        for e in environments
        for p in spec["phases"]
        for upstream in p.get("depends_on", [])
    }
    assert graph["promotes"] == {
        (e["promote_from"], e["name"], p)
        for e in spec["environments"]
        if e.get("promote_from")
        for p in phases
    }
    assert graph["classes"] == set(STATUSES)  # whatever status a node has, it is styled


def test_the_graph_of_one_environment_has_no_promotion_to_draw(
    cli: Any, applied_project: Path
) -> None:
    graph = _parsed(cli.run(applied_project, "graph", "--env", "staging").stdout)
    assert graph["subgraphs"] == ["staging"] and not graph["promotes"]


def test_the_lifecycle_is_drawn_from_the_machine(cli: Any, fresh_project: Path) -> None:
    run = cli.run(fresh_project, "graph", "--lifecycle")

    assert run.returncode == 0, run.stderr
    text = run.stdout
    assert "stateDiagram-v2" in text.splitlines()
    assert {m for m in re.findall(r'^  state "(\w+)" as \1$', text, re.M)} == set(STATUSES)
    drawn = set(re.findall(r"^  (\w+) --> (\w+): (\w+)", text, re.M))
    wanted = {
        (source, t["dest"], t["trigger"])
        for t in TRANSITIONS
        for source in ([t["source"]] if isinstance(t["source"], str) else t["source"])
        if source != "*"
    }
    assert wanted <= drawn


def test_a_graph_of_an_unknown_environment_is_one_line(cli: Any, fresh_project: Path) -> None:
    run = cli.run(fresh_project, "graph", "--env", "nope")
    assert run.returncode == 1
    assert one_error_line(run.stderr) == (
        "error: --env: unknown environment 'nope' (allowed: sandbox, staging, prod)"
    )
