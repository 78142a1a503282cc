"""Runs a phase program in this process on the Pulumi SDK's mock runtime.

The SDK sends every resource registration to a monitor. Ours hands each one, with its
inputs, dependencies and options, to a :class:`Host` that decides what happens (preview:
diff against the checkpoint; up: act on the emulated cloud) and answers with the outputs
the program sees. A registration is only sent once its inputs resolve, so the host sees
resources in dependency order, as the Pulumi engine's step executor does.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from phasegate.engines.base import UNKNOWN, StackOutputs
from phasegate.engines.programs import run_main
from phasegate.errors import StorageError

__all__ = ["Host", "ProgramFailed", "Registration", "run_program"]

# Markers of the Pulumi wire format (pulumi/runtime/rpc.py).
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
_OUTPUT_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
_WIRE_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
_STACK_TYPE = "pulumi:pulumi:Stack"
_STACK_REFERENCE = "pulumi:pulumi:StackReference"

# One program at a time per process: the SDK keeps its settings in globals.
_RUN_LOCK = threading.Lock()


@dataclass(frozen=True)
class Registration:
    """One resource as the program declared it."""

    urn: str
    type: str
    name: str
    custom: bool
    inputs: dict[str, Any]
    parent: str = ""
    provider: str = ""
    dependencies: tuple[str, ...] = ()
    protect: bool = False
    retain_on_delete: bool = False
    remote: bool = False
    """A multi-language component: its provider plugin builds it, not the program."""
    delete_before_replace: bool = False
    replace_on_changes: tuple[str, ...] = ()
    ignore_changes: tuple[str, ...] = ()
    secret_inputs: frozenset[str] = field(default_factory=frozenset)


class Host(Protocol):
    """What the runtime asks the engine while the program runs."""

    def register(self, reg: Registration) -> tuple[str, dict[str, Any]]:
        """Return (physical id, outputs); id "" and UNKNOWN values mean known after apply."""

    def stack_outputs(self, stack_name: str) -> StackOutputs | None:
        """Outputs of another stack (for StackReference); None if it has none yet."""

    def invoke(self, token: str, args: dict[str, Any]) -> dict[str, Any] | None:
        """A provider function call (``aws.get_...``); None: unknown until apply."""


class ProgramFailed(Exception):
    """The program itself raised, or the host refused one of its resources."""


def _from_wire(value: Any) -> tuple[Any, bool]:
    """Wire value (as from ``MessageToDict``) to plain Python; returns (value, is_secret)."""
    if value == _WIRE_UNKNOWN:
        return UNKNOWN, False
    if isinstance(value, float) and value.is_integer():
        return int(value), False
    if isinstance(value, list):
        items = [_from_wire(v) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    if isinstance(value, dict):
        sig = value.get(_SIG_KEY)
        if sig == _SECRET_SIG:
            inner, _ = _from_wire(value.get("value"))
            return inner, True
        if sig == _RESOURCE_SIG:
            ref = value.get("id") or value.get("urn")
            return _from_wire(ref)[0] if ref is not None else UNKNOWN, False
        if sig == _OUTPUT_SIG:
            if "value" not in value:
                return UNKNOWN, bool(value.get("secret"))
            inner, secret = _from_wire(value["value"])
            return inner, secret or bool(value.get("secret"))
        # Sorted: protobuf's map order differs from run to run, and state files,
        # plans and checkpoints must not.
        out: dict[str, Any] = {}
        secret = False
        for k in sorted(value):
            out[k], s = _from_wire(value[k])
            secret = secret or s
        return out, secret
    return value, False


def _secret_parts(value: Any) -> Iterator[Any]:
    """The plain values the program holds as secrets anywhere in a wire value."""
    if isinstance(value, list):
        for item in value:
            yield from _secret_parts(item)
    elif isinstance(value, dict):
        sig = value.get(_SIG_KEY)
        if sig == _SECRET_SIG or (sig == _OUTPUT_SIG and value.get("secret")):
            inner, _ = _from_wire(value.get("value"))
            if inner != UNKNOWN:
                yield inner
        elif sig is None:
            for item in value.values():
                yield from _secret_parts(item)


def _to_wire(value: Any) -> Any:
    if isinstance(value, str) and value == UNKNOWN:
        return _WIRE_UNKNOWN
    if isinstance(value, dict):
        return {k: _to_wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_wire(v) for v in value]
    return value


def _secret(value: Any) -> dict[str, Any]:
    """A value wrapped as secret on the wire."""
    return {_SIG_KEY: _SECRET_SIG, "value": value}


def _struct(values: Mapping[str, Any]) -> Any:
    from google.protobuf import struct_pb2

    st = struct_pb2.Struct()
    st.update(_to_wire(dict(values)))
    return st


def _plain(message: Any) -> dict[str, Any]:
    from google.protobuf import json_format

    result: dict[str, Any] = json_format.MessageToDict(message)
    return result


def _make_monitor(host: Host, failures: list[Exception], on_secret: Callable[[Any], None]) -> Any:
    from pulumi.runtime import mocks
    from pulumi.runtime.proto import resource_pb2

    class SandboxMonitor(mocks.MockMonitor):
        """The SDK's mock monitor with every registration handed to the host."""

        def __init__(self) -> None:
            super().__init__(mocks=None)  # type: ignore[arg-type]
            self.stack_outputs: tuple[dict[str, Any], frozenset[str]] = ({}, frozenset())
            self._stack_urn = ""
            # The SDK registers on worker threads, several at once, and gives up on the
            # first error without waiting for the rest: count them, and after a failure
            # start nothing new, so a rollback never races a half-finished apply.
            self._busy = threading.Condition()
            self._in_flight = 0
            self._stopped = False

        def settle(self) -> None:
            """Start nothing more, and wait until no registration is running any more."""
            with self._busy:
                self._stopped = True
                self._busy.wait_for(lambda: self._in_flight == 0)

        def _enter(self) -> None:
            with self._busy:
                if failures or self._stopped:
                    raise ProgramFailed("not started: the run already failed")
                self._in_flight += 1

        def _leave(self) -> None:
            with self._busy:
                self._in_flight -= 1
                self._busy.notify_all()

        def make_urn(self, parent: str, type_: str, name: str) -> str:
            # Like the engine: the root stack is not part of its children's type chain.
            if parent and parent != self._stack_urn:
                type_ = parent.split("::")[2] + "$" + type_
            from pulumi.runtime.settings import get_project, get_stack

            return "urn:pulumi:" + "::".join([get_stack(), get_project(), type_, name])

        def RegisterResource(self, request: Any) -> Any:
            urn = self.make_urn(request.parent, request.type, request.name)
            if request.type == _STACK_TYPE:
                self._stack_urn = urn
                return resource_pb2.RegisterResourceResponse(urn=urn)
            self._enter()
            try:
                raw = _plain(request.object)
                inputs: dict[str, Any] = {}
                secret: set[str] = set()
                for key, value in raw.items():
                    inputs[key], is_secret = _from_wire(value)
                    if is_secret:
                        secret.add(key)
                        for part in _secret_parts(value):
                            on_secret(part)
                reg = Registration(
                    urn=urn,
                    type=request.type,
                    name=request.name,
                    custom=bool(request.custom),
                    inputs=inputs,
                    parent="" if request.parent == self._stack_urn else request.parent,
                    provider=request.provider,
                    dependencies=tuple(request.dependencies),
                    protect=bool(request.protect),
                    retain_on_delete=bool(request.retainOnDelete),
                    remote=bool(request.remote),
                    delete_before_replace=bool(request.deleteBeforeReplace),
                    replace_on_changes=tuple(request.replaceOnChanges),
                    ignore_changes=tuple(request.ignoreChanges),
                    secret_inputs=frozenset(secret),
                )
                id_, outputs = host.register(reg)
            except Exception as exc:
                with self._busy:
                    failures.append(exc)
                raise
            finally:
                self._leave()
            # What went in secret comes back secret, as the Pulumi providers do it.
            outputs = {k: _secret(v) if k in reg.secret_inputs else v for k, v in outputs.items()}
            return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=_struct(outputs))

        def ReadResource(self, request: Any) -> Any:
            urn = self.make_urn(request.parent, request.type, request.name)
            try:
                if request.type != _STACK_REFERENCE:
                    raise ProgramFailed(
                        f"{request.type} '{request.name}': reading existing resources "
                        "(.get) is not supported by the sandbox engine"
                    )
                ref = request.id or _plain(request.properties).get("name", "")
                stack_name = str(ref).rsplit("/", 1)[-1]
                outputs = host.stack_outputs(stack_name)
                if outputs is None:
                    props: dict[str, Any] = {"name": ref, "outputs": UNKNOWN}
                    props["secretOutputNames"] = UNKNOWN
                else:
                    props = {
                        "name": ref,
                        "outputs": dict(outputs.values),
                        "secretOutputNames": sorted(outputs.secret),
                    }
            except Exception as exc:
                failures.append(exc)
                raise
            return resource_pb2.ReadResourceResponse(urn=urn, properties=_struct(props))

        def Invoke(self, request: Any) -> Any:
            try:
                raw = _plain(request.args)
                for part in _secret_parts(raw):
                    on_secret(part)
                args, _ = _from_wire(raw)
                result = host.invoke(request.tok, args)
            except Exception as exc:
                failures.append(exc)
                raise
            if result is None:
                return resource_pb2.ResourceInvokeResponse(unknown=True)
            return resource_pb2.ResourceInvokeResponse(**{"return": _struct(result)})

        def RegisterResourceOutputs(self, request: Any) -> Any:
            if request.urn == self._stack_urn:
                raw = _plain(request.outputs)
                values: dict[str, Any] = {}
                secret: set[str] = set()
                for key, value in raw.items():
                    values[key], is_secret = _from_wire(value)
                    if is_secret:
                        secret.add(key)
                        for part in _secret_parts(value):
                            on_secret(part)
                self.stack_outputs = (values, frozenset(secret))
            return super().RegisterResourceOutputs(request)

    return SandboxMonitor()


def _full_key(project: str, key: str) -> str:
    return key if ":" in key else f"{project}:{key}"


def _config_for_sdk(project: str, config: Mapping[str, Any]) -> dict[str, str]:
    """Stack config as the SDK wants it: namespaced keys, structured values as JSON."""
    out: dict[str, str] = {}
    for key, value in config.items():
        out[_full_key(project, key)] = value if isinstance(value, str) else json.dumps(value)
    return out


def run_program(
    directory: Path,
    *,
    project: str,
    stack: str,
    config: Mapping[str, Any],
    preview: bool,
    host: Host,
    secret_keys: Iterable[str] = (),
    on_secret: Callable[[Any], None] = lambda _: None,
) -> StackOutputs:
    """Run ``directory/__main__.py`` as stack ``stack``; returns its exported outputs.

    ``secret_keys`` are the config keys the SDK hands the program as secrets (decrypted
    ``secure:`` values); ``on_secret`` hears of every value the program holds as a
    secret and sends along (a resource input, an output, a function argument)."""
    from pulumi.runtime import mocks, settings
    from pulumi.runtime import stack as sdk_stack
    from pulumi.runtime.config import set_all_config
    from pulumi.runtime.sync_await import _sync_await

    with _RUN_LOCK:
        failures: list[Exception] = []
        monitor = _make_monitor(host, failures, on_secret)
        sdk_settings = mocks.MockSettings(
            monitor=monitor,
            monitor_features=set(monitor.GetDeploymentInfo(None).supportedFeatures),
            engine=mocks.MockEngine(None),
            project=project,
            stack=stack,
            dry_run=preview,
            organization="organization",
            callbacks=None,
        )
        settings.configure(sdk_settings)
        settings.set_root_resource(None)  # type: ignore[arg-type]
        set_all_config(
            _config_for_sdk(project, config), [_full_key(project, k) for k in secret_keys]
        )

        try:
            _sync_await(sdk_stack.run_in_stack(lambda: run_main(directory)))
        except Exception as exc:
            monitor.settle()
            cause = failures[0] if failures else exc
            raise ProgramFailed(_describe(cause)) from cause
        finally:
            settings.set_root_resource(None)  # type: ignore[arg-type]
        if failures:
            raise ProgramFailed(_describe(failures[0])) from failures[0]
        values, secret = monitor.stack_outputs
        return StackOutputs(values=values, secret=secret)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, StorageError):
        return exc.message  # the file the sandbox could not save, by its path
    text = str(exc).strip() or type(exc).__name__
    # The SDK wraps program errors; the user's own message is the first line that says something.
    return (
        text.splitlines()[0] if isinstance(exc, ProgramFailed) else f"{type(exc).__name__}: {text}"
    )
