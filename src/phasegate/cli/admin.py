"""The chores around a migration: schemas, state repair, secret config, the sandbox."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from phasegate.cli._app import (
    Obj,
    cli,
    env_option,
    environment,
    options,
    output_option,
    sandbox_admin,
)
from phasegate.errors import InputError, PhasegateError

_SCHEMAS = (
    "migration",
    "state",
    "plan",
    "apply",
    "promote",
    "status",
    "history",
    "check",
    "audit",
)


@cli.command()
@click.argument("what", type=click.Choice(_SCHEMAS), default="migration")
def schema(what: str) -> None:
    """Print a JSON schema: of migration.yaml, of a state file, or of what `plan`,
    `apply`, `promote`, `status`, `history`, `check` or `audit` print with `--output json`
    (plan, apply and promote print one document shape, as do `recover` and `rollback`)."""
    import json

    from pydantic import BaseModel

    from phasegate.audit import AuditReport
    from phasegate.health import HealthReport
    from phasegate.history import HistoryListing
    from phasegate.outputs import RunListing, StatusListing
    from phasegate.spec import Migration
    from phasegate.state import PhaseState

    models: dict[str, type[BaseModel]] = {
        "migration": Migration,
        "state": PhaseState,
        "plan": RunListing,
        "apply": RunListing,
        "promote": RunListing,
        "status": StatusListing,
        "history": HistoryListing,
        "check": HealthReport,
        "audit": AuditReport,
    }
    click.echo(json.dumps(models[what].model_json_schema(by_alias=True), indent=2))


@cli.group("state")
def state_group() -> None:
    """The phase state files: seal one a person fixed on purpose."""


@state_group.command("repair")
@options(env_option)
@click.option("--phase", required=True, metavar="NAME", help="The phase whose file to seal.")
@click.option("--reason", required=True, help="Why the file was changed (kept in its history).")
@click.pass_context
def state_repair(ctx: click.Context, env: str | None, phase: str, reason: str) -> None:
    """Seal a state file again after a deliberate fix: its history chain is linked anew
    and a `repair` entry records who did it and why. Check the file before you do."""
    from phasegate.environment import Environment

    with environment(ctx, env) as (project, settings):
        chosen = Environment(project, **settings)
        found = chosen.repair_state(phase, reason)
        path = chosen.states.path(phase)
    click.echo(f"Sealed {path.relative_to(project.root)} (found: {found}).")


@cli.group()
def config() -> None:
    """Stack config: write secret values."""


@config.command("set-secret")
@options(env_option)
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

    obj: Obj = ctx.find_root().obj
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
    """The embedded emulated cloud: inspect, reset, set alarms and offerings, serve."""


@sandbox.command("status")
@options(env_option, output_option())
@click.pass_context
def sandbox_status(ctx: click.Context, env: str | None, output: str) -> None:
    """What the emulated cloud of an environment holds."""
    from phasegate.render import render_inventory

    with sandbox_admin(ctx, env) as sandbox:
        env_ = sandbox.environment
        render_inventory(env_.name, sandbox.inventory(), output, env_.project.secrets)


@sandbox.command("reset")
@options(env_option)
@click.option("--yes", "-y", is_flag=True, help="Reset without asking.")
@click.pass_context
def sandbox_reset(ctx: click.Context, env: str | None, yes: bool) -> None:
    """Empty the emulated cloud; state files keep their history, stacks go back to pending."""
    if not yes:
        if not sys.stdin.isatty():
            raise InputError("stdin is not a terminal: pass --yes to reset", field="--yes")
        if not click.confirm("Empty the emulated cloud?", default=False):
            raise PhasegateError("reset cancelled: nothing was changed")
    with sandbox_admin(ctx, env) as sandbox:
        stacks = sandbox.reset()
        name = sandbox.environment.name
        click.echo(f"Emptied the sandbox cloud of {name}; {len(stacks)} stack(s) back to pending.")


@sandbox.command("alarm")
@options(env_option)
@click.argument("name")
@click.argument("state", type=click.Choice(["ALARM", "OK"]))
@click.pass_context
def sandbox_alarm(ctx: click.Context, env: str | None, name: str, state: str) -> None:
    """Set a CloudWatch alarm of the emulated cloud to ALARM or OK (to rehearse a failed
    cutover step and its rollback)."""
    with sandbox_admin(ctx, env) as sandbox:
        sandbox.set_alarm(name, state)
        click.echo(f"Alarm {name} in the {sandbox.environment.name} sandbox is now {state}.")


@sandbox.command("offerings")
@options(env_option)
@click.argument("instance_type", metavar="TYPE")
@click.option(
    "--zones",
    metavar="ZONE,ZONE",
    help="Comma-separated zones of the environment's region that offer TYPE, and no other.",
)
@click.option("--nowhere", is_flag=True, help="No zone offers TYPE.")
@click.option("--reset", "reset_", is_flag=True, help="Back to the emulator's own offerings.")
@click.pass_context
def sandbox_offerings(
    ctx: click.Context,
    env: str | None,
    instance_type: str,
    zones: str | None,
    nowhere: bool,
    reset_: bool,
) -> None:
    """Set which zones of the emulated cloud offer an instance type (what
    describe_instance_type_offerings answers), to rehearse GPU-zone placement."""
    chosen = [name for name, given in (("--zones", zones is not None), ("--nowhere", nowhere),
                                       ("--reset", reset_)) if given]  # fmt: skip
    if len(chosen) != 1:
        raise InputError(
            f"give exactly one of --zones, --nowhere, --reset (got {', '.join(chosen) or 'none'})",
            field="migrate sandbox offerings",
        )
    wanted: list[str] | None = None
    if zones is not None:
        wanted = [z.strip() for z in zones.split(",") if z.strip()]
        if not wanted:
            raise InputError("no zone given; use --nowhere to offer it in none", field="--zones")
    elif nowhere:
        wanted = []
    with sandbox_admin(ctx, env) as sandbox:
        sandbox.set_offerings(instance_type, wanted)
        name = sandbox.environment.name
    cloud = f"environment {name}'s emulated cloud"
    if wanted is None:
        click.echo(f"{instance_type} in {cloud}: offered as the emulator's data says.")
    elif wanted:
        click.echo(f"{instance_type} in {cloud}: offered in {', '.join(sorted(set(wanted)))} only.")
    else:
        click.echo(f"{instance_type} in {cloud}: offered in no zone.")


@sandbox.command("serve")
@options(env_option)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=5000,
    show_default=True,
    help="0 picks a free port.",
)
@click.option(
    "--host",
    metavar="ADDRESS",
    default="127.0.0.1",
    show_default=True,
    help="IP address to listen on; another one than loopback lets other network "
    "namespaces or machines reach the endpoint (it has no authentication).",
)
@click.pass_context
def sandbox_serve(ctx: click.Context, env: str | None, port: int, host: str) -> None:
    """Expose the emulated cloud as an AWS endpoint (on 127.0.0.1 unless --host) until
    stopped.

    Changes made through the endpoint are written back to the sandbox when it stops.
    """
    import signal
    import threading

    stop = threading.Event()

    def _stop(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    with sandbox_admin(ctx, env) as sandbox:
        name = sandbox.environment.name

        def ready(url: str) -> None:
            click.echo(f"Serving the {name} sandbox at {url} (Ctrl-C stops)", err=True)
            click.echo(url)
            sys.stdout.flush()

        sandbox.serve(port=port, ready=ready, stop=stop, host=host)
    click.echo("Stopped; changes written back to the sandbox.", err=True)
