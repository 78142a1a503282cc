"""What IAM accepts of the names, paths, descriptions and policy documents its handlers
are given, where the emulator accepts anything; and what all IAM handlers do alike.

IAM names are 1-64 (users, roles) or 1-128 (groups, policies, instance profiles)
characters of letters, digits and ``+=,.@_-``, one name in the account whatever its case;
a path is ``/`` or starts and ends with
``/``; a policy document is a JSON object whose statements each have an effect, an action
and, for an identity's policy, a resource but no principal (a trust policy names a
principal and no resource).
"""

from __future__ import annotations

import re
from typing import Any

from phasegate.engines.sandbox.handlers.base import (
    UNIQUE_SUFFIX,
    HandlerError,
    error_code,
    json_document,
    json_text,
    retag,
)

__all__ = [
    "check_boundary",
    "check_description",
    "check_names",
    "check_path",
    "check_policy",
    "check_policy_arn",
    "check_unique",
    "entity_outputs",
    "retag_entity",
]

_NAME = re.compile(r"^[\w+=,.@-]+$", re.ASCII)
_PATH = re.compile(r"^/$|^/[\x21-\x7e]+/$")
_DESCRIPTION = re.compile(r"^[\t\n\r\x20-\x7e\xa1-\xff]*$")
_POLICY_ARN = re.compile(r"^arn:aws[\w-]*:iam::(aws|\d{12}):policy/([\x21-\x7e]+/)*[\w+=,.@-]+$")
_VERSIONS = ("2012-10-17", "2008-10-17")


def check_names(inputs: dict[str, Any], max_len: int) -> None:
    """``name`` and ``namePrefix`` as IAM takes them: one or the other, allowed
    characters, and short enough (a prefix leaves room for the unique suffix)."""
    name, prefix = inputs.get("name"), inputs.get("namePrefix")
    if name and prefix:
        raise HandlerError("name and namePrefix conflict: set one of them")
    for key, value, limit in (
        ("name", name, max_len),
        ("namePrefix", prefix, max_len - UNIQUE_SUFFIX),
    ):
        if not isinstance(value, str):
            continue
        if not _NAME.match(value):
            raise HandlerError(
                f"{key} '{value}' may hold only letters, digits and +=,.@_- (no spaces)"
            )
        if len(value) > limit:
            raise HandlerError(f"{key} '{value}' is longer than {limit} characters")


def check_path(inputs: dict[str, Any]) -> None:
    path = inputs.get("path")
    if isinstance(path, str) and (len(path) > 512 or not _PATH.match(path)):
        raise HandlerError(
            f"path '{path}' must be '/' or start and end with '/' (printable ASCII, up to 512)"
        )


def check_description(inputs: dict[str, Any], max_len: int = 1000) -> None:
    description = inputs.get("description")
    if not isinstance(description, str):
        return
    if len(description) > max_len:
        raise HandlerError(f"description is longer than {max_len} characters")
    if not _DESCRIPTION.match(description):
        raise HandlerError("description holds characters IAM does not accept (Latin-1 text only)")


def check_policy_arn(inputs: dict[str, Any], key: str) -> None:
    arn = inputs.get(key)
    if isinstance(arn, str) and not _POLICY_ARN.match(arn):
        raise HandlerError(f"{key} '{arn}' is not the ARN of an IAM policy")


def check_policy(value: Any, key: str, *, trust: bool = False, limit: int = 0) -> None:
    """HandlerError unless ``value`` is a policy IAM takes: an identity's policy, or a
    role's trust policy (``trust``); ``limit``: its most characters, whitespace aside."""
    if value is None:
        return
    text = json_text(value)
    document = json_document(text, key)
    if not isinstance(document, dict):
        raise HandlerError(f"{key} must be a JSON object")
    if limit and len(re.sub(r"\s", "", text)) > limit:
        raise HandlerError(f"{key} is longer than IAM's {limit} characters (whitespace aside)")
    if document.get("Version", _VERSIONS[0]) not in _VERSIONS:
        raise HandlerError(f"{key} Version must be {' or '.join(_VERSIONS)}")
    statements = document.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise HandlerError(f"{key} needs at least one Statement")
    for i, statement in enumerate(statements):
        where = f"{key} Statement[{i}]"
        if not isinstance(statement, dict):
            raise HandlerError(f"{where} is not an object")
        if statement.get("Effect") not in ("Allow", "Deny"):
            raise HandlerError(f"{where} needs Effect Allow or Deny")
        if "Action" not in statement and "NotAction" not in statement:
            raise HandlerError(f"{where} needs Action")
        names_principal = "Principal" in statement or "NotPrincipal" in statement
        if trust and not names_principal:
            raise HandlerError(f"{where} needs Principal: a trust policy names who may assume")
        if trust and ("Resource" in statement or "NotResource" in statement):
            raise HandlerError(f"{where} names a Resource, which a trust policy may not")
        if not trust and names_principal:
            raise HandlerError(f"{where} names a Principal, which an identity's policy may not")
        if not trust and "Resource" not in statement and "NotResource" not in statement:
            raise HandlerError(f"{where} needs Resource")


_LISTS = {
    "role": ("list_roles", "Roles", "RoleName"),
    "user": ("list_users", "Users", "UserName"),
    "group": ("list_groups", "Groups", "GroupName"),
    "policy": ("list_policies", "Policies", "PolicyName"),
    "instance profile": ("list_instance_profiles", "InstanceProfiles", "InstanceProfileName"),
}
"""How to list each kind of IAM name: the call, the list in its answer, the name in it."""


def check_unique(iam: Any, kind: str, name: str) -> None:
    """IAM names are unique in the account whatever their case or path ("Deploy" and
    "deploy" are one name); the emulator tells them apart, and policies by path too."""
    call, listed, key = _LISTS[kind]
    args = {"Scope": "Local"} if kind == "policy" else {}
    for page in iam.get_paginator(call).paginate(**args):
        for entry in page[listed]:
            if entry[key].lower() == name.lower():
                raise HandlerError(
                    f"{kind} name {name} is taken by {kind} {entry[key]} "
                    "(IAM names are not distinguished by case or path)"
                )


def check_boundary(iam: Any, arn: str) -> None:
    """IAM refuses a permissions boundary that is no policy it has; the emulator does not."""
    try:
        iam.get_policy(PolicyArn=arn)
    except Exception as exc:
        if error_code(exc) == "NoSuchEntity":
            raise HandlerError(f"permissionsBoundary {arn} is no policy in the account") from None
        raise


def retag_entity(iam: Any, kind: str, old: dict[str, Any], new: dict[str, Any], **who: str) -> None:
    """Bring the tags of an IAM ``kind`` (``role``, ``user``, ``policy``,
    ``instance_profile``: as IAM's TagRole and UntagRole name it) from ``old``'s to
    ``new``'s; ``who``: the entity as the calls name it (``RoleName=...``)."""
    retag(
        old.get("tags"),
        new.get("tags"),
        lambda tags: getattr(iam, f"tag_{kind}")(**who, Tags=tags),
        lambda keys: getattr(iam, f"untag_{kind}")(**who, TagKeys=keys),
    )


def entity_outputs(entity: dict[str, Any], kind: str) -> dict[str, Any]:
    """What IAM's answer tells of a role, user, group or instance profile (``kind`` as its
    fields spell it: ``Role``, ``InstanceProfile``): its name, which is its id, its ARN and
    its unique id."""
    name = entity[f"{kind}Name"]
    return {"id": name, "name": name, "arn": entity["Arn"], "uniqueId": entity[f"{kind}Id"]}
