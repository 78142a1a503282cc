"""How a resource a program declares differs from its checkpoint: the op a plan shows.

Create when the checkpoint has none, replace when the type changed or an input that
forces replacement did, update when other inputs differ, same otherwise. An input the
program cannot know until apply (``UNKNOWN``) counts as changed.

A handler with a diff of its own (a dynamic resource's provider) decides instead, from
what is known; the program's ``replaceOnChanges`` and ``ignoreChanges`` apply either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from phasegate.engines.base import UNKNOWN, Op
from phasegate.engines.sandbox.handlers import Handler, RunContext
from phasegate.engines.sandbox.runtime import Registration
from phasegate.engines.sandbox.store import ResourceState

__all__: list[str] = []


@dataclass(frozen=True)
class _Decision:
    op: Op
    changed: tuple[str, ...] = ()
    delete_first: bool = False
    """The provider asks that a replacement delete the original first."""


def _has_unknown(value: Any) -> bool:
    if isinstance(value, str):
        return value == UNKNOWN
    if isinstance(value, dict):
        return any(_has_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_unknown(v) for v in value)
    return False


def _diff(
    handler: Handler | None, old: ResourceState | None, reg: Registration, run: RunContext
) -> _Decision:
    if old is None:
        return _Decision(Op.CREATE)
    if old.type != reg.type:
        return _Decision(Op.REPLACE, ("type",))
    keys = (set(old.inputs) | set(reg.inputs)) - set(reg.ignore_changes)
    unknown = {k for k in keys if _has_unknown(reg.inputs.get(k))}
    changed = tuple(
        sorted(k for k in keys if old.inputs.get(k) != reg.inputs.get(k) or k in unknown)
    )
    forcing = set(reg.replace_on_changes)
    own = None
    if handler is not None:
        # The provider sees what is known: an unknown or ignored input as recorded.
        same = unknown | set(reg.ignore_changes)
        known = {k: v for k, v in reg.inputs.items() if k not in same}
        known.update({k: old.inputs[k] for k in same if k in old.inputs})
        own = handler.diff(run, old.id, old.outputs, known)
        forcing |= handler.replace_on
    if own is None or own.changes is None:
        if not changed:
            return _Decision(Op.SAME)
        forcing |= set(own.replaces) if own else set()
        replaces = any(_changed_at(old.inputs, reg.inputs, key) for key in forcing)
    else:
        if not own.changes and not unknown:
            return _Decision(Op.SAME)
        replaces = bool(own.changes and own.replaces) or any(
            _changed_at(old.inputs, reg.inputs, key) for key in reg.replace_on_changes
        )
    delete_first = bool(own and own.delete_before_replace)
    if own is not None and own.changes is not None:
        changed = ()  # a provider's own diff names no properties, as with Pulumi
    return _Decision(Op.REPLACE if replaces else Op.UPDATE, changed, delete_first)


def _changed_at(old: Mapping[str, Any], new: Mapping[str, Any], key: str) -> bool:
    """Whether the (possibly nested, ``a.b``) input ``key`` differs or is unknown."""
    for part in key.split(".")[:-1]:
        old_part, new_part = old.get(part), new.get(part)
        old = old_part if isinstance(old_part, Mapping) else {}
        new = new_part if isinstance(new_part, Mapping) else {}
    last = key.rsplit(".", 1)[-1]
    return old.get(last) != new.get(last) or _has_unknown(new.get(last))
