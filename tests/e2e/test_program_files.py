"""A phase's program snapshot holds every file under phases/, text or not: a binary one
(an image, a zip, model weights) is kept in the last known good and restored byte for
byte, and never wedges an environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from _projects import RELAXED, only_phase
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


def test_a_multi_language_component_is_refused_by_type_never_an_empty_plan(
    cli: Any, applied_project: Path
) -> None:
    """An awsx or eks component is built by its provider plugin: the sandbox planned it
    as "no changes" and applied it as verified with nothing made."""
    program = applied_project / "phases" / "cutover.py"
    program.write_text(
        program.read_text()
        + "\n\nimport pulumi as _pulumi\n_original = program\n\n\ndef program():\n"
        + "    _original()\n"
        + '    _pulumi.ComponentResource("awsx:ec2:Vpc", "edge", {"cidrBlock": "10.9.0.0/16"},'
        + " remote=True)\n"
    )

    plan = cli.run(applied_project, "plan", "--phase", "cutover")
    apply = cli.run(applied_project, "apply", "--yes", "--phase", "cutover")

    said = (
        "error: the plan refuses 1 resource(s) (see above): a multi-language component "
        "(built by its provider plugin), which the sandbox engine cannot run: "
        "awsx:ec2:Vpc 'edge'"
    )
    assert plan.returncode == 1, plan.stdout + plan.stderr
    assert plan.stderr.strip().splitlines()[-1] == said
    assert apply.returncode != 0
    assert "awsx:ec2:Vpc 'edge'" in apply.stderr
    state = yaml.safe_load((applied_project / "state" / "sandbox" / "cutover.yaml").read_text())
    assert state["status"] == "verified"  # nothing was applied


PLAIN = '''"""An ordinary Pulumi program, as `pulumi new aws-python` makes it: top-level code."""
import pulumi
import pulumi_aws as aws

from site_settings import SITE_TAGS

bucket = aws.s3.Bucket("site", bucket="phasegate-sandbox-site", tags=SITE_TAGS)
pulumi.export("bucket_name", bucket.bucket)
'''


def test_an_ordinary_pulumi_program_folder_is_a_phase_as_it_is(
    cli: Any, applied_project: Path
) -> None:
    """A folder with its own __main__.py (and its own modules, its Pulumi.yaml, a
    virtualenv) runs unmodified; it failed with "module has no attribute 'program'"."""
    folder = applied_project / "phases" / "site"
    (folder / "venv").mkdir(parents=True)
    (folder / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (folder / "__main__.py").write_text(PLAIN)
    (folder / "site_settings.py").write_text('SITE_TAGS = {"team": "web"}\n')
    (folder / "Pulumi.yaml").write_text("name: site\nruntime: python\n")
    spec = yaml.safe_load((applied_project / "migration.yaml").read_text())
    spec["phases"].append({"name": "site", "program": "site"})
    (applied_project / "migration.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    rules = ("s3-bucket-kms-encryption", "s3-bucket-public-access-blocked", "required-tags")
    relaxed = {"config": {"phasegate:policy": dict.fromkeys(rules, "advisory")}}
    (applied_project / "stacks" / "Pulumi.sandbox-site.yaml").write_text(yaml.safe_dump(relaxed))

    apply = cli.run(applied_project, "apply", "--yes", "--phase", "site", "--output", "json")

    assert apply.returncode == 0, apply.stdout + apply.stderr
    (report,) = json.loads(apply.stdout)["phases"]
    assert report["outputs"] == {"bucket_name": "phasegate-sandbox-site"}
    assert [(r["op"], r["name"]) for r in report["resources"]] == [("create", "site")]
    # Its folder is its program alone: the other phases' programs did not change.
    again = cli.run(applied_project, "plan", "--output", "json")
    outcomes = {p["phase"]: p["outcome"] for p in json.loads(again.stdout)["phases"]}
    assert {p: outcomes[p] for p in ("pilot", "data_layer", "compute", "site")} == dict.fromkeys(
        ("pilot", "data_layer", "compute", "site"), "no changes"
    )


FUNCTIONS = '''"""Data sources a platform program reads first: zones, identity, a trust policy."""
import pulumi
import pulumi_aws as aws

zones = aws.get_availability_zones(state="available")
me = aws.get_caller_identity()
partition = aws.get_partition()
trust = aws.iam.get_policy_document(statements=[{
    "actions": ["sts:AssumeRole"],
    "principals": [{"type": "Service", "identifiers": [f"ec2.{partition.dns_suffix}"]}],
}])
role = aws.iam.Role("runner", assume_role_policy=trust.json,
                    tags={"account": me.account_id, "zones": str(len(zones.names))})
pulumi.export("zones", zones.names)
pulumi.export("role_arn", role.arn)
'''


def test_data_sources_are_answered_on_a_plan_before_any_apply(
    cli: Any, fresh_project: Path
) -> None:
    """Only getRegion and route53 getZone were answered; the rest stopped the plan."""
    only_phase(fresh_project, "runner", FUNCTIONS, RELAXED)

    plan = cli.run(fresh_project, "plan", "--output", "json")
    apply = cli.run(fresh_project, "apply", "--yes")

    assert plan.returncode == 0, plan.stdout + plan.stderr
    (planned,) = json.loads(plan.stdout)["phases"]
    assert planned["outputs"]["zones"] == [f"us-east-1{z}" for z in "abcdef"]
    assert apply.returncode == 0, apply.stdout + apply.stderr
    with cli.serve(fresh_project) as served:
        iam = boto3.client("iam", endpoint_url=served.url, region_name="us-east-1")
        (role,) = [r for r in iam.list_roles()["Roles"] if r["RoleName"].startswith("runner")]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Principal": {"Service": "ec2.amazonaws.com"},
        }
    ]


REGIONS = '''"""Resources in three regions: the stack's, an explicit provider's, their own."""
import pulumi
import pulumi_aws as aws

config = pulumi.Config("phasegate")
west = aws.Provider("west", region="us-west-2")
home = pulumi.ResourceOptions(provider=west) if config.get_bool("move") else None
aws.ec2.Vpc("home-net", cidr_block="10.63.0.0/16", opts=home)
aws.ec2.Vpc("west-net", cidr_block="10.61.0.0/16", opts=pulumi.ResourceOptions(provider=west))
aws.ec2.Vpc("eu-net", cidr_block="10.62.0.0/16", region="eu-west-1")
'''


def _cidrs(url: str, region: str) -> set[str]:
    ec2 = boto3.client("ec2", endpoint_url=url, region_name=region)
    return {v["CidrBlock"] for v in ec2.describe_vpcs()["Vpcs"]} & {
        "10.61.0.0/16",
        "10.62.0.0/16",
        "10.63.0.0/16",
    }


def test_a_provider_region_and_a_resource_region_are_where_resources_go(
    cli: Any, fresh_project: Path
) -> None:
    """Both were ignored: everything was made in the stack's region."""
    stack = only_phase(fresh_project, "nets", REGIONS, RELAXED)

    first = cli.run(fresh_project, "apply", "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    with cli.serve(fresh_project) as served:
        placed = {r: _cidrs(served.url, r) for r in ("us-east-1", "us-west-2", "eu-west-1")}
        ec2 = boto3.client("ec2", endpoint_url=served.url, region_name="us-east-1")
        vpcs = ec2.describe_vpcs(Filters=[{"Name": "cidr", "Values": ["10.63.0.0/16"]}])
    # No tag the program did not declare (the sandbox added a Name tag).
    assert [v.get("Tags", []) for v in vpcs["Vpcs"]] == [[]]
    assert placed == {
        "us-east-1": {"10.63.0.0/16"},
        "us-west-2": {"10.61.0.0/16"},
        "eu-west-1": {"10.62.0.0/16"},
    }

    stack.write_text(yaml.safe_dump({"config": {**RELAXED, "phasegate:move": True}}))
    plan = cli.run(fresh_project, "plan", "--output", "json")
    moved = cli.run(fresh_project, "apply", "--yes")

    (planned,) = json.loads(plan.stdout)["phases"]
    changed = [(r["op"], r["name"]) for r in planned["resources"] if r["op"] != "same"]
    assert changed == [("replace", "home-net")]
    assert moved.returncode == 0, moved.stdout + moved.stderr
    with cli.serve(fresh_project) as served:
        assert _cidrs(served.url, "us-east-1") == set()
        assert _cidrs(served.url, "us-west-2") == {"10.61.0.0/16", "10.63.0.0/16"}


_TAGS = (
    '{"phasegate:phase": "cutover", "phasegate:environment": "sandbox", '
    '"owner": "platform", "cost-center": "ml-platform"}'
)
_UNEMULATED = {
    "bucket": (
        '    _aws.s3.Bucket("audit", bucket="phasegate-audit",\n'
        '        website={"index_document": "index.html"},\n'
        f"        tags={_TAGS})\n",
        "website: aws:s3/bucket:Bucket 'audit'",
    ),
    "role": (
        '    _aws.iam.Role("auditor", assume_role_policy="{}",\n'
        '        inline_policies=[{"name": "read", "policy": "{}"}],\n'
        f"        tags={_TAGS})\n",
        "inlinePolicies: aws:iam/role:Role 'auditor'",
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


LOOKUPS = '''"""A program that starts from what is there: the zone, the default VPC, an AMI."""
import pulumi
import pulumi_aws as aws

zone = aws.route53.get_zone(name="corp.example.com")
vpc = aws.ec2.get_vpc(default=True)
subnets = aws.ec2.get_subnets(filters=[{"name": "vpc-id", "values": [vpc.id]}])
first = aws.ec2.get_subnet(id=sorted(subnets.ids)[0])
image = aws.ec2.get_ami(
    owners=["amazon"],
    most_recent=True,
    filters=[{"name": "name", "values": ["al2023-ami-2023.*-x86_64"]}],
)
group = aws.ec2.SecurityGroup("web", vpc_id=vpc.id, description="web")
pulumi.export("zone_id", zone.zone_id)
pulumi.export("vpc_cidr", vpc.cidr_block)
pulumi.export("subnets", len(subnets.ids))
pulumi.export("first_zone", first.availability_zone)
pulumi.export("ami", image.id)
pulumi.export("ami_name", image.name)
'''


def test_lookups_of_the_cloud_are_answered_on_a_plan_before_the_first_apply(
    cli: Any, fresh_project: Path
) -> None:
    """getZone answered nothing there and the SDK stopped the plan with an AssertionError;
    the VPC, subnet and AMI lookups were not answered at all."""
    only_phase(fresh_project, "web", LOOKUPS, RELAXED)

    plan = cli.run(fresh_project, "plan", "--output", "json")
    apply = cli.run(fresh_project, "apply", "--yes", "--output", "json")

    assert plan.returncode == 0, plan.stdout + plan.stderr
    (planned,) = json.loads(plan.stdout)["phases"]
    assert planned["outputs"]["vpc_cidr"] == "172.31.0.0/16"
    assert planned["outputs"]["subnets"] == 6
    assert planned["outputs"]["ami"].startswith("ami-")
    assert planned["outputs"]["ami_name"].startswith("al2023-ami-2023.")
    assert apply.returncode == 0, apply.stdout + apply.stderr
    (applied,) = json.loads(apply.stdout)["phases"]
    # The plan read the very cloud the apply then acted on: the same legacy zone.
    assert {k: applied["outputs"][k] for k in planned["outputs"]} == planned["outputs"]
    with cli.serve(fresh_project) as served:
        ec2 = boto3.client("ec2", endpoint_url=served.url, region_name="us-east-1")
        groups = ec2.describe_security_groups(Filters=[{"Name": "description", "Values": ["web"]}])
        (vpc,) = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    assert [g["VpcId"] for g in groups["SecurityGroups"]] == [vpc["VpcId"]]


NOWHERE = """import pulumi_aws as aws

aws.ec2.get_vpc(tags={"Name": "nowhere"})
"""


def test_a_lookup_that_finds_nothing_fails_the_plan_naming_it(
    cli: Any, fresh_project: Path
) -> None:
    only_phase(fresh_project, "web", NOWHERE, RELAXED)

    plan = cli.run(fresh_project, "plan")

    assert plan.returncode != 0
    assert (
        "aws:ec2/getVpc:getVpc: no matching EC2 VPC found (tags={'Name': 'nowhere'})"
        in plan.stdout + plan.stderr
    )
