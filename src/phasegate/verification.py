"""Verifying an apply: the phase's checks run against what it made, and their verdict
decides ``verified`` (keeping the last known good) or why the phase must roll back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from phasegate import faults
from phasegate.checks import KINDS, CheckContext, CheckSpec, run_check
from phasegate.engines.base import StackOutputs, StackTarget
from phasegate.errors import Interrupted
from phasegate.events import CheckEvent, PhaseEvent
from phasegate.lkg import LastKnownGoodStore
from phasegate.machine import PhaseLifecycle
from phasegate.planning import Stage
from phasegate.project import CONFIG_NAMESPACE
from phasegate.spec import PhaseSpec
from phasegate.state import CheckResult

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
    ) -> str | None:
        """Run the phase's checks. Passed: verifying -> verified, keeping the last known
        good (and the step); failed: returns why, and the caller rolls back."""
        state = lifecycle.state
        state.checks = self.run_checks(spec, stage.target, outputs, stage.bake)
        failed = [c for c in state.checks if c.result == "fail"]
        if failed:
            return "; ".join(f"check {c.name} failed: {c.message}" for c in failed)
        state.lkg = self.lkgs.keep(stage.target, fingerprint, spec.checks)
        self.environment.engine.record_verified(stage.target, fingerprint)
        state.rollback_checks = None
        if stage.step is not None:
            state.step, state.steps = stage.step, stage.steps
        passed = sum(c.result == "pass" for c in state.checks)
        where = f" at step {stage.step + 1} of {stage.steps}" if stage.step is not None else ""
        lifecycle.fire(
            "pass",
            message=f"{passed} check(s) passed{where}" if spec.checks else "no checks declared",
        )
        return None

    def run_checks(
        self,
        spec: PhaseSpec,
        target: StackTarget,
        outputs: StackOutputs,
        bake: float,
        checks: Sequence[CheckSpec] | None = None,
        after_rollback: bool = False,
    ) -> list[CheckResult]:
        """Run ``checks`` (the phase's own by default) against ``outputs``; after a
        rollback, kinds that say so are skipped."""
        env = self.environment
        # Whatever engine made them, the outputs' secrets join the run's before any
        # check can echo one.
        secrets = env.project.secrets
        secrets.add_outputs(outputs.values, outputs.secret)
        ctx = CheckContext(
            sleep=env.sleep,
            environment=env.name,
            stack=target.name,
            outputs=dict(outputs.values),
            config=self._plain_config(spec, target.config),
            aws=lambda service: env.engine.aws_client(target, service),
            sandbox=env.spec.engine == "sandbox",
            kubeconfig=env.spec.kubeconfig,
            bake_seconds=bake,
            project_root=env.project.root,
            # Config holds `secure:` values as ciphertext; the engine added their clear
            # values (and every other secret of the run) to the registry.
            secret_values=tuple(sorted(secrets.texts())),
            on_event=env.on_progress,
            stop=env.stop,
            work_dir=env.project.work_dir,
        )
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

    def _plain_config(self, spec: PhaseSpec, config: Mapping[str, Any]) -> dict[str, Any]:
        """A stack config as checks read it: the model's defaults filled in, no namespace."""
        prefix = f"{CONFIG_NAMESPACE}:"
        values = {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}
        model = self.environment.project.config_models().get(spec.name)
        if model is None:
            return values
        fields = {k: v for k, v in values.items() if k in model.model_fields}
        try:
            return {**values, **model.model_validate(fields).model_dump(mode="json")}
        except ValueError:
            return values  # an older config (a last known good) the model no longer reads
