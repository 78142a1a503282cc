"""Pictures of a migration as Mermaid text, which GitHub and GitLab render in a pull
request or an issue (``migrate graph``): the phases of each environment with where each
stands, their dependencies and the promotions between environments; and the lifecycle
every phase goes through, drawn by ``transitions`` from the machine itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from phasegate.environment import Environment
from phasegate.machine import TRANSITIONS, RunContext
from phasegate.project import Project
from phasegate.spec import Migration
from phasegate.state import STATUSES

__all__ = ["lifecycle_diagram", "migration_graph", "phase_graph"]

_STYLES = {
    "pending": "fill:#f5f5f5,stroke:#9e9e9e",
    "planned": "fill:#f5f5f5,stroke:#9e9e9e",
    "verified": "fill:#d1f2d1,stroke:#2e7d32",
    "rolled_back": "fill:#fff3c4,stroke:#b8860b",
    "rollback_failed": "fill:#f8d0d0,stroke:#c62828",
    "applying": "fill:#d6e6fb,stroke:#1565c0",
    "verifying": "fill:#d6e6fb,stroke:#1565c0",
    "rolling_back": "fill:#d6e6fb,stroke:#1565c0",
}
"""Each status's colours (every status has one: a node names its status as its class)."""


def _node(environment: str, phase: str) -> str:
    return f"{environment}__{phase}"


def phase_graph(
    migration: Migration,
    environments: Sequence[str],
    statuses: Mapping[str, Mapping[str, str]],
) -> str:
    """A flowchart: one box per environment in promotion order, in it one node per phase
    with its status (``statuses[environment][phase]``) and an arrow per dependency;
    a dotted arrow from each phase to the same phase of the environment it is promoted to."""
    lines = ["flowchart LR"]
    for env in environments:
        lines.append(f'  subgraph {env}["{env}"]')
        lines.append("    direction TB")
        for spec in migration.phases:
            status = statuses[env][spec.name]
            lines.append(f'    {_node(env, spec.name)}["{spec.name}<br/>{status}"]:::{status}')
        for spec in migration.phases:
            for upstream in spec.depends_on:
                lines.append(f"    {_node(env, upstream)} --> {_node(env, spec.name)}")
        lines.append("  end")
    shown = set(environments)
    for target in migration.environments:
        source = target.promote_from
        if target.name in shown and source in shown:
            for spec in migration.phases:
                lines.append(
                    f"  {_node(str(source), spec.name)} -. promote .-> "
                    f"{_node(target.name, spec.name)}"
                )
    lines += [f"  classDef {status} {style}" for status, style in _STYLES.items()]
    return "\n".join(lines) + "\n"


def migration_graph(project: Project, environment: str | None, context: RunContext) -> str:
    """The flowchart of ``environment``, or of every environment, as its state files say
    it stands (read checked, nothing written)."""
    migration = project.migration
    names = (
        [migration.environment(environment).name]
        if environment
        else [e.name for e in migration.environments]
    )
    statuses = {
        name: {p: s.status for p, s in Environment(project, name, context).read_all().items()}
        for name in names
    }
    return phase_graph(migration, names, statuses)


def lifecycle_diagram() -> str:
    """The phase lifecycle as a Mermaid state diagram, drawn by ``transitions`` from the
    states and transitions the lifecycle runs on (guards shown on their transitions)."""
    from transitions.extensions import GraphMachine

    class _Drawn:
        """The model the machine draws itself for (it adds ``get_graph``)."""

        get_graph: Any

    model = _Drawn()
    GraphMachine(
        model=model,
        states=list(STATUSES),
        transitions=[
            {k: v for k, v in t.items() if k in ("trigger", "source", "dest", "conditions")}
            for t in TRANSITIONS
        ],
        initial="pending",
        auto_transitions=False,
        graph_engine="mermaid",
        show_conditions=True,
        title="phase lifecycle",
    )
    return str(model.get_graph().draw(None))
