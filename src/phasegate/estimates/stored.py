"""How many bytes a phase's data copy puts in the lake, for its storage estimate.

From the state file when the copy has run (the source's bytes it listed then, said with
its date), else from one listing of the copy's source now (the legacy estate), said as
such. When neither can be had (a reference only an apply resolves, a bucket that cannot
be listed) the bytes are unknown, with the reason: never a guess.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from phasegate.check_context import check_context
from phasegate.checks.base import UnresolvedReference, resolve_references
from phasegate.datacopy import DataCopyError, Location
from phasegate.datacopy.globs import KeyFilter
from phasegate.datacopy.plan import list_objects
from phasegate.errors import PhasegateError
from phasegate.estimates.estimator import StoredData
from phasegate.spec import CopyEnd

if TYPE_CHECKING:
    from phasegate.engines.base import StackOutputs, StackTarget
    from phasegate.environment import Environment
    from phasegate.spec import PhaseSpec
    from phasegate.state import PhaseState

__all__ = ["stored_data"]


def stored_data(
    environment: Environment,
    spec: PhaseSpec,
    state: PhaseState,
    target: StackTarget,
    outputs: StackOutputs,
) -> StoredData | None:
    """What the phase's copy stores (None: the phase has no copy)."""
    step = spec.copy_data
    if step is None:
        return None
    into = f"{step.target.bucket}/{step.target.prefix}".rstrip("/")
    done = state.data_copy
    if done is not None and done.failed_objects == 0:
        return StoredData(
            done.target,
            done.listed_bytes,
            f"listed in {done.source} by the last copy ({done.at}, on the state file)",
        )
    try:
        ctx = check_context(environment, spec, target, outputs)
        end = CopyEnd.model_validate(
            resolve_references(step.source.model_dump(), ctx, "copy.source")
        )
        source = Location(end.bucket, end.prefix)
        keys = KeyFilter(step.include, step.exclude)
        client = environment.engine.aws_client(target, "s3")
        total = sum(listed.size for key, listed in list_objects(client, source) if keys(key))
    except (UnresolvedReference, DataCopyError, PhasegateError, ValueError) as exc:
        return StoredData(into, None, f"the copy's source cannot be listed now: {exc}")
    return StoredData(into, total, f"listed now in {source} (what the copy will copy)")
