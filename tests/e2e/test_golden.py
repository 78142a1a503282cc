"""What a user sees from `plan`, `apply` and `status`, text, JSON and markdown, held to
golden files.

A fresh copy of the shipped project is planned, applied, looked at and applied again
(the cutover's next step); each output is compared, after the parts that differ between
runs are normalised (emulated resource ids, key ids, digests, times), with its file under
``golden/``. A change to what users see is deliberate: regenerate with
``PHASEGATE_UPDATE_GOLDEN=1 pytest tests/e2e/test_golden.py`` and review the diff.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).resolve().parent / "golden"

_NORMALISE = [
    (re.compile(r"sha256:[0-9a-f]{64}"), "sha256:<digest>"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"\b([a-z]{1,8})-(?=[0-9a-f]*\d)[0-9a-f]{8,17}\b"), r"\1-<id>"),
    # Pulumi's auto-names: the logical name and seven random hex digits, which are all
    # letters now and then ("node-role-cdeffbc"): no digit is required of them.
    (re.compile(r"(?<=[a-z])-[0-9a-f]{7}\b"), "-<suffix>"),
    # The day CloudWatch last reported a bucket's size (a plan's storage estimate).
    (re.compile(r"(BucketSizeBytes of )\d{4}-\d\d-\d\d"), r"\1<day>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?"), "<time>"),
    (re.compile(r"\b\d+(\.\d+)? ?s\b"), "<n>s"),
    (re.compile(r'("(\w*seconds|duration)"): [0-9.e-]+'), r"\1: <n>"),
    # How many times an alarm was looked at in a bake depends on how fast each look was.
    (re.compile(r"\(\d+ look\(s\)\)"), "(<n> look(s))"),
    # The EKS cluster's certificate authority: random bytes each run.
    (re.compile(r'("cluster_ca": )"[^"]*"'), r'\1"<ca>"'),
    (re.compile(r"(cluster_ca\s+)\S+"), r"\1<ca>"),
    (
        re.compile(r"https://[A-Za-z0-9]+\.[A-Za-z0-9]+\.([a-z0-9-]+)\.eks\.amazonaws\.com"),
        r"https://<cluster>.\1.eks.amazonaws.com",
    ),
]


def _sorted_resources(text: str) -> str:
    """The sandbox registers a program's resources concurrently, so resources that do not
    depend on each other come in any order: compare each phase's resources as a set."""
    if text.lstrip().startswith("{"):
        data = json.loads(text)
        for phase in data.get("phases", []):
            if isinstance(phase.get("resources"), list):
                phase["resources"].sort(key=lambda r: json.dumps(r, sort_keys=True))
        return json.dumps(data, indent=2, sort_keys=True) + "\n"
    out: list[str] = []
    block: list[str] = []
    for line in [*text.splitlines(), ""]:
        if re.match(r"^ {3}[-+~=!] ", line):
            block.append(line)
            continue
        out.extend(sorted(block))
        block = []
        out.append(line)
    return "\n".join(out[:-1]) + ("\n" if text.endswith("\n") else "")


def _normalise(text: str) -> str:
    text = _sorted_resources(text)
    for pattern, replacement in _NORMALISE:
        text = pattern.sub(replacement, text)
    return text


def _compare(name: str, result: Any, expected_exit: int) -> None:
    assert result.returncode == expected_exit, (
        f"{name}: exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    got = _normalise(result.stdout)
    path = GOLDEN / name
    if os.environ.get("PHASEGATE_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(got, encoding="utf-8")
        return
    want = path.read_text(encoding="utf-8")
    if got != want:
        diff = "".join(
            difflib.unified_diff(
                want.splitlines(keepends=True),
                got.splitlines(keepends=True),
                f"golden/{name}",
                "this run",
            )
        )
        raise AssertionError(f"{name} differs from its golden file:\n{diff}")


def test_plan_apply_and_status_print_what_they_printed_before(
    cli: Any, fresh_project: Path
) -> None:
    # A fixed actor: the status table's column widths follow its length.
    env = {"GITHUB_ACTOR": "golden"}

    def run(*args: str) -> Any:
        return cli.run(fresh_project, *args, env=env)

    _compare("plan.txt", run("plan"), 0)
    _compare("plan.json", run("plan", "--output", "json"), 0)
    _compare("apply.txt", run("apply", "--yes"), 0)
    _compare("status.txt", run("status"), 0)
    _compare("status.json", run("status", "--output", "json"), 0)
    _compare("apply-next-step.json", run("apply", "--yes", "--output", "json"), 0)


def test_the_plan_as_a_pull_request_comment_prints_what_it_printed_before(
    cli: Any, fresh_project: Path
) -> None:
    from markdown_it import MarkdownIt

    run = cli.run(fresh_project, "plan", "--output", "markdown")
    _compare("plan.md", run, 0)

    # It renders as GitHub-flavoured markdown: a title, a heading per phase with its
    # resource table in a collapsible block, one row per resource the plan creates.
    tokens = MarkdownIt("commonmark").enable("table").parse(run.stdout)
    headings = [
        (t.tag, tokens[i + 1].content) for i, t in enumerate(tokens) if t.type == "heading_open"
    ]
    stacks = [f"sandbox-{p}" for p in ("pilot", "data_layer", "compute", "cutover")]
    assert headings == [
        ("h3", "phasegate plan: sandbox"),
        *[("h4", f"{stack}: planned (pending)") for stack in stacks],
    ]
    plan = json.loads(cli.run(fresh_project, "plan", "--output", "json").stdout)
    creates = [p["changes"]["create"] for p in plan["phases"]]
    rows: list[int] = []
    for t in tokens:
        if t.type == "table_open":
            rows.append(0)
        if t.type == "tr_open":
            rows[-1] += 1
    assert rows == [1 + n for n in creates]  # a header and a row per resource
    html = [t.content.strip() for t in tokens if t.type == "html_block"]
    # Each phase's estimate with items folds how it is made, after the resources.
    estimated = [bool(p["estimate"]["planned"]["items"]) for p in plan["phases"]]
    assert html == [
        part
        for n, items in zip(creates, estimated, strict=True)
        for part in (
            f"<details><summary>{n} resource change(s)</summary>",
            "</details>",
            *(["<details><summary>How the estimate is made</summary>", "</details>"] * items),
        )
    ]
    assert f"**Plan**: {sum(creates)} to create, 0 to update" in run.stdout
