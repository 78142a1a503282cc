"""Automatic rollback through the real CLI: a failed check puts a phase back exactly as it
was last verified (the cutover: all traffic on legacy), loudly, and never loses data."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from _projects import copy_project
from phasegate import faults
from phasegate.state import StateStore

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
    assert cutover["rollback_seconds"] > 0  # measured; bench/ holds the targets
    state = _state(applied_project, "cutover")
    assert _moves(state)[-4:] == [
        ("verified", "applying"),
        ("applying", "verifying"),
        ("verifying", "rolling_back"),
        ("rolling_back", "rolled_back"),
    ]
    assert "sandbox-app-platform-5xx is in ALARM" in state["history"][-2]["message"]
    assert (state["status"], state["step"]) == ("rolled_back", -1)
    # The restored baseline was checked again, and that is on record beside the failure.
    rechecked = {c["name"]: c for c in state["rollback_checks"]}
    assert rechecked["weights"]["result"] == "pass"
    assert "legacy=100, platform=0" in rechecked["weights"]["message"]
    assert rechecked["no_5xx_alarms"]["result"] == "skipped"
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


def test_a_first_apply_of_the_data_layer_whose_check_fails_keeps_the_lake_readers_on_legacy(
    cli: Any, applied_before: Callable[[str], Path], tmp_path: Path
) -> None:
    # Pilot applied (`migrate apply --yes --phase pilot`), the lake never.
    project = copy_project(applied_before("data_layer"), tmp_path / "project")
    _add_check(
        project,
        "data_layer",
        {
            "name": "never",
            "kind": "outputs",
            "params": {"present": ["no_such_output"]},
            "interval": 0,
            "retries": 0,
        },
    )

    result = cli.run(project, "apply", "--yes", "--phase", "data_layer", "--output", "json")

    # A phase that copies data is never destroyed: the lake stays, readers on legacy.
    assert result.returncode == 3, result.stderr
    [report] = json.loads(result.stdout)["phases"]
    assert report["message"].endswith(
        "rolled back to readers on legacy (the lake and the data copied into it kept), "
        "on the version applied"
    )
    state = _state(project, "data_layer")
    assert state["status"] == "rolled_back" and state["rollback_checks"] == []
    assert state["outputs"]["data_source"]["on"] == "legacy"
    inventory = json.loads(cli.run(project, "sandbox", "status", "--output", "json").stdout)
    left = {r["name"] for r in inventory["stacks"]["sandbox-data_layer"]}
    assert {f"lake-{name}" for name in LAKE} | {"lake-key", "lake-raw-versioning"} <= left


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
    days = {f"exports/2026-11-2{i}.parquet" for i in range(3)}
    assert all(days <= set(keys) for keys in stored.values())

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
    # 2. The same change left applied for a person (--no-rollback), then rolled back by hand.
    left = cli.run(applied_project, "apply", "--yes", "--phase", "data_layer", "--no-rollback")
    assert left.returncode == 1, left.stderr
    assert _state(applied_project, "data_layer")["status"] == "verifying"
    rolled = cli.run(applied_project, "rollback", "--phase", "data_layer")
    assert rolled.returncode == 0, rolled.stderr
    assert _state(applied_project, "data_layer")["status"] == "rolled_back"
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
    state = _state(fresh_project, "pilot")
    assert state["status"] == "verifying"
    never = next(c for c in state["checks"] if c["name"] == "never")  # for the person
    assert (never["result"], never["message"]) == ("fail", "missing outputs: no_such")

    # Nothing else runs in the environment meanwhile: not on pilot, nor on what builds on it.
    for args in (
        ("plan",),
        ("check",),
        ("apply", "--yes", "--phase", "data_layer"),
        ("rollback", "--phase", "data_layer"),
        ("sandbox", "alarm", "sandbox-app-platform-5xx", "OK"),
        ("sandbox", "serve", "--port", "0"),
    ):
        blocked = cli.run(fresh_project, *args)
        assert blocked.returncode == 5, (args, blocked.stdout, blocked.stderr)
        assert "sandbox-pilot was interrupted while verifying" in blocked.stderr, args
        assert "migrate recover --env sandbox" in blocked.stderr, args

    rolled = cli.run(fresh_project, "rollback", "--phase", "pilot")
    assert rolled.returncode == 0, rolled.stderr
    assert _state(fresh_project, "pilot")["status"] == "rolled_back"
    inventory = json.loads(cli.run(fresh_project, "sandbox", "status", "--output", "json").stdout)
    assert inventory["stacks"].get("sandbox-pilot", []) == []


def test_a_rollback_keeps_a_protected_resource_only_the_failed_version_had(
    cli: Any, applied_project: Path, aws: Any
) -> None:
    # The failed version adds a bucket and a key with its alias, all protected (lake-*).
    program = applied_project / "phases" / "data_layer.py"
    _replace_once(program, '"checkpoints")', '"checkpoints", "scratch")')
    text = program.read_text()
    anchor = "    lifecycle = Lifecycle("
    assert text.count(anchor) == 1
    program.write_text(
        text.replace(
            anchor,
            "    scratch_key = aws.kms.Key(\n"
            '        "lake-scratch-key", tags=tags, opts=keep("lake-scratch-key")\n'
            "    )\n"
            "    aws.kms.Alias(\n"
            '        "lake-scratch-alias",\n'
            '        name=f"alias/phasegate-{env}-lake-scratch",\n'
            "        target_key_id=scratch_key.key_id,\n"
            '        opts=keep("lake-scratch-alias"),\n'
            "    )\n" + anchor,
        )
    )
    never = {"name": "never", "kind": "outputs", "params": {"present": ["no_such_output"]}}
    _add_check(applied_project, "data_layer", {**never, "interval": 0, "retries": 0})

    result = cli.run(applied_project, "apply", "--yes", "--phase", "data_layer", "--output", "json")

    # The last known good has none of them: the rollback keeps them, and checks out.
    assert result.returncode == 3, result.stdout + result.stderr
    [report] = json.loads(result.stdout)["phases"]
    assert report["message"].endswith(
        "readers on legacy (the lake and the data copied into it kept), on its last known good"
    )
    kept = {k.rsplit(" ", 1)[-1] for k in report["kept"]}
    assert {"lake-scratch", "lake-scratch-versioning", "lake-scratch-alias"} <= kept
    assert all(name.startswith("lake-scratch") for name in kept), kept
    assert _state(applied_project, "data_layer")["status"] == "rolled_back"
    inventory = json.loads(cli.run(applied_project, "sandbox", "status", "--output", "json").stdout)
    assert not {r["name"] for r in inventory["stacks"]["sandbox-data_layer"]} & kept
    with cli.serve(applied_project) as served:
        s3 = aws("s3", served.url)
        buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
        versioning = s3.get_bucket_versioning(Bucket="phasegate-sandbox-lake-scratch")
        aliases = aws("kms", served.url).list_aliases()["Aliases"]
        keys_kept = len(aws("kms", served.url).list_keys()["Keys"])
    assert "phasegate-sandbox-lake-scratch" in buckets
    assert versioning["Status"] == "Enabled"
    [alias] = [a for a in aliases if a["AliasName"] == "alias/phasegate-sandbox-lake-scratch"]

    # Fixed forward (the check that failed was wrong): the stack takes them back, the
    # very same key and alias rather than new ones, and verifies.
    migration = yaml.safe_load((applied_project / "migration.yaml").read_text())
    for spec in migration["phases"]:
        spec["checks"] = [c for c in spec.get("checks", []) if c["name"] != "never"]
    (applied_project / "migration.yaml").write_text(yaml.safe_dump(migration, sort_keys=False))
    again = cli.run(applied_project, "apply", "--yes", "--phase", "data_layer")
    assert again.returncode == 0, again.stdout + again.stderr
    assert _state(applied_project, "data_layer")["status"] == "verified"
    inventory = json.loads(cli.run(applied_project, "sandbox", "status", "--output", "json").stdout)
    managed = {r["name"]: r["id"] for r in inventory["stacks"]["sandbox-data_layer"]}
    assert kept <= set(managed)
    with cli.serve(applied_project) as served:
        keys = aws("kms", served.url).list_keys()["Keys"]
        aliases = aws("kms", served.url).list_aliases()["Aliases"]
    assert managed["lake-scratch-key"] == alias["TargetKeyId"]
    assert [a["TargetKeyId"] for a in aliases if "lake-scratch" in a["AliasName"]] == [
        alias["TargetKeyId"]
    ]
    assert len(keys) == keys_kept, "taken back, not made anew"


def test_a_rollback_is_judged_by_the_checks_its_last_known_good_passed(
    cli: Any, applied_project: Path
) -> None:
    # A change that also brings a check neither it nor the last known good can pass.
    _replace_once(
        applied_project / "stacks" / "Pulumi.sandbox-data_layer.yaml",
        "ia_after_days: 30",
        "ia_after_days: 45",
    )
    never = {"name": "never", "kind": "outputs", "params": {"present": ["no_such_output"]}}
    _add_check(applied_project, "data_layer", {**never, "interval": 0, "retries": 0})

    result = cli.run(applied_project, "apply", "--yes", "--phase", "data_layer")

    assert result.returncode == 3, result.stdout + result.stderr
    state = _state(applied_project, "data_layer")
    assert state["status"] == "rolled_back"
    assert "never" in {c["name"] for c in state["checks"]}  # the change failed on it
    rechecked = {c["name"]: c["result"] for c in state["rollback_checks"]}
    assert "never" not in rechecked
    # The proof is not re-run: a rollback keeps the lake's data as it is.
    assert rechecked.pop("lake_has_the_legacy_data") == "skipped"
    assert set(rechecked.values()) == {"pass"} and "lake_raw" in rechecked


def test_recover_rolls_back_on_the_last_known_good_alone_when_the_config_is_broken(
    cli: Any, applied_project: Path, aws: Any
) -> None:
    config = applied_project / "stacks" / "Pulumi.sandbox-data_layer.yaml"
    _replace_once(config, "ia_after_days: 30", "ia_after_days: 45")
    never = {"name": "never", "kind": "outputs", "params": {"present": ["no_such_output"]}}
    _add_check(applied_project, "data_layer", {**never, "interval": 0, "retries": 0})
    left = cli.run(applied_project, "apply", "--yes", "--phase", "data_layer", "--no-rollback")
    assert left.returncode == 1, left.stdout + left.stderr
    # Then the stack config is broken too, as it may be while someone works on the cause.
    _replace_once(config, "ia_after_days: 45", "ia_after_days: soon")
    assert cli.run(applied_project, "plan").returncode == 5  # interrupted comes first

    recovered = cli.run(applied_project, "recover")

    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert _state(applied_project, "data_layer")["status"] == "rolled_back"
    with cli.serve(applied_project) as served:
        lifecycle = aws("s3", served.url).get_bucket_lifecycle_configuration(
            Bucket="phasegate-sandbox-lake-raw"
        )
    assert lifecycle["Rules"][0]["Transitions"][0]["Days"] == 30
    bad = cli.run(applied_project, "plan")
    assert bad.returncode == 1 and "ia_after_days" in bad.stderr, bad.stderr


def test_a_failed_rollback_shows_no_checks_of_an_earlier_one(
    cli: Any, applied_project: Path
) -> None:
    _replace_once(
        applied_project / "stacks" / "Pulumi.sandbox-compute.yaml",
        "    desired_size: 1\n",
        "    desired_size: 0\n",
    )
    first = cli.run(applied_project, "apply", "--yes", "--phase", "compute")
    assert first.returncode == 3, first.stdout + first.stderr
    assert _state(applied_project, "compute")["rollback_checks"]

    # The same change again; this time the rollback's first operation fails (the apply's
    # one update is operation 1), before any check of it could run.
    failed = cli.run(
        applied_project,
        *("apply", "--yes", "--phase", "compute", "--output", "json"),
        env={faults.VARIABLE: "resource-op-fail:2:fail"},
    )
    assert failed.returncode == 4, failed.stdout + failed.stderr
    [report] = json.loads(failed.stdout)["phases"]
    assert "rollback_checks" not in report
    state = _state(applied_project, "compute")
    assert state["status"] == "rollback_failed"
    assert "rollback_checks" not in state
    [gpus] = [c for c in state["checks"] if c["name"] == "inference_gpus"]
    assert gpus["result"] == "fail"  # this apply's checks, not the earlier one's


def test_a_rollback_by_hand_that_cannot_start_leaves_the_stack_as_it_was(
    cli: Any, fresh_project: Path
) -> None:
    # A stack whose first apply was undone: a rollback by hand destroys again, which
    # needs its stack config, and that is broken.
    states = StateStore(fresh_project / "state", "sandbox")
    state = states.read("pilot")
    state.status = "rolled_back"
    states.write(state)
    _replace_once(
        fresh_project / "stacks" / "Pulumi.sandbox-pilot.yaml",
        "phasegate:vpc_cidr: 10.20.0.0/16",
        "phasegate:vpc_cidr: not-a-cidr",
    )

    result = cli.run(fresh_project, "rollback", "--phase", "pilot")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "vpc_cidr" in result.stderr
    assert _state(fresh_project, "pilot")["status"] == "rolled_back"  # not left rolling_back
