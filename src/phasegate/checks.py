"""Post-apply checks: the probes that decide verified or rolled back.

Kinds live in an explicit registry; a check of a kind not in it is refused when
``migration.yaml`` is loaded, never skipped silently. Each kind declares its parameters
as a pydantic model, so a wrong parameter is reported with the file and line too.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from phasegate.state import CheckResult

if TYPE_CHECKING:
    from phasegate.spec import CheckSpec

__all__ = ["KINDS", "CheckContext", "CheckKind", "Probe", "run_check"]


@dataclass(frozen=True)
class CheckContext:
    """What a probe may look at: the stack just applied, its outputs and config, and the
    environment's AWS API."""

    environment: str
    stack: str
    outputs: Mapping[str, Any]
    config: Mapping[str, Any] = field(default_factory=dict)
    """The stack config with the phase model's defaults, keys without ``phasegate:``."""
    aws: Callable[[str], Any] | None = None
    """A boto3 client of a service on the environment's AWS API (sandbox: its cloud)."""
    sandbox: bool = False
    """True on the sandbox engine, where some probes cannot run (no cluster to ask)."""
    kubeconfig: str | None = None
    """The environment's kubeconfig path, for probes that talk to the cluster."""
    bake_seconds: float = 0.0
    """How long the current step bakes: probes that watch (alarms) watch this long."""


@dataclass(frozen=True)
class Probe:
    """One attempt's verdict."""

    passed: bool
    message: str


class CheckKind(ABC):
    """A kind of check: its parameter model and one probe attempt."""

    name: ClassVar[str]
    params: ClassVar[type[BaseModel]]

    @abstractmethod
    def probe(self, params: Any, ctx: CheckContext) -> Probe:
        """One attempt; raising counts as a failed attempt."""


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutputsParams(_Params):
    """Assertions over the stack's exported outputs."""

    present: list[str] = Field(default_factory=list, description="outputs that must be set")
    equals: dict[str, Any] = Field(
        default_factory=dict, description="outputs that must have exactly these values"
    )

    @model_validator(mode="after")
    def _something_to_check(self) -> OutputsParams:
        if not self.present and not self.equals:
            raise ValueError("give at least one of present, equals")
        return self


class Outputs(CheckKind):
    name = "outputs"
    params = OutputsParams

    def probe(self, params: OutputsParams, ctx: CheckContext) -> Probe:
        missing = [k for k in params.present if ctx.outputs.get(k) in (None, "", [], {})]
        wrong = [
            f"{k} is {ctx.outputs.get(k)!r}, expected {v!r}"
            for k, v in params.equals.items()
            if ctx.outputs.get(k) != v
        ]
        problems = ([f"missing outputs: {', '.join(missing)}"] if missing else []) + wrong
        if problems:
            return Probe(False, "; ".join(problems))
        checked = len(params.present) + len(params.equals)
        return Probe(True, f"{checked} output assertion(s) hold")


KINDS: dict[str, CheckKind] = {kind.name: kind for kind in (Outputs(),)}


def run_check(
    spec: CheckSpec,
    ctx: CheckContext,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> CheckResult:
    """Probe until ``required_passes`` in a row, more than ``retries`` failures, or the
    timeout. A probe that raises counts as a failed attempt with the error as message."""
    kind = KINDS[spec.kind]
    params = kind.params.model_validate(spec.params)
    start = clock()
    attempts = failures = streak = 0
    verdict = Probe(False, "not run")
    while True:
        attempts += 1
        try:
            verdict = kind.probe(params, ctx)
        except Exception as exc:  # a broken probe fails its check; it never passes it
            verdict = Probe(False, f"{type(exc).__name__}: {exc}")
        if verdict.passed:
            streak += 1
            if streak >= spec.required_passes:
                result = "pass"
                break
        else:
            streak = 0
            failures += 1
            if failures > spec.retries:
                result = "fail"
                break
        if clock() - start + spec.interval > spec.timeout:
            result = "fail"
            verdict = Probe(False, f"timed out after {spec.timeout:g}s: {verdict.message}")
            break
        sleep(spec.interval)
    return CheckResult(
        name=spec.name,
        kind=spec.kind,
        result=result,
        message=verdict.message,
        attempts=attempts,
        duration=round(clock() - start, 3),
    )
