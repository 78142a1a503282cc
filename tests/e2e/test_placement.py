"""GPU-zone placement as a user meets it: the sandbox's per-zone offerings and the control
that changes them (`migrate sandbox offerings`), read back with plain boto3 through
`migrate sandbox serve`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from _projects import one_error_line


def _zones(ec2: Any, instance_type: str) -> list[str]:
    pages = ec2.get_paginator("describe_instance_type_offerings").paginate(
        LocationType="availability-zone",
        Filters=[{"Name": "instance-type", "Values": [instance_type]}],
    )
    return sorted(o["Location"] for p in pages for o in p["InstanceTypeOfferings"])


def test_the_offerings_control_is_kept_in_the_cloud_and_seen_through_serve(
    cli: Any, fresh_project: Path, aws: Any
) -> None:
    with cli.serve(fresh_project) as served:
        ec2 = aws("ec2", served.url)
        assert _zones(ec2, "g6e.xlarge") == [f"us-east-1{z}" for z in "abcd"]
        assert _zones(ec2, "p4de.24xlarge") == ["us-east-1b", "us-east-1c"]
        assert _zones(ec2, "p5e.48xlarge") == []

    done = cli.run(fresh_project, "sandbox", "offerings", "g6e.xlarge", "--zones", "us-east-1c")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "g6e.xlarge in environment sandbox's emulated cloud: offered in us-east-1c only."
    )
    nowhere = cli.run(fresh_project, "sandbox", "offerings", "g5.xlarge", "--nowhere")
    assert nowhere.returncode == 0, nowhere.stderr
    with cli.serve(fresh_project) as served:
        ec2 = aws("ec2", served.url)
        assert _zones(ec2, "g6e.xlarge") == ["us-east-1c"]
        assert _zones(ec2, "g5.xlarge") == []
        assert _zones(ec2, "g6.xlarge") == [f"us-east-1{z}" for z in "abcdf"]

    reset = cli.run(fresh_project, "sandbox", "offerings", "g5.xlarge", "--reset")
    assert reset.returncode == 0, reset.stderr
    with cli.serve(fresh_project) as served:
        assert _zones(aws("ec2", served.url), "g5.xlarge") == [f"us-east-1{z}" for z in "abcdf"]


def test_bad_offerings_input_is_one_line_and_changes_nothing(cli: Any, fresh_project: Path) -> None:
    cases = {
        ("g5.xlarge", "--zones", "us-east-1a,us-east-9z"): (
            "error: --zones: us-east-9z: not a zone of us-east-1; allowed: us-east-1a, "
        ),
        ("g5.giant", "--nowhere"): "error: TYPE: unknown instance type 'g5.giant'; allowed: ",
        ("g5.xlarge",): "error: migrate sandbox offerings: give exactly one of --zones, ",
        ("g5.xlarge", "--nowhere", "--reset"): "error: migrate sandbox offerings: give exactly",
        ("g5.xlarge", "--zones", ","): "error: --zones: no zone given; use --nowhere",
    }
    for args, start in cases.items():
        result = cli.run(fresh_project, "sandbox", "offerings", *args)
        assert result.returncode == 1, (args, result.stderr)
        assert one_error_line(result.stderr).startswith(start), (args, result.stderr)


# --- placement: the plan's pre-flight and where the pools land -------------------------

PILOT = "stacks/Pulumi.sandbox-pilot.yaml"
COMPUTE = "stacks/Pulumi.sandbox-compute.yaml"


def _edit(project: Path, name: str, old: str, new: str) -> int:
    """Replace the one ``old`` in a stack file; returns the line it is on."""
    path = project / name
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} in {path}"
    path.write_text(text.replace(old, new))
    return text[: text.index(old)].count("\n") + 1


def _refused(stderr: str) -> str:
    """The run's headline (what it set out to do), then its one error line."""
    headline, *rest = stderr.strip().splitlines()
    assert re.match(r"(Planning|Applying) (sandbox|staging): ", headline), stderr
    return one_error_line("\n".join(rest))


def _nothing_applied(cli: Any, project: Path, aws: Any) -> None:
    for phase in ("pilot", "data_layer", "compute", "cutover"):
        assert not (project / "state" / "sandbox" / f"{phase}.yaml").exists() or (
            "status: pending" in (project / "state" / "sandbox" / f"{phase}.yaml").read_text()
        )
    with cli.serve(project) as served:
        vpcs = aws("ec2", served.url).describe_vpcs(
            Filters=[{"Name": "cidr-block", "Values": ["10.20.0.0/16"]}]
        )["Vpcs"]
        assert vpcs == []
        assert aws("eks", served.url).list_clusters()["clusters"] == []


def test_a_type_offered_in_no_chosen_zone_fails_the_plan_in_one_line(
    cli: Any, fresh_project: Path, aws: Any
) -> None:
    # p5e.48xlarge: moto's AWS data offers it in no zone of us-east-1.
    line = _edit(
        fresh_project, COMPUTE, "instance_type: p4d.24xlarge", "instance_type: p5e.48xlarge"
    )
    expected = (
        f"error: {COMPUTE}:{line}: phasegate:training_pool.instance_type: p5e.48xlarge is "
        "offered in none of the chosen zones us-east-1a, us-east-1b "
        f"(zones from phasegate:availability_zones in {PILOT})"
    )
    for command in (("plan",), ("apply", "--yes")):
        result = cli.run(fresh_project, *command)
        assert result.returncode == 1, (command, result.stderr)
        assert _refused(result.stderr) == expected, command
    _nothing_applied(cli, fresh_project, aws)


def test_a_type_the_offerings_control_takes_away_fails_the_plan_at_its_first_pool(
    cli: Any, fresh_project: Path, aws: Any
) -> None:
    done = cli.run(fresh_project, "sandbox", "offerings", "g5.xlarge", "--zones", "us-east-1c")
    assert done.returncode == 0, done.stderr
    result = cli.run(fresh_project, "plan")
    assert result.returncode == 1, result.stderr
    line = (fresh_project / PILOT).read_text().splitlines().index("    instance_type: g5.xlarge")
    assert _refused(result.stderr) == (
        f"error: {PILOT}:{line + 1}: phasegate:pilot_pool.instance_type: g5.xlarge is offered "
        "in none of the chosen zones us-east-1a, us-east-1b "
        f"(zones from phasegate:availability_zones in {PILOT})"
    )
    _nothing_applied(cli, fresh_project, aws)


def _three_zones(project: Path) -> None:
    _edit(
        project,
        PILOT,
        "phasegate:availability_zones: [us-east-1a, us-east-1b]",
        "phasegate:availability_zones: [us-east-1a, us-east-1b, us-east-1c]",
    )
    _edit(
        project,
        PILOT,
        "[10.20.192.0/20, 10.20.208.0/20]",
        "[10.20.192.0/20, 10.20.208.0/20, 10.20.224.0/20]",
    )
    _edit(
        project,
        PILOT,
        "[10.20.0.0/19, 10.20.32.0/19]",
        "[10.20.0.0/19, 10.20.32.0/19, 10.20.64.0/19]",
    )


def _group_zones(ec2: Any, eks: Any, group: str) -> list[str]:
    subnets = eks.describe_nodegroup(clusterName="sandbox-ai-platform", nodegroupName=group)[
        "nodegroup"
    ]["subnets"]
    found = ec2.describe_subnets(SubnetIds=subnets)["Subnets"]
    assert len(found) == len(subnets)
    return sorted(s["AvailabilityZone"] for s in found)


def test_a_type_offered_in_one_of_three_zones_places_its_pool_there_only(
    cli: Any, fresh_project: Path, aws: Any
) -> None:
    from _projects import without_waits

    without_waits(fresh_project)
    _three_zones(fresh_project)
    # The inference pool's g6.xlarge in one zone of three; its g5.xlarge in all three.
    for args in (("g6.xlarge", "--zones", "us-east-1b"), ("p4d.24xlarge", "--zones", "us-east-1c")):
        done = cli.run(fresh_project, "sandbox", "offerings", *args)
        assert done.returncode == 0, done.stderr

    applied = cli.run(fresh_project, "apply", "--yes")
    assert applied.returncode == 0, applied.stderr

    with cli.serve(fresh_project) as served:
        ec2, eks = aws("ec2", served.url), aws("eks", served.url)
        assert _group_zones(ec2, eks, "gpu-inference") == ["us-east-1b"]
        # The training pool's p4d.24xlarge: offered in us-east-1c only, one zone anyway.
        assert _group_zones(ec2, eks, "gpu-training") == ["us-east-1c"]
        # The pilot pool's g5.xlarge is offered in all three.
        assert _group_zones(ec2, eks, "gpu-pilot") == ["us-east-1a", "us-east-1b", "us-east-1c"]
        # The offerings the apply went by are still what the emulated cloud answers.
        assert _zones(ec2, "g6.xlarge") == ["us-east-1b"]


def test_the_pulumi_engine_reads_offerings_from_the_environment_s_own_api(
    cli: Any, fresh_project: Path
) -> None:
    """The pre-flight asks the engine's AWS client, so it runs before anything needs the
    Pulumi CLI: here staging (engine pulumi) is pointed at the sandbox served as an AWS
    endpoint, which offers p5e.48xlarge in no zone of us-east-1."""
    staging = "stacks/Pulumi.staging-pilot.yaml"
    line = _edit(
        fresh_project,
        staging,
        "instance_types: [g5.xlarge, g6.xlarge]",
        "instance_types: [g5.xlarge, p5e.48xlarge]",
    )
    migration = fresh_project / "migration.yaml"
    with cli.serve(fresh_project) as served:
        text = migration.read_text()
        old = "    engine: pulumi\n    region: us-east-1\n    promote_from: sandbox\n"
        assert text.count(old) == 1
        migration.write_text(text.replace(old, f"{old}    aws: {{endpoint_url: {served.url}}}\n"))
        result = cli.run(fresh_project, "plan", "--env", "staging", "--phase", "pilot")
    assert result.returncode == 1, result.stderr
    assert _refused(result.stderr) == (
        f"error: {staging}:{line}: phasegate:pilot_pool.instance_types: p5e.48xlarge is offered "
        "in none of the chosen zones us-east-1a, us-east-1b, us-east-1c "
        f"(zones from phasegate:availability_zones in {staging})"
    )
