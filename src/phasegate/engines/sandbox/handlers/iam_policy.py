"""Customer-managed IAM policies: a document kept in versions, attached by ARN.

A change of the document is a new default version, as with the provider; IAM keeps five
versions of a policy, so the oldest one not in use goes first when there are five. IAM
refuses to delete a policy still attached to a user, group or role; the emulator deletes
it anyway, so that is checked here.
"""

from __future__ import annotations

from typing import Any

from phasegate.engines.sandbox.handlers.base import (
    CloudContext,
    Handler,
    HandlerError,
    error_code,
    generated_name,
    json_text,
    resource_exists,
)
from phasegate.engines.sandbox.handlers.iam_rules import (
    check_description,
    check_names,
    check_path,
    check_policy,
    check_unique,
    retag_entity,
)

__all__ = ["HANDLERS"]

_VERSIONS_KEPT = 5
_DOCUMENT_LIMIT = 6144
"""Characters (whitespace aside) of a managed policy's document."""


class Policy(Handler):
    type = "aws:iam/policy:Policy"
    emulates = frozenset({"description", "name", "namePrefix", "path", "policy", "tags"})
    # IAM can change neither a policy's name, path nor description once made.
    replace_on = frozenset({"description", "name", "namePrefix", "path"})
    computed = ("id", "arn", "name", "policyId", "attachmentCount")
    name_key = "name"
    required = frozenset({"policy"})

    def validate(self, inputs: dict[str, Any]) -> None:
        check_policy(inputs.get("policy"), "policy", limit=_DOCUMENT_LIMIT)
        check_names(inputs, max_len=128)
        check_path(inputs)
        check_description(inputs)

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        policy_name = generated_name(self, name, inputs, max_len=128)
        check_unique(ctx.client("iam"), "policy", policy_name)
        args: dict[str, Any] = {
            "PolicyName": policy_name,
            "Path": inputs.get("path", "/"),
            "PolicyDocument": json_text(inputs["policy"]),
            "Tags": self.tag_list(inputs.get("tags")),
        }
        if inputs.get("description"):
            args["Description"] = inputs["description"]
        try:
            policy = ctx.client("iam").create_policy(**args)["Policy"]
        except Exception as exc:
            raise HandlerError(f"cannot create policy {policy_name}: {exc}") from None
        arn = policy["Arn"]
        return arn, {
            **inputs,
            "id": arn,
            "arn": arn,
            "name": policy_name,
            "policyId": policy["PolicyId"],
            "attachmentCount": policy["AttachmentCount"],
        }

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        iam = ctx.client("iam")
        if json_text(old.get("policy")) != json_text(new["policy"]):
            self._prune(iam, id_)
            try:
                iam.create_policy_version(
                    PolicyArn=id_, PolicyDocument=json_text(new["policy"]), SetAsDefault=True
                )
            except Exception as exc:
                raise HandlerError(f"cannot change the document of {id_}: {exc}") from None
        retag_entity(iam, "policy", old, new, PolicyArn=id_)
        return self.updated(new, outputs)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        iam = ctx.client("iam")
        try:
            attached = iam.get_policy(PolicyArn=id_)["Policy"]["AttachmentCount"]
        except Exception as exc:
            if error_code(exc) == "NoSuchEntity":
                return
            raise
        if attached:
            raise HandlerError(
                f"cannot delete policy {id_}: it is attached to {attached} user(s), group(s) "
                "or role(s); detach it first"
            )
        # As the provider does: the versions not in use go first, as IAM requires.
        for version in self._versions(iam, id_):
            if not version["IsDefaultVersion"]:
                iam.delete_policy_version(PolicyArn=id_, VersionId=version["VersionId"])
        iam.delete_policy(PolicyArn=id_)

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        return resource_exists(lambda: ctx.client("iam").get_policy(PolicyArn=id_), "NoSuchEntity")

    def _prune(self, iam: Any, arn: str) -> None:
        """Make room for one more version: delete the oldest not in use, at five."""
        versions = self._versions(iam, arn)
        if len(versions) < _VERSIONS_KEPT:
            return
        spare = [v for v in versions if not v["IsDefaultVersion"]]
        oldest = min(spare, key=lambda v: (v["CreateDate"], int(v["VersionId"][1:])))
        iam.delete_policy_version(PolicyArn=arn, VersionId=oldest["VersionId"])

    @staticmethod
    def _versions(iam: Any, arn: str) -> list[dict[str, Any]]:
        versions: list[dict[str, Any]] = iam.list_policy_versions(PolicyArn=arn)["Versions"]
        return versions


HANDLERS: list[Handler] = [Policy()]
