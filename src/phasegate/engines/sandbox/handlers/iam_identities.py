"""IAM users and groups, who belongs to which, and the managed policies attached to them.

What IAM refuses and the emulator lets through is checked here: a user that still has
credentials (access keys, a password, MFA or SSH keys, signing certificates) is deleted
only with ``forceDestroy``, which deletes them first as the provider does; a group is
deleted only when it has no members and no policies. A user leaves its groups before it
is deleted, as the provider does.
"""

from __future__ import annotations

from typing import Any, ClassVar

from phasegate.engines.sandbox.handlers.base import CloudContext, Handler, HandlerError, error_code
from phasegate.engines.sandbox.handlers.iam_rules import (
    check_names,
    check_path,
    check_policy_arn,
    check_unique,
    iam_name,
    retag,
    unique_id,
)

__all__ = ["HANDLERS"]


def _refused(what: str, exc: Exception) -> HandlerError:
    return HandlerError(f"cannot {what}: {exc}")


def _missing(exc: Exception) -> bool:
    return error_code(exc) == "NoSuchEntity"


def _renamed(
    iam: Any, kind: str, current: str, wanted: str, old: dict, new: dict
) -> dict[str, str]:
    """What UpdateUser or UpdateGroup (``kind``) is sent: the new name, the new path."""
    changes = {f"New{kind}Name": wanted} if wanted != current else {}
    if wanted.lower() != current.lower():
        check_unique(iam, kind.lower(), wanted)
    if old.get("path", "/") != new.get("path", "/"):
        changes["NewPath"] = new.get("path", "/")
    return changes


class User(Handler):
    type = "aws:iam/user:User"
    emulates = frozenset({"forceDestroy", "name", "path", "tags"})
    computed = ("id", "arn", "name", "uniqueId")
    name_key = "name"

    def validate(self, inputs: dict[str, Any]) -> None:
        check_names(inputs, max_len=64)
        check_path(inputs)

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        user_name = iam_name(self, name, inputs, max_len=64)
        check_unique(ctx.client("iam"), "user", user_name)
        try:
            user = ctx.client("iam").create_user(
                UserName=user_name,
                Path=inputs.get("path", "/"),
                Tags=self.tag_list(inputs.get("tags")),
            )["User"]
        except Exception as exc:
            raise _refused(f"create user {user_name}", exc) from None
        return user_name, {**inputs, **self._facts(user)}

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        """A new name or path is the same user renamed or moved, as IAM allows."""
        iam = ctx.client("iam")
        current = outputs.get("name", id_)
        user_name = new.get("name") or current
        changes = _renamed(iam, "User", current, user_name, old, new)
        if changes:
            try:
                iam.update_user(UserName=current, **changes)
            except Exception as exc:
                raise _refused(f"rename or move user {current}", exc) from None
        retag(
            old.get("tags"),
            new.get("tags"),
            lambda tags: iam.tag_user(UserName=user_name, Tags=tags),
            lambda keys: iam.untag_user(UserName=user_name, TagKeys=keys),
        )
        user = iam.get_user(UserName=user_name)["User"]
        return {**self.updated(new, outputs), **self._facts(user)}

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

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        try:
            ctx.client("iam").get_user(UserName=outputs.get("name", id_))
        except Exception as exc:
            if _missing(exc):
                return False
            raise
        return True

    @staticmethod
    def _facts(user: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": user["UserName"],
            "name": user["UserName"],
            "arn": user["Arn"],
            "uniqueId": user["UserId"],
        }

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


class Group(Handler):
    type = "aws:iam/group:Group"
    emulates = frozenset({"name", "path"})
    computed = ("id", "arn", "name", "uniqueId")
    name_key = "name"

    def validate(self, inputs: dict[str, Any]) -> None:
        check_names(inputs, max_len=128)
        check_path(inputs)

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        group_name = iam_name(self, name, inputs, max_len=128)
        check_unique(ctx.client("iam"), "group", group_name)
        try:
            group = ctx.client("iam").create_group(
                GroupName=group_name, Path=inputs.get("path", "/")
            )["Group"]
        except Exception as exc:
            raise _refused(f"create group {group_name}", exc) from None
        return group_name, {**inputs, **self._facts(group)}

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        """A new name or path is the same group renamed or moved, as IAM allows."""
        iam = ctx.client("iam")
        current = outputs.get("name", id_)
        group_name = new.get("name") or current
        changes = _renamed(iam, "Group", current, group_name, old, new)
        if changes:
            try:
                iam.update_group(GroupName=current, **changes)
            except Exception as exc:
                raise _refused(f"rename or move group {current}", exc) from None
        group = iam.get_group(GroupName=group_name)["Group"]
        return {**self.updated(new, outputs), **self._facts(group)}

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

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        try:
            ctx.client("iam").get_group(GroupName=outputs.get("name", id_))
        except Exception as exc:
            if _missing(exc):
                return False
            raise
        return True

    @staticmethod
    def _facts(group: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": group["GroupName"],
            "name": group["GroupName"],
            "arn": group["Arn"],
            "uniqueId": group["GroupId"],
        }


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
        id_ = unique_id("terraform-")  # the provider's id for it
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
            self._iam(ctx, "attach_{}_policy")(**self._who(inputs), PolicyArn=arn)
        except Exception as exc:
            raise _refused(f"attach {arn} to {self.principal} {who}", exc) from None
        id_ = f"{who}/{arn}"
        return id_, {**inputs, "id": id_}

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        try:
            self._iam(ctx, "detach_{}_policy")(**self._who(outputs), PolicyArn=outputs["policyArn"])
        except Exception as exc:
            if not _missing(exc):
                raise

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        try:
            attached = self._iam(ctx, "list_attached_{}_policies")(**self._who(outputs))
        except Exception as exc:
            if _missing(exc):
                return False
            raise
        return any(p["PolicyArn"] == outputs["policyArn"] for p in attached["AttachedPolicies"])

    def _iam(self, ctx: CloudContext, call: str) -> Any:
        """IAM's call of this principal: ``attach_{}_policy`` -> ``attach_user_policy``."""
        return getattr(ctx.client("iam"), call.format(self.principal))

    def _who(self, inputs: dict[str, Any]) -> dict[str, str]:
        """The principal as IAM's calls name it: ``UserName=...`` or ``GroupName=...``."""
        return {f"{self.principal.capitalize()}Name": inputs[self.principal]}


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
