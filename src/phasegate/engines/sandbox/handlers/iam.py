"""IAM roles and what hangs on them: inline policies, managed-policy attachments and
instance profiles.

The emulator takes any role name, path, session duration, trust policy or permissions
boundary; IAM's rules are checked here (:mod:`iam_rules`).
"""

from __future__ import annotations

from typing import Any

from phasegate.engines.sandbox.handlers.base import (
    CloudContext,
    Handler,
    HandlerError,
    error_code,
    generated_name,
    int_or_none,
    json_text,
    resource_exists,
)
from phasegate.engines.sandbox.handlers.iam_rules import (
    check_boundary,
    check_description,
    check_names,
    check_path,
    check_policy,
    check_policy_arn,
    check_unique,
    entity_outputs,
    retag_entity,
)

__all__ = ["HANDLERS"]

_SESSION = (3600, 43200)
"""A role's maximum session duration, in seconds: one hour to twelve."""


class Role(Handler):
    type = "aws:iam/role:Role"
    emulates = frozenset(
        {
            "assumeRolePolicy",
            "description",
            "forceDetachPolicies",
            "maxSessionDuration",
            "name",
            "namePrefix",
            "path",
            "permissionsBoundary",
            "tags",
        }
    )
    replace_on = frozenset({"name", "namePrefix", "path"})
    computed = ("id", "arn", "name", "uniqueId", "createDate")
    name_key = "name"
    required = frozenset({"assumeRolePolicy"})

    def validate(self, inputs: dict[str, Any]) -> None:
        check_policy(inputs.get("assumeRolePolicy"), "assumeRolePolicy", trust=True)
        check_names(inputs, max_len=64)
        check_path(inputs)
        check_description(inputs)
        check_policy_arn(inputs, "permissionsBoundary")
        duration = int_or_none(inputs.get("maxSessionDuration"))
        if duration is not None and not _SESSION[0] <= duration <= _SESSION[1]:
            raise HandlerError(
                f"maxSessionDuration {duration} is outside {_SESSION[0]}-{_SESSION[1]} seconds"
            )

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        iam = ctx.client("iam")
        role_name = generated_name(self, name, inputs, max_len=64)
        check_unique(iam, "role", role_name)
        args: dict[str, Any] = {
            "RoleName": role_name,
            "Path": inputs.get("path", "/"),
            "AssumeRolePolicyDocument": json_text(inputs["assumeRolePolicy"]),
            "Tags": self.tag_list(inputs.get("tags")),
        }
        if inputs.get("description"):
            args["Description"] = inputs["description"]
        if inputs.get("maxSessionDuration"):
            args["MaxSessionDuration"] = inputs["maxSessionDuration"]
        if inputs.get("permissionsBoundary"):
            check_boundary(iam, inputs["permissionsBoundary"])
            args["PermissionsBoundary"] = inputs["permissionsBoundary"]
        try:
            role = iam.create_role(**args)["Role"]
        except Exception as exc:
            raise HandlerError(f"cannot create role {role_name}: {exc}") from None
        dated = {"createDate": role["CreateDate"].isoformat()}
        return role_name, {**inputs, **entity_outputs(role, "Role"), **dated}

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        iam = ctx.client("iam")
        if old.get("assumeRolePolicy") != new.get("assumeRolePolicy"):
            iam.update_assume_role_policy(
                RoleName=id_, PolicyDocument=json_text(new["assumeRolePolicy"])
            )
        settings = ("description", "maxSessionDuration")
        if any(old.get(k) != new.get(k) for k in settings):
            iam.update_role(
                RoleName=id_,
                Description=new.get("description") or "",
                MaxSessionDuration=new.get("maxSessionDuration") or _SESSION[0],
            )
        boundary = new.get("permissionsBoundary")
        if old.get("permissionsBoundary") != boundary:
            if boundary:
                check_boundary(iam, boundary)
                iam.put_role_permissions_boundary(RoleName=id_, PermissionsBoundary=boundary)
            else:
                iam.delete_role_permissions_boundary(RoleName=id_)
        retag_entity(iam, "role", old, new, RoleName=id_)
        return self.updated(new, outputs)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        iam = ctx.client("iam")
        try:
            # As the provider does: the role leaves its instance profiles first, and
            # with forceDetachPolicies, its policies go before it (IAM refuses otherwise).
            profiles = iam.list_instance_profiles_for_role(RoleName=id_)["InstanceProfiles"]
            for profile in profiles:
                iam.remove_role_from_instance_profile(
                    InstanceProfileName=profile["InstanceProfileName"], RoleName=id_
                )
            if outputs.get("forceDetachPolicies"):
                self._detach_policies(iam, id_)
            iam.delete_role(RoleName=id_)
        except Exception as exc:
            if error_code(exc) == "NoSuchEntity":
                return
            if error_code(exc) == "DeleteConflict":
                raise HandlerError(f"cannot delete role {id_}: {exc}") from None
            raise

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        return resource_exists(lambda: ctx.client("iam").get_role(RoleName=id_), "NoSuchEntity")

    @staticmethod
    def _detach_policies(iam: Any, role: str) -> None:
        for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role):
            for policy in page["AttachedPolicies"]:
                iam.detach_role_policy(RoleName=role, PolicyArn=policy["PolicyArn"])
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=role):
            for policy_name in page["PolicyNames"]:
                iam.delete_role_policy(RoleName=role, PolicyName=policy_name)


class RolePolicy(Handler):
    """A policy written into a role (inline), not attached by ARN."""

    type = "aws:iam/rolePolicy:RolePolicy"
    emulates = frozenset({"name", "namePrefix", "policy", "role"})
    replace_on = frozenset({"name", "namePrefix", "role"})
    computed = ("id", "name")
    name_key = "name"
    required = frozenset({"policy", "role"})

    def validate(self, inputs: dict[str, Any]) -> None:
        check_names(inputs, max_len=128)
        # 10,240 characters is IAM's limit for all of a role's inline policies together.
        check_policy(inputs.get("policy"), "policy", limit=10240)

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        policy_name = generated_name(self, name, inputs, max_len=128)
        self._put(ctx, inputs["role"], policy_name, inputs["policy"])
        id_ = f"{inputs['role']}:{policy_name}"
        return id_, {**inputs, "id": id_, "name": policy_name}

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        self._put(ctx, new["role"], outputs["name"], new["policy"])
        return self.updated(new, outputs)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        try:
            ctx.client("iam").delete_role_policy(
                RoleName=outputs["role"], PolicyName=outputs["name"]
            )
        except Exception as exc:
            if error_code(exc) != "NoSuchEntity":
                raise

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        iam, role, policy = ctx.client("iam"), outputs["role"], outputs["name"]
        return resource_exists(
            lambda: iam.get_role_policy(RoleName=role, PolicyName=policy), "NoSuchEntity"
        )

    @staticmethod
    def _put(ctx: CloudContext, role: str, policy_name: str, policy: Any) -> None:
        try:
            ctx.client("iam").put_role_policy(
                RoleName=role, PolicyName=policy_name, PolicyDocument=json_text(policy)
            )
        except Exception as exc:
            raise HandlerError(f"cannot put policy {policy_name} on role {role}: {exc}") from None


class RolePolicyAttachment(Handler):
    type = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
    emulates = frozenset({"policyArn", "role"})
    replace_on = frozenset({"role", "policyArn"})
    computed = ("id",)
    required = frozenset({"policyArn", "role"})

    def validate(self, inputs: dict[str, Any]) -> None:
        check_policy_arn(inputs, "policyArn")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        try:
            ctx.client("iam").attach_role_policy(
                RoleName=inputs["role"], PolicyArn=inputs["policyArn"]
            )
        except Exception as exc:
            raise HandlerError(f"cannot attach {inputs['policyArn']}: {exc}") from None
        id_ = f"{inputs['role']}/{inputs['policyArn']}"
        return id_, {**inputs, "id": id_}

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        ctx.client("iam").detach_role_policy(
            RoleName=outputs["role"], PolicyArn=outputs["policyArn"]
        )

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        try:
            attached = ctx.client("iam").list_attached_role_policies(RoleName=outputs["role"])
        except ctx.client("iam").exceptions.NoSuchEntityException:
            return False
        return any(p["PolicyArn"] == outputs["policyArn"] for p in attached["AttachedPolicies"])


class InstanceProfile(Handler):
    """What an EC2 instance is given to run as its role (one role per profile)."""

    type = "aws:iam/instanceProfile:InstanceProfile"
    emulates = frozenset({"name", "namePrefix", "path", "role", "tags"})
    replace_on = frozenset({"name", "namePrefix", "path"})
    computed = ("id", "arn", "name", "uniqueId", "createDate")
    name_key = "name"

    def validate(self, inputs: dict[str, Any]) -> None:
        check_names(inputs, max_len=128)
        check_path(inputs)

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        iam = ctx.client("iam")
        profile_name = generated_name(self, name, inputs, max_len=128)
        check_unique(iam, "instance profile", profile_name)
        try:
            profile = iam.create_instance_profile(
                InstanceProfileName=profile_name,
                Path=inputs.get("path", "/"),
                Tags=self.tag_list(inputs.get("tags")),
            )["InstanceProfile"]
        except Exception as exc:
            raise HandlerError(f"cannot create instance profile {profile_name}: {exc}") from None
        if inputs.get("role"):
            try:
                self._add_role(iam, profile_name, inputs["role"])
            except HandlerError:
                iam.delete_instance_profile(InstanceProfileName=profile_name)
                raise
        dated = {"createDate": profile["CreateDate"].isoformat()}
        return profile_name, {**inputs, **entity_outputs(profile, "InstanceProfile"), **dated}

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        iam = ctx.client("iam")
        if old.get("role") != new.get("role"):
            self._remove_roles(iam, id_)
            if new.get("role"):
                self._add_role(iam, id_, new["role"])
        retag_entity(iam, "instance_profile", old, new, InstanceProfileName=id_)
        return self.updated(new, outputs)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        iam = ctx.client("iam")
        try:
            self._remove_roles(iam, id_)
            iam.delete_instance_profile(InstanceProfileName=id_)
        except Exception as exc:
            if error_code(exc) != "NoSuchEntity":
                raise

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        iam = ctx.client("iam")
        return resource_exists(
            lambda: iam.get_instance_profile(InstanceProfileName=id_), "NoSuchEntity"
        )

    @staticmethod
    def _add_role(iam: Any, profile: str, role: str) -> None:
        try:
            iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role)
        except Exception as exc:
            raise HandlerError(
                f"cannot give instance profile {profile} role {role}: {exc}"
            ) from None

    @staticmethod
    def _remove_roles(iam: Any, profile: str) -> None:
        roles = iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]["Roles"]
        for role in roles:
            iam.remove_role_from_instance_profile(
                InstanceProfileName=profile, RoleName=role["RoleName"]
            )


HANDLERS: list[Handler] = [Role(), RolePolicy(), RolePolicyAttachment(), InstanceProfile()]
