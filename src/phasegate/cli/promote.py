"""The commands that carry a migration from one environment to the next: promote, and
approve (the consent an environment may require before it applies a plan)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from phasegate.cli._app import (
    WITH_MARKDOWN,
    cli,
    env_option,
    options,
    orchestrator,
    output_option,
    phase_option,
    stoppable,
)
from phasegate.cli.run import raise_for_failures
from phasegate.errors import InputError, PhasegateError

if TYPE_CHECKING:
    from phasegate.reports import PhaseReport


@cli.command()
@click.option(
    "--to",
    "target",
    required=True,
    metavar="ENV",
    help="The environment to promote to; it names the one it takes from (promote_from).",
)
@options(phase_option, output_option(*WITH_MARKDOWN))
@click.option(
    "--yes", "-y", is_flag=True, help="Promote without asking (required without a terminal)."
)
@click.pass_context
def promote(ctx: click.Context, target: str, phase: str | None, output: str, yes: bool) -> None:
    """Apply to ENV, in phase order, every phase verified where ENV promotes from at the
    program in phases/ and not yet verified in ENV.

    Says what it will promote (phase, program now -> program promoted, approval) before
    it acts; refuses (exit 5, naming the phase) a phase not verified upstream, changed
    since, or whose plan lacks the approval ENV requires. Stops at the first failure,
    which rolls back as an apply does."""
    from phasegate.render import render_promotion, render_reports

    if not yes and not sys.stdin.isatty():
        raise InputError("stdin is not a terminal: pass --yes to promote", field="--yes")
    with orchestrator(ctx, target) as orch:
        found = orch.promotions.plan(phase)

        def show(reports: list[PhaseReport]) -> None:
            """The reports, and with them (JSON, markdown) what the promotion found."""
            render_reports(
                reports,
                output,
                environment=orch.env.name,
                title="Promote",
                secrets=orch.project.secrets,
                promotion=found,
            )

        render_promotion(found, output, orch.project.secrets)
        refusal = found.refusal(phase)
        if refusal is not None or not found.promotions:
            if output != "text":
                show([])
            elif refusal is None:
                click.echo(f"Nothing to promote: {orch.env.name} has what {found.source} verified.")
            if refusal is not None:
                raise refusal
            return
        if not yes and not click.confirm(
            f"Promote {len(found.promotions)} phase(s) to {orch.env.name}?", default=False
        ):
            raise PhasegateError("promote cancelled: nothing was changed")
        with stoppable(orch.environment.stop):
            reports = orch.apply(only=[p.phase for p in found.promotions])
        show(reports)
    raise_for_failures(reports)


@cli.command()
@options(env_option, phase_option)
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(path_type=Path),
    help="Approve this saved plan (from `migrate plan --out`) rather than a plan made now.",
)
@click.option("--reason", help="Why you approve (kept with the approval and in the history).")
@click.pass_context
def approve(
    ctx: click.Context,
    env: str | None,
    phase: str | None,
    plan_file: Path | None,
    reason: str | None,
) -> None:
    """Record your approval of the phases' plans (a gate where required). An approval
    holds for that plan only: a change to the program, config, checks, policies or the
    upstream outputs voids it; `migrate status` says which approvals still hold."""
    from phasegate.approvals import short

    saved = None
    if plan_file is not None:
        from phasegate.saved_plan import SavedPlan

        if phase is not None:
            raise InputError("a saved plan is approved whole", field="--phase", hint="drop it")
        saved = SavedPlan.load(plan_file)
        env = env or saved.environment
    if reason is not None and not reason.strip():
        raise InputError("must say why, or be left out", field="--reason")
    with orchestrator(ctx, env) as orch:
        for state in orch.approvals.approve(phase, saved, reason):
            assert state.approval is not None and state.approval.fingerprint is not None
            plan = short(state.approval.fingerprint)
            click.echo(f"{state.stack}: approved plan {plan} as {state.approval.by}")
