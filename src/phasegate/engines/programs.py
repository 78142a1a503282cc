"""Running a program snapshot's ``__main__.py`` in this process, as both engines do: the
sandbox on the SDK's mock runtime, the pulumi engine as an Automation API inline program
(the Pulumi CLI then needs no Python language host of its own)."""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

__all__ = ["purge_modules", "run_main"]


def run_main(directory: Path) -> None:
    """Run ``directory/__main__.py`` as ``__main__``, its modules importable while it runs
    and forgotten after, so the next run (another version of them) loads its own."""
    sys.path.insert(0, str(directory))
    try:
        runpy.run_path(str(directory / "__main__.py"), run_name="__main__")
    finally:
        sys.path.remove(str(directory))
        purge_modules(directory)


def purge_modules(directory: Path) -> None:
    """Forget modules loaded from a program directory so the next run loads its own."""
    # A plain prefix test: resolving each of ~1,100 module paths cost 0.3 s a run.
    prefixes = (str(directory) + os.sep, str(directory.resolve()) + os.sep)
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and file.startswith(prefixes):
            del sys.modules[name]
