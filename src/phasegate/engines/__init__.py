"""The engines behind the port (:mod:`phasegate.engines.base`), built in one place.

Nothing outside this package names a concrete engine: the core asks :func:`build_engine`
for the engine an environment names and talks to it through the port. Each engine is
imported only when built, so a command that needs none (``status``) loads neither the
Pulumi Automation API nor the emulator.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, get_args

from phasegate.engines.base import Engine
from phasegate.redaction import SecretValues

__all__ = ["ENGINE_KINDS", "EngineKind", "build_engine"]

EngineKind = Literal["sandbox", "pulumi"]
ENGINE_KINDS: tuple[str, ...] = get_args(EngineKind)


def build_engine(
    kind: EngineKind,
    *,
    root: Path,
    work_dir: Path,
    regions: Mapping[str, str],
    backends: Mapping[str, str | None],
    estates: Mapping[str, Mapping[str, int]] | None = None,
    secrets: SecretValues | None = None,
    stop: threading.Event | None = None,
) -> Engine:
    """The engine of ``kind`` for a project at ``root`` keeping its working data under
    ``work_dir``; ``regions``, ``backends`` and ``estates`` (the sandbox's legacy estate
    settings) are per environment name. The engine adds
    every secret value it learns of to ``secrets``, and stops cleanly once ``stop`` is
    set (:attr:`Engine.stop`)."""
    if kind == "sandbox":
        from phasegate.engines.sandbox import SandboxEngine

        return SandboxEngine(
            work_dir / "sandbox", dict(regions), secrets=secrets, stop=stop, estates=estates
        )
    if kind == "pulumi":
        from phasegate.engines.pulumi import PulumiEngine

        return PulumiEngine(root, work_dir / "pulumi", dict(backends), secrets=secrets, stop=stop)
    raise ValueError(f"unknown engine kind {kind!r} (allowed: {', '.join(ENGINE_KINDS)})")
