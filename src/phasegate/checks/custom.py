"""Checks the project writes itself: ``outputs`` (assertions over stack outputs) and
``python`` (a ``module:function`` of the project's ``phases/`` or of any installed module)."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from phasegate.checks.base import CheckContext, CheckKind, Params, Probe

__all__ = ["Outputs", "OutputsParams", "PythonCheck", "PythonParams"]


class OutputsParams(Params):
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


class PythonParams(Params):
    """A function called with the CheckContext (and ``args``) that decides the check."""

    function: str = Field(
        pattern=r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$",
        description="module:function; the module from the project's phases/ or installed",
    )
    args: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments passed after the context"
    )


_PATH_LOCK = threading.Lock()
"""sys.path and sys.modules are process-wide: one project import at a time."""


@contextlib.contextmanager
def _from_phases(root: Path | None, module: str) -> Iterator[None]:
    """Import (and run) ``module`` from ``root/phases`` when it is there; otherwise as is.

    The project's modules shadow installed ones of the same name while the check runs and
    are dropped afterwards, as the engines drop a program's modules after a run, so a
    later run imports the project's copies afresh.
    """
    phases = (root / "phases") if root is not None else None
    top = module.split(".", 1)[0]
    if phases is None or not (
        (phases / f"{top}.py").is_file() or (phases / top / "__init__.py").is_file()
    ):
        yield
        return
    with _PATH_LOCK:
        shadowed = {
            n: sys.modules.pop(n) for n in list(sys.modules) if n == top or n.startswith(top + ".")
        }
        before = set(sys.modules)
        sys.path.insert(0, str(phases))
        try:
            yield
        finally:
            sys.path.remove(str(phases))
            prefix = str(phases) + os.sep
            for name in set(sys.modules) - before:
                if (getattr(sys.modules[name], "__file__", None) or "").startswith(prefix):
                    del sys.modules[name]
            sys.modules.update(shadowed)


class PythonCheck(CheckKind):
    """Returns True/False or (bool, message); raising fails the attempt with the error."""

    name = "python"
    params = PythonParams

    def probe(self, params: PythonParams, ctx: CheckContext) -> Probe:
        module_name, function_name = params.function.split(":")
        with _from_phases(ctx.project_root, module_name):
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                where = " (nor in the project's phases/)" if ctx.project_root else ""
                return Probe(False, f"{params.function}: cannot import {module_name}{where}: {exc}")
            function: Callable[..., Any] | None = getattr(module, function_name, None)
            if not callable(function):
                return Probe(
                    False, f"{params.function}: {module_name} has no function {function_name}"
                )
            try:
                returned = function(ctx, **params.args)
            except Exception as exc:
                return Probe(False, f"{params.function} raised {type(exc).__name__}: {exc}")
        return _verdict(params.function, returned)


def _verdict(function: str, returned: Any) -> Probe:
    if isinstance(returned, bool):
        return Probe(returned, f"{function} returned {returned}")
    if (
        isinstance(returned, tuple)
        and len(returned) == 2
        and isinstance(returned[0], bool)
        and isinstance(returned[1], str)
    ):
        return Probe(returned[0], returned[1] or f"{function} returned {returned[0]}")
    return Probe(
        False,
        f"{function} returned {returned!r}; a check function returns True/False or (bool, message)",
    )
