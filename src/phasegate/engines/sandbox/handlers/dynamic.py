"""Python dynamic providers (``pulumi.dynamic.Resource``): the program's own provider,
called in this process the way Pulumi's provider server (``pulumi/dynamic/__main__.py``)
calls it.

The provider travels pickled in the resource's ``__provider`` input. Each call loads it
afresh and configures it with the stack config, so a run uses the program version it
runs, never one loaded earlier. Values reach it as through the wire (numbers as floats,
values unknown in a preview as the SDK's sentinel). Its outputs are what it returns plus
``__provider``; an input it does not return is not an output.

As with Pulumi: ``check`` and ``read`` are optional; ``diff`` answering ``changes=None``
(the base class's) leaves it to a comparison of the inputs; a provider without an
``update`` (not even the base class's) cannot change a resource in place.
"""

from __future__ import annotations

import base64
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from phasegate.engines.base import UNKNOWN
from phasegate.engines.programs import purge_modules
from phasegate.engines.sandbox.handlers.base import (
    CloudContext,
    Handler,
    HandlerError,
    ProviderDiff,
    RunContext,
)
from phasegate.engines.sandbox.runtime import _from_wire, _plain, _struct

__all__ = ["HANDLERS", "PROVIDER_KEY", "DynamicResource", "is_dynamic"]

PROVIDER_KEY = "__provider"
_TYPE_PREFIX = "pulumi-python:dynamic"


def is_dynamic(type_token: str) -> bool:
    """``pulumi-python:dynamic:Resource``, or ``dynamic/<module>:<Name>`` of a subclass."""
    return type_token.startswith(_TYPE_PREFIX + ":") or type_token.startswith(_TYPE_PREFIX + "/")


class DynamicResource(Handler):
    type = "pulumi-python:dynamic:Resource"
    emulates_every_input = True  # the program's own provider gets them all

    def check(
        self, run: RunContext, old: dict[str, Any] | None, new: dict[str, Any]
    ) -> dict[str, Any]:
        provider = _provider(run, new, old)
        method = getattr(provider, "check", None)
        if method is None:
            return new
        result = _call(method, _sent(old or {}), _sent(new))
        failures = [f"property {f.property}: {f.reason}" for f in result.failures or ()]
        if failures:
            raise HandlerError("; ".join(failures))
        return {**_returned(result.inputs or {}), PROVIDER_KEY: new[PROVIDER_KEY]}

    def diff(
        self, run: RunContext, id_: str, old_outputs: dict[str, Any], new: dict[str, Any]
    ) -> ProviderDiff | None:
        provider = _provider(run, new, old_outputs)
        method = getattr(provider, "diff", None)
        if method is None:
            return None
        result = _call(method, id_, _sent(old_outputs), _sent(new))
        return ProviderDiff(
            changes=result.changes,
            replaces=tuple(result.replaces or ()),
            delete_before_replace=bool(result.delete_before_replace),
        )

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        provider = _provider(ctx.run, inputs)
        result = _call(_method(provider, "create"), _sent(inputs))
        if not result.id:
            raise HandlerError("the provider's create returned no id")
        return str(result.id), self._outputs(result.outs, inputs)

    def update(
        self, ctx: CloudContext, id_: str, old: dict[str, Any], new: dict[str, Any], outputs: dict
    ) -> dict[str, Any]:
        provider = _provider(ctx.run, new, outputs)
        result = _call(_method(provider, "update"), id_, _sent(outputs), _sent(new))
        return self._outputs(result.outs, new)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        provider = _provider(ctx.run, outputs)
        _call(_method(provider, "delete"), id_, _sent(outputs))

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        provider = _provider(ctx.run, outputs)
        method = getattr(provider, "read", None)
        if method is None:
            return True
        return bool(_call(method, id_, _sent(outputs)).id)

    @staticmethod
    def _outputs(outs: dict[str, Any] | None, inputs: dict[str, Any]) -> dict[str, Any]:
        return {**_returned(outs or {}), PROVIDER_KEY: inputs[PROVIDER_KEY]}


HANDLERS: list[Handler] = [DynamicResource()]


def _provider(
    run: RunContext, props: dict[str, Any], fallback: dict[str, Any] | None = None
) -> Any:
    """The provider pickled in ``props`` (in ``fallback`` while unknown in a preview),
    configured as the provider server configures it."""
    from pulumi.dynamic import Config, ConfigureRequest
    from pulumi.runtime._serialization import _deserialize

    serialized = props.get(PROVIDER_KEY)
    if serialized == UNKNOWN and fallback is not None:
        serialized = fallback.get(PROVIDER_KEY)
    if not isinstance(serialized, str) or serialized == UNKNOWN:
        raise HandlerError(f"no serialized provider in its {PROVIDER_KEY} input")

    def load() -> Any:
        import dill

        return dill.loads(base64.b64decode(serialized))

    try:
        with _importable(run.program):
            provider = _deserialize(load)
    except Exception as exc:
        raise HandlerError(f"cannot load its dynamic provider: {_said(exc)}") from None
    configure = getattr(provider, "configure", None)
    if configure is not None:
        _call(configure, ConfigureRequest(Config(dict(run.config), run.project)))
    return provider


@contextlib.contextmanager
def _importable(directory: Path | None) -> Iterator[None]:
    """The program's modules importable, outside a run of it too (a delete of what it no
    longer declares, a destroy, a refresh), and forgotten after, as ``run_main`` does."""
    path = str(directory) if directory is not None else None
    if path is None or path in sys.path:
        yield
        return
    sys.path.insert(0, path)
    try:
        yield
    finally:
        sys.path.remove(path)
        purge_modules(Path(path))


def _unknowns_as_marker(value: Any) -> Any:
    """The SDK's unknown sentinel, anywhere in ``value``, as the sandbox's ``UNKNOWN``."""
    from pulumi.output import Unknown

    if isinstance(value, Unknown):
        return UNKNOWN
    if isinstance(value, dict):
        return {k: _unknowns_as_marker(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_unknowns_as_marker(v) for v in value]
    return value


def _method(provider: Any, name: str) -> Callable[..., Any]:
    method = getattr(provider, name, None)
    if method is None:
        raise HandlerError(f"its provider {type(provider).__name__} has no {name} method")
    found: Callable[..., Any] = method
    return found


def _call(method: Callable[..., Any], *args: Any) -> Any:
    """A provider method's result; what it raises, in its own words, as a HandlerError."""
    try:
        return method(*args)
    except HandlerError:
        raise
    except Exception as exc:
        raise HandlerError(_said(exc)) from None


def _said(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__


def _sent(values: dict[str, Any]) -> dict[str, Any]:
    """Values as the provider server hands them to the provider."""
    from pulumi.runtime import rpc

    found: dict[str, Any] = rpc.deserialize_properties(_struct(values), keep_unknowns=True)
    return found


def _returned(values: dict[str, Any]) -> dict[str, Any]:
    """What the provider returned, as the sandbox keeps values (from the wire's form); a
    value it was handed unknown (a preview's ``check``) stays unknown."""
    try:
        raw = _plain(_struct(_unknowns_as_marker(values)))
    except (TypeError, ValueError) as exc:
        raise HandlerError(f"its provider returned a value that cannot be sent: {exc}") from None
    return {key: _from_wire(value)[0] for key, value in raw.items()}
