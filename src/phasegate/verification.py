"""Verifying an apply: the phase's checks run against what it made, and their verdict
decides ``verified`` (keeping the last known good) or why the phase must roll back."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from phasegate import faults
from phasegate.check_context import check_context
from phasegate.checks import KINDS, CheckSpec, run_check
from phasegate.copystep import copy_data
from phasegate.engines.base import StackOutputs, StackTarget
from phasegate.errors import EngineError, Interrupted
from phasegate.estimates import PhaseEstimate
from phasegate.events import CheckEvent, PhaseEvent
from phasegate.lkg import LastKnownGoodStore
from phasegate.machine import PhaseLifecycle
from phasegate.planning import DATA_SOURCE, Stage
from phasegate.s3listing import Listing
from phasegate.spec import PhaseSpec
from phasegate.state import CheckResult, PhaseState, redact

if TYPE_CHECKING:
    from phasegate.environment import Environment

__all__ = ["Verifier"]


class Verifier:
    """Runs checks for one environment."""

    def __init__(self, environment: Environment, lkgs: LastKnownGoodStore) -> None:
        self.environment = environment
        self.lkgs = lkgs

    def verify(
        self,
        lifecycle: PhaseLifecycle,
        spec: PhaseSpec,
        stage: Stage,
        fingerprint: str,
        outputs: StackOutputs,
        estimate: PhaseEstimate | None = None,
    ) -> str | None:
        """Run the phase's checks. Passed: verifying -> verified, keeping the last known
        good (and the step) and ``estimate`` as what is applied now (None: the one on
        record stays); failed: returns why, and the caller rolls back."""
        state = lifecycle.state
        listings: Mapping[str, Listing] = {}
        if spec.copy_data is not None:
            ctx = check_context(self.environment, spec, stage.target, outputs, stage.bake)
            copied = copy_data(self.environment, spec, stage.target, ctx)
            state.data_copy, listings = copied.summary, copied.listings
            if copied.failure is not None:
                state.checks = []
                return copied.failure
        state.checks = self.run_checks(spec, stage.target, outputs, stage.bake, listings=listings)
        failed = [c for c in state.checks if c.result == "fail"]
        if failed:
            return "; ".join(f"check {c.name} failed: {c.message}" for c in failed)
        verified = stage.target
        if spec.copy_data is not None:
            try:
                verified = self._point_readers_at_the_copy(state, stage.target)
            except EngineError as exc:
                return f"pointing readers at the proved copy failed: {exc}"
        state.lkg = self.lkgs.keep(verified, fingerprint, spec.checks)
        self.environment.engine.record_verified(stage.target, fingerprint)
        state.rollback_checks = None
        if stage.step is not None:
            state.step, state.steps = stage.step, stage.steps
        if estimate is not None:
            state.estimate = estimate
        passed = sum(c.result == "pass" for c in state.checks)
        where = f" at step {stage.step + 1} of {stage.steps}" if stage.step is not None else ""
        lifecycle.fire(
            "pass",
            message=f"{passed} check(s) passed{where}" if spec.checks else "no checks declared",
        )
        return None

    def _point_readers_at_the_copy(self, state: PhaseState, target: StackTarget) -> StackTarget:
        """The copy is proved: the stack applied again with its readers on the lake
        (only its ``data_source`` output changes). Returns the target as verified."""
        env = self.environment
        flipped = dataclasses.replace(target, config={**target.config, DATA_SOURCE: "lake"})
        result = env.engine.up(flipped, on_event=env.on_event)
        state.outputs = redact(dict(result.outputs.values), result.outputs.secret)
        return flipped

    def run_checks(
        self,
        spec: PhaseSpec,
        target: StackTarget,
        outputs: StackOutputs,
        bake: float,
        checks: Sequence[CheckSpec] | None = None,
        after_rollback: bool = False,
        listings: Mapping[str, Listing] | None = None,
    ) -> list[CheckResult]:
        """Run ``checks`` (the phase's own by default) against ``outputs``; after a
        rollback, kinds that say so are skipped. ``listings``: what the data copy listed
        (see :class:`~phasegate.copystep.CopyOutcome`)."""
        env = self.environment
        ctx = check_context(env, spec, target, outputs, bake, listings)
        todo = spec.checks if checks is None else checks
        env.on_progress(PhaseEvent(target.name, spec.name, "verifying", total=len(todo)))
        results = []
        for check in todo:
            skipped = KINDS[check.kind].not_rerun_after_rollback if after_rollback else None
            if skipped is not None:
                results.append(
                    CheckResult(name=check.name, kind=check.kind, result="skipped", message=skipped)
                )
                env.on_progress(
                    CheckEvent(target.name, check.name, check.kind, "skipped", message=skipped)
                )
                continue
            faults.point("check")
            if env.stop.is_set():
                raise Interrupted("stopped on request before check " + check.name)
            results.append(run_check(check, ctx))
        return results
