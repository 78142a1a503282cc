"""What every check kind is made of: the context a probe sees, its verdict, the kind base
class, and parameter references.

References
----------
A parameter value may come from the stack just applied or its config:

* ``${outputs.NAME}`` — a stack output; ``${outputs.NAME.KEY}`` or ``${outputs.NAME.0}``
  goes into a map or list output;
* ``${config.KEY.SUB}`` — a dotted path into the stack config, keys without the
  ``phasegate:`` prefix (``${config.inference_pool.instance_types}``).

A value that is exactly one reference is replaced by what it names and keeps its type
(a list stays a list, a number a number). A reference inside a longer string is put in
as text (``http://${outputs.inference_dns}/healthz``). A reference to nothing fails the
check with a message that names it.

Validation happens twice, against one model per kind with the real types:

1. When ``migration.yaml`` loads, :class:`Params` accepts a reference wherever a value
   is expected: errors at a reference's position are forgiven, nothing else is (an
   unknown parameter name is refused even when its value is a reference, a malformed
   reference is refused, and every literal value is checked as usual). Params that hold
   references come out unvalidated from this step; only the loader sees them.
2. :func:`prepare_params` resolves the references at run time and validates the result
   again, references no longer allowed: a resolved value of the wrong type fails the check.
"""

from __future__ import annotations

import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from phasegate.errors import aws_error_code as error_code
from phasegate.events import CheckEvent, ignore
from phasegate.redaction import SecretValues
from phasegate.s3listing import Listing

__all__ = [
    "CheckContext",
    "CheckError",
    "CheckKind",
    "Params",
    "Probe",
    "UnresolvedReference",
    "aws_client",
    "error_code",
    "hide_secrets",
    "prepare_params",
    "resolve_references",
]

_REFERENCE = re.compile(r"\$\{(outputs|config)((?:\.[A-Za-z0-9_-]+)+)\}")
_LOOKS_LIKE_REFERENCE = re.compile(r"\$\{\s*(?:outputs|config)\b")
_RESOLVED = "phasegate.checks.references_resolved"
"""Validation context key: set once references are resolved, so none is forgiven."""


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
    project_root: Path | None = None
    """The project root. ``python`` checks import their module from its ``phases/`` first;
    ``eks_nodegroup`` reads ``phases/catalog.py`` there when ``gpu_catalog`` is not given."""
    gpu_catalog: Mapping[str, int] | None = None
    """GPUs per instance by EC2 instance type (``load_gpu_catalog`` reads the project's),
    for ``eks_nodegroup``'s ``min_gpus``."""
    clock: Callable[[], float] = time.monotonic
    """Seconds, monotonic: bake and latency timing, and run_check's timeout."""
    sleep: Callable[[float], None] = time.sleep
    """How probes and run_check wait between looks."""
    secret_values: tuple[Any, ...] = ()
    """The plain secret values of the run (strings, numbers, lists, maps): the
    verifier passes every text of the run's :class:`~phasegate.redaction.SecretValues`.
    Probes see ``outputs`` and ``config`` in clear, so a message can echo a secret;
    run_check puts ``[secret]`` in its place before the message reaches the state file,
    the history or the terminal."""
    on_event: Callable[[CheckEvent], None] = ignore
    """Where run_check reports each check's attempts, waits and verdict as it goes."""
    stop: threading.Event = field(default_factory=threading.Event)
    """Set when the person running the command asks it to stop: a probe that works
    through many things (s3_parity's objects) looks at it between them and raises
    :class:`~phasegate.errors.Interrupted`."""
    work_dir: Path | None = None
    """Where probes may keep what they computed for the next run (the project's
    ``.phasegate/``); None: they keep nothing."""
    listings: Mapping[str, Listing] = field(default_factory=dict)
    """Listings this run took and wrote nothing to since (the data copy's), by
    ``s3://bucket/prefix``: a probe may take them instead of listing again."""


@dataclass(frozen=True)
class Probe:
    """One attempt's verdict."""

    passed: bool
    message: str
    skipped: bool = False
    """The probe cannot run here (no cluster in the sandbox): the check is skipped with
    ``message`` as the reason. Never a pass."""
    final: bool = False
    """A failure no retry can undo (an alarm fired during the bake): the check fails now."""
    detail: Mapping[str, Any] | None = None
    """What the probe found, as JSON-like data the state file keeps beside the message."""

    def __post_init__(self) -> None:
        if self.passed and (self.skipped or self.final):
            raise ValueError("a probe that passed is neither skipped nor a final failure")

    @classmethod
    def skip(cls, reason: str) -> Probe:
        return cls(False, reason, skipped=True)


class CheckError(Exception):
    """What a probe found wrong, worded for the user: the attempt fails with this message."""


class CheckKind(ABC):
    """A kind of check: its parameter model and one probe attempt."""

    name: ClassVar[str]
    params: ClassVar[type[BaseModel]]
    not_rerun_after_rollback: ClassVar[str | None] = None
    """Why checks of this kind are not run again on what a rollback restored (skipped,
    with this as the message); None: they are."""
    watches_bake: ClassVar[bool] = False
    """Whether one probe watches for the step's whole bake (``ctx.bake_seconds``), so an
    attempt of it is reported as baking."""

    @abstractmethod
    def probe(self, params: Any, ctx: CheckContext) -> Probe:
        """One attempt; raising counts as a failed attempt."""


class UnresolvedReference(Exception):
    """A reference names nothing in the stack's outputs or config, or cannot go where it is."""


def _is_reference_site(value: Any) -> bool:
    return isinstance(value, str) and _LOOKS_LIKE_REFERENCE.search(value) is not None


def _reference_sites(value: Any, loc: tuple[str | int, ...] = ()) -> Iterator[tuple]:
    """Where strings that hold references sit in raw params, as pydantic locations."""
    if _is_reference_site(value):
        yield loc
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _reference_sites(item, (*loc, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _reference_sites(item, (*loc, index))


def _malformed(text: str) -> str | None:
    """The first thing in ``text`` that starts like a reference but is not one."""
    wellformed = {m.start() for m in _REFERENCE.finditer(text)}
    for start in _LOOKS_LIKE_REFERENCE.finditer(text):
        if start.start() not in wellformed:
            return text[start.start() :].split("}", 1)[0] + "}"
    return None


class Params(BaseModel):
    """Base of every kind's parameters: unknown names refused, references accepted at load."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="wrap")
    @classmethod
    def _accept_references(
        cls, data: Any, handler: ModelWrapValidatorHandler[Params], info: ValidationInfo
    ) -> Params:
        if (info.context or {}).get(_RESOLVED):
            return handler(data)
        sites = list(_reference_sites(data))
        if not sites:
            return handler(data)
        bad = [
            {
                "type": "value_error",
                "loc": loc,
                "input": _get(data, loc),
                "ctx": {
                    "error": ValueError(
                        f"'{_malformed(_get(data, loc))}' is not a reference: write "
                        "${outputs.NAME} or ${config.KEY.SUB}"
                    )
                },
            }
            for loc in sites
            if _malformed(_get(data, loc))
        ]
        if bad:
            raise ValidationError.from_exception_data(cls.__name__, bad)  # type: ignore[arg-type]
        try:
            return handler(data)
        except ValidationError as exc:
            left = [
                error
                for error in exc.errors()
                if error["type"] == "extra_forbidden"
                or not any(tuple(error["loc"][: len(site)]) == site for site in sites)
            ]
            if left:
                raise ValidationError.from_exception_data(exc.title, left) from None  # type: ignore[arg-type]
            # Everything wrong sits where a reference will go: checked after resolution.
            return (
                cls.model_construct(**data) if isinstance(data, Mapping) else cls.model_construct()
            )


def _get(data: Any, loc: tuple) -> Any:
    for part in loc:
        data = data[part]
    return data


def _lookup(reference: str, source: str, path: str, ctx: CheckContext) -> Any:
    value: Any = ctx.outputs if source == "outputs" else ctx.config
    walked = source
    for part in path.strip(".").split("."):
        if isinstance(value, Mapping):
            if part not in value:
                what = {
                    "outputs": ("the stack has no output", "outputs"),
                    "config": ("the stack config has no key", "keys"),
                }.get(walked, (f"{walked} has no key", "keys"))
                keys = ", ".join(sorted(str(k) for k in value)) or "none"
                raise UnresolvedReference(f"{reference}: {what[0]} '{part}' ({what[1]}: {keys})")
            value = value[part]
        elif isinstance(value, Sequence) and not isinstance(value, str) and part.isdigit():
            if int(part) >= len(value):
                raise UnresolvedReference(
                    f"{reference}: {walked} has {len(value)} items, no item {part}"
                )
            value = value[int(part)]
        else:
            raise UnresolvedReference(f"{reference}: {walked} is {value!r}, which has no '{part}'")
        walked = f"{walked}.{part}"
    return value


def _as_text(reference: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise UnresolvedReference(
        f"{reference} is a {type(value).__name__}: only a whole value can take it, not "
        "part of a string"
    )


def resolve_references(value: Any, ctx: CheckContext, where: str = "params") -> Any:
    """``value`` with every reference replaced; UnresolvedReference names the one that is not."""
    if isinstance(value, str):
        bad = _malformed(value)
        if bad:
            raise UnresolvedReference(f"{where}: '{bad}' is not a reference")
        whole = _REFERENCE.fullmatch(value)
        try:
            if whole:
                return _lookup(value, whole[1], whole[2], ctx)
            return _REFERENCE.sub(lambda m: _as_text(m[0], _lookup(m[0], m[1], m[2], ctx)), value)
        except UnresolvedReference as exc:
            raise UnresolvedReference(f"{where}: {exc}") from None
    if isinstance(value, Mapping):
        return {k: resolve_references(v, ctx, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [resolve_references(v, ctx, f"{where}.{i}") for i, v in enumerate(value)]
    return value


def prepare_params(kind: CheckKind, raw: Mapping[str, Any], ctx: CheckContext) -> BaseModel:
    """The kind's params with references resolved, validated against the real types.

    Raises UnresolvedReference for a reference to nothing and ValueError for a resolved
    value that does not fit, each with one line naming the parameter.
    """
    resolved = resolve_references(dict(raw), ctx)
    try:
        return kind.params.model_validate(resolved, context={_RESOLVED: True})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in ("params", *first["loc"]))
        message = str(first["msg"]).replace("Value error, ", "")
        if first["type"] != "missing":
            message += f" (it is {first['input']!r} once references are resolved)"
        raise ValueError(f"{where}: {message}") from None


def hide_secrets(message: str, ctx: CheckContext) -> str:
    """``message`` with every spelling of each of ``ctx.secret_values`` as ``[secret]``."""
    return SecretValues(ctx.secret_values).mask(message)


def aws_client(ctx: CheckContext, service: str) -> Any:
    """A client of ``service`` on the environment's AWS API; CheckError when there is none."""
    if ctx.aws is None:
        raise CheckError(f"environment {ctx.environment} gives checks no AWS API to ask")
    return ctx.aws(service)
