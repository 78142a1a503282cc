"""``migrate recover``: finish what a killed run left. Each interrupted or failed stack is
refreshed, then an interrupted apply is rolled back, an interrupted verification finished
(only of what was applied, intact) and an interrupted or failed rollback done again.

And the other side of it: a run stopped on request says where it left each stack and
that ``migrate recover`` finishes them (:func:`saying_where_stopped`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from phasegate.engines.base import Op, StackOutputs
from phasegate.errors import InputError, Interrupted, PhasegateError
from phasegate.machine import INTERRUPTED
from phasegate.planning import Planner, RunMemory, Stage
from phasegate.reports import PhaseReport
from phasegate.rollback import Rollback
from phasegate.spec import PhaseSpec
from phasegate.state import PhaseState

if TYPE_CHECKING:
    from phasegate.environment import Environment

__all__ = ["Recovery", "saying_where_stopped"]


class Recovery:
    """Recovers the stacks of one environment."""

    def __init__(self, environment: Environment, planner: Planner, rollback: Rollback) -> None:
        self.environment = environment
        self.planner = planner
        self.rollback = rollback

    def recover(self) -> list[PhaseReport]:
        """Every stack left interrupted or in rollback_failed; others are left alone."""
        env = self.environment
        with env.locked():
            states = env.read_all()
            reports = []
            with env.naming_unfinished(states):
                for spec in env.project.migration.phases:
                    state = states[spec.name]
                    if state.status in (*INTERRUPTED, "rollback_failed"):
                        reports.append(self._recover_phase(spec, state))
            return reports

    def _recover_phase(self, spec: PhaseSpec, state: PhaseState) -> PhaseReport:
        env = self.environment
        lifecycle = env.lifecycle(state)
        target = self.rollback.target(spec, state)
        # Gone from the cloud, that is; a property drift (Pulumi's refresh updates) is not.
        drift = [c for c in env.engine.refresh(target) if c.op is Op.DELETE]
        note = f" (refresh: {len(drift)} resource(s) no longer in the cloud)" if drift else ""
        if state.status == "verifying":
            # Finish the verification only of what was applied, intact: if the program,
            # config or upstream outputs changed since, the applied version cannot be kept
            # as known good from the working tree; if some of it is gone from the cloud,
            # it is not what was applied. Either way it is rolled back instead.
            stage: Stage | None
            try:
                stage = self.planner.stage(spec, state)
                upstream = self.planner.upstream_outputs(spec, RunMemory())
                fingerprint = self.planner.fingerprint(spec, stage.target, upstream)
            except InputError:
                stage, fingerprint = None, ""
            reason = None
            if stage is None or fingerprint != state.fingerprint:
                reason = "the working tree changed since the interrupted apply"
            elif drift:
                reason = "what the interrupted apply made is no longer all in the cloud"
            if stage is None or reason is not None:
                reason = (reason or "") + note
                lifecycle.fire("fail", message=reason)
                return self.rollback.roll_back(lifecycle, spec, target, reason)
            outputs = env.engine.outputs(state.stack) or StackOutputs()
            failed = self.rollback.verifier.verify(lifecycle, spec, stage, fingerprint, outputs)
            if failed:
                lifecycle.fire("fail", message=failed)
                return self.rollback.roll_back(lifecycle, spec, target, failed + note)
            return PhaseReport(
                spec.name, state.stack, state.status, "verified", message="verified" + note
            )
        if state.status == "applying":
            lifecycle.fire("fail", message="the run applying it was interrupted")
        elif state.status == "rollback_failed":
            lifecycle.fire("retry", message="rollback retried by recover")
        return self.rollback.roll_back(
            lifecycle, spec, target, "interrupted or failed run recovered" + note
        )


@contextlib.contextmanager
def saying_where_stopped(env: Environment, reports: list[PhaseReport]) -> Iterator[None]:
    """A run stopped on request says what it did, where each stack is left (as its
    state file says), and how to go on."""
    try:
        yield
    except Interrupted as stopped:
        acted = [r for r in reports if r.outcome != "no changes"]
        done = [f"{r.stack} {r.outcome} ({r.status})" for r in acted]
        try:
            left = [s for s in env.read_all().values() if s.status in INTERRUPTED]
        except PhasegateError:  # a file it cannot read: `migrate status` will say so
            left = []
        said = [stopped.message]
        if done:
            said.append("done before it: " + ", ".join(done))
        said += [f"{s.stack} is left {s.status.replace('_', ' ')}" for s in left]
        if not done and not left:
            said.append("nothing was changed")
        stopped.message = "; ".join(said)
        if left:
            stopped.hint = (
                f"run `migrate recover --env {env.name}`: it rolls back an apply that "
                "was cut short and finishes a verification"
            )
        raise
