"""IAM's AWS-managed policies in an emulator dump: the untouched ones travel as names.

moto makes about 1,600 AWS-managed policies in every account, from data it bundles. A
run dumps the emulated cloud after every resource operation, and pickled whole these
policies were most of each dump's bytes and time. So :mod:`snapshot`'s pickler hands
IAM backends and policy versions to the reductions here:

* an IAM backend travels with every policy still as moto made it (not attached, tagged
  or given versions since: checked field by field) as its name and id. A load makes
  those again from moto's data, ids kept, in the order IAM listed them;
* any other policy travels whole, except that a version's document that is still
  moto's text for it travels without the text (:func:`reduce_policy_version`).
"""

from __future__ import annotations

import functools
import json
from typing import Any

__all__ = ["reduce_iam_backend", "reduce_policy_version"]

_AS_MADE_REGION = "us-east-1"
"""The region policies are made for on load (it decides their partition): a policy of
another partition is never "as made" and travels whole."""


@functools.cache
def _aws_policy_data() -> dict[str, tuple[str, dict[str, Any]]]:
    """moto's data of every AWS-managed policy: name and spec by ``policy{path}{name}``."""
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    data = json.loads(aws_managed_policies_data)
    return {f"policy{spec.get('Path') or '/'}{name}": (name, spec) for name, spec in data.items()}


@functools.cache
def _aws_policy_documents() -> dict[str, str]:
    """Document of every AWS-managed policy, by ``policy{path}{name}``, as moto makes it."""
    return {key: json.dumps(spec.get("Document")) for key, (_, spec) in _aws_policy_data().items()}


def _made(key: str, account_id: str) -> Any:
    """The AWS-managed policy ``key`` as moto makes it for ``account_id``."""
    from moto.iam.models import AWSManagedPolicy

    name, spec = _aws_policy_data()[key]
    return AWSManagedPolicy.from_data(name, account_id, _AS_MADE_REGION, spec)


# -- policies as made ---------------------------------------------------------------------

_SEEN: dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any]]] = {}
"""By (key, account): the fields of a policy last found as moto made it (its lists and
dicts copied, as they may change in place) and of its one version, so later dumps check
it by two dict comparisons, mostly of the very same objects."""


def _as_made_key(policy: Any) -> str | None:
    """The key of ``policy`` if it is still as moto made it; None if it was changed."""
    if policy.attachment_count or policy.tags or len(policy.versions) != 1:
        return None
    key = f"policy{policy.path}{policy.name}"
    seen = _SEEN.get((key, policy.account_id))
    if seen is None or vars(policy) != seen[0] or vars(policy.versions[0]) != seen[1]:
        seen = _compare_with_made(policy, key)
    return key if seen is not None else None


def _compare_with_made(policy: Any, key: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Compare ``policy`` field by field with the one moto makes from its data; what it
    holds (for :data:`_SEEN`) if they match, None if not."""
    if key not in _aws_policy_data():
        return None
    made = _made(key, policy.account_id)
    ignored = ("id", "versions")
    if {k: v for k, v in vars(policy).items() if k not in ignored} != {
        k: v for k, v in vars(made).items() if k not in ignored
    } or vars(policy.versions[0]) != vars(made.versions[0]):
        return None
    held = {**vars(policy), "versions": list(policy.versions), "tags": dict(policy.tags)}
    seen = (held, dict(vars(policy.versions[0])))
    _SEEN[(key, policy.account_id)] = seen
    return seen


# -- the IAM backend ------------------------------------------------------------------------


class _PolicyList:
    """Stands in for a backend's ``aws_managed_policies`` in a dump: each policy as made
    as ``"key id"``, any other whole; loads as the list."""

    def __init__(self, account_id: str, entries: list[Any]) -> None:
        self.account_id = account_id
        self.entries = entries

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_policy_list, (self.account_id, self.entries))


class _PolicyMap:
    """Stands in for a backend's ``managed_policies`` (ARN -> policy) in a dump: the ARNs
    in order, the AWS-managed ones taken from the list, the others whole."""

    def __init__(self, order: list[str], aws: _PolicyList, others: dict[str, Any]) -> None:
        self.order = order
        self.aws = aws
        self.others = others

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_policy_map, (self.order, self.aws, self.others))


def reduce_iam_backend(backend: Any) -> Any:
    """An IAM backend as its state, with its policies as made standing in as names."""
    managed = backend.managed_policies
    entries: list[Any] = []
    made: set[str] = set()
    for policy in backend.aws_managed_policies:
        key = _as_made_key(policy)
        if key is not None and managed.get(arn := policy.arn) is policy:
            entries.append(f"{key} {policy.id}")
            made.add(arn)
        else:
            entries.append(policy)
    if not made:
        return NotImplemented
    state = dict(vars(backend))
    aws = _PolicyList(backend.account_id, entries)
    state["aws_managed_policies"] = aws
    state["managed_policies"] = _PolicyMap(
        list(managed), aws, {arn: p for arn, p in managed.items() if arn not in made}
    )
    return (_new_backend, (type(backend),), state)


def _new_backend(cls: type[Any]) -> Any:
    backend: Any = object.__new__(cls)  # its state follows, as for any pickled object
    return backend


def _rebuild_policy_list(account_id: str, entries: list[Any]) -> list[Any]:
    policies = []
    for entry in entries:
        if isinstance(entry, str):
            key, policy_id = entry.split(" ")
            entry = _made(key, account_id)
            entry.id = policy_id
        policies.append(entry)
    return policies


def _rebuild_policy_map(order: list[str], aws: list[Any], others: dict[str, Any]) -> dict[str, Any]:
    by_arn = {policy.arn: policy for policy in aws}
    return {arn: others[arn] if arn in others else by_arn[arn] for arn in order}


# -- versions of other policies -------------------------------------------------------------


def reduce_policy_version(version: Any) -> Any:
    """A version of an AWS-managed policy without its document, if that is moto's text."""
    parts = str(version.policy_arn).split(":", 5)
    if len(parts) == 6 and parts[2] == "iam" and parts[4] == "aws":
        document = _aws_policy_documents().get(parts[5])
        if document is not None and version.document == document:
            state = {k: v for k, v in vars(version).items() if k != "document"}
            return (_rebuild_policy_version, (type(version), parts[5], state))
    return NotImplemented


def _rebuild_policy_version(cls: type[Any], policy: str, state: dict[str, Any]) -> Any:
    version: Any = object.__new__(cls)
    vars(version).update(state)
    version.document = _aws_policy_documents()[policy]
    return version
