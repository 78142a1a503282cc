"""Cost, energy and carbon in the sandbox's plans, and the cost-carbon-cap rule blocking an
apply, through `migrate` as a user runs it.

Figures are worked out by hand from the bundled data files (ec2_prices.csv: g5.xlarge
spot $0.3018-0.6036/h, g6.xlarge spot $0.2414-0.4829/h in us-east-1; nat_gateway.csv:
$0.045/h; power.csv: g5.xlarge 150 W GPU at 0.6 + 34 W host; pue.csv: 1.15;
grid_intensity.csv: us-east-1 379.069 gCO2e/kWh).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

COMPUTE = Path("stacks") / "Pulumi.sandbox-compute.yaml"


def _json(result: Any) -> dict[str, Any]:
    assert result.returncode == 0, result.stdout + result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _phase(document: dict[str, Any], phase: str) -> dict[str, Any]:
    (found,) = [p for p in document["phases"] if p["phase"] == phase]
    return found


def test_a_plan_shows_each_phase_and_the_environment_in_text_json_and_markdown(
    cli: Any, fresh_project: Path
) -> None:
    document = _json(cli.run(fresh_project, "plan", "--output", "json"))
    jsonschema.validate(document, json.loads(cli.run(fresh_project, "schema", "plan").stdout))
    pilot = _phase(document, "pilot")["estimate"]
    # One spot g5.xlarge node and one NAT gateway, for 730 hours.
    low, high = 730 * 0.3018 + 730 * 0.045, 730 * 0.6036 + 730 * 0.045  # 253.16, 473.48
    kwh = 730 * (150 * 0.6 + 34) / 1000 * 1.15  # 104.10 kWh
    cost = pilot["planned"]["total"]["monthly_cost_usd"]
    assert (cost["low"], cost["high"]) == (pytest.approx(low), pytest.approx(high))
    assert pilot["planned"]["total"]["energy_kwh"]["high"] == pytest.approx(kwh, abs=1e-3)
    assert pilot["planned"]["total"]["kg_co2e"]["high"] == pytest.approx(
        kwh * 379.069 / 1000, abs=1e-3
    )
    assert "applied" not in pilot  # nothing applied yet: the delta is the whole figure
    assert pilot["delta"]["monthly_cost_usd"]["high"] == pytest.approx(high)
    storage = _phase(document, "data_layer")["estimate"]["planned"]["items"]
    assert [i["kind"] for i in storage] == ["storage"]
    # Before any copy: the legacy bucket's size as CloudWatch reports it, one call.
    assert (
        "in s3://phasegate-legacy-sandbox by its CloudWatch BucketSizeBytes of"
        in (storage[0]["basis"])
    )
    environment = document["estimate"]["planned"]["monthly_cost_usd"]
    phases = [p["estimate"]["planned"]["total"]["monthly_cost_usd"] for p in document["phases"]]
    assert environment["high"] == pytest.approx(sum(p["high"] for p in phases), abs=1e-3)

    text = cli.run(fresh_project, "plan")
    assert text.returncode == 0, text.stderr
    assert "estimate: $253.16 to $473.48/month, 104.1 kWh, 39.5 kg CO2e" in text.stdout
    assert "gpu-pilot: 1 x g5.xlarge SPOT" in text.stdout
    assert f"Estimate (sandbox): ${environment['low']:,.2f} to ${environment['high']:,.2f}" in (
        text.stdout
    )
    markdown = cli.run(fresh_project, "plan", "--output", "markdown")
    assert markdown.returncode == 0, markdown.stderr
    # Dollar signs escaped: GitHub would typeset the text between two of them as math.
    said = r"**Estimate**: \$253.16 to \$473.48/month, 104.1 kWh, 39.5 kg CO2e"
    assert said in markdown.stdout
    assert "**Estimate** (sandbox): " in markdown.stdout


def _set_compute(project: Path, desired: int, extra: str) -> None:
    path = project / COMPUTE
    text = path.read_text()
    inference = text.index("phasegate:inference_pool:")
    head, tail = text[:inference], text[inference:]
    tail, found = re.subn(
        r"    desired_size: \d+\n", f"    desired_size: {desired}\n", tail, count=1
    )
    assert found == 1
    path.write_text(head + tail + extra)


def test_raising_desired_size_past_the_cap_blocks_the_apply_naming_rule_stack_and_figures(
    cli: Any, applied_project: Path, snapshot: Callable[[Path], dict[str, bytes]]
) -> None:
    project = applied_project
    caps = "  phasegate:max_monthly_cost_usd: 600\n  phasegate:max_monthly_kg_co2e: 1000\n"
    _set_compute(project, 2, caps)
    plan = cli.run(project, "plan", "--output", "json")
    assert plan.returncode == 5, plan.stderr  # a plan the apply would refuse says so
    planned = _phase(json.loads(plan.stdout), "compute")
    # What is applied: one spot node of g6.xlarge or g5.xlarge; planned: two.
    applied = planned["estimate"]["applied"]["monthly_cost_usd"]
    assert (applied["low"], applied["high"]) == (
        pytest.approx(730 * 0.2414),
        pytest.approx(730 * 0.6036),
    )
    delta = planned["estimate"]["delta"]["monthly_cost_usd"]
    assert delta["high"] == pytest.approx(2 * 730 * 0.6036 - 730 * 0.6036)
    assert [f["rule"] for f in planned["policy"]] == ["cost-carbon-cap"]
    # Once copied, the lake's bytes are the ones the copy listed, from the state file.
    lake = _phase(json.loads(plan.stdout), "data_layer")["estimate"]["planned"]["items"]
    state = yaml.safe_load((project / "state" / "sandbox" / "data_layer.yaml").read_text())
    listed = state["data_copy"]["listed_bytes"]
    assert lake[0]["basis"].startswith(f"{listed} bytes listed in s3://phasegate-legacy-sandbox")
    assert "by the last copy" in lake[0]["basis"]

    before = snapshot(project)
    result = cli.run(project, "apply", "--yes")
    assert result.returncode == 5, result.stdout + result.stderr
    said = result.stderr
    assert "mandatory policy violation(s); nothing was applied" in said
    assert "cost-carbon-cap: pulumi:pulumi:Stack 'sandbox-compute' in sandbox-compute" in said
    high = 2 * 730 * 0.6036  # 881.26
    assert f"monthly cost ${2 * 730 * 0.2414:,.2f}-${high:,.2f}" in said
    assert "over the cap of $600.00 (phasegate:max_monthly_cost_usd)" in said
    assert "carbon" not in said.split("max_monthly_cost_usd")[1]  # 79 kg: under 1,000
    assert snapshot(project) == before

    # advisory: reported, and the plan is not refused
    _set_compute(project, 2, "  phasegate:policy:\n    cost-carbon-cap: advisory\n")
    advisory = cli.run(project, "plan")
    assert advisory.returncode == 0, advisory.stdout + advisory.stderr
    assert "policy advisory cost-carbon-cap" in advisory.stdout
