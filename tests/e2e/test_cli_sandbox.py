"""`migrate` as a user runs it, on the sandbox engine, checked with plain boto3.

Each test has its own copy of a project after one apply (``applied_project``) or after
the whole migration, every cutover step taken (``completed_project``): status, further
applies, serving the cloud, changing a knob, a reset.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from _projects import one_error_line

PHASES = ["pilot", "data_layer", "compute", "cutover"]
STATE_FILES = [f"state/sandbox/{phase}.yaml" for phase in PHASES]
CHECKPOINT = ".phasegate/sandbox/sandbox/checkpoint.json"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"


def _json(result: Any) -> Any:
    assert result.returncode in (0, 2), f"exit {result.returncode}: {result.stderr}"
    return json.loads(result.stdout)


def _state(project: Path, phase: str) -> dict[str, Any]:
    return yaml.safe_load((project / "state" / "sandbox" / f"{phase}.yaml").read_text())


# --- a fresh project ------------------------------------------------------------------


def test_plan_on_a_fresh_copy_lists_creates_for_all_four_phases(
    cli: Any, fresh_project: Path
) -> None:
    result = cli.run(fresh_project, "plan", "--output", "json")
    assert result.returncode == 0, result.stderr
    plan = _json(result)
    assert plan["environment"] == "sandbox"
    assert [p["phase"] for p in plan["phases"]] == PHASES
    found: dict[str, set[tuple[str, str]]] = {}
    for phase in plan["phases"]:
        assert phase["outcome"] == "planned"
        assert phase["resources"], f"{phase['phase']} plans nothing"
        assert {r["op"] for r in phase["resources"]} == {"create"}
        assert not [r for r in phase["resources"] if r.get("refused")]
        assert phase["changes"]["create"] == len(phase["resources"])
        found[phase["phase"]] = {(r["type"], r["name"]) for r in phase["resources"]}
    assert ("aws:ec2/vpc:Vpc", "vpc") in found["pilot"]
    assert ("aws:eks/cluster:Cluster", "cluster") in found["pilot"]
    assert ("aws:s3/bucket:Bucket", "lake-raw") in found["data_layer"]
    # compute and cutover read outputs of phases that are only planned, not applied.
    assert (NODE_GROUP, "gpu-inference") in found["compute"]
    assert {
        ("aws:route53/record:Record", "app-legacy"),
        ("aws:route53/record:Record", "app-platform"),
    } <= found["cutover"]
    outputs = {p["phase"]: p["outputs"] for p in plan["phases"]}
    assert outputs["pilot"]["vpc_id"] == "(known after apply)"
    assert outputs["pilot"]["cluster_name"] == "sandbox-ai-platform"
    assert outputs["cutover"]["app_host"] == "app.corp.example.com"
    # A plan changes no cloud. The cutover's zone lookup read it, which made the legacy
    # estate (the world before the migration, kept for the apply): nothing else is there.
    checkpoint = json.loads((fresh_project / CHECKPOINT).read_text())
    assert list(checkpoint["legacy"]["zones"]) == ["corp.example.com"]
    assert (checkpoint["stacks"], checkpoint["store"]) == ({}, {})


def test_apply_of_one_phase_before_its_dependency_is_blocked(cli: Any, fresh_project: Path) -> None:
    result = cli.run(fresh_project, "apply", "--yes", "--phase", "compute")
    assert result.returncode == 5, result.stderr
    line = one_error_line(result.stderr)
    assert "compute" in line and "pilot" in line
    assert not (fresh_project / "state").exists(), "a blocked apply writes no state"
    assert not (fresh_project / CHECKPOINT).exists(), "a blocked apply changes no cloud"


# --- applied projects ----------------------------------------------------------------


def test_apply_applied_and_verified_every_phase(applied_template: Any) -> None:
    out = applied_template.apply.stdout
    for phase in PHASES:
        assert f"sandbox-{phase} (applied, verified)" in out
    assert "Apply (sandbox): 4 phase(s) applied, 0 unchanged." in out
    assert f"+ create  {NODE_GROUP}  gpu-inference" in out


def test_status_shows_all_four_verified_in_order(cli: Any, applied_project: Path) -> None:
    status = _json(cli.run(applied_project, "status", "--output", "json"))
    assert status["environment"] == "sandbox"
    assert [p["phase"] for p in status["phases"]] == PHASES
    assert [p["status"] for p in status["phases"]] == ["verified"] * 4
    # The cutover runs one step per apply: after the first apply it is at step 1 of 3.
    assert (status["position"], status["complete"]) == ("cutover", False)
    assert [p["step"] for p in status["phases"]] == [None, None, None, "1/3"]
    outputs = {p["phase"]: p["outputs"] for p in status["phases"]}
    assert outputs["pilot"]["cluster_name"] == "sandbox-ai-platform"
    assert outputs["data_layer"]["raw_bucket"] == "phasegate-sandbox-lake-raw"
    assert outputs["compute"]["inference_node_group"] == "gpu-inference"
    assert re.fullmatch(r"vpc-[0-9a-f]+", outputs["pilot"]["vpc_id"])
    for phase in PHASES:
        state = _state(applied_project, phase)
        assert state["status"] == "verified"
        assert [h["event"] for h in state["history"]][-3:] == ["apply", "ok", "pass"]

    text = cli.run(applied_project, "status")
    assert text.returncode == 0, text.stderr
    assert "Position: at cutover (4/4 phases verified)" in text.stdout


def test_each_further_apply_takes_the_cutover_one_step_on(cli: Any, applied_project: Path) -> None:
    for step in (2, 3):
        result = cli.run(applied_project, "apply", "--yes")
        assert result.returncode == 0, result.stderr
        assert "Apply (sandbox): 1 phase(s) applied, 3 unchanged." in result.stdout
        assert _state(applied_project, "cutover")["step"] == step - 1
        status = _json(cli.run(applied_project, "status", "--output", "json"))
        assert status["phases"][-1]["step"] == f"{step}/3"
    assert _json(cli.run(applied_project, "status", "--output", "json"))["complete"] is True


def test_once_complete_an_apply_reports_no_changes_and_touches_nothing(
    cli: Any, completed_project: Path, snapshot: Callable[[Path], dict[str, bytes]]
) -> None:
    before = snapshot(completed_project)
    result = cli.run(completed_project, "apply", "--yes")
    assert result.returncode == 0, result.stderr
    for phase in PHASES:
        assert f"sandbox-{phase} (no changes, verified)" in result.stdout
    assert "Apply (sandbox): 0 phase(s) applied, 4 unchanged." in result.stdout
    after = snapshot(completed_project)
    for name in [*STATE_FILES, CHECKPOINT]:
        assert after[name] == before[name], f"{name} changed on an apply with no changes"
    assert after == before


def test_sandbox_status_lists_the_stacks_in_phase_order(cli: Any, applied_project: Path) -> None:
    inventory = _json(cli.run(applied_project, "sandbox", "status", "--output", "json"))
    assert list(inventory["stacks"]) == [f"sandbox-{phase}" for phase in PHASES]
    text = cli.run(applied_project, "sandbox", "status").stdout
    positions = [text.index(f"sandbox-{phase}") for phase in PHASES]
    assert positions == sorted(positions), text


def test_sandbox_status_counts_the_legacy_objects_there_are_now(
    cli: Any, applied_project: Path, aws: Any
) -> None:
    before = _json(cli.run(applied_project, "sandbox", "status", "--output", "json"))["legacy"]
    bucket = before["bucket"]
    with cli.serve(applied_project) as served:
        s3 = aws("s3", served.url)
        s3.put_object(Bucket=bucket, Key="exports/2026-12-01/part-000.csv", Body=b"a,b\n1,2\n")
        s3.put_object(Bucket=bucket, Key="exports/2026-12-01/part-001.csv", Body=b"a,b\n")

    after = _json(cli.run(applied_project, "sandbox", "status", "--output", "json"))["legacy"]

    assert after["objects"] == before["objects"] + 2
    assert after["bytes"] == before["bytes"] + 12
    assert after["versions"] == before["versions"] + 2
    assert after["delete_markers"] == before["delete_markers"] > 0
    text = cli.run(applied_project, "sandbox", "status").stdout
    assert f"{after['objects']} objects, {after['bytes']} bytes" in text, text
    assert "only current versions migrate" in " ".join(text.split()), text


def test_a_no_op_apply_counts_what_a_plan_counts(cli: Any, completed_project: Path) -> None:
    applied_counts = {
        p["phase"]: p["changes"]
        for p in _json(cli.run(completed_project, "apply", "--yes", "--output", "json"))["phases"]
    }
    planned = _json(cli.run(completed_project, "plan", "--output", "json"))["phases"]
    assert applied_counts == {p["phase"]: p["changes"] for p in planned}
    assert all(counts["same"] > 0 for counts in applied_counts.values()), applied_counts


def test_a_policy_pack_changed_after_verification_is_enforced_on_the_next_apply(
    cli: Any, completed_project: Path, snapshot: Callable[[Path], dict[str, bytes]]
) -> None:
    project = completed_project
    rules = project / "policies" / "rules.py"
    text = rules.read_text()
    required = '"owner", "cost-center")'
    assert f'REQUIRED_TAGS = ("phasegate:phase", "phasegate:environment", {required}' in text
    rules.write_text(text.replace(required, '"owner", "cost-center", "data-classification")', 1))
    before = snapshot(project)
    result = cli.run(project, "apply", "--yes")
    assert result.returncode == 5, result.stdout + result.stderr
    assert "mandatory policy violation(s); nothing was applied" in result.stderr
    assert "data-classification" in result.stderr
    assert snapshot(project) == before


def test_a_check_added_to_a_verified_phase_runs_on_the_next_apply(
    cli: Any, completed_project: Path
) -> None:
    project = completed_project
    migration = yaml.safe_load((project / "migration.yaml").read_text())
    [pilot] = [p for p in migration["phases"] if p["name"] == "pilot"]
    pilot["checks"].append(
        {"name": "vpc_exported", "kind": "outputs", "params": {"present": ["vpc_id"]}}
    )
    (project / "migration.yaml").write_text(yaml.safe_dump(migration, sort_keys=False))

    result = cli.run(project, "apply", "--yes")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Apply (sandbox): 1 phase(s) applied, 3 unchanged." in result.stdout
    assert "check vpc_exported (outputs): pass" in result.stdout
    state = _state(project, "pilot")
    assert state["status"] == "verified"
    assert {c["name"]: c["result"] for c in state["checks"]}["vpc_exported"] == "pass"


def test_serve_shows_the_applied_cloud_to_plain_boto3(
    cli: Any, completed_project: Path, aws: Any, config: Any
) -> None:
    pilot = config(completed_project, "sandbox-pilot")
    compute = config(completed_project, "sandbox-compute")
    cutover = config(completed_project, "sandbox-cutover")
    outputs = {p: _state(completed_project, p)["outputs"] for p in PHASES}
    with cli.serve(completed_project) as served:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", served.url), served.url
        url = served.url

        ec2 = aws("ec2", url)
        vpcs = ec2.describe_vpcs(Filters=[{"Name": "cidr-block", "Values": [pilot["vpc_cidr"]]}])[
            "Vpcs"
        ]
        assert [v["VpcId"] for v in vpcs] == [outputs["pilot"]["vpc_id"]]
        assert pilot["vpc_cidr"] == "10.20.0.0/16"
        subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpcs[0]["VpcId"]]}])[
            "Subnets"
        ]
        assert sorted(s["CidrBlock"] for s in subnets) == sorted(
            pilot["private_subnet_cidrs"] + pilot["public_subnet_cidrs"]
        )

        s3 = aws("s3", url)
        buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
        assert "phasegate-sandbox-lake-raw" in buckets

        eks = aws("eks", url)
        cluster = eks.describe_cluster(name="sandbox-ai-platform")["cluster"]
        assert cluster["status"] == "ACTIVE"
        group = eks.describe_nodegroup(
            clusterName="sandbox-ai-platform", nodegroupName="gpu-inference"
        )["nodegroup"]
        pool = compute["inference_pool"]
        assert group["instanceTypes"] == ["g6.xlarge", "g5.xlarge"] == pool["instance_types"]
        assert group["scalingConfig"] == {
            "minSize": pool["min_size"],
            "maxSize": pool["max_size"],
            "desiredSize": pool["desired_size"],
        }
        assert group["capacityType"] == pool["capacity_type"]
        assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"} in group[
            "taints"
        ]
        assert group["status"] == "ACTIVE"

        route53 = aws("route53", url)
        zones = route53.list_hosted_zones_by_name(DNSName=cutover["zone"])["HostedZones"]
        zone = next(z for z in zones if z["Name"] == cutover["zone"] + ".")
        records = route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
        app = {
            r["SetIdentifier"]: r
            for r in records
            if r["Name"] == "app.corp.example.com." and "SetIdentifier" in r
        }
        # The last step of the cutover: all traffic on the platform.
        assert {k: r["Weight"] for k, r in app.items()} == {"legacy": 0, "platform": 100}
        last = cutover["steps"][-1]
        assert {k: r["Weight"] for k, r in app.items()} == {
            "legacy": last["legacy"],
            "platform": last["platform"],
        }
        assert app["legacy"]["ResourceRecords"] == [{"Value": cutover["legacy_target"]}]
        assert app["platform"]["ResourceRecords"] == [
            {"Value": outputs["compute"]["inference_dns"]}
        ]

        assert served.stop() == 0, served.stderr
    assert "Stopped; changes written back to the sandbox." in served.stderr


def test_raising_desired_size_plans_one_update_and_applies_it(
    cli: Any, completed_project: Path, aws: Any, config: Any
) -> None:
    stack_file = completed_project / "stacks" / "Pulumi.sandbox-compute.yaml"
    pool = config(completed_project, "sandbox-compute")["inference_pool"]
    wanted = pool["desired_size"] + 1
    assert wanted <= pool["max_size"], "the shipped config leaves no room to scale up"
    text = stack_file.read_text()
    old = f"desired_size: {pool['desired_size']}\n"
    assert text.count(old) == 1
    stack_file.write_text(text.replace(old, f"desired_size: {wanted}\n"))

    result = cli.run(completed_project, "plan", "--detailed-exitcode", "--output", "json")
    assert result.returncode == 2, result.stderr
    plan = _json(result)
    changes = [(p["phase"], r) for p in plan["phases"] for r in p["resources"] if r["op"] != "same"]
    assert changes == [
        (
            "compute",
            {
                "op": "update",
                "type": NODE_GROUP,
                "name": "gpu-inference",
                "changed": ["scalingConfig"],
            },
        )
    ]
    assert [p["outcome"] for p in plan["phases"]] == [
        "no changes",
        "no changes",
        "planned",
        "no changes",
    ]

    applied_run = cli.run(completed_project, "apply", "--yes", "--output", "json")
    assert applied_run.returncode == 0, applied_run.stderr
    outcomes = {p["phase"]: p["outcome"] for p in _json(applied_run)["phases"]}
    assert outcomes == {
        "pilot": "no changes",
        "data_layer": "no changes",
        "compute": "applied",
        "cutover": "no changes",
    }
    assert _state(completed_project, "compute")["status"] == "verified"

    with cli.serve(completed_project) as served:
        group = aws("eks", served.url).describe_nodegroup(
            clusterName="sandbox-ai-platform", nodegroupName="gpu-inference"
        )["nodegroup"]
        assert group["scalingConfig"]["desiredSize"] == wanted
        assert group["scalingConfig"]["maxSize"] == pool["max_size"]


def test_after_a_reset_the_cutover_starts_again_at_its_first_step(
    cli: Any, completed_project: Path, aws: Any, config: Any
) -> None:
    assert cli.run(completed_project, "sandbox", "reset", "--yes").returncode == 0
    state = _state(completed_project, "cutover")
    assert (state.get("step"), state.get("steps")) == (None, None)

    result = cli.run(completed_project, "apply", "--yes")

    assert result.returncode == 0, result.stderr
    assert _state(completed_project, "cutover")["step"] == 0
    status = _json(cli.run(completed_project, "status", "--output", "json"))
    assert status["phases"][-1]["step"] == "1/3"
    first = config(completed_project, "sandbox-cutover")["steps"][0]
    with cli.serve(completed_project) as served:
        route53 = aws("route53", served.url)
        [zone] = route53.list_hosted_zones_by_name(DNSName="corp.example.com")["HostedZones"][:1]
        records = route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
    weights = {r["SetIdentifier"]: r["Weight"] for r in records if "SetIdentifier" in r}
    assert (
        weights
        == {"legacy": first["legacy"], "platform": first["platform"]}
        != {
            "legacy": 0,
            "platform": 100,
        }
    )


def test_sandbox_reset_empties_the_cloud_and_keeps_history(
    cli: Any, completed_project: Path
) -> None:
    before = {phase: _state(completed_project, phase)["history"] for phase in PHASES}
    assert (completed_project / CHECKPOINT).exists()

    result = cli.run(completed_project, "sandbox", "reset", "--yes")
    assert result.returncode == 0, result.stderr
    assert "4 stack(s) back to pending" in result.stdout

    cloud = completed_project / ".phasegate" / "sandbox" / "sandbox"
    assert not cloud.exists() or not any(cloud.iterdir()), "the sandbox cloud was not emptied"
    for phase in PHASES:
        state = _state(completed_project, phase)
        assert state["status"] == "pending"
        assert state["outputs"] == {}
        history = state["history"]
        assert len(history) == len(before[phase]) + 1
        assert history[: len(before[phase])] == before[phase], "history is append-only"
        assert (history[-1]["event"], history[-1]["from"], history[-1]["to"]) == (
            "reset",
            "verified",
            "pending",
        )

    status = _json(cli.run(completed_project, "status", "--output", "json"))
    assert [p["status"] for p in status["phases"]] == ["pending"] * 4
    assert (status["position"], status["complete"]) == (None, False)
    inventory = _json(cli.run(completed_project, "sandbox", "status", "--output", "json"))
    assert (inventory["initialised"], inventory["stacks"]) == (False, {})
