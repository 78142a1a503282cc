"""Cost, energy and carbon estimates of the shipped stack configs, against figures worked
out by hand from the bundled data files; the tables' checks; the cost-carbon-cap rule.

The hand computations use the figures as they stand in src/phasegate/estimates/data/
(copied here as plain numbers), never the estimator: if a data file changes, these tests
say which figure moved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_phase_programs import SHIPPED, shipped

from phasegate.engines.base import UNKNOWN, DeclaredResource
from phasegate.errors import InputError
from phasegate.estimates import (
    DATA_DIR,
    PhaseEstimate,
    StoredData,
    cap_violations,
    estimate_phase,
    load_tables,
)
from phasegate.estimates.estimator import NAT_GB_KEY
from phasegate.estimates.tables import FILES
from phasegate.policy import CORE_RULES, core_rule_level, crossguard_config
from phasegate.project import ESTIMATE_KEYS

GIB = 1024**3
HOURS = 730
PUE = 1.15  # pue.csv, aws
GRID_US_EAST_1 = 379.069  # grid_intensity.csv, us-east-1, gCO2e/kWh


def _gpus() -> dict[str, int]:
    from phasegate.checks.compute import load_gpu_catalog

    return load_gpu_catalog(SHIPPED)


def _estimate(env: str, phase: str, stored: StoredData | None = None) -> PhaseEstimate:
    run = shipped(env, phase)
    resources = [DeclaredResource(r.type, r.name, r.inputs) for r in run.resources]
    return estimate_phase(
        resources,
        config={},
        region="us-east-1",
        tables=load_tables(),
        gpus=_gpus(),
        stored=stored,
    )


def _item(estimate: PhaseEstimate, name: str) -> Any:
    found = [i for i in estimate.items if i.resource.endswith(f" {name}")]
    assert len(found) == 1, [i.resource for i in estimate.items]
    return found[0]


# --- the shipped configs, by hand ---------------------------------------------------------


def test_prod_training_pool_two_p5_48xlarge_on_demand() -> None:
    item = _item(_estimate("prod", "compute"), "gpu-training")
    # ec2_prices.csv: p5.48xlarge, us-east-1, on-demand $55.04/h; power.csv: 700 W per
    # GPU at 0.6, host 2300 W; phases/catalog.py: 8 GPUs.
    cost = 2 * 730 * 55.04  # = 80,358.40 USD
    kwh = 2 * 730 * (8 * 700 * 0.6 + 2300) / 1000 * 1.15  # = 9,503.14 kWh
    kg = kwh * 379.069 / 1000  # = 3,602.35 kg CO2e
    assert item.what == "2 x p5.48xlarge ON_DEMAND"
    assert item.monthly_cost_usd.low == item.monthly_cost_usd.high == pytest.approx(cost)
    assert item.energy_kwh.low == item.energy_kwh.high == pytest.approx(kwh, abs=1e-3)
    assert item.kg_co2e.high == pytest.approx(kg, abs=1e-3)
    assert round(cost, 2) == 80358.40 and round(kwh, 2) == 9503.14 and round(kg, 2) == 3602.35


def test_prod_inference_pool_four_spot_nodes_of_three_types_is_a_range() -> None:
    estimate = _estimate("prod", "compute")
    item = _item(estimate, "gpu-inference")
    # Spot ranges: g6.xlarge 0.2414-0.4829, g5.xlarge 0.3018-0.6036, g6e.xlarge
    # 0.5583-1.1166 $/h: the range over the types is the cheapest low to the dearest high.
    assert item.monthly_cost_usd.low == pytest.approx(4 * 730 * 0.2414)
    assert item.monthly_cost_usd.high == pytest.approx(4 * 730 * 1.1166)
    # Node watts: g6.xlarge 1 x 72 x 0.6 + 34; g6e.xlarge 1 x 350 x 0.6 + 41.
    assert item.energy_kwh.low == pytest.approx(4 * 730 * (72 * 0.6 + 34) / 1000 * 1.15)
    assert item.energy_kwh.high == pytest.approx(4 * 730 * (350 * 0.6 + 41) / 1000 * 1.15)
    assert "range over the 3 types" in item.basis
    training = 2 * 730 * 55.04
    assert estimate.total.monthly_cost_usd.low == pytest.approx(training + 4 * 730 * 0.2414)
    assert estimate.total.monthly_cost_usd.high == pytest.approx(training + 4 * 730 * 1.1166)


def test_sandbox_compute_one_spot_inference_node_and_no_training_node() -> None:
    estimate = _estimate("sandbox", "compute")
    training = _item(estimate, "gpu-training")
    assert training.what == "0 x p4d.24xlarge ON_DEMAND"
    assert training.monthly_cost_usd.high == 0 and training.energy_kwh.high == 0
    inference = _item(estimate, "gpu-inference")
    assert inference.monthly_cost_usd.low == pytest.approx(1 * 730 * 0.2414)  # g6.xlarge
    assert inference.monthly_cost_usd.high == pytest.approx(1 * 730 * 0.6036)  # g5.xlarge
    kwh_high = 1 * 730 * (150 * 0.6 + 34) / 1000 * 1.15  # g5.xlarge = 104.098 kWh
    assert estimate.total.energy_kwh.high == pytest.approx(kwh_high, abs=1e-3)
    assert estimate.total.kg_co2e.high == pytest.approx(kwh_high * 379.069 / 1000, abs=1e-3)
    assert estimate.total.unknown == []


@pytest.mark.parametrize(("env", "nats"), [("sandbox", 1), ("prod", 3)])
def test_pilot_nat_gateways_by_the_hour_and_the_spot_gpu_pool(env: str, nats: int) -> None:
    estimate = _estimate(env, "pilot")
    gateways = [i for i in estimate.items if i.kind == "nat_gateway"]
    assert len(gateways) == nats
    # nat_gateway.csv: us-east-1 $0.045 an hour.
    assert all(g.monthly_cost_usd.high == pytest.approx(730 * 0.045) for g in gateways)
    assert all(g.energy_kwh is None and g.unknown == [] for g in gateways)
    pool_low = 730 * (0.3018 if env == "sandbox" else 0.2414)  # g5.xlarge / g6.xlarge
    assert estimate.total.monthly_cost_usd.low == pytest.approx(nats * 730 * 0.045 + pool_low)
    assert any("NAT data processing ($0.045/GB) not included" in n for n in estimate.notes)


def test_nat_data_is_counted_from_the_stack_config_figure() -> None:
    resources = [DeclaredResource("aws:ec2/natGateway:NatGateway", "nat", {})]
    estimate = estimate_phase(
        resources, config={NAT_GB_KEY: "200"}, region="us-east-1", tables=load_tables(), gpus={}
    )
    data = [i for i in estimate.items if i.kind == "nat_data"]
    assert data[0].monthly_cost_usd.high == pytest.approx(200 * 0.045)
    assert estimate.total.monthly_cost_usd.high == pytest.approx(730 * 0.045 + 200 * 0.045)
    with pytest.raises(InputError, match=f"{NAT_GB_KEY}: must be a number of GB"):
        estimate_phase(
            resources, config={NAT_GB_KEY: "lots"}, region="us-east-1", tables=load_tables(),
            gpus={},
        )  # fmt: skip


@pytest.mark.parametrize("env", ["sandbox", "prod"])
def test_the_lake_stores_what_the_copy_puts_there_in_standard(env: str) -> None:
    stored = StoredData("lake-raw/legacy", 5 * 1024 * GIB, "listed now in s3://legacy/")
    estimate = _estimate(env, "data_layer", stored)
    (item,) = estimate.items
    assert item.kind == "storage" and item.what == "5120.000 GB in STANDARD"
    assert item.monthly_cost_usd.high == pytest.approx(5 * 1024 * 0.023)  # s3_storage.csv
    assert "listed now in s3://legacy/" in item.basis
    unknown = _estimate(env, "data_layer", StoredData("lake-raw", None, "cannot be listed"))
    assert unknown.items[0].monthly_cost_usd is None
    assert unknown.total.unknown == ["data copy into lake-raw: cost"]


def test_an_input_only_an_apply_can_tell_is_unknown_never_zero() -> None:
    pool = DeclaredResource(
        "aws:eks/nodeGroup:NodeGroup",
        "pool",
        {"instanceTypes": ["g5.xlarge"], "capacityType": "SPOT",
         "scalingConfig": {"desiredSize": UNKNOWN}},
    )  # fmt: skip
    estimate = estimate_phase([pool], config={}, region="us-east-1", tables=load_tables(), gpus={})
    (item,) = estimate.items
    assert item.monthly_cost_usd is None and item.energy_kwh is None
    assert set(item.unknown) == {"cost", "energy", "carbon"}
    assert "aws:eks/nodeGroup:NodeGroup pool: cost" in estimate.total.unknown


def test_a_region_without_prices_gives_unknown_with_the_file_named() -> None:
    run = shipped("sandbox", "compute")
    resources = [DeclaredResource(r.type, r.name, r.inputs) for r in run.resources]
    estimate = estimate_phase(
        resources, config={}, region="ap-south-2", tables=load_tables(), gpus=_gpus()
    )
    inference = _item(estimate, "gpu-inference")
    assert inference.monthly_cost_usd is None
    assert "no SPOT price for g6.xlarge in ap-south-2 (ec2_prices.csv)" in inference.basis
    assert inference.energy_kwh is not None and inference.kg_co2e is None  # no grid figure
    assert any("no grid intensity for ap-south-2" in n for n in estimate.notes)


# --- the data files -----------------------------------------------------------------------


def test_every_catalog_type_has_prices_in_three_regions_and_a_power_figure() -> None:
    tables = load_tables()
    for name in _gpus():
        assert name in tables.power, name
        for region in ("us-east-1", "us-west-2", "eu-west-1"):
            price = tables.ec2[name, region]
            assert price.on_demand and price.spot_low and price.spot_high, (name, region)
    for region in ("us-east-1", "us-west-2", "eu-west-1"):
        assert region in tables.nat and region in tables.grid
        for storage_class in ("STANDARD", "STANDARD_IA", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"):
            assert (region, storage_class) in tables.s3
    assert set(tables.taken) == set(FILES.values())


def _copy_data(tmp_path: Path) -> Path:
    for name in FILES.values():
        (tmp_path / name).write_text((DATA_DIR / name).read_text())
    return tmp_path


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("file", "old", "new", "said"),
    [
        ("ec2_prices.csv", "g5.xlarge,us-east-1,1.006,", "g5.xlarge,us-east-1,cheap,",
         r"ec2_prices.csv: line \d+: on_demand_usd_hour: 'cheap' is not a number >= 0"),
        ("power.csv", ",150,34,0.6,", ",150,34,1.5,",
         r"power.csv: line \d+: gpu_utilisation: '1.5' is not a number >= 0 and <= 1"),
        ("s3_storage.csv", "us-east-1,GLACIER,", "us-east-1,COLD,",
         r"s3_storage.csv: line \d+: storage_class: 'COLD': must be one of STANDARD, "),
        ("pue.csv", "aws,1.15,", "aws,0.9,", r"pue.csv: line \d+: pue: 0.9 is below 1"),
        ("grid_intensity.csv", "# taken: 2025-07-01\n", "",
         r"grid_intensity.csv: no '# taken: ...' comment line"),
        ("nat_gateway.csv", "us-west-2,0.045,0.045,published", "us-east-1,0.045,0.045,x",
         r"nat_gateway.csv: line \d+: us-east-1 is listed twice"),
    ],
)  # fmt: skip
def test_a_bad_value_in_a_data_file_is_one_line_naming_file_row_and_column(
    tmp_path: Path, file: str, old: str, new: str, said: str
) -> None:
    directory = _copy_data(tmp_path)
    _replace(directory / file, old, new)
    with pytest.raises(InputError, match=said) as raised:
        load_tables.__wrapped__(directory)
    assert "\n" not in str(raised.value)


# --- the cost-carbon-cap rule -------------------------------------------------------------


def test_the_cap_rule_names_the_stack_and_the_figures_against_the_caps() -> None:
    estimate = _estimate("prod", "compute")
    config = {"phasegate:max_monthly_cost_usd": 50000, "phasegate:max_monthly_kg_co2e": "3800"}
    (found,) = cap_violations(estimate, stack="prod-compute", config=config, level="mandatory")
    assert (found.rule, found.enforcement, found.resource_name) == (
        "cost-carbon-cap", "mandatory", "prod-compute",
    )  # fmt: skip
    cost_high = 2 * 730 * 55.04 + 4 * 730 * 1.1166  # = 83,618.87
    assert f"${cost_high:,.2f}" in found.message
    assert "over the cap of $50,000.00 (phasegate:max_monthly_cost_usd)" in found.message
    # 3,602.35 kg of training + up to 319.5 kg of inference: over 3,800 at the high end.
    kg_high = (2 * 730 * (8 * 700 * 0.6 + 2300) + 4 * 730 * (350 * 0.6 + 41)) / 1000 * 1.15
    kg_high *= 379.069 / 1000
    kg_low = (2 * 730 * (8 * 700 * 0.6 + 2300) + 4 * 730 * (72 * 0.6 + 34)) / 1000 * 1.15
    kg_low *= 379.069 / 1000
    said = f"monthly carbon {kg_low:,.1f}-{kg_high:,.1f} kg CO2e (the high end is judged)"
    assert said in found.message
    assert "over the cap of 3,800.0 kg CO2e (phasegate:max_monthly_kg_co2e)" in found.message
    under = {"phasegate:max_monthly_cost_usd": 90000, "phasegate:max_monthly_kg_co2e": 5000}
    assert cap_violations(estimate, stack="prod-compute", config=under, level="mandatory") == []
    assert cap_violations(estimate, stack="prod-compute", config={}, level="mandatory") == []
    assert cap_violations(estimate, stack="prod-compute", config=config, level="disabled") == []


def test_a_bad_cap_is_one_line_naming_the_stack_file_and_key() -> None:
    with pytest.raises(InputError, match=r"Pulumi.prod-compute.yaml: phasegate:max_monthly_"):
        cap_violations(
            _estimate("prod", "compute"),
            stack="prod-compute",
            config={"phasegate:max_monthly_cost_usd": "a lot"},
            level="mandatory",
        )


def test_the_cap_rule_is_set_like_the_pack_rules_and_kept_from_crossguard() -> None:
    config = {"phasegate:policy": {"cost-carbon-cap": "advisory", "required-tags": "advisory"}}
    assert core_rule_level(config, "prod-compute", "cost-carbon-cap") == "advisory"
    assert core_rule_level({}, "prod-compute", "cost-carbon-cap") == CORE_RULES["cost-carbon-cap"]
    assert crossguard_config(config, "prod-compute") == {
        "required-tags": {"enforcementLevel": "advisory"}
    }
    with pytest.raises(InputError, match="cost-carbon-cap: 'loud' is not an enforcement level"):
        core_rule_level({"phasegate:policy": {"cost-carbon-cap": "loud"}}, "s-c", "cost-carbon-cap")


def test_the_estimate_keys_are_stack_config_phasegate_reads_itself() -> None:
    from phasegate.estimates.cap import CARBON_CAP_KEY, COST_CAP_KEY

    assert set(ESTIMATE_KEYS) == {COST_CAP_KEY, CARBON_CAP_KEY, NAT_GB_KEY}


def test_a_phase_applied_without_an_estimate_on_record_has_an_uncertain_delta() -> None:
    from phasegate.reports import PhaseReport

    planned = _estimate("sandbox", "compute")
    fresh = PhaseReport("compute", "sandbox-compute", "pending", "planned", estimate=planned)
    old = PhaseReport("compute", "sandbox-compute", "verified", "planned", estimate=planned)
    recorded = PhaseReport(
        "compute", "sandbox-compute", "verified", "planned", estimate=planned,
        applied_estimate=planned,
    )  # fmt: skip
    assert fresh.estimate_entry is not None and not fresh.estimate_entry.delta.uncertain
    assert old.estimate_entry is not None and old.estimate_entry.delta.uncertain
    assert recorded.estimate_entry is not None
    assert recorded.estimate_entry.delta.monthly_cost_usd.high == 0
    assert not recorded.estimate_entry.delta.uncertain
