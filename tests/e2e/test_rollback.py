"""Automatic rollback through the real CLI: a failed check puts a phase back exactly as it
was last verified (the cutover: all traffic on legacy), loudly, and never loses data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

LAKE = ("raw", "curated", "features", "models", "checkpoints")


def _state(project: Path, phase: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (project / "state" / "sandbox" / f"{phase}.yaml").read_text()
    )
    return loaded


def _replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not in {path} exactly once"
    path.write_text(text.replace(old, new))


def _add_check(project: Path, phase: str, check: dict[str, Any]) -> None:
    path = project / "migration.yaml"
    data = yaml.safe_load(path.read_text())
    for spec in data["phases"]:
        if spec["name"] == phase:
            spec["checks"] = [*spec.get("checks", []), check]
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _moves(state: dict[str, Any]) -> list[tuple[str, str]]:
    return [(h["from"], h["to"]) for h in state["history"]]


def _node_groups(eks: Any) -> dict[str, dict[str, Any]]:
    found = {}
    for name in eks.list_nodegroups(clusterName="sandbox-ai-platform")["nodegroups"]:
        group = eks.describe_nodegroup(clusterName="sandbox-ai-platform", nodegroupName=name)
        found[name] = {
            k: group["nodegroup"].get(k)
            for k in (
                "instanceTypes",
                "capacityType",
                "scalingConfig",
                "labels",
                "taints",
                "launchTemplate",
                "createdAt",
            )
        }
    return found


def test_a_cutover_step_whose_alarm_fires_puts_all_traffic_back_on_legacy(
    cli: Any, applied_project: Path, aws: Any
) -> None:
    alarm = cli.run(applied_project, "sandbox", "alarm", "sandbox-app-platform-5xx", "ALARM")
    assert alarm.returncode == 0, alarm.stderr

    result = cli.run(applied_project, "apply", "--yes", "--output", "json")

    assert result.returncode == 3, result.stderr
    cutover = json.loads(result.stdout)["phases"][-1]
    assert cutover["outcome"] == "rolled back"
    assert "check no_5xx_alarms failed: sandbox-app-platform-5xx is in ALARM" in cutover["message"]
    assert cutover["message"].endswith("rolled back to its baseline (all traffic on legacy)")
    assert cutover["rollback_seconds"] < 5
    state = _state(applied_project, "cutover")
    assert _moves(state)[-4:] == [
        ("planned", "applying"),
        ("applying", "verifying"),
        ("verifying", "rolling_back"),
        ("rolling_back", "rolled_back"),
    ]
    assert "sandbox-app-platform-5xx is in ALARM" in state["history"][-2]["message"]
    assert (state["status"], state["step"]) == ("rolled_back", -1)
    status = json.loads(cli.run(applied_project, "status", "--output", "json").stdout)
    assert status["phases"][-1]["step"] == "baseline"

    with cli.serve(applied_project) as served:
        route53 = aws("route53", served.url)
        [zone] = route53.list_hosted_zones_by_name(DNSName="corp.example.com")["HostedZones"][:1]
        records = route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
        weights = {r["SetIdentifier"]: r["Weight"] for r in records if "SetIdentifier" in r}
    assert weights == {"legacy": 100, "platform": 0}


def test_a_compute_change_whose_gpu_check_fails_puts_the_node_groups_back(
    cli: Any, applied_project: Path, aws: Any
) -> None:
    with cli.serve(applied_project) as served:
        before = _node_groups(aws("eks", served.url))
    # No inference node: the checked GPU total (at least 1) cannot be met.
    _replace_once(
        applied_project / "stacks" / "Pulumi.sandbox-compute.yaml",
        "    desired_size: 1\n",
        "    desired_size: 0\n",
    )

    result = cli.run(applied_project, "apply", "--yes", "--output", "json")

    assert result.returncode == 3, result.stderr
    compute = next(p for p in json.loads(result.stdout)["phases"] if p["phase"] == "compute")
    assert "check inference_gpus failed: gpu-inference: 0 GPUs" in compute["message"]
    assert compute["message"].endswith("rolled back to its last known good")
    with cli.serve(applied_project) as served:
        after = _node_groups(aws("eks", served.url))
    assert after == before  # the same groups, sizes, types, labels, taints and templates
    state = _state(applied_project, "compute")
    assert state["status"] == "rolled_back"
    kubernetes = next(c for c in state["checks"] if c["name"] == "gpu_nodes_ready")
    assert kubernetes["result"] == "skipped"
    assert "the sandbox has no Kubernetes cluster" in kubernetes["message"]


def test_a_first_apply_whose_check_fails_keeps_only_what_is_protected(
    cli: Any, fresh_project: Path
) -> None:
    assert cli.run(fresh_project, "apply", "--yes", "--phase", "pilot").returncode == 0
    _add_check(
        fresh_project,
        "data_layer",
        {
            "name": "never",
            "kind": "outputs",
            "params": {"present": ["no_such_output"]},
            "interval": 0,
            "retries": 0,
        },
    )

    result = cli.run(fresh_project, "apply", "--yes", "--phase", "data_layer", "--output", "json")

    assert result.returncode == 3, result.stderr
    [report] = json.loads(result.stdout)["phases"]
    assert report["message"].endswith("rolled back to nothing (destroyed what it created)")
    kept = {k.rsplit(" ", 1)[-1] for k in report["kept"]}
    assert {f"lake-{name}" for name in LAKE} | {"lake-key", "lake-raw-versioning"} <= kept
    inventory = json.loads(cli.run(fresh_project, "sandbox", "status", "--output", "json").stdout)
    left = {r["name"] for r in inventory["stacks"]["sandbox-data_layer"]}
    assert left == kept  # everything the lake declares is protected, and only that is left


def test_no_rollback_ever_deletes_the_lake_or_its_objects(
    cli: Any, applied_project: Path, aws: Any
) -> None:
    def objects() -> dict[str, dict[str, str]]:
        with cli.serve(applied_project) as served:
            s3 = aws("s3", served.url)
            return {
                name: {
                    o["Key"]: o["ETag"]
                    for o in s3.list_objects_v2(Bucket=f"phasegate-sandbox-lake-{name}").get(
                        "Contents", []
                    )
                }
                for name in LAKE
            }

    with cli.serve(applied_project) as served:
        s3 = aws("s3", served.url)
        for name in LAKE:
            for i in range(3):
                s3.put_object(
                    Bucket=f"phasegate-sandbox-lake-{name}",
                    Key=f"exports/2026-11-2{i}.parquet",
                    Body=f"{name} day {i}".encode(),
                )
    stored = objects()
    assert all(len(keys) == 3 for keys in stored.values())

    # 1. A changed lifecycle and legacy source, whose check fails: back to the last known
    # good (where the check holds again, so the rollback checks out).
    config = applied_project / "stacks" / "Pulumi.sandbox-data_layer.yaml"
    _replace_once(config, "ia_after_days: 30", "ia_after_days: 45")
    _replace_once(config, "legacy_bucket: phasegate-legacy-sandbox", "legacy_bucket: elsewhere")
    _add_check(
        applied_project,
        "data_layer",
        {
            "name": "legacy_source",
            "kind": "outputs",
            "params": {"equals": {"legacy_bucket": "phasegate-legacy-sandbox"}},
            "interval": 0,
            "retries": 0,
        },
    )
    failed = cli.run(applied_project, "apply", "--yes", "--phase", "data_layer")
    assert failed.returncode == 3, failed.stderr
    assert objects() == stored
    # 2. A rollback by hand, of the lake as last verified.
    rolled = cli.run(applied_project, "rollback", "--phase", "data_layer")
    assert rolled.returncode == 0, rolled.stderr
    assert objects() == stored
    with cli.serve(applied_project) as served:
        lifecycle = aws("s3", served.url).get_bucket_lifecycle_configuration(
            Bucket="phasegate-sandbox-lake-raw"
        )
    assert lifecycle["Rules"][0]["Transitions"][0]["Days"] == 30


def test_no_rollback_leaves_a_failed_phase_for_a_person_then_rollback_finishes_it(
    cli: Any, fresh_project: Path
) -> None:
    _add_check(
        fresh_project,
        "pilot",
        {"name": "never", "kind": "outputs", "params": {"present": ["no_such"]}, "interval": 0},
    )
    result = cli.run(fresh_project, "apply", "--yes", "--phase", "pilot", "--no-rollback")
    assert result.returncode == 1, result.stderr
    assert "not rolled back (--no-rollback): the stack stays verifying" in result.stderr
    assert _state(fresh_project, "pilot")["status"] == "verifying"

    blocked = cli.run(fresh_project, "plan")
    assert blocked.returncode == 5
    assert "migrate recover --env sandbox" in blocked.stderr

    rolled = cli.run(fresh_project, "rollback", "--phase", "pilot")
    assert rolled.returncode == 0, rolled.stderr
    assert _state(fresh_project, "pilot")["status"] == "rolled_back"
    inventory = json.loads(cli.run(fresh_project, "sandbox", "status", "--output", "json").stdout)
    assert inventory["stacks"].get("sandbox-pilot", []) == []
