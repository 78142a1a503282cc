"""IAM roles and their managed-policy attachments."""

from __future__ import annotations

import json
from typing import Any

from phasegate.engines.sandbox.handlers.base import CloudContext, Handler, HandlerError

__all__ = ["HANDLERS"]


def _document(value: Any) -> str:
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError as exc:
            raise HandlerError(f"assumeRolePolicy is not valid JSON: {exc}") from None
        return value
    return json.dumps(value)


class Role(Handler):
    type = "aws:iam/role:Role"
    emulates = frozenset({"assumeRolePolicy", "name", "path", "tags"})
    replace_on = frozenset({"name", "namePrefix", "path"})
    computed = ("id", "arn", "name", "uniqueId", "createDate")
    name_key = "name"
    required = frozenset({"assumeRolePolicy"})

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        iam = ctx.client("iam")
        role_name = self.physical_name(name, inputs, max_len=64)
        role = iam.create_role(
            RoleName=role_name,
            Path=inputs.get("path", "/"),
            AssumeRolePolicyDocument=_document(inputs["assumeRolePolicy"]),
            Tags=self.tag_list(inputs.get("tags")),
        )["Role"]
        return role_name, {
            **inputs,
            "id": role_name,
            "name": role_name,
            "arn": role["Arn"],
            "uniqueId": role["RoleId"],
            "createDate": role["CreateDate"].isoformat(),
        }

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        iam = ctx.client("iam")
        if old.get("assumeRolePolicy") != new.get("assumeRolePolicy"):
            iam.update_assume_role_policy(
                RoleName=id_, PolicyDocument=_document(new["assumeRolePolicy"])
            )
        if old.get("tags") != new.get("tags"):
            if old.get("tags"):
                iam.untag_role(RoleName=id_, TagKeys=list(old["tags"]))
            if new.get("tags"):
                iam.tag_role(RoleName=id_, Tags=self.tag_list(new["tags"]))
        return {**outputs, **new}

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        ctx.client("iam").delete_role(RoleName=id_)

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        try:
            ctx.client("iam").get_role(RoleName=id_)
        except ctx.client("iam").exceptions.NoSuchEntityException:
            return False
        return True


class RolePolicyAttachment(Handler):
    type = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
    emulates = frozenset({"policyArn", "role"})
    replace_on = frozenset({"role", "policyArn"})
    computed = ("id",)

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


HANDLERS: list[Handler] = [Role(), RolePolicyAttachment()]
