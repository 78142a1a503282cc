"""``--output markdown`` and the JSON documents it is rendered from: what a pull-request
comment shows of a run and of a status, parsed as GitHub-flavoured markdown (tables on),
and the documents held to their own schemas."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from phasegate.copystep import PendingCopy
from phasegate.engines.base import Op, Plan, ResourceChange, UpResult, Violation
from phasegate.markdown import COMMENT_LIMIT, run_markdown, status_markdown
from phasegate.outputs import RunListing, StatusListing
from phasegate.promotion import Promotion as Planned
from phasegate.promotion import PromotionPlan, Waiting
from phasegate.redaction import SecretValues
from phasegate.render import render_status
from phasegate.reports import PhaseReport
from phasegate.state import Approval, CheckResult, DataCopy, HistoryEntry, PhaseState

GFM = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def _rows(tokens: list[Token]) -> list[list[str]]:
    """Every table row's cells, as the rendered text (inline content, unescaped)."""
    rows: list[list[str]] = []
    for i, token in enumerate(tokens):
        if token.type == "tr_open":
            rows.append([])
        if token.type == "inline" and tokens[i - 1].type in ("th_open", "td_open"):
            rows[-1].append(_text(token))
    return rows


def _text(inline: Token) -> str:
    return "".join(
        child.content for child in inline.children or [] if child.type in ("text", "code_inline")
    )


def _headings(tokens: list[Token]) -> list[tuple[str, str]]:
    return [
        (token.tag, _text(tokens[i + 1]))
        for i, token in enumerate(tokens)
        if token.type == "heading_open"
    ]


def _items(tokens: list[Token]) -> list[str]:
    return [
        _text(tokens[i + 2])
        for i, token in enumerate(tokens)
        if token.type == "list_item_open" and tokens[i + 2].type == "inline"
    ]


def _change(op: Op, name: str, **kw: Any) -> ResourceChange:
    return ResourceChange(op=op, type="aws:s3/bucket:Bucket", name=name, **kw)


def _failed_apply() -> PhaseReport:
    """An apply whose check failed, rolled back, with a protected resource kept."""
    changes = [
        _change(Op.CREATE, "lake|raw <b>"),
        _change(Op.UPDATE, "lake-curated", changed=("tags",)),
        _change(Op.DELETE, "scratch", protected=True),
        _change(Op.SAME, "unchanged"),
    ]
    plan = Plan(stack="sandbox-data_layer", changes=changes)
    return PhaseReport(
        "data_layer",
        "sandbox-data_layer",
        "rolled_back",
        "rolled back",
        plan,
        UpResult(stack="sandbox-data_layer", changes=changes),
        message="check parity failed: 3 objects differ; rolled back to its last known good",
        kept=("aws:s3/bucket:Bucket lake-scratch",),
        checks=[
            CheckResult(name="buckets", kind="s3_bucket", result="pass", message="all private"),
            CheckResult(name="parity", kind="custom", result="fail", message="a|b <i>x</i>"),
        ],
        rollback_checks=[CheckResult(name="buckets", kind="s3_bucket", result="pass")],
        rollback_seconds=2.345,
    )


def test_an_apply_that_rolled_back_shows_its_failed_check_and_the_rollback() -> None:
    listing = RunListing.from_reports("apply", "sandbox", [_failed_apply()])
    text = run_markdown(listing)
    tokens = GFM.parse(text)

    assert _headings(tokens) == [
        ("h3", "phasegate apply: sandbox"),
        ("h4", "sandbox-data_layer: rolled back (rolled_back)"),
    ]
    assert "`+1 ~1 -1`" in text
    assert _rows(tokens) == [
        ["op", "type", "name", "notes"],
        ["+ create", "aws:s3/bucket:Bucket", "lake|raw <b>", ""],
        ["~ update", "aws:s3/bucket:Bucket", "lake-curated", "changed: tags"],
        ["- delete", "aws:s3/bucket:Bucket", "scratch", "protected"],
    ]
    html = [t.content for t in tokens if t.type == "html_block"]
    assert html == ["<details><summary>3 resource change(s)</summary>\n", "</details>\n"]
    assert _items(tokens) == [
        "✅ buckets (s3_bucket): pass: all private",
        "❌ parity (custom): fail: a|b <i>x</i>",
        "✅ buckets (s3_bucket): pass",
    ]
    assert "**Rollback**: rolled back in 2.3 s" in text
    assert "Kept 1 protected resource(s): lake-scratch" in text
    assert "Checks after the rollback:" in text
    assert text.rstrip().endswith(
        "**Apply**: 0 phase(s) applied, 0 unchanged, data_layer rolled back."
    )
    assert "<i>" not in text and "<b>" not in text  # escaped, never HTML


def test_a_plan_shows_blocking_policy_findings_and_gates() -> None:
    plan = Plan(stack="sandbox-compute", changes=[_change(Op.CREATE, "models")])
    report = PhaseReport(
        "compute",
        "sandbox-compute",
        "pending",
        "planned",
        plan,
        violations=[
            Violation("gpu-cap", "mandatory", "aws:eks/nodeGroup:NodeGroup", "train", "64 GPUs"),
            Violation("tags", "advisory", "aws:s3/bucket:Bucket", "models", "no owner tag"),
        ],
        blocked_by=["depends on data_layer, which is pending"],
    )
    text = run_markdown(RunListing.from_reports("plan", "sandbox", [report]))
    items = _items(GFM.parse(text))
    assert items == [
        "⛔ mandatory (blocking) gpu-cap: aws:eks/nodeGroup:NodeGroup train: 64 GPUs",
        "⚠️ advisory tags: aws:s3/bucket:Bucket models: no owner tag",
        "🚧 depends on data_layer, which is pending",
    ]
    assert text.rstrip().endswith("**Plan**: 1 to create, 0 to update, 0 to replace, 0 to delete.")


def test_a_long_resource_table_is_cut_and_the_comment_fits_github() -> None:
    many = [_change(Op.CREATE, f"bucket-{i:04d}") for i in range(120)]
    report = PhaseReport("pilot", "sandbox-pilot", "pending", "planned", Plan("s", many))
    rows = _rows(GFM.parse(run_markdown(RunListing.from_reports("plan", "sandbox", [report]))))
    assert len(rows) == 1 + 50 + 1
    assert rows[-1] == ["", "... and 70 more", "", ""]

    long_names = [_change(Op.CREATE, f"{i:04d}-" + "x" * 300) for i in range(300)]
    reports = [
        PhaseReport(f"p{n}", f"sandbox-p{n}", "pending", "planned", Plan("s", long_names))
        for n in range(8)
    ]
    text = run_markdown(RunListing.from_reports("plan", "sandbox", reports))
    assert len(text) <= COMMENT_LIMIT
    assert text.count("more |") == 8  # every table cut, none dropped

    # Phases by the hundred, each with a long message: no table left to cut, so the
    # comment says where the report is, and still fits.
    wordy = [
        PhaseReport(f"p{n}", f"sandbox-p{n}", "pending", "failed", message="m" * 600)
        for n in range(200)
    ]
    text = run_markdown(RunListing.from_reports("apply", "sandbox", wordy))
    assert len(text) <= COMMENT_LIMIT
    assert "Too long for a comment" in text
    assert text.rstrip().endswith(".") and text.startswith("### phasegate apply: sandbox")


LAKE = "s3://lake-raw/legacy/"


def test_a_plan_says_what_its_data_copy_would_copy_and_only_when_there_is_some() -> None:
    def planned(objects: int, size: int) -> str:
        report = PhaseReport(
            "data_layer",
            "sandbox-data_layer",
            "verified",
            "planned",
            Plan("sandbox-data_layer", []),
            copy_pending=PendingCopy(LAKE, objects, size),
        )
        return run_markdown(RunListing.from_reports("plan", "sandbox", [report]))

    assert f"**Copy**: 3 object(s), 12 bytes to copy into {LAKE}\n" in planned(3, 12)
    big = planned(300, 5 * 1024 * 1024 + 300 * 1024)
    assert f"**Copy**: 300 object(s), 5.3 MiB to copy into {LAKE}\n" in big
    assert "1 object(s), 1.0 GiB to copy" in planned(1, 1024**3)
    assert "**Copy**" not in planned(0, 0)  # all there already: nothing to say


def test_an_apply_shows_what_its_data_copy_did_with_its_first_failures() -> None:
    copied = DataCopy(
        at="2026-01-02T03:04:05Z",
        source="s3://legacy/",
        target=LAKE,
        listed_objects=310,
        listed_bytes=3 * 1024 * 1024,
        copied_objects=298,
        copied_bytes=2 * 1024 * 1024 + 512 * 1024,
        skipped_objects=10,
        failed_objects=2,
        failures=["a*b.csv: AccessDenied", "c|d <x>.csv: SlowDown hunter22"],
        seconds=12.345,
    )
    report = PhaseReport(
        "data_layer", "sandbox-data_layer", "verified", "applied", data_copy=copied
    )
    text = run_markdown(
        RunListing.from_reports("apply", "sandbox", [report]), SecretValues(["hunter22"])
    )
    assert (
        f"**Copy**: copied 298 object(s), 2.5 MiB into {LAKE}; 10 there already, 2 failed; 12.3 s\n"
    ) in text
    tokens = GFM.parse(text)
    assert _items(tokens) == ["a*b.csv: AccessDenied", "c|d <x>.csv: SlowDown [secret]"]
    assert "hunter22" not in text and "<x>" not in text


def test_no_secret_reaches_the_comment() -> None:
    token = "tok-5f2a9c1e"
    report = _failed_apply()
    report.message = f"check echo failed: banner is {token!r}"
    report.checks = [CheckResult(name="echo", kind="outputs", result="fail", message=token)]
    text = run_markdown(
        RunListing.from_reports("apply", "sandbox", [report]), SecretValues([token])
    )
    assert token not in text and "[secret]" in GFM.render(text)


def _state(phase: str, approval: Approval | None = None) -> PhaseState:
    state = PhaseState(stack=f"sandbox-{phase}", environment="sandbox", phase=phase)
    state.status = "verified"
    state.approval = approval
    state.history = [
        HistoryEntry.model_validate(
            {"at": "2026-01-02T03:04:05Z", "event": "pass", "from": "verifying",
             "to": "verified", "actor": "ci|bot", "command": "migrate apply"}
        )
    ]  # fmt: skip
    return state


APPROVAL = Approval(by="alice", at="2026-01-01T00:00:00Z", program="sha256:p", fingerprint="f1")


def test_status_markdown_is_a_table_with_the_approvals_as_judged() -> None:
    states = [_state("pilot", APPROVAL), _state("compute", APPROVAL), _state("cutover")]
    listing = StatusListing.from_states("prod", states, {"pilot": "valid"})
    tokens = GFM.parse(status_markdown(listing))
    assert _headings(tokens) == [("h3", "phasegate status: prod")]
    assert _rows(tokens) == [
        ["phase", "status", "step", "updated", "by", "approval"],
        ["pilot", "verified", "-", "2026-01-02T03:04:05Z", "ci|bot", "valid (alice)"],
        ["compute", "verified", "-", "2026-01-02T03:04:05Z", "ci|bot", "unknown (alice)"],
        ["cutover", "verified", "-", "2026-01-02T03:04:05Z", "ci|bot", "-"],
    ]


def test_text_status_has_an_approval_column_only_when_one_is_on_record(
    capsys: pytest.CaptureFixture[str],
) -> None:
    render_status("prod", [_state("pilot")], "text")
    assert "approval" not in capsys.readouterr().out
    render_status("prod", [_state("pilot", APPROVAL), _state("compute")], "text", approvals={})
    shown = capsys.readouterr().out
    assert "approval" in shown and "unknown (alice)" in shown


def test_the_documents_hold_to_their_schemas() -> None:
    found = PromotionPlan(
        source="staging",
        target="prod",
        promotions=[
            Planned("data_layer", "prod-data_layer", None, "sha256:" + "ab" * 32, "valid", "fp")
        ],
        waiting=[Waiting("compute", "it is pending in staging")],
        current=["pilot"],
        order=["pilot", "data_layer", "compute"],
    )
    run = RunListing.from_reports("promote", "prod", [_failed_apply()], found)
    shown = run_markdown(run)
    assert "**Promotions** from staging" in shown
    assert "- pilot: promoted already" in shown
    assert f"- data_layer: never verified → `{'ab' * 6}` (approval valid)" in shown
    assert "- compute: waits: it is pending in staging" in shown
    document = run.as_json()
    jsonschema.validate(document, RunListing.model_json_schema())
    assert [p["outcome"] for p in document["promotions"]] == ["current", "promotes", "waits"]
    assert document["promotions"][1]["from_program"] is None  # a null that says something
    assert "blocked_by" not in document["phases"][0]  # a gap is left out
    approved = APPROVAL.model_copy(update={"reason": "change window"})
    status = StatusListing.from_states("prod", [_state("pilot", approved)], {"pilot": "void"})
    jsonschema.validate(status.as_json(), StatusListing.model_json_schema())
    assert status.as_json()["phases"][0]["approval"] == {
        "by": "alice",
        "at": "2026-01-01T00:00:00Z",
        "reason": "change window",
        "plan": "f1",
        "status": "void",
    }
