"""The commands that move a migration: plan, apply, status, history, graph, recover,
rollback."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from phasegate.cli._app import (
    WITH_MARKDOWN,
    cli,
    env_option,
    environment,
    options,
    orchestrator,
    output_option,
    phase_option,
    stoppable,
)
from phasegate.errors import ExitCode, InputError, PhasegateError

if TYPE_CHECKING:
    from phasegate.engines.base import ResourceChange


@cli.command()
@options(env_option, phase_option, output_option(*WITH_MARKDOWN))
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 2 when the plan has changes (0 when none)."
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also save the plan to this file, for `migrate apply FILE` (and `approve --plan`).",
)
@click.pass_context
def plan(
    ctx: click.Context,
    env: str | None,
    phase: str | None,
    output: str,
    detailed_exitcode: bool,
    out: Path | None,
) -> None:
    """Preview what apply would change, phase by phase. Read-only: no state file or
    cloud resource changes."""
    from phasegate.render import render_reports

    with orchestrator(ctx, env) as orch:
        with stoppable(orch.environment.stop):
            reports = orch.plan(phase, out=out)
        render_reports(
            reports, output, environment=orch.env.name, title="Plan", secrets=orch.project.secrets
        )
        _say_if_no_phases(orch.project, output)
    refused = [c for r in reports if r.plan for c in r.plan.refused]
    if refused:
        raise PhasegateError(_refusals(refused))
    blocking = [v for r in reports for v in r.violations if v.enforcement == "mandatory"]
    if blocking:
        from phasegate.errors import GateBlocked

        raise GateBlocked(
            f"{len(blocking)} mandatory policy violation(s) (see above): apply would refuse "
            "this plan"
        )
    if detailed_exitcode and any(r.has_changes for r in reports):
        ctx.exit(ExitCode.CHANGES)


def _refusals(refused: list[ResourceChange]) -> str:
    """The plan's closing line: what it refuses, by reason (a type the engine cannot
    create, a protected resource it will not delete), naming the resources."""
    by_reason: dict[str, list[str]] = {}
    for change in refused:
        by_reason.setdefault(str(change.refused), []).append(f"{change.type} '{change.name}'")
    reasons = "; ".join(f"{why}: {', '.join(names)}" for why, names in by_reason.items())
    return f"the plan refuses {len(refused)} resource(s) (see above): {reasons}"


@cli.command()
@options(env_option, phase_option, output_option(*WITH_MARKDOWN))
@click.option(
    "--yes", "-y", is_flag=True, help="Apply without asking (required without a terminal)."
)
@click.option(
    "--no-rollback",
    is_flag=True,
    help="Leave a phase whose apply or checks fail as it is, for a person to inspect.",
)
@click.option(
    "--refresh",
    is_flag=True,
    help="First make each stack's record match the cloud, so what was deleted behind "
    "phasegate's back (`migrate check` finds it) is made again.",
)
@click.argument("plan_file", metavar="[FILE]", required=False, type=click.Path(path_type=Path))
@click.pass_context
def apply(
    ctx: click.Context,
    env: str | None,
    phase: str | None,
    output: str,
    yes: bool,
    no_rollback: bool,
    refresh: bool,
    plan_file: Path | None,
) -> None:
    """Plan, apply and verify each phase in order; roll back a phase that fails.

    A stepped phase (cutover) applies its next step per run and bakes it while its checks
    watch. With FILE (from `migrate plan --out FILE`), applies exactly that plan, and
    refuses (exit 5, naming the phase) if anything it was made from has changed since."""
    from phasegate.render import render_reports

    if not yes and not sys.stdin.isatty():
        raise InputError("stdin is not a terminal: pass --yes to apply", field="--yes")
    saved = None
    if plan_file is not None:
        from phasegate.saved_plan import SavedPlan

        if phase is not None:
            raise InputError(
                "a saved plan applies the phases it was made for", field="--phase", hint="drop it"
            )
        if refresh:
            raise InputError(
                "a saved plan applies what it saw; a refresh first would change that",
                field="--refresh",
                hint="refresh with `migrate apply --refresh` and no FILE, or plan again",
            )
        saved = SavedPlan.load(plan_file)
        env = env or saved.environment
    with orchestrator(ctx, env, no_rollback=no_rollback) as orch:
        if saved is not None and not yes:
            for entry in saved.phases:
                changes = entry.changes.items()
                counts = ", ".join(f"{n} to {op}" for op, n in changes if op != "same")
                click.echo(f"{entry.stack}: {counts or 'no changes'}")
            if not click.confirm(f"Apply the saved plan {plan_file} to {orch.env.name}?"):
                raise PhasegateError("apply cancelled: nothing was changed")
        elif not yes:
            preview = orch.plan(phase)
            render_reports(
                preview,
                "text",
                environment=orch.env.name,
                title="Plan",
                secrets=orch.project.secrets,
            )
            if not any(r.has_changes for r in preview):
                click.echo("No changes.")
            if refresh:
                click.echo(
                    "--refresh: each stack is refreshed first; what that finds gone (see "
                    "`migrate check`) is made again, beyond the plan above."
                )
            if not click.confirm(f"Apply to {orch.env.name}?", default=False):
                raise PhasegateError("apply cancelled: nothing was changed")
        with stoppable(orch.environment.stop):
            reports = orch.apply(phase, saved, refresh=refresh)
        render_reports(
            reports, output, environment=orch.env.name, title="Apply", secrets=orch.project.secrets
        )
        _say_if_no_phases(orch.project, output)
    raise_for_failures(reports)


def _say_if_no_phases(project: Any, output: str) -> None:
    """A project made with `init --empty` plans nothing until it has a phase: say how."""
    if not project.migration.phases and output == "text":
        click.echo("No phases yet: add one with `migrate new-phase NAME`.")


def raise_for_failures(reports: list[Any]) -> None:
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
@options(env_option, output_option(*WITH_MARKDOWN))
@click.pass_context
def status(ctx: click.Context, env: str | None, output: str) -> None:
    """Where each phase of an environment stands."""
    from phasegate.render import render_status

    with orchestrator(ctx, env) as orch:
        states = orch.status()  # a damaged state file stops it here, before any plan
        approvals = orch.approvals.verdicts_or_none()
        render_status(orch.env.name, states, output, orch.project.secrets, approvals)
        _say_if_no_phases(orch.project, output)


@cli.command()
@options(env_option, phase_option, output_option())
@click.pass_context
def history(ctx: click.Context, env: str | None, phase: str | None, output: str) -> None:
    """Every transition of an environment's phases, oldest first: when, who, what."""
    from phasegate.environment import Environment
    from phasegate.history import history as transitions
    from phasegate.render import render_history

    with environment(ctx, env) as (project, settings):
        selected = Environment(project, **settings)
        render_history(selected.name, transitions(selected, phase), output, project.secrets)


@cli.command()
@options(env_option)
@click.option(
    "--lifecycle", is_flag=True, help="Draw the lifecycle every phase goes through instead."
)
@click.pass_context
def graph(ctx: click.Context, env: str | None, lifecycle: bool) -> None:
    """The migration as a Mermaid flowchart (GitHub and GitLab render it): each
    environment's phases with where they stand, their dependencies, the promotions."""
    from phasegate.graph import lifecycle_diagram, migration_graph

    if lifecycle:
        click.echo(lifecycle_diagram(), nl=False)
        return
    with environment(ctx, env) as (project, settings):
        click.echo(migration_graph(project, env, settings["context"]), nl=False)


@cli.command()
@options(env_option, output_option(*WITH_MARKDOWN))
@click.pass_context
def recover(ctx: click.Context, env: str | None, output: str) -> None:
    """Finish what an interrupted run left: roll back or verify each stack it was on."""
    from phasegate.render import render_reports

    with orchestrator(ctx, env) as orch:
        with stoppable(orch.environment.stop):
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
    raise_for_failures([r for r in reports if r.outcome == "rollback failed"])


@cli.command()
@options(env_option, output_option(*WITH_MARKDOWN))
@click.option("--phase", required=True, metavar="NAME", help="The phase to roll back.")
@click.pass_context
def rollback(ctx: click.Context, env: str | None, phase: str, output: str) -> None:
    """Roll a phase back by hand: its last known good again (a stepped phase: its
    baseline; never applied: what it created destroyed, protected resources kept)."""
    from phasegate.render import render_reports

    with orchestrator(ctx, env) as orch:
        with stoppable(orch.environment.stop):
            report = orch.rollback(phase)
        render_reports(
            [report],
            output,
            environment=orch.env.name,
            title="Rollback",
            secrets=orch.project.secrets,
        )
    raise_for_failures([report] if report.outcome == "rollback failed" else [])
