"""The ``migrate`` group, its shared options, and how a command reaches the core."""

from __future__ import annotations

import os
import shlex
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from phasegate.redaction import SecretValues

if TYPE_CHECKING:
    from phasegate.orchestrator import Orchestrator
    from phasegate.project import Project
    from phasegate.sandbox_admin import SandboxAdmin

__all__ = [
    "WITH_MARKDOWN",
    "Obj",
    "cli",
    "environment",
    "options",
    "orchestrator",
    "sandbox_admin",
    "stoppable",
]

_EXIT_CODES = """\b
Exit codes:
  0  done, or no changes
  1  error (bad input, engine failure)
  2  plan has changes (with --detailed-exitcode), or check found drift or a failing check,
     or audit found a finding as severe as --fail-on
  3  apply or a check failed and the phase was rolled back
  4  rollback failed: the stack needs a person
  5  blocked by a gate (dependency, policy, promotion, approval, lock, interrupted run)
  130  stopped on request (Ctrl-C, SIGTERM): `migrate recover` finishes what it left"""


class Obj:
    def __init__(self, secrets: SecretValues | None = None) -> None:
        self.project_dir: Path | None = None
        self.debug = False
        self.secrets = secrets if secrets is not None else SecretValues()
        """The run's secret values: the engine fills it, every line printed consults it."""


@contextmanager
def environment(ctx: click.Context, env: str | None) -> Iterator[tuple[Project, dict[str, Any]]]:
    """The project the command runs in, and how the core reports back to the terminal."""
    from phasegate.cli.progress import progress_for
    from phasegate.machine import RunContext
    from phasegate.project import Project, find_root
    from phasegate.render import notice

    obj: Obj = ctx.find_root().obj
    root = obj.project_dir.resolve() if obj.project_dir else find_root(Path.cwd())
    project = Project.load(root, obj.secrets)
    command = "migrate " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    stop = threading.Event()
    # stderr only: stdout keeps the report alone (one JSON document with --output json).
    progress = progress_for(ctx.params.get("output", "text"), obj.secrets)
    try:
        yield (
            project,
            {
                "environment": env,
                "context": RunContext.detect(root, command),
                "on_event": progress,
                "on_progress": progress,
                "on_notice": lambda message: notice(message, obj.secrets),
                "stop": stop,
            },
        )
    finally:
        progress.close()
        project.close()


@contextmanager
def orchestrator(
    ctx: click.Context, env: str | None, *, no_rollback: bool = False
) -> Iterator[Orchestrator]:
    from phasegate.orchestrator import Orchestrator

    with environment(ctx, env) as (project, settings):
        yield Orchestrator(project, **settings, no_rollback=no_rollback)


@contextmanager
def sandbox_admin(ctx: click.Context, env: str | None) -> Iterator[SandboxAdmin]:
    from phasegate.environment import Environment
    from phasegate.sandbox_admin import SandboxAdmin

    with environment(ctx, env) as (project, settings):
        yield SandboxAdmin(Environment(project, **settings))


@contextmanager
def stoppable(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C or SIGTERM asks the block to stop cleanly: the engine finishes the resource
    operation under way, records it, and starts no other; checks stop between looks.
    A second Ctrl-C stops at once (the next ``migrate recover`` sorts out the rest)."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def ask(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        # Straight to the file descriptor: the handler may run while the main thread is
        # in the middle of writing to sys.stderr, whose buffer refuses a reentrant write.
        os.write(
            2,
            b"\nstopping: finishing the operation under way, starting no other "
            b"(Ctrl-C again to stop at once)\n",
        )

    previous = {sig: signal.signal(sig, ask) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def options(*decorators: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def apply(fn: Any) -> Any:
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn

    return apply


env_option = click.option("--env", "env", metavar="NAME", help="Environment (default: the first).")
phase_option = click.option("--phase", metavar="NAME", help="Only this phase.")


def output_option(*choices: str) -> Callable[[Any], Any]:
    """``--output``, with the formats this command prints (text and json without any)."""
    allowed = list(choices or ("text", "json"))
    return click.option(
        "--output",
        type=click.Choice(allowed),
        default="text",
        show_default=True,
        help="Output format"
        + (": markdown is a pull-request comment." if "markdown" in allowed else "."),
    )


WITH_MARKDOWN = ("text", "json", "markdown")
"""The formats of the commands a pull request shows: plan, apply, promote, status."""


@click.group(epilog=_EXIT_CODES, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--project-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Project root (default: nearest directory with migration.yaml).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(package_name="phasegate")
@click.pass_context
def cli(ctx: click.Context, project_dir: Path | None, debug: bool) -> None:
    """phasegate: move a platform onto AI-ready infrastructure in gated, verified phases."""
    if not isinstance(ctx.obj, Obj):
        ctx.obj = Obj()
    ctx.obj.project_dir, ctx.obj.debug = project_dir, debug
