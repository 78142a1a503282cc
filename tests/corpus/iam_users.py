"""IAM users and groups: who is in which group, and the policies attached to them."""

from __future__ import annotations

from typing import Any

MAIN = """
import pulumi
import pulumi_aws as aws

stage = pulumi.Config("corpus").get_int("stage") or 1

alice = aws.iam.User(
    "alice",
    name="corpus-alice",
    path="/corpus/" if stage == 1 else "/corpus/ml/",
    tags={"corpus": "iam-users", "team": "ml" if stage == 1 else "data"},
)
bob = aws.iam.User("bob", name="corpus-bob", path="/corpus/", force_destroy=True)

readers = aws.iam.Group("readers", name="corpus-readers", path="/corpus/")
oncall = aws.iam.Group(
    "oncall", name="corpus-oncall" if stage == 1 else "corpus-on-call", path="/corpus/"
)

# The readers' members: bob joins in stage 2.
members = aws.iam.GroupMembership(
    "readers",
    name="corpus-readers-members",
    group=readers.name,
    users=[alice.name] if stage == 1 else [alice.name, bob.name],
)
# Bob's groups besides: the on-call group, renamed in place in stage 2.
bob_groups = aws.iam.UserGroupMembership("bob", user=bob.name, groups=[oncall.name])

# Stage 2 attaches another policy to the readers: a new attachment replaces the old.
readers_policy = aws.iam.GroupPolicyAttachment(
    "readers",
    group=readers.name,
    policy_arn="arn:aws:iam::aws:policy/ReadOnlyAccess"
    if stage == 1
    else "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
)
aws.iam.UserPolicyAttachment(
    "bob-password",
    user=bob.name,
    policy_arn="arn:aws:iam::aws:policy/IAMUserChangePassword",
)

pulumi.export("alice", alice.name)
pulumi.export("alice_arn", alice.arn)
pulumi.export("bob", bob.name)
pulumi.export("readers", readers.name)
pulumi.export("oncall", oncall.name)
pulumi.export("members", members.id)
"""


def _tags(listed: list[dict[str, str]]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in listed}


def _groups_of(iam: Any, user: str) -> set[str]:
    return {g["GroupName"] for g in iam.list_groups_for_user(UserName=user)["Groups"]}


def check(aws: Any, outputs: dict[str, Any], stage: int) -> None:
    """After the apply of `stage`: boto3 finds exactly the declared properties."""
    iam = aws("iam")
    oncall = "corpus-oncall" if stage == 1 else "corpus-on-call"
    assert (outputs["alice"], outputs["bob"]) == ("corpus-alice", "corpus-bob")
    assert (outputs["readers"], outputs["oncall"]) == ("corpus-readers", oncall)
    assert outputs["members"] == "corpus-readers-members"

    users = iam.list_users(PathPrefix="/corpus/")["Users"]
    assert sorted(u["UserName"] for u in users) == ["corpus-alice", "corpus-bob"]
    alice = iam.get_user(UserName="corpus-alice")["User"]
    assert alice["Arn"] == outputs["alice_arn"]
    assert alice["Path"] == ("/corpus/" if stage == 1 else "/corpus/ml/")
    assert _tags(iam.list_user_tags(UserName="corpus-alice")["Tags"]) == {
        "corpus": "iam-users",
        "team": "ml" if stage == 1 else "data",
    }
    assert iam.get_user(UserName="corpus-bob")["User"]["Path"] == "/corpus/"

    groups = iam.list_groups(PathPrefix="/corpus/")["Groups"]
    assert sorted(g["GroupName"] for g in groups) == sorted(["corpus-readers", oncall])
    readers = iam.get_group(GroupName="corpus-readers")
    members = {u["UserName"] for u in readers["Users"]}
    assert members == ({"corpus-alice"} if stage == 1 else {"corpus-alice", "corpus-bob"})
    assert _groups_of(iam, "corpus-bob") == ({oncall} if stage == 1 else {oncall, "corpus-readers"})
    assert _groups_of(iam, "corpus-alice") == {"corpus-readers"}

    attached = iam.list_attached_group_policies(GroupName="corpus-readers")["AttachedPolicies"]
    expected = "ReadOnlyAccess" if stage == 1 else "AmazonS3ReadOnlyAccess"
    assert [p["PolicyArn"] for p in attached] == [f"arn:aws:iam::aws:policy/{expected}"]
    assert iam.list_attached_group_policies(GroupName=oncall)["AttachedPolicies"] == []
    attached = iam.list_attached_user_policies(UserName="corpus-bob")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == ["arn:aws:iam::aws:policy/IAMUserChangePassword"]
    assert iam.list_attached_user_policies(UserName="corpus-alice")["AttachedPolicies"] == []


def gone(aws: Any, outputs: dict[str, Any]) -> None:
    """After destroy: nothing the program declared is left (the outputs of stage 2)."""
    iam = aws("iam")
    assert iam.list_users(PathPrefix="/corpus/")["Users"] == []
    assert iam.list_groups(PathPrefix="/corpus/")["Groups"] == []
    readonly = iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
    assert readonly["Policy"]["AttachmentCount"] == 0
