"""Post-apply checks: the probes that decide verified or rolled back.

Kinds live in an explicit registry; a check of a kind not in it is refused when
``migration.yaml`` is loaded, never skipped silently. Each kind declares its parameters
as a pydantic model, so a wrong parameter is reported with the file and line too.
Parameters may name stack outputs and config (``${outputs.NAME}``,
``${config.KEY.SUB}``); see :mod:`phasegate.checks.base` for how they are resolved and
validated.

The kinds, one module of this package per area: ``storage`` (s3_bucket), ``parity``
(s3_parity, with ``s3_manifest`` under it), ``compute``
(eks_nodegroup, launch_template), ``network`` (vpc_endpoint, route53_weights),
``traffic`` (cloudwatch_alarm, http), ``kubernetes`` (kubernetes) and ``custom``
(outputs, python).

A check as ``migration.yaml`` declares it, :class:`CheckSpec`, is defined here beside the
registry that checks its kind and params; :mod:`phasegate.spec` takes it from here, so
this package never needs the migration model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from phasegate.checks.base import (
    CheckContext,
    CheckError,
    CheckKind,
    Probe,
    UnresolvedReference,
    hide_secrets,
    prepare_params,
)
from phasegate.checks.compute import EksNodegroup, LaunchTemplate, load_gpu_catalog
from phasegate.checks.custom import Outputs, PythonCheck
from phasegate.checks.kubernetes import Kubernetes
from phasegate.checks.network import Route53Weights, VpcEndpoint
from phasegate.checks.parity import S3Parity
from phasegate.checks.storage import S3Bucket
from phasegate.checks.traffic import CloudwatchAlarm, Http
from phasegate.events import CheckEvent, max_attempts
from phasegate.redaction import SecretValues
from phasegate.state import CheckResult
from phasegate.yamlfile import refuse_booleans_as_numbers

__all__ = [
    "KINDS",
    "CheckContext",
    "CheckError",
    "CheckKind",
    "CheckSpec",
    "Name",
    "Probe",
    "load_gpu_catalog",
    "run_check",
]

KINDS: dict[str, CheckKind] = {
    kind.name: kind
    for kind in (
        Outputs(),
        PythonCheck(),
        S3Bucket(),
        S3Parity(),
        EksNodegroup(),
        LaunchTemplate(),
        VpcEndpoint(),
        Route53Weights(),
        CloudwatchAlarm(),
        Http(),
        Kubernetes(),
    )
}

Name = Annotated[
    str,
    Field(pattern=r"^[a-z][a-z0-9_]{0,31}$", description="lower case letters, digits and _"),
]
"""What a check is called in ``migration.yaml``; phases and environments follow the same
rule, and :mod:`phasegate.spec` names them with this type."""


class CheckSpec(BaseModel):
    """A probe run after apply that decides verified or rolled back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name = Field(description="check name, unique within the phase")
    kind: str = Field(description="check kind: one of the registered kinds")
    params: dict[str, Any] = Field(default_factory=dict, description="kind-specific parameters")
    timeout: float = Field(60.0, gt=0, description="seconds before the check fails")
    interval: float = Field(2.0, ge=0, description="seconds between attempts")
    retries: int = Field(3, ge=0, description="attempts after the first that may fail")
    required_passes: int = Field(1, ge=1, description="consecutive passes needed")

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown check kind '{kind}' (allowed: {', '.join(sorted(KINDS))})")
        return kind

    @model_validator(mode="after")
    def _params_fit_kind(self) -> CheckSpec:
        try:
            KINDS[self.kind].params.model_validate(self.params)
            refuse_booleans_as_numbers(KINDS[self.kind].params, self.params)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in ("params", *first["loc"]))
            allowed = ", ".join(KINDS[self.kind].params.model_fields)
            raise ValueError(
                f"{where}: {first['msg']} ({self.kind} takes: {allowed})".replace(
                    "Value error, ", ""
                )
            ) from None
        return self


def run_check(
    spec: CheckSpec,
    ctx: CheckContext,
    *,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> CheckResult:
    """Probe until ``required_passes`` in a row, more than ``retries`` failures, a final
    failure, or the timeout; a probe that cannot run here makes the check ``skipped``.

    A probe that raises counts as a failed attempt with the error as message. The
    timeout is looked at between attempts: a probe that watches for a while (an alarm
    through its bake) is not cut short. ``sleep`` and ``clock`` default to the context's.
    References in the params are resolved first; one that names nothing fails the check
    without an attempt. ``ctx`` is handed to the probes as it is, secrets in clear; the
    message of every result, whatever made it, has ``ctx.secret_values`` hidden here, so
    no kind, present or future, can put a secret in the state file or on the terminal.
    """
    sleep = sleep or ctx.sleep
    clock = clock or ctx.clock
    kind = KINDS[spec.kind]
    start = clock()
    most = max_attempts(spec.retries, spec.required_passes)

    def emit(status: Any, attempt: int = 0, seconds: float = 0.0, message: str = "") -> None:
        ctx.on_event(
            CheckEvent(
                ctx.stack,
                spec.name,
                spec.kind,
                status,
                attempt=attempt,
                max_attempts=most,
                seconds=seconds,
                message=hide_secrets(message, ctx) if message else "",
            )
        )

    def result(
        outcome: Literal["pass", "fail", "skipped"],
        message: str,
        attempts: int,
        detail: Mapping[str, Any] | None = None,
    ) -> CheckResult:
        done = CheckResult(
            name=spec.name,
            kind=spec.kind,
            result=outcome,
            message=hide_secrets(message, ctx),
            attempts=attempts,
            duration=round(clock() - start, 3),
            detail=None if detail is None else SecretValues(ctx.secret_values).mask_data(detail),
        )
        emit(outcome, attempts, done.duration, done.message)
        return done

    emit("start")

    try:
        params = prepare_params(kind, spec.params, ctx)
    except (UnresolvedReference, ValueError) as exc:
        return result("fail", str(exc), 0)
    attempts = failures = streak = 0
    while True:
        attempts += 1
        if kind.watches_bake and ctx.bake_seconds > 0:
            emit("baking", attempts, ctx.bake_seconds)  # an attempt that watches the bake
        else:
            emit("attempt", attempts)
        try:
            verdict = kind.probe(params, ctx)
        except CheckError as exc:
            verdict = Probe(False, str(exc))
        except Exception as exc:  # a broken probe fails its check; it never passes it
            verdict = Probe(False, f"{type(exc).__name__}: {exc}")
        if verdict.skipped:
            return result("skipped", verdict.message, attempts)
        if verdict.passed:
            streak += 1
            if streak >= spec.required_passes:
                return result("pass", verdict.message, attempts, verdict.detail)
        else:
            streak = 0
            failures += 1
            if verdict.final or failures > spec.retries:
                return result("fail", verdict.message, attempts, verdict.detail)
        if clock() - start + spec.interval > spec.timeout:
            so_far = (
                f"{streak} of {spec.required_passes} passes in a row, last: "
                if verdict.passed
                else ""
            )
            return result(
                "fail", f"timed out after {spec.timeout:g}s: {so_far}{verdict.message}", attempts
            )
        found = (
            f"passed, {streak} of {spec.required_passes} in a row" if verdict.passed else "failed"
        )
        emit("waiting", attempts, spec.interval, f"{found}: {verdict.message}")
        sleep(spec.interval)
