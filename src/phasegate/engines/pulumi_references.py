"""Upstream stacks as a preview on the pulumi engine sees them: as phasegate planned them.

A ``StackReference`` reads the referenced stack from the backend. In a plan of several
phases that is not what the downstream phase will see: its upstream is not applied yet
(on a fresh environment it does not even exist, and the read fails), or its plan in the
same run changes outputs that only its apply can tell. So while a preview runs, a
reference to a stack phasegate passes as ``upstream`` resolves to those outputs (planned,
with what only an apply can tell unknown, or current), as on the sandbox engine; a
reference to any other stack is read from the backend as usual. Such a planned reference
is not registered as a resource: there is nothing in the backend to read yet.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from phasegate.engines.base import UNKNOWN, StackOutputs

__all__ = ["planned_references"]


@contextmanager
def planned_references(upstream: Mapping[str, StackOutputs]) -> Iterator[None]:
    """While in this context, ``pulumi.StackReference`` to a stack of ``upstream`` (by
    its short name, ``ENV-PHASE``) gives that stack's planned outputs."""
    import pulumi
    import pulumi.stack_reference as module

    real = module.StackReference
    if not upstream:
        yield
        return

    class PlannedReference(real):  # type: ignore[misc, valid-type]
        def __init__(self, name: str, stack_name: str | None = None, opts: Any = None) -> None:
            target = stack_name if stack_name is not None else name
            planned = upstream.get(str(target).rsplit("/", 1)[-1])
            if planned is None:
                super().__init__(name, stack_name, opts)
                return
            values = {k: _unknown_as_pulumi(v) for k, v in planned.values.items()}
            self.name = pulumi.Output.from_input(target)
            self.outputs = _output(values)
            self.secret_output_names = _output(sorted(planned.secret))

    pulumi.StackReference = module.StackReference = PlannedReference  # type: ignore[misc]
    try:
        yield
    finally:
        pulumi.StackReference = module.StackReference = real  # type: ignore[misc]


def _unknown_as_pulumi(value: Any) -> Any:
    """phasegate's ``UNKNOWN`` marker, anywhere in a value, as the SDK's unknown."""
    from pulumi.output import UNKNOWN as PULUMI_UNKNOWN

    if isinstance(value, str) and value == UNKNOWN:
        return PULUMI_UNKNOWN
    if isinstance(value, dict):
        return {k: _unknown_as_pulumi(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unknown_as_pulumi(v) for v in value]
    return value


def _output(value: Any) -> Any:
    """An output of ``value``: unknown in a preview where the value holds an unknown."""
    import pulumi

    async def now(result: Any) -> Any:
        return result

    return pulumi.Output(set(), now(value), now(True), now(False))
