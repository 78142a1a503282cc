"""`migrate audit` through the real CLI on the sandbox: a fresh sandbox gets a score with
its reasons, the JSON holds to the schema `migrate schema audit` prints, the markdown is
a comment, `--fail-on` gates CI, and nothing is written (no state file, no sandbox
record); after the pilot is applied the network is judged from the real VPC."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
from markdown_it import MarkdownIt

from _projects import one_error_line


def _ran(result: Any, code: int = 0) -> Any:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


def test_a_fresh_sandbox_gets_a_score_with_its_reasons(cli: Any, fresh_project: Path) -> None:
    done = _ran(cli.run(fresh_project, "audit", "--env", "sandbox"))
    verdict = re.search(r"Readiness \(sandbox, us-east-1\): (\d+)/100 \((.*)\)\.", done.stdout)
    assert verdict, done.stdout
    assert 0 < int(verdict[1]) < 100
    for reason in (
        # GPU capacity: every configured type against the pilot's two zones.
        "ok       offerings g6.xlarge: g6.xlarge (compute.inference_pool) is offered in 2 of "
        "the 2 chosen zones",
        "offerings p4d.24xlarge",
        # Quotas: the emulator has no Service Quotas, and the audit does not guess.
        "unknown  quota L-3819A6DF",
        "quota unknown, Service Quotas did not answer",
        # Network: no VPC yet, so the planned subnets.
        "the planned private subnets (10.20.0.0/19, 10.20.32.0/19) give 16374 addresses",
        # Data: the legacy estate, as the sandbox makes it.
        "phasegate-legacy-sandbox: 300 objects",
        "warning  legacy encryption: phasegate-legacy-sandbox has no default encryption",
        "to do: turn on default encryption",
    ):
        assert reason in done.stdout, f"{reason!r} not in:\n{done.stdout}"
    # Read only: no state file, no sandbox record of a stack (the sandbox keeps the
    # emulated cloud it made on first use, with its legacy estate, as a plan does).
    assert not (fresh_project / "state").exists()
    inventory = cli.run(fresh_project, "sandbox", "status", "--output", "json")
    assert json.loads(inventory.stdout)["stacks"] == {}


def test_the_json_holds_to_its_schema_and_the_markdown_is_a_comment(
    cli: Any, fresh_project: Path
) -> None:
    schema = json.loads(_ran(cli.run(fresh_project, "schema", "audit")).stdout)
    document = json.loads(_ran(cli.run(fresh_project, "audit", "--output", "json")).stdout)
    jsonschema.validate(document, schema)
    assert (document["schema_version"], document["environment"]) == (1, "sandbox")
    assert sum(a["weight"] for a in document["areas"]) == 100
    assert document["score"] == round(sum(a["earned"] for a in document["areas"]))
    assert {f["area"] for f in document["findings"]} == {"capacity", "quotas", "network", "data"}
    assert all(f["action"] for f in document["findings"] if f["severity"] == "warning")

    text = _ran(cli.run(fresh_project, "audit", "--output", "markdown")).stdout
    assert text.startswith(f"### phasegate audit: sandbox (us-east-1): {document['score']}/100")
    tables = [
        t for t in MarkdownIt("commonmark").enable("table").parse(text) if t.type == "table_open"
    ]
    assert len(tables) == 2


def test_fail_on_makes_a_ci_gate(cli: Any, fresh_project: Path) -> None:
    _ran(cli.run(fresh_project, "audit", "--fail-on", "critical"))  # none on a fresh sandbox
    _ran(cli.run(fresh_project, "audit", "--fail-on", "warning"), code=2)
    bad = _ran(cli.run(fresh_project, "audit", "--env", "nowhere"), code=1)
    assert "nowhere" in one_error_line(bad.stderr)


def test_after_the_pilot_the_network_is_read_from_the_vpc(cli: Any, applied_project: Path) -> None:
    done = _ran(cli.run(applied_project, "audit", "--output", "json"))
    found = {f["check"]: f for f in json.loads(done.stdout)["findings"]}
    assert found["S3 gateway endpoint"]["severity"] == "ok"
    assert re.match(r"vpc-\w+ has an S3 gateway endpoint", found["S3 gateway endpoint"]["found"])
    assert found["free addresses"]["severity"] == "ok"
    assert "free addresses in the 2 private subnets of vpc-" in found["free addresses"]["found"]
    assert found["NAT gateways"]["severity"] == "info"
    assert "pilot.nat_per_az: false" in found["NAT gateways"]["found"]


def test_the_inference_type_offered_nowhere_turns_red_through_the_sandbox_control(
    cli: Any, fresh_project: Path
) -> None:
    """The acceptance through the CLI alone (tests/unit/test_audit_sandbox.py does the
    same in process)."""
    before = json.loads(_ran(cli.run(fresh_project, "audit", "--output", "json")).stdout)
    _ran(
        cli.run(fresh_project, "sandbox", "offerings", "--env", "sandbox", "g6.xlarge", "--nowhere")
    )
    after = json.loads(_ran(cli.run(fresh_project, "audit", "--output", "json")).stdout)
    red = {f["check"]: f for f in after["findings"]}["offerings g6.xlarge"]
    assert red["severity"] == "critical" and "compute.inference_pool" in red["found"]
    assert after["critical"] == before["critical"] + 1 and after["score"] < before["score"]
    _ran(cli.run(fresh_project, "audit", "--fail-on", "critical"), code=2)
    _ran(cli.run(fresh_project, "sandbox", "offerings", "--env", "sandbox", "g6.xlarge", "--reset"))
    again = json.loads(_ran(cli.run(fresh_project, "audit", "--output", "json")).stdout)
    assert again["score"] == before["score"]


def test_a_bad_stack_config_is_one_line_naming_the_file_and_key(
    cli: Any, fresh_project: Path
) -> None:
    path = fresh_project / "stacks" / "Pulumi.sandbox-pilot.yaml"
    path.write_text(
        path.read_text().replace(
            "availability_zones: [us-east-1a, us-east-1b]", "availability_zones: [us-east-1a]"
        )
    )
    line = one_error_line(_ran(cli.run(fresh_project, "audit"), code=1).stderr)
    assert "Pulumi.sandbox-pilot.yaml" in line and "availability_zones" in line
    assert "list 2 or 3 availability zones" in line
