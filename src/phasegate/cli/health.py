"""``migrate check``: drift and health of the verified phases, for a scheduled pipeline;
``migrate audit``: how ready the environment's account is."""

from __future__ import annotations

import click

from phasegate.cli._app import (
    WITH_MARKDOWN,
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


@cli.command()
@options(env_option, output_option(*WITH_MARKDOWN))
@click.option(
    "--fail-on",
    type=click.Choice(["never", "critical", "warning"]),
    default="never",
    show_default=True,
    help="Exit 2 when a finding is this severe or worse (for a CI gate).",
)
@click.pass_context
def audit(ctx: click.Context, env: str | None, output: str, fail_on: str) -> None:
    """How ready the environment's AWS account is, scored 0-100 with the reasons: GPU
    capacity by zone, the vCPU quotas of GPU instances, the network, the legacy bucket.

    Read-only: the account is only read (through the engine, so the sandbox too), and
    no state file or engine record is written. Exit 0 when it ran, whatever it found;
    with --fail-on critical (or warning), 2 when such a finding is there."""
    from phasegate.audit import audit_environment
    from phasegate.audit.render import render_audit
    from phasegate.environment import Environment

    with environment(ctx, env) as (project, settings):
        report = audit_environment(Environment(project, **settings))
        render_audit(report, output, project.secrets)
    failing = {"never": (), "critical": ("critical",), "warning": ("critical", "warning")}
    if any(f.severity in failing[fail_on] for f in report.findings):
        ctx.exit(ExitCode.CHANGES)
