"""GPU-zone placement as a user meets it: the sandbox's per-zone offerings and the control
that changes them (`migrate sandbox offerings`), read back with plain boto3 through
`migrate sandbox serve`."""

from __future__ import annotations

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
    assert done.stdout.strip() == "g6e.xlarge in the sandbox sandbox: offered in us-east-1c only."
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
