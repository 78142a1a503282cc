"""``migrate``: the command line. Parses options, calls the core, renders, maps exit codes.

Heavy imports (Pulumi, moto, rich) happen inside commands so ``migrate --help`` stays fast.
"""

from __future__ import annotations

import gc
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from phasegate.errors import ExitCode, InputError, PhasegateError, describe
from phasegate.redaction import SecretValues

if TYPE_CHECKING:
    from phasegate.orchestrator import Orchestrator
    from phasegate.project import Project
    from phasegate.sandbox_admin import SandboxAdmin

__all__ = ["main"]

_EXIT_CODES = """\b
Exit codes:
  0  done, or no changes
  1  error (bad input, engine failure)
  2  plan has changes (with --detailed-exitcode)
  3  apply or a check failed and the phase was rolled back
  4  rollback failed: the stack needs a person
  5  blocked by a gate (dependency, policy, promotion, approval, lock, interrupted run)"""


class _Obj:
    def __init__(self, secrets: SecretValues | None = None) -> None:
        self.project_dir: Path | None = None
        self.debug = False
        self.secrets = secrets if secrets is not None else SecretValues()
        """The run's secret values: the engine fills it, every line printed consults it."""


@contextmanager
def _environment(ctx: click.Context, env: str | None) -> Iterator[tuple[Project, dict[str, Any]]]:
    """The project the command runs in, and how the core reports back to the terminal."""
    from phasegate.machine import RunContext
    from phasegate.project import Project, find_root
    from phasegate.render import Progress, notice

    obj: _Obj = ctx.find_root().obj
    root = obj.project_dir.resolve() if obj.project_dir else find_root(Path.cwd())
    project = Project.load(root, obj.secrets)
    command = "migrate " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    progress = Progress(enabled=ctx.params.get("output", "text") == "text", secrets=obj.secrets)
    try:
        yield (
            project,
            {
                "environment": env,
                "context": RunContext.detect(root, command),
                "on_event": progress,
                "on_notice": lambda message: notice(message, obj.secrets),
            },
        )
    finally:
        project.close()


@contextmanager
def _orchestrator(
    ctx: click.Context, env: str | None, *, no_rollback: bool = False
) -> Iterator[Orchestrator]:
    from phasegate.orchestrator import Orchestrator

    with _environment(ctx, env) as (project, settings):
        yield Orchestrator(project, **settings, no_rollback=no_rollback)


@contextmanager
def _sandbox(ctx: click.Context, env: str | None) -> Iterator[SandboxAdmin]:
    from phasegate.environment import Environment
    from phasegate.sandbox_admin import SandboxAdmin

    with _environment(ctx, env) as (project, settings):
        yield SandboxAdmin(Environment(project, **settings))


def _options(*decorators: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def apply(fn: Any) -> Any:
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn

    return apply


_env = click.option("--env", "env", metavar="NAME", help="Environment (default: the first).")
_phase = click.option("--phase", metavar="NAME", help="Only this phase.")
_output = click.option(
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)


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
    if not isinstance(ctx.obj, _Obj):
        ctx.obj = _Obj()
    ctx.obj.project_dir, ctx.obj.debug = project_dir, debug


@cli.command()
@_options(_env, _phase, _output)
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 2 when the plan has changes (0 when none)."
)
@click.pass_context
def plan(
    ctx: click.Context, env: str | None, phase: str | None, output: str, detailed_exitcode: bool
) -> None:
    """Preview what apply would change, phase by phase."""
    from phasegate.render import render_reports

    with _orchestrator(ctx, env) as orch:
        reports = orch.plan(phase)
        render_reports(
            reports, output, environment=orch.env.name, title="Plan", secrets=orch.project.secrets
        )
    if any(r.plan and r.plan.refused for r in reports):
        raise PhasegateError("the plan refuses resources the engine cannot create (see above)")
    blocking = [v for r in reports for v in r.violations if v.enforcement == "mandatory"]
    if blocking:
        from phasegate.errors import GateBlocked

        raise GateBlocked(
            f"{len(blocking)} mandatory policy violation(s) (see above): apply would refuse "
            "this plan"
        )
    if detailed_exitcode and any(r.plan and r.plan.has_changes for r in reports):
        ctx.exit(ExitCode.CHANGES)


@cli.command()
@_options(_env, _phase, _output)
@click.option(
    "--yes", "-y", is_flag=True, help="Apply without asking (required without a terminal)."
)
@click.option(
    "--no-rollback",
    is_flag=True,
    help="Leave a phase whose apply or checks fail as it is, for a person to inspect.",
)
@click.pass_context
def apply(
    ctx: click.Context,
    env: str | None,
    phase: str | None,
    output: str,
    yes: bool,
    no_rollback: bool,
) -> None:
    """Plan, apply and verify each phase in order; roll back a phase that fails.

    A stepped phase (cutover) applies its next step per run and bakes it while its checks
    watch."""
    from phasegate.render import render_reports

    if not yes and not sys.stdin.isatty():
        raise InputError("stdin is not a terminal: pass --yes to apply", field="--yes")
    with _orchestrator(ctx, env, no_rollback=no_rollback) as orch:
        if not yes:
            preview = orch.plan(phase)
            render_reports(
                preview,
                "text",
                environment=orch.env.name,
                title="Plan",
                secrets=orch.project.secrets,
            )
            if not any(r.plan and r.plan.has_changes for r in preview):
                click.echo("No changes.")
            if not click.confirm(f"Apply to {orch.env.name}?", default=False):
                raise PhasegateError("apply cancelled: nothing was changed")
        reports = orch.apply(phase)
        render_reports(
            reports, output, environment=orch.env.name, title="Apply", secrets=orch.project.secrets
        )
    _raise_for_failures(reports)


def _raise_for_failures(reports: list[Any]) -> None:
    """After the reports are out: exit 3 for a phase rolled back, 4 for a failed rollback."""
    from phasegate.errors import RollbackFailed, RolledBack

    for report in reports:
        kept = f"; kept {len(report.kept)} protected resource(s) (see above)" if report.kept else ""
        if report.outcome == "failed":
            raise PhasegateError(f"{report.stack}: {report.message}")
        if report.outcome == "rollback failed":
            # A rollback_failed that could not be written leaves the stack where it was.
            raise RollbackFailed(
                f"{report.stack}: {report.message}",
                hint=f"the stack is {'in' if report.status == 'rollback_failed' else 'left'} "
                f"{report.status}; fix the cause, then run `migrate recover`",
            )
        if report.outcome == "rolled back":
            raise RolledBack(f"{report.stack}: {report.message}{kept}")


@cli.command()
@_options(_env, _output)
@click.pass_context
def status(ctx: click.Context, env: str | None, output: str) -> None:
    """Where each phase of an environment stands."""
    from phasegate.render import render_status

    with _orchestrator(ctx, env) as orch:
        render_status(orch.env.name, orch.status(), output, orch.project.secrets)


@cli.command()
@_options(_env, _output)
@click.pass_context
def recover(ctx: click.Context, env: str | None, output: str) -> None:
    """Finish what an interrupted run left: roll back or verify each stack it was on."""
    from phasegate.render import render_reports

    with _orchestrator(ctx, env) as orch:
        reports = orch.recover()
        if not reports and output == "text":
            click.echo(f"Nothing to recover in {orch.env.name}.")
            return
        render_reports(
            reports,
            output,
            environment=orch.env.name,
            title="Recover",
            secrets=orch.project.secrets,
        )
    # A recovered rollback is the job done; only one that failed again is an error.
    _raise_for_failures([r for r in reports if r.outcome == "rollback failed"])


@cli.command()
@_options(_env, _output)
@click.option("--phase", required=True, metavar="NAME", help="The phase to roll back.")
@click.pass_context
def rollback(ctx: click.Context, env: str | None, phase: str, output: str) -> None:
    """Roll a phase back by hand: its last known good again (a stepped phase: its
    baseline; never applied: what it created destroyed, protected resources kept)."""
    from phasegate.render import render_reports

    with _orchestrator(ctx, env) as orch:
        report = orch.rollback(phase)
        render_reports(
            [report],
            output,
            environment=orch.env.name,
            title="Rollback",
            secrets=orch.project.secrets,
        )
    _raise_for_failures([report] if report.outcome == "rollback failed" else [])


@cli.command()
@_options(_env, _phase)
@click.pass_context
def approve(ctx: click.Context, env: str | None, phase: str | None) -> None:
    """Record your approval of the phases' current programs (a gate where required)."""
    with _orchestrator(ctx, env) as orch:
        for state in orch.approve(phase):
            assert state.approval is not None
            program = state.approval.program.split(":", 1)[-1][:12]
            click.echo(f"{state.stack}: approved program {program} as {state.approval.by}")


@cli.command()
@click.argument("what", type=click.Choice(["migration", "state"]), default="migration")
def schema(what: str) -> None:
    """Print the JSON schema of migration.yaml or of a state file."""
    import json

    if what == "migration":
        from phasegate.spec import Migration as model
    else:
        from phasegate.state import PhaseState as model  # type: ignore[assignment]
    click.echo(json.dumps(model.model_json_schema(by_alias=True), indent=2))


@cli.group("state")
def state_group() -> None:
    """The phase state files: seal one a person fixed on purpose."""


@state_group.command("repair")
@_options(_env)
@click.option("--phase", required=True, metavar="NAME", help="The phase whose file to seal.")
@click.option("--reason", required=True, help="Why the file was changed (kept in its history).")
@click.pass_context
def state_repair(ctx: click.Context, env: str | None, phase: str, reason: str) -> None:
    """Seal a state file again after a deliberate fix: its history chain is linked anew
    and a `repair` entry records who did it and why. Check the file before you do."""
    from phasegate.environment import Environment

    with _environment(ctx, env) as (project, settings):
        environment = Environment(project, **settings)
        found = environment.repair_state(phase, reason)
        path = environment.states.path(phase)
    click.echo(f"Sealed {path.relative_to(project.root)} (found: {found}).")


@cli.group()
def config() -> None:
    """Stack config: write secret values."""


@config.command("set-secret")
@_options(_env)
@click.option("--phase", required=True, metavar="NAME", help="The phase whose stack it is.")
@click.argument("key")
@click.pass_context
def config_set_secret(ctx: click.Context, env: str | None, phase: str, key: str) -> None:
    """Encrypt a value into stacks/Pulumi.<env>-<phase>.yaml as KEY: {secure: ...}.

    The value is read from stdin (a terminal prompts without echo; one trailing newline
    is dropped), never from the command line. The format is the Pulumi CLI's passphrase
    provider (`pulumi config set --secret` reads it, and writes values this reads); the
    passphrase comes from PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE. A
    KEY without a namespace gets the project's name, as with Pulumi."""
    from phasegate.project import Project, find_root

    obj: _Obj = ctx.find_root().obj
    if sys.stdin.isatty():
        value = click.prompt(f"Value of {key}", hide_input=True)
    else:
        value = sys.stdin.read()
        value = value[:-2] if value.endswith("\r\n") else value.removesuffix("\n")
    if not value:
        raise InputError("no value: pipe the secret in on stdin", field="stdin")
    obj.secrets.add(value)
    root = obj.project_dir.resolve() if obj.project_dir else find_root(Path.cwd())
    path, full = Project.load(root, obj.secrets).set_secret(env, phase, key, value)
    click.echo(f"{path}: config.{full} set (encrypted)")


@cli.group()
def sandbox() -> None:
    """The embedded emulated cloud: inspect, reset, serve."""


@sandbox.command("status")
@_options(_env, _output)
@click.pass_context
def sandbox_status(ctx: click.Context, env: str | None, output: str) -> None:
    """What the emulated cloud of an environment holds."""
    from phasegate.render import render_inventory

    with _sandbox(ctx, env) as sandbox:
        env_ = sandbox.environment
        render_inventory(env_.name, sandbox.inventory(), output, env_.project.secrets)


@sandbox.command("reset")
@_options(_env)
@click.option("--yes", "-y", is_flag=True, help="Reset without asking.")
@click.pass_context
def sandbox_reset(ctx: click.Context, env: str | None, yes: bool) -> None:
    """Empty the emulated cloud; state files keep their history, stacks go back to pending."""
    if not yes:
        if not sys.stdin.isatty():
            raise InputError("stdin is not a terminal: pass --yes to reset", field="--yes")
        if not click.confirm("Empty the emulated cloud?", default=False):
            raise PhasegateError("reset cancelled: nothing was changed")
    with _sandbox(ctx, env) as sandbox:
        stacks = sandbox.reset()
        name = sandbox.environment.name
        click.echo(f"Emptied the sandbox cloud of {name}; {len(stacks)} stack(s) back to pending.")


@sandbox.command("alarm")
@_options(_env)
@click.argument("name")
@click.argument("state", type=click.Choice(["ALARM", "OK"]))
@click.pass_context
def sandbox_alarm(ctx: click.Context, env: str | None, name: str, state: str) -> None:
    """Set a CloudWatch alarm of the emulated cloud to ALARM or OK (to rehearse a failed
    cutover step and its rollback)."""
    with _sandbox(ctx, env) as sandbox:
        sandbox.set_alarm(name, state)
        click.echo(f"Alarm {name} in the {sandbox.environment.name} sandbox is now {state}.")


@sandbox.command("serve")
@_options(_env)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=5000,
    show_default=True,
    help="0 picks a free port.",
)
@click.pass_context
def sandbox_serve(ctx: click.Context, env: str | None, port: int) -> None:
    """Expose the emulated cloud as an AWS endpoint on 127.0.0.1 until stopped.

    Changes made through the endpoint are written back to the sandbox when it stops.
    """
    import signal
    import threading

    stop = threading.Event()

    def _stop(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    with _sandbox(ctx, env) as sandbox:
        name = sandbox.environment.name

        def ready(url: str) -> None:
            click.echo(f"Serving the {name} sandbox at {url} (Ctrl-C stops)", err=True)
            click.echo(url)
            sys.stdout.flush()

        sandbox.serve(port=port, ready=ready, stop=stop)
    click.echo("Stopped; changes written back to the sandbox.", err=True)


def _fail(message: str, code: int, secrets: SecretValues, *, debug: bool = False) -> NoReturn:
    """One line, or the traceback a person asked for with --debug; no secret in either."""
    if debug:
        import traceback

        click.echo(secrets.mask(traceback.format_exc()).rstrip(), err=True)
        sys.exit(ExitCode.ERROR)  # what an uncaught exception exits with
    click.echo(f"error: {secrets.mask(message)}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: the one error boundary."""
    args = sys.argv[1:] if argv is None else argv
    # A run makes objects by the hundred thousand (the Pulumi SDK's, moto's) and keeps
    # most of them to its end: collecting every 700 allocations rescans them over and
    # over, a fifth of a first apply. Every 50,000 still bounds a long `sandbox serve`.
    gc.set_threshold(50_000, 20, 10)
    debug = "--debug" in args or os.environ.get("PHASEGATE_DEBUG") == "1"
    secrets = SecretValues()
    try:
        # Without standalone mode click returns ctx.exit()'s code instead of exiting.
        code = cli.main(args=args, prog_name="migrate", standalone_mode=False, obj=_Obj(secrets))
        sys.exit(code if isinstance(code, int) else 0)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _fail("aborted: nothing was changed", ExitCode.ERROR, secrets)
    except click.ClickException as exc:
        _fail(exc.format_message(), ExitCode.ERROR, secrets, debug=debug)
    except PhasegateError as exc:
        _fail(str(exc), exc.exit_code, secrets, debug=debug)
    except KeyboardInterrupt:
        _fail(
            "interrupted: a stack left mid-run is finished by `migrate recover`",
            ExitCode.ERROR,
            secrets,
        )
    except Exception as exc:
        # A file the core did not expect to fail on is still named: path and reason.
        message = f"{describe(exc)} (run with --debug for the traceback)"
        _fail(message, ExitCode.ERROR, secrets, debug=debug)
    finally:
        # Everything is written by now; skip the exit-time collection of the ~200k
        # objects the Pulumi SDK leaves behind (0.4 s of every plan).
        gc.freeze()
