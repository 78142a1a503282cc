"""IAM handlers against the emulated cloud: every input a handler emulates reaches IAM
(seen through boto3) on create and on update, or its change is a replacement; deletes
leave nothing; and what IAM refuses while the emulator takes it is refused here too.
"""

from __future__ import annotations

import inspect
import json
import re
import secrets
from typing import Any

import pulumi._types
import pulumi_aws
import pytest

from _handlers import create, handler_of
from phasegate.engines.base import Op
from phasegate.engines.sandbox.diff import _diff
from phasegate.engines.sandbox.emulator import Emulator
from phasegate.engines.sandbox.handlers import (
    CloudContext,
    HandlerError,
    RunContext,
)
from phasegate.engines.sandbox.runtime import Registration
from phasegate.engines.sandbox.store import ResourceState

REGION = "us-east-1"
ACCOUNT = "123456789012"

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ROLE_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
PROFILE = "aws:iam/instanceProfile:InstanceProfile"
POLICY = "aws:iam/policy:Policy"
USER = "aws:iam/user:User"
GROUP = "aws:iam/group:Group"
USER_GROUPS = "aws:iam/userGroupMembership:UserGroupMembership"
GROUP_USERS = "aws:iam/groupMembership:GroupMembership"
USER_ATTACHMENT = "aws:iam/userPolicyAttachment:UserPolicyAttachment"
GROUP_ATTACHMENT = "aws:iam/groupPolicyAttachment:GroupPolicyAttachment"
TYPES = (
    ROLE,
    ROLE_POLICY,
    ROLE_ATTACHMENT,
    PROFILE,
    POLICY,
    USER,
    GROUP,
    USER_GROUPS,
    GROUP_USERS,
    USER_ATTACHMENT,
    GROUP_ATTACHMENT,
)

READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
S3_READ_ONLY = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"


def _trust(service: str = "ec2") -> str:
    statement = {
        "Effect": "Allow",
        "Principal": {"Service": f"{service}.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _allow(action: str = "s3:GetObject", resource: str = "*") -> str:
    statement = {"Effect": "Allow", "Action": action, "Resource": resource}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


# --- the emulated cloud -----------------------------------------------------------------


def _update(ctx: CloudContext, token: str, id_: str, old: dict, new: dict, outputs: dict) -> dict:
    handler = handler_of(token)
    assert _op(token, old, new) is Op.UPDATE
    handler.validate(new)
    return handler.update(ctx, id_, old, new, outputs)


def _op(token: str, old: dict[str, Any], new: dict[str, Any]) -> Op:
    """What the plan makes of the change from ``old`` to ``new`` inputs."""
    urn = f"urn:pulumi:test::iam::{token}::res"
    state = ResourceState(
        urn=urn, type=token, name="res", custom=True, id="x", inputs=old, outputs=old
    )
    reg = Registration(urn=urn, type=token, name="res", custom=True, inputs=new)
    return _diff(handler_of(token), state, reg, RunContext()).op


def _role(ctx: CloudContext, **inputs: Any) -> tuple[str, dict[str, Any]]:
    role: tuple[str, dict[str, Any]] = create(
        ctx, ROLE, {"assumeRolePolicy": _trust(), **inputs}, "role"
    )
    return role


def _tags(listed: list[dict[str, str]]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in listed}


# --- the registry, against the provider's schema -----------------------------------------


def _resource_class(token: str) -> type:
    _, module, class_name = token.split(":")
    cls: type = getattr(getattr(pulumi_aws, module.split("/")[0]), class_name)
    return cls


@pytest.mark.parametrize("token", TYPES)
def test_replacing_inputs_are_emulated_and_outputs_are_the_providers(token: str) -> None:
    handler = handler_of(token)
    cls = _resource_class(token)
    properties = set(pulumi._types.resource_py_to_pulumi_names(cls).values())
    assert handler.replace_on <= handler.emulates, handler.replace_on - handler.emulates
    assert set(handler.computed) - {"id"} <= properties, set(handler.computed) - properties
    if handler.name_key:
        assert handler.name_key in handler.emulates


_UPDATES_IN_PLACE = [
    (ROLE, "assumeRolePolicy", _trust("ec2"), _trust("eks")),
    (ROLE, "description", "one", "two"),
    (ROLE, "forceDetachPolicies", False, True),
    (ROLE, "maxSessionDuration", 3600, 7200),
    (ROLE, "permissionsBoundary", READ_ONLY, S3_READ_ONLY),
    (ROLE, "tags", {"team": "a"}, {"team": "b"}),
    (ROLE_POLICY, "policy", _allow("s3:GetObject"), _allow("s3:PutObject")),
    (PROFILE, "role", "one", "two"),
    (PROFILE, "tags", {"team": "a"}, {"team": "b"}),
    (POLICY, "policy", _allow("s3:GetObject"), _allow("s3:PutObject")),
    (POLICY, "tags", {"team": "a"}, {"team": "b"}),
    (USER, "name", "ada", "grace"),
    (USER, "path", "/a/", "/b/"),
    (USER, "tags", {"team": "a"}, {"team": "b"}),
    (USER, "forceDestroy", False, True),
    (GROUP, "name", "ops", "dev"),
    (GROUP, "path", "/a/", "/b/"),
    (USER_GROUPS, "groups", ["a"], ["a", "b"]),
    (GROUP_USERS, "users", ["a"], ["a", "b"]),
]
_REPLACES = [
    (ROLE, "name", "one", "two"),
    (ROLE, "namePrefix", "one-", "two-"),
    (ROLE, "path", "/a/", "/b/"),
    (ROLE_POLICY, "name", "one", "two"),
    (ROLE_POLICY, "namePrefix", "one-", "two-"),
    (ROLE_POLICY, "role", "one", "two"),
    (ROLE_ATTACHMENT, "role", "one", "two"),
    (ROLE_ATTACHMENT, "policyArn", READ_ONLY, S3_READ_ONLY),
    (PROFILE, "name", "one", "two"),
    (PROFILE, "namePrefix", "one-", "two-"),
    (PROFILE, "path", "/a/", "/b/"),
    (POLICY, "name", "one", "two"),
    (POLICY, "namePrefix", "one-", "two-"),
    (POLICY, "path", "/a/", "/b/"),
    (POLICY, "description", "one", "two"),
    (USER_GROUPS, "user", "one", "two"),
    (GROUP_USERS, "group", "one", "two"),
    (GROUP_USERS, "name", "one", "two"),
    (USER_ATTACHMENT, "user", "one", "two"),
    (USER_ATTACHMENT, "policyArn", READ_ONLY, S3_READ_ONLY),
    (GROUP_ATTACHMENT, "group", "one", "two"),
    (GROUP_ATTACHMENT, "policyArn", READ_ONLY, S3_READ_ONLY),
]


@pytest.mark.parametrize(("token", "key", "before", "after"), _UPDATES_IN_PLACE)
def test_a_change_iam_makes_in_place_is_an_update(
    token: str, key: str, before: Any, after: Any
) -> None:
    assert key in handler_of(token).emulates
    assert _op(token, {key: before}, {key: after}) is Op.UPDATE


@pytest.mark.parametrize(("token", "key", "before", "after"), _REPLACES)
def test_a_change_iam_cannot_make_in_place_is_a_replacement(
    token: str, key: str, before: Any, after: Any
) -> None:
    assert key in handler_of(token).emulates
    assert _op(token, {key: before}, {key: after}) is Op.REPLACE


# --- roles --------------------------------------------------------------------------------


def test_a_role_carries_its_description_session_boundary_path_and_tags(
    ctx: CloudContext, iam: Any
) -> None:
    id_, outputs = _role(
        ctx,
        name="reader-role",
        path="/service/",
        description="reads the model bucket",
        maxSessionDuration=7200,
        permissionsBoundary=READ_ONLY,
        tags={"team": "ml"},
    )
    role = iam.get_role(RoleName="reader-role")["Role"]
    assert id_ == outputs["name"] == "reader-role"
    assert outputs["arn"] == role["Arn"] == f"arn:aws:iam::{ACCOUNT}:role/service/reader-role"
    assert outputs["uniqueId"] == role["RoleId"]
    assert role["Path"] == "/service/"
    assert role["Description"] == "reads the model bucket"
    assert role["MaxSessionDuration"] == 7200
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == READ_ONLY
    assert _tags(role["Tags"]) == {"team": "ml"}
    assert role["AssumeRolePolicyDocument"] == json.loads(_trust())


def test_a_role_is_changed_in_place(ctx: CloudContext, iam: Any) -> None:
    old = {
        "assumeRolePolicy": _trust("ec2"),
        "description": "first",
        "maxSessionDuration": 7200,
        "permissionsBoundary": READ_ONLY,
        "tags": {"team": "ml", "stage": "one"},
    }
    id_, outputs = create(ctx, ROLE, old, "changing")
    new = {
        "assumeRolePolicy": _trust("eks"),
        "description": "second",
        "maxSessionDuration": 43200,
        "permissionsBoundary": S3_READ_ONLY,
        "tags": {"team": "data", "owner": "platform"},
    }
    outputs = _update(ctx, ROLE, id_, old, new, outputs)
    role = iam.get_role(RoleName=id_)["Role"]
    assert role["AssumeRolePolicyDocument"] == json.loads(_trust("eks"))
    assert role["Description"] == "second"
    assert role["MaxSessionDuration"] == 43200
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == S3_READ_ONLY
    assert _tags(iam.list_role_tags(RoleName=id_)["Tags"]) == {"team": "data", "owner": "platform"}
    assert outputs["arn"] == role["Arn"]

    bare = {"assumeRolePolicy": _trust("eks")}
    _update(ctx, ROLE, id_, new, bare, outputs)
    role = iam.get_role(RoleName=id_)["Role"]
    assert not role.get("Description")
    assert role["MaxSessionDuration"] == 3600
    assert "PermissionsBoundary" not in role
    assert iam.list_role_tags(RoleName=id_)["Tags"] == []


def test_a_role_name_prefix_makes_a_unique_name(ctx: CloudContext, iam: Any) -> None:
    first, outputs = _role(ctx, namePrefix="batch-")
    second, _ = _role(ctx, namePrefix="batch-")
    assert first != second
    for made in (first, second):
        assert re.fullmatch(r"batch-\d{18}[0-9a-f]{8}", made), made
        assert iam.get_role(RoleName=made)["Role"]["RoleName"] == made
    assert outputs["name"] == first


def test_a_role_auto_named_from_its_logical_name(ctx: CloudContext, iam: Any) -> None:
    id_, _ = _role(ctx)
    assert re.fullmatch(r"role-[0-9a-f]{7}", id_)
    assert iam.get_role(RoleName=id_)


def test_a_role_is_deleted_and_its_instance_profiles_let_go(ctx: CloudContext, iam: Any) -> None:
    handler = handler_of(ROLE)
    id_, outputs = _role(ctx)
    iam.create_instance_profile(InstanceProfileName=f"{id_}-profile")
    iam.add_role_to_instance_profile(InstanceProfileName=f"{id_}-profile", RoleName=id_)
    assert handler.exists(ctx, id_, outputs)
    handler.delete(ctx, id_, outputs)
    assert not handler.exists(ctx, id_, outputs)
    profile = iam.get_instance_profile(InstanceProfileName=f"{id_}-profile")["InstanceProfile"]
    assert profile["Roles"] == []
    handler.delete(ctx, id_, outputs)  # already gone: nothing to do


def test_a_role_with_a_policy_attached_is_not_deleted(ctx: CloudContext, iam: Any) -> None:
    id_, outputs = _role(ctx)
    iam.attach_role_policy(RoleName=id_, PolicyArn=READ_ONLY)
    with pytest.raises(HandlerError, match=r"cannot delete role .*detach"):
        handler_of(ROLE).delete(ctx, id_, outputs)
    assert handler_of(ROLE).exists(ctx, id_, outputs)


def test_a_role_forced_to_detach_its_policies_is_deleted_with_them_gone(
    ctx: CloudContext, iam: Any
) -> None:
    handler = handler_of(ROLE)
    policy, _ = create(ctx, POLICY, {"policy": _allow()}, "detached")
    old = {"assumeRolePolicy": _trust()}
    id_, outputs = create(ctx, ROLE, old, "forced")
    iam.attach_role_policy(RoleName=id_, PolicyArn=policy)
    iam.put_role_policy(RoleName=id_, PolicyName="inline", PolicyDocument=_allow())
    forced = _update(ctx, ROLE, id_, old, {**old, "forceDetachPolicies": True}, outputs)
    handler.delete(ctx, id_, forced)
    assert not handler.exists(ctx, id_, forced)
    assert iam.get_policy(PolicyArn=policy)["Policy"]["AttachmentCount"] == 0


def test_a_role_bound_by_a_policy_that_does_not_exist_is_refused(
    ctx: CloudContext, iam: Any
) -> None:
    missing = f"arn:aws:iam::{ACCOUNT}:policy/not-there"
    with pytest.raises(HandlerError, match=r"permissionsBoundary .* no policy"):
        _role(ctx, name="unbounded", permissionsBoundary=missing)
    assert not handler_of(ROLE).exists(ctx, "unbounded", {})
    id_, outputs = _role(ctx)
    with pytest.raises(HandlerError, match="no policy"):
        handler_of(ROLE).update(
            ctx,
            id_,
            {"assumeRolePolicy": _trust()},
            {"assumeRolePolicy": _trust(), "permissionsBoundary": missing},
            outputs,
        )


# --- inline role policies, attachments, instance profiles ---------------------------------


def test_an_inline_role_policy_is_put_changed_and_deleted(ctx: CloudContext, iam: Any) -> None:
    role, _ = _role(ctx)
    handler = handler_of(ROLE_POLICY)
    inputs = {"role": role, "name": "read-models", "policy": _allow()}
    id_, outputs = create(ctx, ROLE_POLICY, inputs)
    assert id_ == f"{role}:read-models"
    stored = iam.get_role_policy(RoleName=role, PolicyName="read-models")["PolicyDocument"]
    assert stored == json.loads(_allow())

    new = {**inputs, "policy": _allow("s3:PutObject")}
    _update(ctx, ROLE_POLICY, id_, inputs, new, outputs)
    stored = iam.get_role_policy(RoleName=role, PolicyName="read-models")["PolicyDocument"]
    assert stored == json.loads(_allow("s3:PutObject"))

    assert handler.exists(ctx, id_, outputs)
    handler.delete(ctx, id_, outputs)
    assert not handler.exists(ctx, id_, outputs)
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == []


def test_an_inline_role_policy_takes_a_name_prefix_and_a_document_object(
    ctx: CloudContext, iam: Any
) -> None:
    role, _ = _role(ctx)
    document = json.loads(_allow("ec2:Describe*"))
    _, outputs = create(ctx, ROLE_POLICY, {"role": role, "namePrefix": "ec2-", "policy": document})
    assert re.fullmatch(r"ec2-\d{18}[0-9a-f]{8}", outputs["name"])
    stored = iam.get_role_policy(RoleName=role, PolicyName=outputs["name"])["PolicyDocument"]
    assert stored == document


def test_an_inline_policy_of_a_missing_role_is_refused(ctx: CloudContext) -> None:
    with pytest.raises(HandlerError, match=r"cannot put policy .* role nobody"):
        create(ctx, ROLE_POLICY, {"role": "nobody", "name": "p", "policy": _allow()})


def test_a_managed_policy_is_attached_to_a_role_and_detached(ctx: CloudContext, iam: Any) -> None:
    role, _ = _role(ctx)
    handler = handler_of(ROLE_ATTACHMENT)
    id_, outputs = create(ctx, ROLE_ATTACHMENT, {"role": role, "policyArn": READ_ONLY})
    attached = iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [READ_ONLY]
    assert handler.exists(ctx, id_, outputs)
    handler.delete(ctx, id_, outputs)
    assert not handler.exists(ctx, id_, outputs)


def test_an_instance_profile_carries_its_role_path_and_tags(ctx: CloudContext, iam: Any) -> None:
    first, _ = _role(ctx)
    second, _ = _role(ctx)
    handler = handler_of(PROFILE)
    inputs = {"name": "gpu-nodes", "path": "/nodes/", "role": first, "tags": {"team": "ml"}}
    id_, outputs = create(ctx, PROFILE, inputs)
    profile = iam.get_instance_profile(InstanceProfileName="gpu-nodes")["InstanceProfile"]
    assert id_ == outputs["name"] == "gpu-nodes"
    assert (
        outputs["arn"]
        == profile["Arn"]
        == f"arn:aws:iam::{ACCOUNT}:instance-profile/nodes/gpu-nodes"
    )
    assert profile["Path"] == "/nodes/"
    assert [r["RoleName"] for r in profile["Roles"]] == [first]
    assert _tags(profile["Tags"]) == {"team": "ml"}

    new = {**inputs, "role": second, "tags": {"team": "data"}}
    outputs = _update(ctx, PROFILE, id_, inputs, new, outputs)
    profile = iam.get_instance_profile(InstanceProfileName="gpu-nodes")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == [second]
    assert _tags(profile["Tags"]) == {"team": "data"}

    bare = {"name": "gpu-nodes", "path": "/nodes/"}
    _update(ctx, PROFILE, id_, new, bare, outputs)
    profile = iam.get_instance_profile(InstanceProfileName="gpu-nodes")["InstanceProfile"]
    assert profile["Roles"] == []
    assert not profile.get("Tags")

    assert handler.exists(ctx, id_, outputs)
    handler.delete(ctx, id_, outputs)
    assert not handler.exists(ctx, id_, outputs)


def test_an_instance_profile_is_deleted_with_its_role_in_it(ctx: CloudContext, iam: Any) -> None:
    role, role_outputs = _role(ctx)
    id_, outputs = create(ctx, PROFILE, {"namePrefix": "nodes-", "role": role})
    assert re.fullmatch(r"nodes-\d{18}[0-9a-f]{8}", id_)
    handler_of(PROFILE).delete(ctx, id_, outputs)
    assert not handler_of(PROFILE).exists(ctx, id_, outputs)
    handler_of(ROLE).delete(ctx, role, role_outputs)  # free of the profile
    assert not handler_of(ROLE).exists(ctx, role, role_outputs)


def test_an_instance_profile_of_a_missing_role_is_refused_and_not_left(
    ctx: CloudContext, iam: Any
) -> None:
    with pytest.raises(HandlerError, match="role nobody"):
        create(ctx, PROFILE, {"name": "orphan", "role": "nobody"})
    assert not handler_of(PROFILE).exists(ctx, "orphan", {})


# --- customer-managed policies -------------------------------------------------------------


def _default_document(iam: Any, arn: str) -> Any:
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    return iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]


def test_a_policy_carries_its_name_path_description_document_and_tags(
    ctx: CloudContext, iam: Any
) -> None:
    inputs = {
        "name": "read-models",
        "path": "/ml/",
        "description": "reads the model bucket",
        "policy": _allow(),
        "tags": {"team": "ml"},
    }
    id_, outputs = create(ctx, POLICY, inputs)
    policy = iam.get_policy(PolicyArn=id_)["Policy"]
    assert id_ == outputs["arn"] == f"arn:aws:iam::{ACCOUNT}:policy/ml/read-models"
    assert outputs["name"] == policy["PolicyName"] == "read-models"
    assert outputs["policyId"] == policy["PolicyId"]
    assert outputs["attachmentCount"] == 0
    assert policy["Path"] == "/ml/"
    assert policy["Description"] == "reads the model bucket"
    assert _default_document(iam, id_) == json.loads(_allow())
    assert _tags(iam.list_policy_tags(PolicyArn=id_)["Tags"]) == {"team": "ml"}


def test_a_policy_document_change_is_a_new_default_version_five_kept(
    ctx: CloudContext, iam: Any
) -> None:
    old: dict[str, Any] = {"policy": _allow("s3:Action0"), "tags": {"round": "0"}}
    id_, outputs = create(ctx, POLICY, old, "versioned")
    for round_ in range(1, 8):
        new = {"policy": _allow(f"s3:Action{round_}"), "tags": {"round": str(round_)}}
        outputs = _update(ctx, POLICY, id_, old, new, outputs)
        old = new
        versions = iam.list_policy_versions(PolicyArn=id_)["Versions"]
        assert len(versions) == min(round_ + 1, 5)
        assert _default_document(iam, id_) == json.loads(_allow(f"s3:Action{round_}"))
    # The oldest went first: v4 to v8 are left.
    assert sorted(v["VersionId"] for v in versions) == ["v4", "v5", "v6", "v7", "v8"]
    assert _tags(iam.list_policy_tags(PolicyArn=id_)["Tags"]) == {"round": "7"}
    # Tags alone change no version.
    _update(ctx, POLICY, id_, old, {**old, "tags": {}}, outputs)
    assert len(iam.list_policy_versions(PolicyArn=id_)["Versions"]) == 5
    assert iam.list_policy_tags(PolicyArn=id_)["Tags"] == []


def test_a_policy_is_deleted_with_its_versions(ctx: CloudContext, iam: Any) -> None:
    handler = handler_of(POLICY)
    old = {"namePrefix": "gone-", "policy": _allow()}
    id_, outputs = create(ctx, POLICY, old)
    assert re.fullmatch(r"gone-\d{18}[0-9a-f]{8}", outputs["name"])
    new = {**old, "policy": _allow("s3:PutObject")}
    _update(ctx, POLICY, id_, old, new, outputs)
    assert handler.exists(ctx, id_, outputs)
    handler.delete(ctx, id_, outputs)
    assert not handler.exists(ctx, id_, outputs)
    handler.delete(ctx, id_, outputs)  # already gone: nothing to do


def test_a_policy_still_attached_is_not_deleted(ctx: CloudContext, iam: Any) -> None:
    id_, outputs = create(ctx, POLICY, {"policy": _allow()})
    role, _ = _role(ctx)
    iam.attach_role_policy(RoleName=role, PolicyArn=id_)
    with pytest.raises(HandlerError, match=r"attached to 1 .* detach it first"):
        handler_of(POLICY).delete(ctx, id_, outputs)
    assert handler_of(POLICY).exists(ctx, id_, outputs)


# --- users and groups ------------------------------------------------------------------------


def test_a_user_carries_its_name_path_and_tags_and_is_renamed_in_place(
    ctx: CloudContext, iam: Any
) -> None:
    handler = handler_of(USER)
    inputs = {"name": "ada", "path": "/people/", "tags": {"team": "ml"}}
    id_, outputs = create(ctx, USER, inputs)
    user = iam.get_user(UserName="ada")["User"]
    assert id_ == outputs["name"] == "ada"
    assert outputs["arn"] == user["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/people/ada"
    assert outputs["uniqueId"] == user["UserId"]
    assert user["Path"] == "/people/"
    assert _tags(iam.list_user_tags(UserName="ada")["Tags"]) == {"team": "ml"}

    new = {"name": "grace", "path": "/staff/", "tags": {"team": "data"}}
    outputs = _update(ctx, USER, id_, inputs, new, outputs)
    user = iam.get_user(UserName="grace")["User"]
    assert user["Path"] == "/staff/"
    assert user["UserId"] == outputs["uniqueId"]  # the same user, renamed
    assert outputs["arn"] == f"arn:aws:iam::{ACCOUNT}:user/staff/grace"
    assert _tags(iam.list_user_tags(UserName="grace")["Tags"]) == {"team": "data"}
    assert not handler.exists(ctx, id_, {"name": "ada"})

    # Moved again, its tags unchanged: they stay with the user, as in IAM.
    moved = {**new, "path": "/alumni/"}
    outputs = _update(ctx, USER, id_, new, moved, outputs)
    assert iam.get_user(UserName="grace")["User"]["Path"] == "/alumni/"
    assert _tags(iam.list_user_tags(UserName="grace")["Tags"]) == {"team": "data"}

    assert handler.exists(ctx, id_, outputs)
    handler.delete(ctx, id_, outputs)
    assert not handler.exists(ctx, id_, outputs)


def test_a_user_leaves_its_groups_when_deleted(ctx: CloudContext, iam: Any) -> None:
    id_, outputs = create(ctx, USER, {"name": "leaver"})
    iam.create_group(GroupName="leavers")
    iam.add_user_to_group(GroupName="leavers", UserName="leaver")
    handler_of(USER).delete(ctx, id_, outputs)
    assert not handler_of(USER).exists(ctx, id_, outputs)
    assert iam.get_group(GroupName="leavers")["Users"] == []


def test_a_user_with_credentials_is_deleted_only_with_force_destroy(
    ctx: CloudContext, iam: Any
) -> None:
    handler = handler_of(USER)
    id_, outputs = create(ctx, USER, {"name": "keyholder"})
    iam.create_access_key(UserName="keyholder")
    iam.create_login_profile(UserName="keyholder", Password="Sandbox-Passw0rd!")
    with pytest.raises(HandlerError, match=r"access keys, a password .*forceDestroy"):
        handler.delete(ctx, id_, outputs)
    assert handler.exists(ctx, id_, outputs)

    forced = _update(
        ctx, USER, id_, {"name": "keyholder"}, {"name": "keyholder", "forceDestroy": True}, outputs
    )
    handler.delete(ctx, id_, forced)
    assert not handler.exists(ctx, id_, forced)


def test_a_user_with_a_policy_attached_is_not_deleted(ctx: CloudContext, iam: Any) -> None:
    id_, outputs = create(ctx, USER, {"name": "attached"})
    iam.attach_user_policy(UserName="attached", PolicyArn=READ_ONLY)
    with pytest.raises(HandlerError, match="cannot delete user attached"):
        handler_of(USER).delete(ctx, id_, outputs)


def test_a_group_carries_its_name_and_path_and_is_renamed_in_place(
    ctx: CloudContext, iam: Any
) -> None:
    handler = handler_of(GROUP)
    inputs = {"name": "ops", "path": "/teams/"}
    id_, outputs = create(ctx, GROUP, inputs)
    group = iam.get_group(GroupName="ops")["Group"]
    assert id_ == outputs["name"] == "ops"
    assert outputs["arn"] == group["Arn"] == f"arn:aws:iam::{ACCOUNT}:group/teams/ops"
    assert outputs["uniqueId"] == group["GroupId"]
    assert group["Path"] == "/teams/"

    new = {"name": "sre", "path": "/squads/"}
    outputs = _update(ctx, GROUP, id_, inputs, new, outputs)
    group = iam.get_group(GroupName="sre")["Group"]
    assert group["Path"] == "/squads/"
    assert group["GroupId"] == outputs["uniqueId"]
    assert not handler.exists(ctx, id_, {"name": "ops"})

    # A new path alone, and a new name alone.
    moved = {"name": "sre", "path": "/teams/"}
    outputs = _update(ctx, GROUP, id_, new, moved, outputs)
    assert iam.get_group(GroupName="sre")["Group"]["Path"] == "/teams/"
    renamed = {"name": "platform", "path": "/teams/"}
    outputs = _update(ctx, GROUP, id_, moved, renamed, outputs)
    assert iam.get_group(GroupName="platform")["Group"]["Path"] == "/teams/"
    assert outputs["arn"] == f"arn:aws:iam::{ACCOUNT}:group/teams/platform"

    handler.delete(ctx, id_, outputs)
    assert not handler.exists(ctx, id_, outputs)


@pytest.mark.parametrize("held", ["members", "attached policies", "inline policies"])
def test_a_group_that_still_holds_something_is_not_deleted(
    ctx: CloudContext, iam: Any, held: str
) -> None:
    id_, outputs = create(ctx, GROUP, {}, f"holding-{held.split()[0]}")
    if held == "members":
        iam.create_user(UserName=f"{id_}-member")
        iam.add_user_to_group(GroupName=id_, UserName=f"{id_}-member")
    elif held == "attached policies":
        iam.attach_group_policy(GroupName=id_, PolicyArn=READ_ONLY)
    else:
        iam.put_group_policy(GroupName=id_, PolicyName="inline", PolicyDocument=_allow())
    with pytest.raises(HandlerError, match=f"cannot delete group .*{held}"):
        handler_of(GROUP).delete(ctx, id_, outputs)
    assert handler_of(GROUP).exists(ctx, id_, outputs)


# --- who is in which group ---------------------------------------------------------------


@pytest.fixture
def people(iam: Any) -> list[str]:
    """Three users and three groups, named apart for each test."""
    suffix = secrets.token_hex(3)
    names = [f"{who}-{suffix}" for who in ("u1", "u2", "u3", "g1", "g2", "g3")]
    for name in names[:3]:
        iam.create_user(UserName=name)
    for name in names[3:]:
        iam.create_group(GroupName=name)
    return names


def _groups_of(iam: Any, user: str) -> set[str]:
    return {g["GroupName"] for g in iam.list_groups_for_user(UserName=user)["Groups"]}


def _users_of(iam: Any, group: str) -> set[str]:
    return {u["UserName"] for u in iam.get_group(GroupName=group)["Users"]}


def test_a_user_group_membership_puts_one_user_in_its_groups(
    ctx: CloudContext, iam: Any, people: list[str]
) -> None:
    u1, _, _, g1, g2, g3 = people
    handler = handler_of(USER_GROUPS)
    iam.add_user_to_group(GroupName=g3, UserName=u1)  # not the membership's: left alone
    inputs = {"user": u1, "groups": [g1, g2]}
    id_, outputs = create(ctx, USER_GROUPS, inputs)
    assert id_.startswith("terraform-")
    assert _groups_of(iam, u1) == {g1, g2, g3}

    new = {"user": u1, "groups": [g2]}
    outputs = _update(ctx, USER_GROUPS, id_, inputs, new, outputs)
    assert _groups_of(iam, u1) == {g2, g3}

    assert handler.exists(ctx, id_, outputs)
    handler.delete(ctx, id_, outputs)
    assert not handler.exists(ctx, id_, outputs)
    assert _groups_of(iam, u1) == {g3}


def test_a_membership_in_a_missing_group_is_refused(ctx: CloudContext, people: list[str]) -> None:
    with pytest.raises(HandlerError, match=r"cannot add user .* to group nowhere"):
        create(ctx, USER_GROUPS, {"user": people[0], "groups": ["nowhere"]})
    with pytest.raises(HandlerError, match="cannot add user nobody"):
        create(ctx, GROUP_USERS, {"group": people[3], "users": ["nobody"]})


def test_a_group_membership_puts_its_users_in_one_group(
    ctx: CloudContext, iam: Any, people: list[str]
) -> None:
    u1, u2, u3, g1, _, _ = people
    handler = handler_of(GROUP_USERS)
    inputs = {"name": "g1-members", "group": g1, "users": [u1, u2]}
    id_, outputs = create(ctx, GROUP_USERS, inputs)
    assert id_ == outputs["name"] == "g1-members"
    assert _users_of(iam, g1) == {u1, u2}

    new = {**inputs, "users": [u2, u3]}
    outputs = _update(ctx, GROUP_USERS, id_, inputs, new, outputs)
    assert _users_of(iam, g1) == {u2, u3}

    assert handler.exists(ctx, id_, outputs)
    handler.delete(ctx, id_, outputs)
    assert not handler.exists(ctx, id_, outputs)
    assert _users_of(iam, g1) == set()


@pytest.mark.parametrize(
    ("token", "principal", "listed"),
    [
        (USER_ATTACHMENT, "user", "list_attached_user_policies"),
        (GROUP_ATTACHMENT, "group", "list_attached_group_policies"),
    ],
)
def test_a_managed_policy_is_attached_to_a_user_or_group_and_detached(
    ctx: CloudContext, iam: Any, people: list[str], token: str, principal: str, listed: str
) -> None:
    who = people[0] if principal == "user" else people[3]
    handler = handler_of(token)
    policy, _ = create(ctx, POLICY, {"policy": _allow()}, f"for-{principal}")
    id_, outputs = create(ctx, token, {principal: who, "policyArn": policy})
    key = f"{principal.capitalize()}Name"
    attached = getattr(iam, listed)(**{key: who})["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [policy]
    assert iam.get_policy(PolicyArn=policy)["Policy"]["AttachmentCount"] == 1
    assert handler.exists(ctx, id_, outputs)
    handler.delete(ctx, id_, outputs)
    assert not handler.exists(ctx, id_, outputs)
    assert getattr(iam, listed)(**{key: who})["AttachedPolicies"] == []
    handler.delete(ctx, id_, outputs)  # already detached: nothing to do

    with pytest.raises(HandlerError, match=f"cannot attach .* to {principal} nobody"):
        create(ctx, token, {principal: "nobody", "policyArn": policy})
    missing = f"arn:aws:iam::{ACCOUNT}:policy/not-there"
    with pytest.raises(HandlerError, match="cannot attach"):
        create(ctx, token, {principal: who, "policyArn": missing})
    assert not handler.exists(ctx, "", {principal: "nobody", "policyArn": policy})


# --- what IAM refuses ------------------------------------------------------------------------


_LONG = "x" * 65
_REFUSED = [
    pytest.param(ROLE, {"name": _LONG}, "longer than 64", id="role-name-long"),
    pytest.param(ROLE, {"name": "two words"}, "letters, digits", id="role-name-chars"),
    pytest.param(ROLE, {"namePrefix": "p" * 39}, "longer than 38", id="role-prefix-long"),
    pytest.param(ROLE, {"namePrefix": "a/b"}, "letters, digits", id="role-prefix-chars"),
    pytest.param(ROLE, {"name": "a", "namePrefix": "b"}, "conflict", id="role-name-and-prefix"),
    pytest.param(ROLE, {"path": "service"}, "path 'service' must", id="role-path-bare"),
    pytest.param(ROLE, {"path": "/service"}, "path '/service' must", id="role-path-open"),
    pytest.param(ROLE, {"description": "d" * 1001}, "longer than 1000", id="role-desc-long"),
    pytest.param(ROLE, {"description": "nœud ☃"}, "characters", id="role-desc-chars"),
    pytest.param(ROLE, {"maxSessionDuration": 3599}, "outside 3600-43200", id="session-short"),
    pytest.param(ROLE, {"maxSessionDuration": 43201}, "outside 3600-43200", id="session-long"),
    pytest.param(ROLE, {"permissionsBoundary": "ReadOnly"}, "not the ARN", id="boundary-arn"),
    pytest.param(ROLE, {"assumeRolePolicy": "{"}, "not valid JSON", id="trust-json"),
    pytest.param(ROLE, {"assumeRolePolicy": "{}"}, "at least one Statement", id="trust-empty"),
    pytest.param(ROLE, {"assumeRolePolicy": _allow()}, "needs Principal", id="trust-principal"),
    pytest.param(
        ROLE,
        {
            "assumeRolePolicy": json.dumps(
                {"Statement": [{**json.loads(_trust())["Statement"][0], "Resource": "*"}]}
            )
        },
        "names a Resource",
        id="trust-resource",
    ),
    pytest.param(
        ROLE,
        {"assumeRolePolicy": json.dumps({"Version": "2020-01-01", "Statement": []})},
        "Version must be",
        id="trust-version",
    ),
    pytest.param(ROLE_POLICY, {"policy": "[]"}, "must be a JSON object", id="inline-array"),
    pytest.param(ROLE_POLICY, {"policy": _trust()}, "names a Principal", id="inline-principal"),
    pytest.param(ROLE_POLICY, {"name": "x" * 129}, "longer than 128", id="inline-name-long"),
    pytest.param(
        ROLE_POLICY,
        {"policy": json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:*"}]})},
        "needs Resource",
        id="inline-resource",
    ),
    pytest.param(
        ROLE_POLICY,
        {"policy": json.dumps({"Statement": [{"Effect": "Permit", "Action": "s3:*"}]})},
        "Effect Allow or Deny",
        id="inline-effect",
    ),
    pytest.param(
        ROLE_POLICY,
        {"policy": json.dumps({"Statement": [{"Effect": "Allow", "Resource": "*"}]})},
        "needs Action",
        id="inline-action",
    ),
    pytest.param(ROLE_ATTACHMENT, {"policyArn": "ReadOnlyAccess"}, "not the ARN", id="attach-arn"),
    pytest.param(PROFILE, {"name": "x" * 129}, "longer than 128", id="profile-name-long"),
    pytest.param(PROFILE, {"namePrefix": "p" * 103}, "longer than 102", id="profile-prefix"),
    pytest.param(PROFILE, {"path": "//x"}, "path", id="profile-path"),
    pytest.param(POLICY, {"policy": "nope"}, "not valid JSON", id="policy-json"),
    pytest.param(POLICY, {"name": "a b"}, "letters, digits", id="policy-name-chars"),
    pytest.param(POLICY, {"path": "x/"}, "path", id="policy-path"),
    pytest.param(POLICY, {"description": "d" * 1001}, "longer than 1000", id="policy-desc"),
    pytest.param(
        POLICY,
        {"policy": _allow(resource=",".join(["arn:aws:s3:::b/*"] * 400))},
        "longer than IAM's 6144",
        id="policy-size",
    ),
    pytest.param(USER, {"name": _LONG}, "longer than 64", id="user-name-long"),
    pytest.param(USER, {"name": "ada lovelace"}, "letters, digits", id="user-name-chars"),
    pytest.param(USER, {"path": "people"}, "path", id="user-path"),
    pytest.param(GROUP, {"name": "g" * 129}, "longer than 128", id="group-name-long"),
    pytest.param(GROUP, {"name": "ops!"}, "letters, digits", id="group-name-chars"),
    pytest.param(GROUP, {"path": "/a"}, "path", id="group-path"),
    pytest.param(USER_ATTACHMENT, {"policyArn": "arn:aws:s3:::b"}, "not the ARN", id="user-arn"),
    pytest.param(GROUP_ATTACHMENT, {"policyArn": "x"}, "not the ARN", id="group-arn"),
]
_VALID = {
    ROLE: {"assumeRolePolicy": _trust()},
    ROLE_POLICY: {"role": "r", "policy": _allow()},
    ROLE_ATTACHMENT: {"role": "r", "policyArn": READ_ONLY},
    PROFILE: {},
    POLICY: {"policy": _allow()},
    USER: {},
    GROUP: {},
    USER_ATTACHMENT: {"user": "u", "policyArn": READ_ONLY},
    GROUP_ATTACHMENT: {"group": "g", "policyArn": READ_ONLY},
}


@pytest.mark.parametrize(("token", "inputs", "reason"), _REFUSED)
def test_what_iam_refuses_is_refused(token: str, inputs: dict[str, Any], reason: str) -> None:
    handler = handler_of(token)
    handler.validate(dict(_VALID[token]))  # the same without the fault passes
    with pytest.raises(HandlerError, match=reason):
        handler.validate({**_VALID[token], **inputs})


@pytest.mark.parametrize("token", TYPES)
def test_what_the_provider_requires_is_required(token: str) -> None:
    """The plan stops on a required input left out (the deployment asks ``missing``)."""
    cls = _resource_class(token)
    source = inspect.getsource(inspect.getmodule(cls))  # type: ignore[arg-type]
    wire = pulumi._types.resource_py_to_pulumi_names(cls)
    required = {wire[p] for p in re.findall(r"Missing required property '(\w+)'", source)}
    handler = handler_of(token)
    assert handler.missing({}) == sorted(required)
    assert handler.missing(dict.fromkeys(required, "(known after apply)")) == []


_CASED = [
    (ROLE, {"assumeRolePolicy": _trust()}, "role"),
    (USER, {}, "user"),
    (GROUP, {}, "group"),
    (PROFILE, {}, "instance profile"),
    (POLICY, {"policy": _allow()}, "policy"),
]


@pytest.mark.parametrize(("token", "inputs", "kind"), _CASED)
def test_a_name_taken_in_another_case_is_refused(
    ctx: CloudContext, token: str, inputs: dict[str, Any], kind: str
) -> None:
    """IAM names are not distinguished by case; the emulator made both."""
    name = f"Taken-{secrets.token_hex(3)}"
    create(ctx, token, {**inputs, "name": name})
    with pytest.raises(HandlerError, match=f"{kind} name {name.lower()} is taken by {kind} {name}"):
        create(ctx, token, {**inputs, "name": name.lower()})


def test_a_policy_name_taken_on_another_path_is_refused(ctx: CloudContext) -> None:
    create(ctx, POLICY, {"name": "pathless", "path": "/one/", "policy": _allow()})
    with pytest.raises(HandlerError, match="policy name pathless is taken"):
        create(ctx, POLICY, {"name": "pathless", "path": "/two/", "policy": _allow()})


@pytest.mark.parametrize(("token", "kind"), [(USER, "user"), (GROUP, "group")])
def test_a_rename_to_a_name_taken_in_another_case_is_refused(
    ctx: CloudContext, iam: Any, token: str, kind: str
) -> None:
    taken = f"Renamed-{secrets.token_hex(3)}"
    create(ctx, token, {"name": taken})
    id_, outputs = create(ctx, token, {"name": f"{taken}-x"})
    with pytest.raises(HandlerError, match=f"{kind} name {taken.lower()} is taken"):
        _update(ctx, token, id_, {"name": f"{taken}-x"}, {"name": taken.lower()}, outputs)
    # Its own name in another case is no clash.
    outputs = _update(ctx, token, id_, {"name": f"{taken}-x"}, {"name": f"{taken}-X"}, outputs)
    assert outputs["name"] == f"{taken}-X"


def test_a_policy_arrives_as_text_or_as_an_object() -> None:
    document = json.loads(_allow())
    handler_of(POLICY).validate({"policy": document})
    with pytest.raises(HandlerError, match="names a Principal"):
        handler_of(POLICY).validate({"policy": json.loads(_trust())})


# --- a dump and load of the emulated cloud --------------------------------------------------


def test_iam_identities_survive_a_dump_and_load(
    emu: Emulator, ctx: CloudContext, iam: Any, people: list[str]
) -> None:
    u1, _, _, g1, _, _ = people
    role, _ = _role(ctx, description="kept", maxSessionDuration=7200)
    made = {
        ROLE_POLICY: create(ctx, ROLE_POLICY, {"role": role, "name": "kept", "policy": _allow()}),
        PROFILE: create(ctx, PROFILE, {"role": role, "tags": {"kept": "yes"}}),
        POLICY: create(ctx, POLICY, {"policy": _allow(), "tags": {"kept": "yes"}}),
        USER: create(ctx, USER, {"path": "/kept/", "tags": {"kept": "yes"}}),
        GROUP: create(ctx, GROUP, {"path": "/kept/"}),
        USER_GROUPS: create(ctx, USER_GROUPS, {"user": u1, "groups": [g1]}),
    }
    policy = made[POLICY][0]
    made[GROUP_ATTACHMENT] = create(ctx, GROUP_ATTACHMENT, {"group": g1, "policyArn": policy})
    old, new = {"policy": _allow()}, {"policy": _allow("s3:PutObject")}
    _update(ctx, POLICY, policy, old, new, made[POLICY][1])
    before = {
        "role": iam.get_role(RoleName=role)["Role"],
        "profile": iam.get_instance_profile(InstanceProfileName=made[PROFILE][0]),
        "versions": iam.list_policy_versions(PolicyArn=policy)["Versions"],
        "user": iam.get_user(UserName=made[USER][0])["User"],
        "members": _users_of(iam, g1),
    }

    emu.load(emu.dump())

    for token, (id_, outputs) in made.items():
        assert handler_of(token).exists(ctx, id_, outputs), token
    assert iam.get_role(RoleName=role)["Role"] == before["role"]
    profile = iam.get_instance_profile(InstanceProfileName=made[PROFILE][0])
    assert profile["InstanceProfile"] == before["profile"]["InstanceProfile"]
    assert iam.list_policy_versions(PolicyArn=policy)["Versions"] == before["versions"]
    assert _default_document(iam, policy) == json.loads(_allow("s3:PutObject"))
    assert iam.get_user(UserName=made[USER][0])["User"] == before["user"]
    assert _users_of(iam, g1) == before["members"] == {u1}
