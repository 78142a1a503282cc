"""IAM roles: a trust policy and what hangs on a role (inline and managed policies, an
instance profile)."""

from __future__ import annotations

import json
from typing import Any

MAIN = """
import json

import pulumi
import pulumi_aws as aws

stage = pulumi.Config("corpus").get_int("stage") or 1

trust = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }],
})

role = aws.iam.Role(
    "app",
    name="corpus-app",
    assume_role_policy=trust,
    description="runs the app" if stage == 1 else "runs the app and its jobs",
    max_session_duration=7200 if stage == 1 else 10800,
    permissions_boundary=None if stage == 1 else "arn:aws:iam::aws:policy/PowerUserAccess",
    tags={"corpus": "iam-roles", "stage": str(stage)},
)

actions = ["s3:GetObject"] if stage == 1 else ["s3:GetObject", "s3:ListBucket"]
inline = aws.iam.RolePolicy(
    "app-inline",
    role=role.name,
    name="read-artifacts",
    policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
    }),
)

log_actions = ["logs:PutLogEvents"] if stage == 1 else ["logs:PutLogEvents", "logs:GetLogEvents"]
managed = aws.iam.Policy(
    "app-logs",
    name_prefix="corpus-app-",
    path="/corpus/",
    description="writes the app's logs",
    # A new document is a new default version of the same policy.
    policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": log_actions, "Resource": "*"}],
    }),
    tags={"corpus": "iam-roles"},
)

aws.iam.RolePolicyAttachment("app-logs", role=role.name, policy_arn=managed.arn)

profile = aws.iam.InstanceProfile(
    "app",
    name="corpus-app",
    path="/corpus/" if stage == 1 else "/corpus/v2/",  # a new path is a new profile
    role=role.name,
)

pulumi.export("role_name", role.name)
pulumi.export("role_arn", role.arn)
pulumi.export("inline_name", inline.name)
pulumi.export("policy_arn", managed.arn)
pulumi.export("profile_name", profile.name)
"""


def _expected(stage: int) -> dict[str, Any]:
    return {
        "description": "runs the app" if stage == 1 else "runs the app and its jobs",
        "session": 7200 if stage == 1 else 10800,
        "boundary": None if stage == 1 else "arn:aws:iam::aws:policy/PowerUserAccess",
        "tags": {"corpus": "iam-roles", "stage": str(stage)},
        "inline": ["s3:GetObject"] if stage == 1 else ["s3:GetObject", "s3:ListBucket"],
        "logs": ["logs:PutLogEvents"] if stage == 1 else ["logs:PutLogEvents", "logs:GetLogEvents"],
        "profile_path": "/corpus/" if stage == 1 else "/corpus/v2/",
    }


def _local_policies(iam: Any) -> list[dict[str, Any]]:
    policies: list[dict[str, Any]] = iam.list_policies(Scope="Local", PathPrefix="/corpus/")[
        "Policies"
    ]
    return [p for p in policies if p["PolicyName"].startswith("corpus-app-")]


def check(aws: Any, outputs: dict[str, Any], stage: int) -> None:
    """After the apply of `stage`: boto3 finds exactly the declared properties."""
    iam = aws("iam")
    want = _expected(stage)
    role = iam.get_role(RoleName="corpus-app")["Role"]
    assert outputs["role_name"] == "corpus-app"
    assert outputs["role_arn"] == role["Arn"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "ec2.amazonaws.com"
    }
    assert role["Description"] == want["description"]
    assert role["MaxSessionDuration"] == want["session"]
    assert role.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn") == want["boundary"]
    tags = iam.list_role_tags(RoleName="corpus-app")["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == want["tags"]

    assert iam.list_role_policies(RoleName="corpus-app")["PolicyNames"] == ["read-artifacts"]
    assert outputs["inline_name"] == "read-artifacts"
    inline = iam.get_role_policy(RoleName="corpus-app", PolicyName="read-artifacts")
    assert inline["PolicyDocument"]["Statement"][0]["Action"] == want["inline"]

    (policy,) = _local_policies(iam)
    assert policy["Arn"] == outputs["policy_arn"]
    described = iam.get_policy(PolicyArn=policy["Arn"])["Policy"]
    assert described["Description"] == "writes the app's logs"
    assert described["Path"] == "/corpus/"
    versions = iam.list_policy_versions(PolicyArn=policy["Arn"])["Versions"]
    assert len(versions) == stage  # stage 2's document is a second version
    assert described["DefaultVersionId"] == f"v{stage}"
    version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=f"v{stage}")[
        "PolicyVersion"
    ]
    document = version["Document"]
    if isinstance(document, str):
        document = json.loads(document)
    assert document["Statement"][0]["Action"] == want["logs"]
    attached = iam.list_attached_role_policies(RoleName="corpus-app")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [policy["Arn"]]

    profiles = iam.list_instance_profiles(PathPrefix="/corpus/")["InstanceProfiles"]
    assert [(p["InstanceProfileName"], p["Path"]) for p in profiles] == [
        ("corpus-app", want["profile_path"])
    ]
    assert outputs["profile_name"] == "corpus-app"
    assert [r["RoleName"] for r in profiles[0]["Roles"]] == ["corpus-app"]


def gone(aws: Any, outputs: dict[str, Any]) -> None:
    """After destroy: nothing the program declared is left (the outputs of stage 2)."""
    iam = aws("iam")
    roles = [r["RoleName"] for r in iam.list_roles()["Roles"]]
    assert "corpus-app" not in roles
    assert _local_policies(iam) == []
    assert iam.list_instance_profiles(PathPrefix="/corpus/")["InstanceProfiles"] == []
