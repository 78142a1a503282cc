"""How the pulumi engine hands the project's CrossGuard pack to the Pulumi CLI.

The CLI starts a Python policy pack directory through the Python language host. Where it
has none (a CLI built from source where that host's module is not served), it still
starts a pack given as an *executable*: the CLI runs it with the engine's address, and it
prints the port its analyzer serves on. So phasegate writes, in the stack's work
directory, a small executable that starts the pack with the Pulumi SDK's own policy
runner (``python -m pulumi.policy ENGINE PACK_DIR``, what Pulumi's shim for Python packs
ran), under this Python, with the pack's ``PulumiPolicy.yaml`` beside it for the CLI to
read. The rules that run are the pack's own, served by ``pulumi_policy``.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from phasegate.atomic import write_atomic

__all__ = ["policy_args"]

_LAUNCHER = """#!{python} -u
# The CrossGuard pack at {pack}, started by the Pulumi SDK's policy runner. Unbuffered
# (-u): the CLI waits for the port the pack's analyzer prints on stdout as it starts.
import os, runpy, sys

os.chdir({pack!r})
sys.argv[2:] = [{pack!r}]
runpy.run_module("pulumi.policy", run_name="__main__", alter_sys=True)
"""


def policy_args(pack: Path | None, config: Mapping[str, Any], work: Path) -> dict[str, list[str]]:
    """The CLI's policy flags for ``pack`` with ``config`` (empty without a pack), with
    what they point at written under ``work``."""
    if pack is None:
        return {}
    pack = pack.resolve()
    launcher = work / "policy-pack" / "run-pack"
    write_atomic(launcher, _LAUNCHER.format(python=sys.executable, pack=str(pack)).encode())
    launcher.chmod(0o755)
    if (pack / "PulumiPolicy.yaml").is_file():  # the pack's name and version, for the CLI
        shutil.copyfile(pack / "PulumiPolicy.yaml", launcher.parent / "PulumiPolicy.yaml")
    config_file = work / "policy-config.json"
    write_atomic(config_file, (json.dumps(dict(config), sort_keys=True) + "\n").encode())
    return {"policy_packs": [str(launcher)], "policy_pack_configs": [str(config_file)]}
