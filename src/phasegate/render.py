"""How results look: text (rich) for people, JSON for programs (the documents of
:mod:`phasegate.outputs`), markdown for pull-request comments (:mod:`phasegate.markdown`).
Part of the CLI layer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from phasegate.redaction import SecretValues

if TYPE_CHECKING:
    from rich.console import Console

    from phasegate.health import HealthReport
    from phasegate.history import Transition
    from phasegate.promotion import PromotionPlan
    from phasegate.reports import PhaseReport
    from phasegate.state import CheckResult, PhaseState

__all__ = [
    "make_console",
    "notice",
    "render_health",
    "render_history",
    "render_inventory",
    "render_reports",
    "render_status",
    "safe_text",
]

_SYMBOL = {"create": "+", "update": "~", "replace": "+-", "delete": "-", "import": "=", "same": " "}
_STYLE = {
    "create": "green",
    "update": "yellow",
    "replace": "magenta",
    "delete": "red",
    "import": "cyan",
    "same": "dim",
}


_NOTHING_SECRET = SecretValues()


def safe_text(value: object, secrets: SecretValues = _NOTHING_SECRET) -> str:
    """Text from outside (messages, names) as rich prints it literally, every secret of
    the run as ``[secret]``: a ``[secret]`` or ``[bold]`` in it is not markup."""
    from rich.markup import escape

    return escape(secrets.mask(str(value)))


def _print_json(data: object, secrets: SecretValues) -> None:
    print(json.dumps(secrets.mask_data(data), indent=2))


def make_console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def notice(message: str, secrets: SecretValues = _NOTHING_SECRET) -> None:
    make_console(stderr=True).print(f"[yellow]warning:[/] {safe_text(message, secrets)}")


def render_reports(
    reports: list[PhaseReport],
    output: str,
    *,
    environment: str,
    title: str,
    secrets: SecretValues = _NOTHING_SECRET,
    promotion: PromotionPlan | None = None,
) -> None:
    """A run's reports; ``title`` is the command's (Plan, Apply, Promote, Recover,
    Rollback)."""
    from phasegate.estimates.render import environment_line, phase_lines
    from phasegate.outputs import RunListing

    listing = RunListing.from_reports(title.lower(), environment, reports, promotion)
    if output == "json":
        _print_json(listing.as_json(), secrets)
        return
    if output == "markdown":
        from phasegate.markdown import run_markdown

        print(run_markdown(listing, secrets), end="")
        return

    def text(value: object) -> str:
        return safe_text(value, secrets)

    console = make_console()
    for report in reports:
        plan = report.plan
        head = f"[bold]{report.stack}[/] ({report.outcome}, {report.status})"
        console.print(head)
        if plan is not None:
            for change in plan.changes:
                if change.op.value == "same":
                    continue
                op = change.op.value
                extra = []
                if change.changed:
                    extra.append("changed: " + ", ".join(change.changed))
                if change.emulated:
                    extra.append("emulated")
                if change.protected:
                    extra.append("protected")
                if change.refused:
                    extra.append(f"[red]refused: {text(change.refused)}[/]")
                tail = f"  [dim]({'; '.join(extra)})[/]" if extra else ""
                mark = f"[{_STYLE[op]}]{_SYMBOL[op]:>2} {op:<7}[/]"
                console.print(f"  {mark} {change.type}  {text(change.name)}{tail}")
        if report.copy_pending is not None and report.copy_pending.objects:
            console.print(f"  [green]copy[/] {text(report.copy_pending.describe())}")
        if report.data_copy is not None:
            done = report.data_copy
            console.print(
                f"  copied {done.copied_objects} object(s), {done.copied_bytes} byte(s) into "
                f"{text(done.target)} ({done.skipped_objects} there already, "
                f"{done.listed_objects} in {text(done.source)}) in {done.seconds:.1f} s"
            )
        entry = report.estimate_entry
        if entry is not None:
            for line in phase_lines(entry):
                console.print(
                    f"  [cyan]{text(line)}[/]"
                    if line.startswith("est")
                    else f"  [dim]{text(line)}[/]"
                )
        for v in report.violations:
            colour = "red" if v.enforcement == "mandatory" else "yellow"
            console.print(
                f"  [{colour}]policy {v.enforcement}[/] {v.rule}: "
                f"{v.resource_type} {text(v.resource_name)}: {text(v.message)}"
            )
        for heading, checks in (
            ("", report.checks),
            ("after the rollback: ", report.rollback_checks),
        ):
            for check in checks:
                console.print(_check_line(check, heading, secrets))
        if report.kept:
            names = ", ".join(sorted(k.rsplit(" ", 1)[-1] for k in report.kept))
            console.print(f"  kept {len(report.kept)} protected resource(s): {text(names)}")
        if report.message:
            console.print(f"  {text(report.message)}")
        if report.rollback_seconds is not None:
            console.print(f"  [dim]rollback took {report.rollback_seconds:.1f} s[/]")
    summary = listing.summary()
    if listing.estimate is not None:
        console.print(
            f"[bold]Estimate[/] ({environment}): {text(environment_line(listing.estimate))}."
        )
    console.print(f"[bold]{title}[/] ({environment}): {summary}.")


def render_promotion(
    found: PromotionPlan, output: str, secrets: SecretValues = _NOTHING_SECRET
) -> None:
    """What ``promote`` will do, before it does it: each phase it promotes (program now
    -> program promoted, and the approval its plan has), each it leaves, and why."""
    if output != "text":
        return
    from phasegate.approvals import short

    console = make_console()
    console.print(f"[bold]Promote[/] {found.source} -> {found.target}:")
    said = {name: "promoted already" for name in found.current}
    for p in found.promotions:
        now = f"program {short(p.from_program)}" if p.from_program else "never verified"
        approval = "" if p.approval == "not required" else f", approval {p.approval}"
        said[p.phase] = f"{now} -> {short(p.to_program)}{approval}"
    said.update({w.phase: f"waits: {w.reason}" for w in found.waiting})
    width = max((len(phase) for phase in found.order), default=0)
    for phase in found.order:
        console.print(safe_text(f"  {phase.ljust(width)}  {said[phase]}", secrets))


_MARKS = {"pass": "[green]✓[/]", "fail": "[red]✗[/]", "skipped": "[dim]-[/]"}


def _check_line(check: CheckResult, heading: str, secrets: SecretValues) -> str:
    return (
        f"  {_MARKS[check.result]} {heading}check {check.name} ({check.kind}): "
        f"{check.result}[dim], {check.attempts} attempt(s), {check.duration:.1f} s: "
        f"{safe_text(check.message, secrets)}[/]"
    )


def render_health(
    report: HealthReport, output: str, secrets: SecretValues = _NOTHING_SECRET
) -> None:
    """``migrate check``: per phase its drift and its checks, then the verdict."""
    if output == "json":
        _print_json(report.as_json(), secrets)
        return
    console = make_console()
    colours = {"healthy": "green", "skipped": "dim"}
    for phase in report.phases:
        colour = colours.get(phase.outcome, "red")
        why = f": {safe_text(phase.reason, secrets)}" if phase.reason else ""
        console.print(f"[bold]{phase.stack}[/] ([{colour}]{phase.outcome}[/]{why})")
        for drift in phase.drift:
            console.print(f"  [red]drift[/] {safe_text(drift.describe(), secrets)}")
        if any(d.change == "delete" for d in phase.drift):
            again = f"migrate apply --env {report.environment} --phase {phase.phase} --refresh"
            console.print(f"  [dim]`{again}` makes again what is gone[/]")
        for check in phase.checks:
            console.print(_check_line(check, "", secrets))
    checked = [p for p in report.phases if p.outcome != "skipped"]
    skipped = (
        f", {len(report.phases) - len(checked)} skipped"
        if len(checked) < len(report.phases)
        else ""
    )
    if not checked:
        summary = "nothing to check: no phase is verified"
    elif report.healthy:
        summary = f"healthy ({len(checked)} phase(s) checked{skipped})"
    else:
        bad = report.unhealthy
        summary = f"{len(bad)} phase(s) drifted or failing: " + ", ".join(
            f"{p.phase} {p.outcome}" for p in bad
        )
    console.print(f"[bold]Check[/] ({report.environment}): {summary}.")


def render_status(
    environment: str,
    states: list[PhaseState],
    output: str,
    secrets: SecretValues = _NOTHING_SECRET,
    approvals: Mapping[str, str] | None = None,
) -> None:
    """Where each phase stands. ``approvals``: phase -> "valid" or "void" for the
    approvals on record that the caller judged; any other reads "unknown"."""
    from phasegate.outputs import StatusListing

    listing = StatusListing.from_states(environment, states, approvals)
    if output == "json":
        _print_json(listing.as_json(), secrets)
        return
    if output == "markdown":
        from phasegate.markdown import status_markdown

        print(status_markdown(listing, secrets), end="")
        return
    from rich.table import Table

    table = Table(title=f"{environment}", title_justify="left", box=None, pad_edge=False)
    # The approval column only where some phase has one on record: most environments
    # require none, and their table stays as narrow as it was.
    approved = any(p.approval for p in listing.phases)
    columns = ("phase", "status", "step", "updated", "by", "outputs")
    for column in (*columns, "approval") if approved else columns:
        table.add_column(column)
    colours = {
        "verified": "green",
        "rolled_back": "yellow",
        "rollback_failed": "red",
        "pending": "dim",
    }
    for p in listing.phases:
        colour = colours.get(p.status, "cyan")
        row = [
            p.phase,
            f"[{colour}]{p.status}[/]",
            p.step or "-",
            p.updated or "-",
            safe_text(p.by or "-", secrets),
            str(len(p.outputs)),
        ]
        if approved:
            row.append(
                safe_text(f"{p.approval.status} ({p.approval.by})", secrets) if p.approval else "-"
            )
        table.add_row(*row)
    console = make_console()
    console.print(table)
    verified = sum(p.status == "verified" for p in listing.phases)
    position = listing.position
    where = "complete" if listing.complete else (f"at {position}" if position else "not started")
    console.print(f"Position: {where} ({verified}/{len(listing.phases)} phases verified)")


def render_history(
    environment: str,
    transitions: list[Transition],
    output: str,
    secrets: SecretValues = _NOTHING_SECRET,
) -> None:
    """``migrate history``: one line per transition, oldest first."""
    if output == "json":
        from phasegate.history import HistoryListing

        listing = HistoryListing(environment=environment, history=transitions)
        _print_json(listing.as_json(), secrets)
        return
    # Plain lines, not a table: in a narrow terminal or a CI log a long message wraps at
    # the line's end instead of squeezing every column.
    rows = [
        (
            t.at,
            t.phase,
            t.event,
            f"{t.from_status} -> {t.to_status}",
            t.actor,
            " ".join(
                part
                for part in (
                    f"(commit {t.git_commit[:12]})" if t.git_commit else "",
                    f"(pull request {t.pull_request})" if t.pull_request else "",
                    t.message or "",
                )
                if part
            ),
        )
        for t in transitions
    ]
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(5)]
    console = make_console()
    console.print(f"[bold]{environment}[/]: {len(rows)} transition(s)")
    for row in rows:
        fixed = "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=False))
        console.print(safe_text(f"{fixed}  {row[5]}".rstrip(), secrets), soft_wrap=True)


def render_inventory(
    environment: str,
    inventory: dict[str, Any],
    output: str,
    secrets: SecretValues = _NOTHING_SECRET,
) -> None:
    inventory = secrets.mask_data(inventory)
    if output == "json":
        print(json.dumps(inventory, indent=2))
        return
    console = make_console()
    if not inventory["initialised"]:
        console.print(
            f"The emulated cloud of {environment} is empty (it is created on the first apply)."
        )
        return
    console.print(f"[bold]{environment}[/] emulated cloud at {inventory['directory']}")
    legacy = inventory["legacy"]
    if legacy:
        objects = (
            "deleted"
            if legacy.get("objects") is None
            else f"{legacy['objects']} objects, {legacy.get('bytes', 0)} bytes"
        )
        if legacy.get("versions") is not None:
            objects += (
                f"; {legacy['versions']} object versions and "
                f"{legacy.get('delete_markers', 0)} delete markers kept by versioning: "
                "only current versions migrate"
            )
        console.print(
            f"  legacy estate: bucket {legacy['bucket']} ({objects}), "
            f"zone {', '.join(legacy['zones'])}, vpc {legacy['vpc_id']}"
        )
    for stack, resources in inventory["stacks"].items():
        console.print(f"  {stack}: {len(resources)} resource(s)")
        for r in resources:
            mark = " (protected)" if r["protected"] else ""
            console.print(f"    {r['type']}  {r['name']}  [dim]{r['id']}[/]{mark}")
    if inventory["kubernetes_objects"]:
        console.print(f"  kubernetes objects: {len(inventory['kubernetes_objects'])}")
