"""What `--output json` and `--output markdown` print, through the real CLI: every JSON
document holds to the schema `migrate schema` prints (what ships is what is tested), and
the markdown of a failed apply reads as a pull-request comment: the failed check, the
rollback, text from outside escaped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from markdown_it import MarkdownIt

GFM = MarkdownIt("commonmark").enable("table")

ODD_OUTPUT = "no_such|<b>"
"""An output the failing check asks for, named with what markdown and HTML treat specially."""


def _fail_pilot_checks(project: Path) -> None:
    path = project / "migration.yaml"
    data = yaml.safe_load(path.read_text())
    for spec in data["phases"]:
        if spec["name"] == "pilot":
            spec.setdefault("checks", []).append(
                {
                    "name": "exports",
                    "kind": "outputs",
                    "params": {"present": [ODD_OUTPUT]},
                    "interval": 0,
                    "retries": 0,
                }
            )
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _document(result: Any, code: int = 0) -> dict[str, Any]:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


def test_every_json_document_holds_to_the_schema_migrate_prints(
    cli: Any, fresh_project: Path
) -> None:
    schemas = {
        what: _document(cli.run(fresh_project, "schema", what))
        for what in ("plan", "apply", "promote", "status")
    }
    assert schemas["plan"] == schemas["apply"] == schemas["promote"]

    def valid(what: str, document: dict[str, Any]) -> dict[str, Any]:
        jsonschema.validate(document, schemas[what])
        assert document["schema_version"] == 1
        return document

    plan = valid("plan", _document(cli.run(fresh_project, "plan", "--output", "json")))
    assert plan["command"] == "plan"
    assert [p["outcome"] for p in plan["phases"]] == ["planned"] * 4

    _fail_pilot_checks(fresh_project)
    run = cli.run(fresh_project, "apply", "--yes", "--phase", "pilot", "--output", "json")
    [pilot] = valid("apply", _document(run, code=3))["phases"]
    assert pilot["outcome"] == "rolled back" and pilot["rollback_seconds"] > 0
    assert {c["name"]: c["result"] for c in pilot["checks"]}["exports"] == "fail"

    status = valid("status", _document(cli.run(fresh_project, "status", "--output", "json")))
    assert [p["status"] for p in status["phases"]][:2] == ["rolled_back", "pending"]
    assert status["phases"][0]["by"] and status["phases"][0]["approval"] is None

    recovered = valid("apply", _document(cli.run(fresh_project, "recover", "--output", "json")))
    assert (recovered["command"], recovered["phases"]) == ("recover", [])


def test_the_markdown_of_a_failed_apply_shows_the_failed_check_and_the_rollback(
    cli: Any, fresh_project: Path
) -> None:
    _fail_pilot_checks(fresh_project)

    run = cli.run(fresh_project, "apply", "--yes", "--phase", "pilot", "--output", "markdown")

    assert run.returncode == 3, run.stdout + run.stderr
    tokens = GFM.parse(run.stdout)
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert headings == ["phasegate apply: sandbox", "sandbox-pilot: rolled back (rolled_back)"]
    items = [tokens[i + 2].content for i, t in enumerate(tokens) if t.type == "list_item_open"]
    [failed] = [item for item in items if item.startswith("❌")]
    assert failed.startswith("❌ exports (outputs): fail: missing outputs: ")
    html = GFM.render(run.stdout)
    assert "no_such|&lt;b&gt;" in html and "<b>" not in html  # shown literally, not as HTML
    assert "<strong>Rollback</strong>: rolled back in " in html
    assert "rolled back to nothing (destroyed what it created)" in html
    rows = sum(t.type == "tr_open" for t in tokens)
    assert rows == 1 + 33  # the header and each resource the apply created
    assert run.stdout.rstrip().endswith(
        "**Apply**: 0 phase(s) applied, 0 unchanged, pilot rolled back."
    )

    status = cli.run(fresh_project, "status", "--output", "markdown")
    assert status.returncode == 0, status.stderr
    table = GFM.parse(status.stdout)
    cells = [t.content for t in table if t.type == "inline"]
    assert cells[:7] == ["phasegate status: sandbox", "phase", "status", "step", "updated", "by",
                         "approval"]  # fmt: skip
    assert cells[7:9] == ["pilot", "rolled_back"]
