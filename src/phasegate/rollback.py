"""Rollback: the last known good re-applied and checked again; a stepped phase back at its
baseline; a phase never verified has what it created destroyed. Protected resources are
kept whatever happens, and a rollback that fails leaves ``rollback_failed``."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from phasegate import faults
from phasegate.engines.base import Plan, ProgramSource, StackTarget
from phasegate.errors import EngineError, GateBlocked, InputError, describe
from phasegate.events import PhaseEvent
from phasegate.gates import refuse_interrupted
from phasegate.machine import PhaseLifecycle
from phasegate.planning import DATA_SOURCE, STEP, Planner
from phasegate.reports import PhaseReport
from phasegate.spec import PhaseSpec
from phasegate.state import PhaseState, redact
from phasegate.verification import Verifier

if TYPE_CHECKING:
    from phasegate.environment import Environment

__all__ = ["Rollback"]


class Rollback:
    """Rolls back the phases of one environment."""

    def __init__(self, environment: Environment, planner: Planner, verifier: Verifier) -> None:
        self.environment = environment
        self.planner = planner
        self.verifier = verifier
        self.lkgs = verifier.lkgs

    def target(self, spec: PhaseSpec, state: PhaseState) -> StackTarget:
        """The stack as a rollback or a recovery addresses it. A rollback with a last known
        good needs nothing of the working tree, so a stack config broken since (the likely
        cause of the failure) does not stop it."""
        env = self.environment.spec
        project = self.environment.project
        try:
            return self.planner.stage(spec, state).target
        except InputError:
            if state.lkg is None:
                raise
        # The stack file unvalidated: its settings (secrets provider, salt) still count.
        with contextlib.suppress(InputError):
            return project.target(env, spec)
        # Not even readable: the last known good is all there is.
        return StackTarget(
            project=project.name,
            environment=env.name,
            phase=spec.name,
            region=env.region,
            program=ProgramSource(module=self.lkgs.program_module(state.lkg), files={}),
            config={},
            protected=frozenset(spec.protected),
            endpoint_url=env.aws.endpoint_url,
            profile=env.aws.profile,
            backend=env.backend,
        )

    def roll_back(
        self,
        lifecycle: PhaseLifecycle,
        spec: PhaseSpec,
        target: StackTarget,
        reason: str,
        plan: Plan | None = None,
    ) -> PhaseReport:
        """rolling_back -> rolled_back (or rollback_failed); the report says which.

        The last known good is re-applied and checked again; with none, what the failed
        apply created is destroyed, protected resources kept. A stepped phase goes back to
        its baseline (cutover: all traffic on legacy) instead, on its last known good."""
        engine = self.environment.engine
        on_event = self.environment.on_event
        state = lifecycle.state
        started = time.monotonic()
        kept: tuple[str, ...] = ()
        state.rollback_checks = None  # this rollback's own, once it gets that far

        def report(outcome: str, message: str) -> PhaseReport:
            return PhaseReport(
                state.phase,
                state.stack,
                state.status,
                outcome,
                plan,
                message=message,
                kept=kept,
                rollback_seconds=time.monotonic() - started,
                checks=state.checks,
                rollback_checks=state.rollback_checks or [],
            )

        self.environment.on_progress(PhaseEvent(target.name, spec.name, "rolling_back"))
        try:
            faults.point("rollback")
            base = self.lkgs.target(target, state.lkg) if state.lkg is not None else target
            baseline = _baseline(base.config)
            if baseline is not None or state.lkg is not None:
                if baseline is not None:
                    base = dataclasses.replace(base, config={**base.config, **baseline})
                # Protected resources only the failed version had stay, released.
                result = engine.up(base, on_event=on_event, release_protected=True)
                kept = result.kept
                state.outputs = redact(dict(result.outputs.values), result.outputs.secret)
                checks = self.verifier.run_checks(
                    spec,
                    base,
                    result.outputs,
                    0.0,
                    checks=self.lkgs.checks(spec, state.lkg) if state.lkg is not None else None,
                    after_rollback=True,
                )
                state.rollback_checks = checks
                failed = [c for c in checks if c.result == "fail"]
                if failed:
                    raise EngineError(
                        "after the rollback "
                        + "; ".join(f"check {c.name} failed: {c.message}" for c in failed)
                    )
            else:
                self._prove_never_verified(state, target)
                result = engine.destroy(target, on_event=on_event)
                state.outputs = {}
                kept = result.kept
            if STEP in base.config:
                state.step = -1
                what = "its baseline (all traffic on legacy)"
            elif DATA_SOURCE in base.config:
                what = "readers on legacy (the lake and the data copied into it kept), on " + (
                    "its last known good" if state.lkg is not None else "the version applied"
                )
            elif state.lkg is not None:
                what = "its last known good"
            else:
                what = "nothing (destroyed what it created)"
            lifecycle.fire("ok", message=f"rolled back to {what} after: {reason}")
        except Exception as exc:
            # A failure of any kind here (the engine, a check, a policy pack that now
            # rejects the last known good, a full disk) is a failed rollback.
            failure = f"rollback failed: {describe(exc)}"
            try:
                lifecycle.fire("error", message=failure)
            except Exception as unwritten:
                # What failed the rollback may refuse this write too: the stack stays
                # rolling_back on disk, which `migrate recover` finishes.
                failure += (
                    f"; rollback_failed could not be recorded either ({describe(unwritten)}),"
                    f" so the stack stays {state.status}"
                )
            return report("rollback failed", f"{reason}; and the {failure}")
        return report("rolled back", f"{reason}; rolled back to {what}")

    def _prove_never_verified(self, state: PhaseState, target: StackTarget) -> None:
        """The destroy path deletes what the stack has: it is taken only when the state
        file and the engine's own record both say the stack was never verified (since the
        sandbox was last reset). Otherwise a last known good is missing that should be
        there, and destroying would take down what a verified version built."""
        since_reset: list[str] = []
        for entry in state.history:
            since_reset = [] if entry.event == "reset" else [*since_reset, entry.event]
        if "pass" in since_reset:
            raise EngineError(
                "refusing to destroy: the state file records a verified apply but keeps no "
                "last known good to roll back to; nothing was deleted",
                stack=state.stack,
            )
        try:
            recorded = self.environment.engine.verified_fingerprint(target)
        except EngineError as exc:
            raise EngineError(
                f"refusing to destroy: {exc}; nothing was deleted", stack=state.stack
            ) from None
        if recorded is not None:
            raise EngineError(
                "refusing to destroy: the engine's record says the stack was verified (at "
                f"{recorded.split(':', 1)[-1][:12]}), the state file says never; nothing was "
                "deleted",
                stack=state.stack,
                hint="restore the state file from version control, then `migrate recover`",
            )

    def by_hand(self, phase: str) -> PhaseReport:
        """``migrate rollback``: what a failed apply does, by hand, from wherever the stack
        stands (an interrupted or failed run included)."""
        env = self.environment
        spec = env.project.migration.phase(phase)
        with env.locked():
            states = env.read_all()
            refuse_interrupted(env.project.migration.phases, states, env.name, allow=spec.name)
            state = states[spec.name]
            if state.status == "pending":
                raise GateBlocked(f"{state.stack} was never applied: there is nothing to roll back")
            target = self.target(spec, state)  # before any transition is written
            lifecycle = env.lifecycle(state)
            reason = "rolled back by hand"
            if state.status in ("applying", "verifying"):
                lifecycle.fire("fail", message=reason)
            elif state.status == "rollback_failed":
                lifecycle.fire("retry", message=reason)
            else:
                lifecycle.fire("rollback", message=reason)
            return self.roll_back(lifecycle, spec, target, reason)


def _baseline(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The config a rollback applies instead of destroying or restoring as is: a stepped
    phase at its baseline step (all traffic on legacy), a phase with a data copy with its
    readers on legacy (its data kept). None for any other phase."""
    if STEP in config:
        return {STEP: -1}
    if DATA_SOURCE in config:
        return {DATA_SOURCE: "legacy"}
    return None
