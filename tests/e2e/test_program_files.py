"""A phase's program snapshot holds every file under phases/, text or not: a binary one
(an image, a zip, model weights) is kept in the last known good and restored byte for
byte, and never wedges an environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from phasegate.lkg import LastKnownGoodStore
from phasegate.project import Project
from phasegate.state import StateStore

BLOB = bytes(range(256)) * 4 + b"\xff\xfe\x00PK\x03\x04 not text"


def test_a_binary_file_under_phases_is_kept_and_restored_byte_for_byte(
    cli: Any, applied_project: Path
) -> None:
    """It made the last-known-good snapshot fail after the resources existed: the stack
    stayed `verifying` and `recover` failed too."""
    (applied_project / "phases" / "assets").mkdir()
    (applied_project / "phases" / "assets" / "weights.bin").write_bytes(BLOB)

    apply = cli.run(applied_project, "apply", "--yes")

    assert apply.returncode == 0, apply.stdout + apply.stderr
    project = Project.load(applied_project)
    states = StateStore(project.state_dir, "sandbox")
    kept = LastKnownGoodStore(project.state_dir, lambda _: None)
    for phase in project.migration.phases:
        state = states.read(phase.name)
        assert state.status == "verified", phase.name
        assert state.lkg is not None
        target = project.target(project.migration.environment("sandbox"), phase)
        restored = kept.target(target, state.lkg).program.files
        assert restored["assets/weights.bin"] == BLOB
        assert restored == target.program.files

    rollback = cli.run(applied_project, "rollback", "--phase", "compute")

    assert rollback.returncode == 0, rollback.stdout + rollback.stderr
    compute = yaml.safe_load((applied_project / "state" / "sandbox" / "compute.yaml").read_text())
    assert compute["status"] == "rolled_back"


def test_a_plan_that_would_drop_a_protected_resource_says_so_not_that_it_cannot_create_it(
    cli: Any, applied_project: Path
) -> None:
    """Its closing line said the engine "cannot create" the resources it refused."""
    program = applied_project / "phases" / "data_layer.py"
    text = program.read_text()
    old = 'LAKE_BUCKETS = ("raw", "curated", "features", "models", "checkpoints")'
    program.write_text(text.replace(old, 'LAKE_BUCKETS = ("raw", "curated", "features", "models")'))

    plan = cli.run(applied_project, "plan", "--phase", "data_layer")

    assert plan.returncode == 1, plan.stdout + plan.stderr
    last = plan.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "error: the plan refuses 6 resource(s) (see above): protected: will not be deleted: "
    )
    assert last.endswith(", aws:s3/bucket:Bucket 'lake-checkpoints'")
    assert "cannot create" not in plan.stderr


def test_a_type_the_sandbox_cannot_emulate_is_named_in_the_plans_closing_line(
    cli: Any, applied_project: Path
) -> None:
    program = applied_project / "phases" / "cutover.py"
    program.write_text(
        program.read_text()
        + "\n\nimport pulumi_aws as _aws\n"
        + "_original = program\n\n\ndef program():\n    _original()\n"
        + '    _aws.sagemaker.Domain("studio", domain_name="studio", auth_mode="IAM",\n'
        + '        vpc_id="vpc-1", subnet_ids=["subnet-1"],\n'
        + '        default_user_settings={"execution_role": "arn:aws:iam::1:role/x"})\n'
    )

    plan = cli.run(applied_project, "plan", "--phase", "cutover")

    assert plan.returncode == 1, plan.stdout + plan.stderr
    assert plan.stderr.strip().splitlines()[-1] == (
        "error: the plan refuses 1 resource(s) (see above): the sandbox engine has no "
        "emulation for this type: aws:sagemaker/domain:Domain 'studio'"
    )


_TAGS = (
    '{"phasegate:phase": "cutover", "phasegate:environment": "sandbox", '
    '"owner": "platform", "cost-center": "ml-platform"}'
)
_UNEMULATED = {
    "bucket": (
        '    _aws.s3.Bucket("audit", bucket="phasegate-audit", versioning={"enabled": True},\n'
        f"        tags={_TAGS})\n",
        "versioning: aws:s3/bucket:Bucket 'audit'",
    ),
    "role": (
        '    _aws.iam.Role("auditor", assume_role_policy="{}", description="reads the logs",\n'
        f"        tags={_TAGS})\n",
        "description: aws:iam/role:Role 'auditor'",
    ),
}


@pytest.mark.parametrize("kind", sorted(_UNEMULATED))
def test_an_input_the_sandbox_does_not_emulate_is_refused_by_name_in_the_plan(
    cli: Any, applied_project: Path, kind: str
) -> None:
    """The sandbox dropped it and still called the resource verified."""
    declaration, named = _UNEMULATED[kind]
    program = applied_project / "phases" / "cutover.py"
    program.write_text(
        program.read_text()
        + "\n\nimport pulumi_aws as _aws\n"
        + "_original = program\n\n\ndef program():\n    _original()\n"
        + declaration
    )

    plan = cli.run(applied_project, "plan", "--phase", "cutover")

    assert plan.returncode == 1, plan.stdout + plan.stderr
    assert plan.stderr.strip().splitlines()[-1] == (
        "error: the plan refuses 1 resource(s) (see above): inputs the sandbox does not "
        f"emulate: {named}"
    )
    apply = cli.run(applied_project, "apply", "--yes", "--phase", "cutover")
    assert apply.returncode != 0, apply.stdout + apply.stderr
    if kind == "role":  # the bucket is stopped sooner, by the policies on buckets
        assert "inputs the sandbox does not emulate" in apply.stdout + apply.stderr
