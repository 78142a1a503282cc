"""``migrate check``: drift and health of the verified phases, for a scheduled pipeline."""

from __future__ import annotations

import click

from phasegate.cli._app import (
    cli,
    env_option,
    environment,
    options,
    output_option,
    phase_option,
    stoppable,
)
from phasegate.errors import ExitCode


@cli.command()
@options(env_option, phase_option, output_option())
@click.pass_context
def check(ctx: click.Context, env: str | None, phase: str | None, output: str) -> None:
    """Drift and health of each verified phase, for a pipeline on a schedule: what a
    refresh would change (a resource deleted or changed behind phasegate's back) and the
    phase's checks run again now, without a bake.

    Read-only: no state file or engine record is written, and nothing is rolled back.
    Phases not verified are listed as skipped; a --phase that is not verified is an
    error. Exit 0 when healthy, 2 when a phase drifted or a check failed."""
    from phasegate.environment import Environment
    from phasegate.health import check_health
    from phasegate.render import render_health

    with environment(ctx, env) as (project, settings):
        selected = Environment(project, **settings)
        with stoppable(selected.stop):
            report = check_health(selected, phase)
        render_health(report, output, project.secrets)
    if not report.healthy:
        ctx.exit(ExitCode.CHANGES)
