"""IAM users and groups, who belongs to which, and the managed policies attached to them.

What IAM refuses and the emulator lets through is checked here: a user that still has
credentials (access keys, a password, MFA or SSH keys, signing certificates) is deleted
only with ``forceDestroy``, which deletes them first as the provider does; a group is
deleted only when it has no members and no policies. A user leaves its groups before it
is deleted, as the provider does.
"""

from __future__ import annotations

from typing import Any, ClassVar

from phasegate.engines.sandbox.handlers.base import (
    CloudContext,
    Handler,
    HandlerError,
    error_code,
    generated_name,
    prefixed_name,
    resource_exists,
)
from phasegate.engines.sandbox.handlers.iam_rules import (
    check_names,
    check_path,
    check_policy_arn,
    check_unique,
    entity_outputs,
    retag_entity,
)

__all__ = ["HANDLERS"]


def _refused(what: str, exc: Exception) -> HandlerError:
    return HandlerError(f"cannot {what}: {exc}")


def _missing(exc: Exception) -> bool:
    return error_code(exc) == "NoSuchEntity"


def _ask(iam: Any, call: str, kind: str, name: str, **args: Any) -> Any:
    """IAM's ``call`` for a user or group (``kind``) named ``name``: ``create_{}`` is
    ``create_user(UserName=name, ...)``; its answer."""
    return getattr(iam, call.format(kind))(**{f"{kind.capitalize()}Name": name}, **args)


class _Identity(Handler):
    """An IAM user or group: a name and a path, which IAM changes in place (renamed or
    moved), and the name IAM's calls use for it."""

    kind: ClassVar[str]
    """``user`` or ``group``, as IAM's calls name it: ``create_user``, ``UserName``."""
    max_len: ClassVar[int]
    computed = ("id", "arn", "name", "uniqueId")
    name_key = "name"

    def validate(self, inputs: dict[str, Any]) -> None:
        check_names(inputs, max_len=self.max_len)
        check_path(inputs)

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        iam = ctx.client("iam")
        made = generated_name(self, name, inputs, max_len=self.max_len)
        check_unique(iam, self.kind, made)
        try:
            entity = self._call(
                iam, "create_{}", made, Path=inputs.get("path", "/"), **self._made_with(inputs)
            )
        except Exception as exc:
            raise _refused(f"create {self.kind} {made}", exc) from None
        return made, {**inputs, **entity_outputs(entity, self.kind.capitalize())}

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        """A new name or path is the same user or group renamed or moved, as IAM allows."""
        iam = ctx.client("iam")
        current = outputs.get("name", id_)
        wanted = new.get("name") or current
        kind = self.kind.capitalize()
        changes = {f"New{kind}Name": wanted} if wanted != current else {}
        if wanted.lower() != current.lower():
            check_unique(iam, self.kind, wanted)
        if old.get("path", "/") != new.get("path", "/"):
            changes["NewPath"] = new.get("path", "/")
        if changes:
            try:
                self._call(iam, "update_{}", current, **changes)
            except Exception as exc:
                raise _refused(f"rename or move {self.kind} {current}", exc) from None
        self._retag(iam, wanted, old, new)
        entity = self._call(iam, "get_{}", wanted)
        return {**self.updated(new, outputs), **entity_outputs(entity, kind)}

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        iam = ctx.client("iam")
        return resource_exists(
            lambda: self._call(iam, "get_{}", outputs.get("name", id_)), _missing
        )

    def _call(self, iam: Any, call: str, name: str, **args: Any) -> Any:
        """IAM's ``call`` (``create_{}``) for the user or group named ``name``; the user
        or group its answer holds."""
        return _ask(iam, call, self.kind, name, **args).get(self.kind.capitalize())

    def _made_with(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """What else the create call is sent. Default: nothing."""
        return {}

    def _retag(self, iam: Any, name: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Bring the tags from ``old``'s to ``new``'s. Default: nothing (IAM tags no group)."""
        return None


class User(_Identity):
    type = "aws:iam/user:User"
    emulates = frozenset({"forceDestroy", "name", "path", "tags"})
    kind = "user"
    max_len = 64

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        iam = ctx.client("iam")
        user_name = outputs.get("name", id_)
        try:
            for group in iam.list_groups_for_user(UserName=user_name)["Groups"]:
                iam.remove_user_from_group(GroupName=group["GroupName"], UserName=user_name)
            credentials = self._credentials(iam, user_name)
            if credentials and not outputs.get("forceDestroy"):
                raise HandlerError(
                    f"cannot delete user {user_name}: it still has {', '.join(credentials)} "
                    "(set forceDestroy to delete them with it)"
                )
            if credentials:
                self._delete_credentials(iam, user_name)
            iam.delete_user(UserName=user_name)
        except HandlerError:
            raise
        except Exception as exc:
            if _missing(exc):
                return
            raise _refused(f"delete user {user_name}", exc) from None

    def _made_with(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"Tags": self.tag_list(inputs.get("tags"))}

    def _retag(self, iam: Any, name: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        retag_entity(iam, "user", old, new, UserName=name)

    @staticmethod
    def _credentials(iam: Any, user: str) -> list[str]:
        """What IAM makes one delete before the user: the kinds the user still has."""
        found = []
        if iam.list_access_keys(UserName=user)["AccessKeyMetadata"]:
            found.append("access keys")
        try:
            iam.get_login_profile(UserName=user)
            found.append("a password (login profile)")
        except Exception as exc:
            if not _missing(exc):
                raise
        if iam.list_mfa_devices(UserName=user)["MFADevices"]:
            found.append("MFA devices")
        if iam.list_ssh_public_keys(UserName=user)["SSHPublicKeys"]:
            found.append("SSH public keys")
        if iam.list_signing_certificates(UserName=user)["Certificates"]:
            found.append("signing certificates")
        return found

    @staticmethod
    def _delete_credentials(iam: Any, user: str) -> None:
        for key in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]:
            iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
        try:
            iam.delete_login_profile(UserName=user)
        except Exception as exc:
            if not _missing(exc):
                raise
        for device in iam.list_mfa_devices(UserName=user)["MFADevices"]:
            serial = device["SerialNumber"]
            iam.deactivate_mfa_device(UserName=user, SerialNumber=serial)
            if ":mfa/" in serial:  # a virtual device, which goes with its user
                iam.delete_virtual_mfa_device(SerialNumber=serial)
        for ssh in iam.list_ssh_public_keys(UserName=user)["SSHPublicKeys"]:
            iam.delete_ssh_public_key(UserName=user, SSHPublicKeyId=ssh["SSHPublicKeyId"])
        for cert in iam.list_signing_certificates(UserName=user)["Certificates"]:
            iam.delete_signing_certificate(UserName=user, CertificateId=cert["CertificateId"])


class Group(_Identity):
    type = "aws:iam/group:Group"
    emulates = frozenset({"name", "path"})
    kind = "group"
    max_len = 128

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        iam = ctx.client("iam")
        group_name = outputs.get("name", id_)
        try:
            held = {
                "members": [u["UserName"] for u in iam.get_group(GroupName=group_name)["Users"]],
                "attached policies": [
                    p["PolicyArn"]
                    for p in iam.list_attached_group_policies(GroupName=group_name)[
                        "AttachedPolicies"
                    ]
                ],
                "inline policies": iam.list_group_policies(GroupName=group_name)["PolicyNames"],
            }
            left = [f"{kind} ({', '.join(names)})" for kind, names in held.items() if names]
            if left:
                raise HandlerError(
                    f"cannot delete group {group_name}: it still has {'; '.join(left)}"
                )
            iam.delete_group(GroupName=group_name)
        except HandlerError:
            raise
        except Exception as exc:
            if not _missing(exc):
                raise


def _join(iam: Any, group: str, user: str) -> None:
    try:
        iam.add_user_to_group(GroupName=group, UserName=user)
    except Exception as exc:
        raise _refused(f"add user {user} to group {group}", exc) from None


def _leave(iam: Any, group: str, user: str) -> None:
    try:
        iam.remove_user_from_group(GroupName=group, UserName=user)
    except Exception as exc:
        if not _missing(exc):
            raise


def _members(iam: Any, group: str) -> set[str]:
    """The users in a group; none when the group is gone."""
    try:
        return {u["UserName"] for u in iam.get_group(GroupName=group)["Users"]}
    except Exception as exc:
        if _missing(exc):
            return set()
        raise


class UserGroupMembership(Handler):
    """The groups one user is in: only those listed; other memberships are left alone."""

    type = "aws:iam/userGroupMembership:UserGroupMembership"
    emulates = frozenset({"groups", "user"})
    replace_on = frozenset({"user"})
    computed = ("id",)
    required = frozenset({"groups", "user"})

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        iam = ctx.client("iam")
        for group in inputs["groups"]:
            _join(iam, group, inputs["user"])
        id_ = prefixed_name("terraform-")  # the provider's id for it
        return id_, {**inputs, "id": id_}

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        iam = ctx.client("iam")
        before, after = set(old.get("groups") or []), set(new.get("groups") or [])
        for group in sorted(before - after):
            _leave(iam, group, new["user"])
        for group in sorted(after - before):
            _join(iam, group, new["user"])
        return self.updated(new, outputs)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        iam = ctx.client("iam")
        for group in outputs.get("groups") or []:
            _leave(iam, group, outputs["user"])

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        iam = ctx.client("iam")
        return any(outputs["user"] in _members(iam, g) for g in outputs.get("groups") or [])


class GroupMembership(Handler):
    """The users of one group, by a name of its own (the resource's id, not IAM's)."""

    type = "aws:iam/groupMembership:GroupMembership"
    emulates = frozenset({"group", "name", "users"})
    replace_on = frozenset({"group", "name"})
    computed = ("id", "name")
    name_key = "name"
    required = frozenset({"group", "users"})

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        iam = ctx.client("iam")
        for user in inputs["users"]:
            _join(iam, inputs["group"], user)
        id_ = self.physical_name(name, inputs)
        return id_, {**inputs, "id": id_, "name": id_}

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        iam = ctx.client("iam")
        before, after = set(old.get("users") or []), set(new.get("users") or [])
        for user in sorted(before - after):
            _leave(iam, new["group"], user)
        for user in sorted(after - before):
            _join(iam, new["group"], user)
        return self.updated(new, outputs)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        iam = ctx.client("iam")
        for user in outputs.get("users") or []:
            _leave(iam, outputs["group"], user)

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        members = _members(ctx.client("iam"), outputs["group"])
        return any(user in members for user in outputs.get("users") or [])


class _PolicyAttachment(Handler):
    """A managed policy attached to a user or a group; IAM refuses a missing one."""

    principal: ClassVar[str]
    """The input naming the user or group, and the word IAM's calls use for it."""
    replace_on = frozenset({"policyArn"})
    computed = ("id",)

    def validate(self, inputs: dict[str, Any]) -> None:
        check_policy_arn(inputs, "policyArn")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        who, arn = inputs[self.principal], inputs["policyArn"]
        try:
            _ask(ctx.client("iam"), "attach_{}_policy", self.principal, who, PolicyArn=arn)
        except Exception as exc:
            raise _refused(f"attach {arn} to {self.principal} {who}", exc) from None
        id_ = f"{who}/{arn}"
        return id_, {**inputs, "id": id_}

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        who, arn = outputs[self.principal], outputs["policyArn"]
        try:
            _ask(ctx.client("iam"), "detach_{}_policy", self.principal, who, PolicyArn=arn)
        except Exception as exc:
            if not _missing(exc):
                raise

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        try:
            iam, who = ctx.client("iam"), outputs[self.principal]
            attached = _ask(iam, "list_attached_{}_policies", self.principal, who)
        except Exception as exc:
            if _missing(exc):
                return False
            raise
        return any(p["PolicyArn"] == outputs["policyArn"] for p in attached["AttachedPolicies"])


class UserPolicyAttachment(_PolicyAttachment):
    type = "aws:iam/userPolicyAttachment:UserPolicyAttachment"
    emulates = frozenset({"policyArn", "user"})
    replace_on = frozenset({"policyArn", "user"})
    required = frozenset({"policyArn", "user"})
    principal = "user"


class GroupPolicyAttachment(_PolicyAttachment):
    type = "aws:iam/groupPolicyAttachment:GroupPolicyAttachment"
    emulates = frozenset({"group", "policyArn"})
    replace_on = frozenset({"group", "policyArn"})
    required = frozenset({"group", "policyArn"})
    principal = "group"


HANDLERS: list[Handler] = [
    User(),
    Group(),
    UserGroupMembership(),
    GroupMembership(),
    UserPolicyAttachment(),
    GroupPolicyAttachment(),
]
