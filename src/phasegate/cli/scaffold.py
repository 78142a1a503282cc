"""The way in for your own infrastructure: ``migrate init`` and ``migrate new-phase``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from phasegate.cli._app import Obj, cli

if TYPE_CHECKING:
    from phasegate.scaffold import Scaffolded


def _written(done: Scaffolded, title: str) -> None:
    click.echo(title)
    width = max(len(rel) for rel, _ in done.written)
    for rel, about in done.written:
        click.echo(f"  {rel:<{width}}  {about}".rstrip())


@cli.command()
@click.argument("directory", metavar="[DIR]", default=".", type=click.Path(path_type=Path))
@click.option(
    "--empty", is_flag=True, help="No phases yet: the environments, policies and runner only."
)
@click.option(
    "--from",
    "source",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Copy this project's parts instead of the shipped example.",
)
def init(directory: Path, empty: bool, source: Path | None) -> None:
    """Start a new project in DIR (default: here).

    DIR must be empty or new (a .git in it is fine). The project is the shipped example,
    its four phases (pilot, data_layer, compute, cutover) and their stack configs; with
    --empty, its environments, policy pack and phase runner, and no phase yet."""
    from phasegate.scaffold import init_project

    done = init_project(directory, empty=empty, source=source)
    kind = "an empty phasegate project" if empty else "a phasegate project (four phases)"
    _written(done, f"Wrote {kind} in {done.root}:")
    steps = [] if done.root == Path.cwd().resolve() else [f"cd {_shown(done.root)}"]
    if empty:
        steps += ["migrate new-phase NAME     # a phase of your own", "migrate plan"]
    else:
        steps += ["migrate plan", "migrate apply --yes", "migrate new-phase NAME     # add one"]
    click.echo("Next:\n" + "\n".join(f"  {step}" for step in steps))


def _shown(path: Path) -> str:
    """``path`` as short as it reads: relative to here when below it."""
    try:
        return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
    except ValueError:
        return str(path)


@cli.command("new-phase")
@click.argument("name")
@click.option(
    "--depends-on",
    "depends_on",
    multiple=True,
    metavar="PHASE",
    help="A phase that must be verified first (repeat for more).",
)
@click.option(
    "--env",
    "environments",
    multiple=True,
    metavar="NAME",
    help="Write a stack config for this environment only (repeat; default: every one).",
)
@click.pass_context
def new_phase(
    ctx: click.Context, name: str, depends_on: tuple[str, ...], environments: tuple[str, ...]
) -> None:
    """Add a phase of your own to this project.

    Writes phases/NAME.py (a starter program: an encrypted, private, versioned S3 bucket
    that passes the policy pack), a stack config stacks/Pulumi.<env>-NAME.yaml per
    environment, and an entry with its checks at the end of migration.yaml's phases;
    every other line of migration.yaml stays as it is. NAME: a lower-case letter, then
    up to 31 lower-case letters, digits and _."""
    from phasegate.project import find_root
    from phasegate.scaffold import new_phase as add_phase

    obj: Obj = ctx.find_root().obj
    root = obj.project_dir.resolve() if obj.project_dir else find_root(Path.cwd())
    done = add_phase(root, name, depends_on=depends_on, environments=environments)
    _written(done, f"Added phase {name} to {done.root}:")
    click.echo(
        f"Next:\n  migrate plan --phase {name}\n  migrate apply --yes\n"
        f"  migrate status             # {name} verified"
    )
