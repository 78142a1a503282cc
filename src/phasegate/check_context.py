"""What a phase's checks (and its data copy's references) see of the stack just applied:
its outputs, its config as the phase's model reads it, the environment's AWS API, the
run's secrets, stop and work dir."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from phasegate.checks import CheckContext
from phasegate.engines.base import StackOutputs, StackTarget
from phasegate.project import CONFIG_NAMESPACE
from phasegate.s3listing import Listing
from phasegate.spec import PhaseSpec

if TYPE_CHECKING:
    from phasegate.environment import Environment

__all__ = ["check_context", "plain_config"]


def check_context(
    env: Environment,
    spec: PhaseSpec,
    target: StackTarget,
    outputs: StackOutputs,
    bake: float = 0.0,
    listings: Mapping[str, Listing] | None = None,
) -> CheckContext:
    """The context of ``spec``'s checks on ``target`` with ``outputs`` (and the listings
    the run's data copy took, for the parity proof)."""
    # Whatever engine made them, the outputs' secrets join the run's before any
    # check can echo one.
    secrets = env.project.secrets
    secrets.add_outputs(outputs.values, outputs.secret)
    return CheckContext(
        sleep=env.sleep,
        environment=env.name,
        stack=target.name,
        outputs=dict(outputs.values),
        config=plain_config(env, spec, target.config),
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
        listings=dict(listings or {}),
    )


def plain_config(env: Environment, spec: PhaseSpec, config: Mapping[str, Any]) -> dict[str, Any]:
    """A stack config as checks read it: the model's defaults filled in, no namespace."""
    prefix = f"{CONFIG_NAMESPACE}:"
    values = {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}
    model = env.project.config_models().get(spec.name)
    if model is None:
        return values
    fields = {k: v for k, v in values.items() if k in model.model_fields}
    try:
        return {**values, **model.model_validate(fields).model_dump(mode="json")}
    except ValueError:
        return values  # an older config (a last known good) the model no longer reads
