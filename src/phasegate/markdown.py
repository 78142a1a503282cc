"""``--output markdown``: a run or a status as a compact pull-request comment
(GitHub-flavoured markdown), rendered from the same models as ``--output json``.

Names and messages come from outside (programs, checks, engines): every one is masked
(the run's secrets as ``[secret]``) and escaped, so a ``|`` cannot break a table, a
``<`` cannot open HTML and a ``*`` cannot start emphasis. A comment holds at most
65,536 characters: long resource tables are cut with a "... and N more" row, shorter
the longer the comment would be.
"""

from __future__ import annotations

import re

from phasegate.approvals import short
from phasegate.estimates.render import delta_line, environment_line, figures_line, item_line
from phasegate.outputs import OPS, PhaseRun, Promotion, RunListing, StatusListing
from phasegate.redaction import SecretValues
from phasegate.state import CheckResult

__all__ = ["COMMENT_LIMIT", "md_escaped", "run_markdown", "status_markdown"]

COMMENT_LIMIT = 65_536
"""The longest comment GitHub takes, in characters."""

_ROWS = 50
"""Resource rows a phase's table shows before it is cut (fewer if the comment is long)."""
_MESSAGE = 600
"""Characters of one message shown; a check's message can be a long engine error."""

# An underscore inside a word (data_layer) starts no emphasis: left as it is, for the
# comment's source to read well too. A dollar sign is escaped: two of them on a line
# ($253.16 ... ($0.045/h) would make GitHub typeset what is between as math.
_SPECIAL = re.compile(r"([\\`*\[\]|~#!$])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_SYMBOL = {"create": "+", "update": "~", "replace": "±", "delete": "-", "import": "=", "same": ""}
_CHECK = {"pass": "✅", "fail": "❌", "skipped": "⏭️"}


def md_escaped(value: object, secrets: SecretValues, limit: int = _MESSAGE) -> str:
    """Text from outside as markdown shows it literally, on one line, secrets masked."""
    text = " ".join(secrets.mask(str(value)).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _SPECIAL.sub(lambda m: "\\" + m.group(0), text)


def _counts(counts: dict[str, int]) -> str:
    """``+2 ~1 -0``, with replacements and imports when there are any."""
    shown = [f"{_SYMBOL[op]}{counts.get(op, 0)}" for op in ("create", "update", "delete")]
    shown[2:2] = [f"±{counts['replace']}"] if counts.get("replace") else []
    shown += [f"={counts['import']}"] if counts.get("import") else []
    return " ".join(shown)


def _check_lines(checks: list[CheckResult], secrets: SecretValues) -> list[str]:
    return [
        f"- {_CHECK[c.result]} {md_escaped(c.name, secrets)} "
        f"({md_escaped(c.kind, secrets)}): {c.result}"
        + (f": {md_escaped(c.message, secrets)}" if c.message else "")
        for c in checks
    ]


def _size(n: int) -> str:
    """Bytes as a person reads them: ``12 bytes``, ``2.3 MiB``."""
    if n < 1024:
        return f"{n} byte{'' if n == 1 else 's'}"
    value, units = n / 1024, ["KiB", "MiB", "GiB", "TiB"]
    while value >= 1024 and len(units) > 1:
        value, units = value / 1024, units[1:]
    return f"{value:.1f} {units[0]}"


def _copy_lines(phase: PhaseRun, secrets: SecretValues) -> list[str]:
    """A plan's pending data copy, or what an apply's copy did (its first failures too)."""
    pending, done = phase.copy_pending, phase.data_copy
    if pending is not None and pending.objects:
        return [
            f"**Copy**: {pending.objects} object(s), {_size(pending.bytes)} to copy into "
            f"{md_escaped(pending.target, secrets)}",
            "",
        ]
    if done is None:
        return []
    lines = [
        f"**Copy**: copied {done.copied_objects} object(s), {_size(done.copied_bytes)} into "
        f"{md_escaped(done.target, secrets)}; {done.skipped_objects} there already, "
        f"{done.failed_objects} failed; {done.seconds:.1f} s",
        "",
    ]
    if done.failures:
        lines += [*(f"- {md_escaped(failure, secrets)}" for failure in done.failures), ""]
    return lines


def _estimate_lines(phase: PhaseRun, secrets: SecretValues) -> list[str]:
    """A plan's estimate of the phase: its figure and delta, then the items in a fold."""
    entry = phase.estimate
    if entry is None:
        return []
    lines = [
        f"**Estimate**: {md_escaped(figures_line(entry.planned.total), secrets)}; "
        f"delta {md_escaped(delta_line(entry.delta), secrets)}",
        "",
    ]
    if entry.planned.items:
        lines += ["<details><summary>How the estimate is made</summary>", ""]
        lines += [f"- {md_escaped(item_line(i), secrets)}" for i in entry.planned.items]
        lines += [f"- note: {md_escaped(n, secrets)}" for n in entry.planned.notes]
        lines += ["", "</details>", ""]
    return lines


def _resource_table(phase: PhaseRun, secrets: SecretValues, rows: int) -> list[str]:
    order = {op: i for i, op in enumerate(OPS)}
    changes = sorted(
        (r for r in phase.resources or [] if r.op != "same"),
        key=lambda r: (order[r.op], r.type, r.name),
    )
    if not changes:
        return []
    lines = [
        f"<details><summary>{len(changes)} resource change(s)</summary>",
        "",
        "| op | type | name | notes |",
        "| --- | --- | --- | --- |",
    ]
    for r in changes[:rows]:
        notes = [
            *([f"changed: {', '.join(r.changed)}"] if r.changed else []),
            *(["protected"] if r.protected else []),
            *(["emulated"] if r.emulated else []),
            *([f"refused: {r.refused}"] if r.refused else []),
        ]
        lines.append(
            f"| {md_escaped(_SYMBOL[r.op], secrets)} {r.op} | {md_escaped(r.type, secrets)} "
            f"| {md_escaped(r.name, secrets)} "
            f"| {md_escaped('; '.join(notes), secrets)} |"
        )
    if len(changes) > rows:
        lines.append(f"| | ... and {len(changes) - rows} more | | |")
    return [*lines, "", "</details>"]


def _phase(phase: PhaseRun, secrets: SecretValues, rows: int) -> list[str]:
    lines = [
        f"#### {md_escaped(phase.stack, secrets)}: {md_escaped(phase.outcome, secrets)} "
        f"({md_escaped(phase.status, secrets)})",
        "",
    ]
    counts = phase.applied if phase.applied is not None else phase.changes
    if counts is not None:
        lines += [f"`{_counts({str(op): n for op, n in counts.items()})}`", ""]
    table = _resource_table(phase, secrets, rows)
    if table:
        lines += [*table, ""]
    lines += _copy_lines(phase, secrets)
    lines += _estimate_lines(phase, secrets)
    if phase.policy:
        lines.append("**Policy findings**")
        lines.append("")
        for finding in phase.policy:
            mark = "⛔ mandatory (blocking)" if finding.enforcement == "mandatory" else "⚠️ advisory"
            lines.append(
                f"- {mark} {md_escaped(finding.rule, secrets)}: "
                f"{md_escaped(finding.resource, secrets)}: {md_escaped(finding.message, secrets)}"
            )
        lines.append("")
    if phase.blocked_by:
        lines += ["**Blocked by**", ""]
        lines += [f"- 🚧 {md_escaped(gate, secrets)}" for gate in phase.blocked_by]
        lines.append("")
    if phase.checks:
        lines += ["**Checks**", "", *_check_lines(phase.checks, secrets), ""]
    rolled = phase.rollback_seconds is not None or phase.rollback_checks or phase.kept
    if rolled or phase.outcome in ("rolled back", "rollback failed"):
        took = f" in {phase.rollback_seconds:.1f} s" if phase.rollback_seconds is not None else ""
        lines += [f"**Rollback**: {md_escaped(phase.outcome, secrets)}{took}", ""]
        if phase.kept:
            names = ", ".join(sorted(k.rsplit(" ", 1)[-1] for k in phase.kept))
            lines += [
                f"Kept {len(phase.kept)} protected resource(s): {md_escaped(names, secrets)}",
                "",
            ]
        if phase.rollback_checks:
            lines += [
                "Checks after the rollback:",
                "",
                *_check_lines(phase.rollback_checks, secrets),
                "",
            ]
    if phase.message:
        lines += [f"> {md_escaped(phase.message, secrets)}", ""]
    return lines


def _promotion(p: Promotion, secrets: SecretValues) -> str:
    """One phase of a promotion, as a list item."""
    if p.outcome == "current":
        return f"- {md_escaped(p.phase, secrets)}: promoted already"
    if p.outcome == "waits":
        return f"- {md_escaped(p.phase, secrets)}: waits: {md_escaped(p.reason or '', secrets)}"
    before = f"`{short(p.from_program)}`" if p.from_program else "never verified"
    approval = "" if p.approval == "not required" else f" (approval {p.approval})"
    return f"- {md_escaped(p.phase, secrets)}: {before} → `{short(p.to_program or '')}`{approval}"


def run_markdown(listing: RunListing, secrets: SecretValues | None = None) -> str:
    """A run as a pull-request comment: a title, each phase, a closing summary line."""
    secrets = secrets or SecretValues()
    rows = _ROWS
    while True:
        lines = [f"### phasegate {listing.command}: {md_escaped(listing.environment, secrets)}", ""]
        if not listing.phases:
            lines += ["No phases to show.", ""]
        for phase in listing.phases:
            lines += _phase(phase, secrets, rows)
        if listing.promotions:
            source = md_escaped(listing.promoted_from or "", secrets)
            lines += [f"**Promotions** from {source}", ""]
            lines += [_promotion(p, secrets) for p in listing.promotions]
            lines.append("")
        if listing.estimate is not None:
            lines.append(
                f"**Estimate** ({md_escaped(listing.environment, secrets)}): "
                f"{md_escaped(environment_line(listing.estimate), secrets)}."
            )
            lines.append("")
        lines.append(
            f"**{listing.command.capitalize()}**: {md_escaped(listing.summary(), secrets)}."
        )
        text = "\n".join(lines) + "\n"
        if len(text) <= COMMENT_LIMIT:
            return text
        if rows == 0:  # long messages, many phases: the outcome alone, and where the rest is
            return "\n".join(
                [
                    lines[0],
                    "",
                    f"Too long for a comment ({len(text)} characters): the whole "
                    "report is in the run's output (`--output text` or `json`).",
                    "",
                    lines[-1],
                    "",
                ]
            )
        rows //= 2


def status_markdown(listing: StatusListing, secrets: SecretValues | None = None) -> str:
    """Where each phase stands, as a table."""
    secrets = secrets or SecretValues()
    lines = [
        f"### phasegate status: {md_escaped(listing.environment, secrets)}",
        "",
        "| phase | status | step | updated | by | approval |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for p in listing.phases:
        approval = f"{p.approval.status} ({p.approval.by})" if p.approval else "-"
        cells = (p.phase, p.status, p.step or "-", p.updated or "-", p.by or "-", approval)
        lines.append("| " + " | ".join(md_escaped(c, secrets) for c in cells) + " |")
    verified = sum(p.status == "verified" for p in listing.phases)
    where = (
        "complete"
        if listing.complete
        else (f"at {listing.position}" if listing.position else "not started")
    )
    lines += ["", f"**Position**: {md_escaped(where, secrets)} ({verified}/{len(listing.phases)} "
              "phases verified)."]  # fmt: skip
    return "\n".join(lines) + "\n"
