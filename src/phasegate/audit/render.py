"""How ``migrate audit`` looks: text (rich) for people, JSON for programs (the
:class:`~phasegate.audit.AuditReport` document), markdown for a pull-request comment.
Part of the CLI layer; every text from outside is masked and escaped as the other
renderers do."""

from __future__ import annotations

import json

from phasegate.audit import AuditReport
from phasegate.markdown import md_escaped
from phasegate.redaction import SecretValues
from phasegate.render import make_console, safe_text

__all__ = ["audit_markdown", "render_audit"]

_COLOUR = {
    "ok": "green",
    "info": "dim",
    "unknown": "yellow",
    "warning": "yellow",
    "critical": "red",
}
_MARK = {"ok": "✅", "info": "💬", "unknown": "❔", "warning": "⚠️", "critical": "❌"}


def _verdict(report: AuditReport) -> str:
    counts = {
        severity: sum(f.severity == severity for f in report.findings)
        for severity in ("critical", "warning", "unknown")
    }
    said = ", ".join(f"{n} {severity}" for severity, n in counts.items() if n)
    return f"{report.score}/100" + (f" ({said})" if said else " (nothing to fix)")


def render_audit(report: AuditReport, output: str, secrets: SecretValues | None = None) -> None:
    """``migrate audit``: the score, each area's part, then every finding by area."""
    secrets = secrets or SecretValues()
    if output == "json":
        print(json.dumps(secrets.mask_data(report.as_json()), indent=2))
        return
    if output == "markdown":
        print(audit_markdown(report, secrets), end="")
        return
    console = make_console()
    for area in report.areas:
        colour = _COLOUR[area.worst]
        console.print(
            f"[bold]{area.area}[/] {area.earned:g}/{area.weight} ([{colour}]{area.worst}[/])"
        )
        for finding in (f for f in report.findings if f.area == area.area):
            colour = _COLOUR[finding.severity]
            console.print(
                f"  [{colour}]{finding.severity:<8}[/] {safe_text(finding.check, secrets)}: "
                f"{safe_text(finding.found, secrets)}"
            )
            if finding.action:
                console.print(f"           [dim]to do: {safe_text(finding.action, secrets)}[/]")
    console.print(
        f"[bold]Readiness[/] ({safe_text(report.environment, secrets)}, "
        f"{safe_text(report.region, secrets)}): {_verdict(report)}."
    )


def audit_markdown(report: AuditReport, secrets: SecretValues | None = None) -> str:
    """The audit as a pull-request comment: the score, the areas, a table of findings."""
    secrets = secrets or SecretValues()
    lines = [
        f"### phasegate audit: {md_escaped(report.environment, secrets)} "
        f"({md_escaped(report.region, secrets)}): {report.score}/100",
        "",
        "| area | earned | weight | worst |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {a.area} | {a.earned:g} | {a.weight} | {a.worst} |" for a in report.areas]
    lines += ["", "| | area | check | found | to do |", "| --- | --- | --- | --- | --- |"]
    for f in report.findings:
        cells = [md_escaped(c, secrets) for c in (f.area, f.check, f.found, f.action or "-")]
        lines.append(f"| {_MARK[f.severity]} {f.severity} | " + " | ".join(cells) + " |")
    lines += ["", f"**Readiness**: {md_escaped(_verdict(report), secrets)}."]
    return "\n".join(lines) + "\n"
