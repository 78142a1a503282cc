"""How a resource a program declares differs from its checkpoint: the op a plan shows.

Create when the checkpoint has none, replace when the type changed or an input that
forces replacement did, update when other inputs differ, same otherwise. An input the
program cannot know until apply (``UNKNOWN``) counts as changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from phasegate.engines.base import UNKNOWN, Op
from phasegate.engines.sandbox.handlers import Handler
from phasegate.engines.sandbox.runtime import Registration
from phasegate.engines.sandbox.store import ResourceState

__all__: list[str] = []


def _has_unknown(value: Any) -> bool:
    if isinstance(value, str):
        return value == UNKNOWN
    if isinstance(value, dict):
        return any(_has_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_unknown(v) for v in value)
    return False


def _diff(
    handler: Handler | None, old: ResourceState | None, reg: Registration
) -> tuple[Op, tuple[str, ...]]:
    if old is None:
        return Op.CREATE, ()
    if old.type != reg.type:
        return Op.REPLACE, ("type",)
    keys = (set(old.inputs) | set(reg.inputs)) - set(reg.ignore_changes)
    changed = tuple(
        sorted(
            k
            for k in keys
            if old.inputs.get(k) != reg.inputs.get(k) or _has_unknown(reg.inputs.get(k))
        )
    )
    if not changed:
        return Op.SAME, ()
    forcing = (handler.replace_on if handler else frozenset()) | set(reg.replace_on_changes)
    replaces = any(_changed_at(old.inputs, reg.inputs, key) for key in forcing)
    return (Op.REPLACE if replaces else Op.UPDATE), changed


def _changed_at(old: Mapping[str, Any], new: Mapping[str, Any], key: str) -> bool:
    """Whether the (possibly nested, ``a.b``) input ``key`` differs or is unknown."""
    for part in key.split(".")[:-1]:
        old_part, new_part = old.get(part), new.get(part)
        old = old_part if isinstance(old_part, Mapping) else {}
        new = new_part if isinstance(new_part, Mapping) else {}
    last = key.rsplit(".", 1)[-1]
    return old.get(last) != new.get(last) or _has_unknown(new.get(last))
