"""Post-apply checks: the probes that decide verified or rolled back.

Kinds live in an explicit registry; a check of a kind not in it is refused when
``migration.yaml`` is loaded, never skipped silently. Each kind declares its parameters
as a pydantic model, so a wrong parameter is reported with the file and line too.
Parameters may name stack outputs and config (``${outputs.NAME}``,
``${config.KEY.SUB}``); see :mod:`phasegate.checks.base` for how they are resolved and
validated.

The kinds, one module of this package per area: ``storage`` (s3_bucket), ``compute``
(eks_nodegroup, launch_template), ``network`` (vpc_endpoint, route53_weights),
``traffic`` (cloudwatch_alarm, http), ``kubernetes`` (kubernetes) and ``custom``
(outputs, python).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

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
from phasegate.checks.storage import S3Bucket
from phasegate.checks.traffic import CloudwatchAlarm, Http
from phasegate.state import CheckResult

if TYPE_CHECKING:
    from phasegate.spec import CheckSpec

__all__ = [
    "KINDS",
    "CheckContext",
    "CheckError",
    "CheckKind",
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
        EksNodegroup(),
        LaunchTemplate(),
        VpcEndpoint(),
        Route53Weights(),
        CloudwatchAlarm(),
        Http(),
        Kubernetes(),
    )
}


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

    def result(
        outcome: Literal["pass", "fail", "skipped"], message: str, attempts: int
    ) -> CheckResult:
        return CheckResult(
            name=spec.name,
            kind=spec.kind,
            result=outcome,
            message=hide_secrets(message, ctx),
            attempts=attempts,
            duration=round(clock() - start, 3),
        )

    try:
        params = prepare_params(kind, spec.params, ctx)
    except (UnresolvedReference, ValueError) as exc:
        return result("fail", str(exc), 0)
    attempts = failures = streak = 0
    while True:
        attempts += 1
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
                return result("pass", verdict.message, attempts)
        else:
            streak = 0
            failures += 1
            if verdict.final or failures > spec.retries:
                return result("fail", verdict.message, attempts)
        if clock() - start + spec.interval > spec.timeout:
            so_far = (
                f"{streak} of {spec.required_passes} passes in a row, last: "
                if verdict.passed
                else ""
            )
            return result(
                "fail", f"timed out after {spec.timeout:g}s: {so_far}{verdict.message}", attempts
            )
        sleep(spec.interval)
