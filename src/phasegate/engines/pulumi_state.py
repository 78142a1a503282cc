"""A Pulumi stack's state in its backend, as the pulumi engine must settle and change it:
a lock left by a run that died, operations a killed run left pending, and the release of
protected resources a rollback to an older version drops.

Nothing here guesses. A lock is cleared only when its holder is provably gone (a process
of this machine that no longer exists, or has ended and only waits to be collected);
pending operations other than creates are cleared by a refresh, which asks the provider;
an interrupted create (which may or may not exist in the cloud) stops the run with what
a person must check and the command that follows.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from phasegate.errors import EngineError

__all__ = ["protect_again", "settle_pending", "stale_lock", "unprotect_for_release"]

_LOCK_LINE = re.compile(
    r"created by (?P<user>\S*)@(?P<host>\S+) \(pid (?P<pid>\d+)\) at (?P<at>\S+)"
)
"""A lock as the CLI's "the stack is currently locked" error names it."""


def stale_lock(message: str) -> bool | str:
    """Given the CLI's "the stack is currently locked" error: True when every lock it
    names was taken by a process of this machine that is gone (the lock can be cleared),
    else a description of the holders for the error a person reads."""
    holders = [m.groupdict() for m in _LOCK_LINE.finditer(message)]
    if not holders:
        return "held by a run the backend does not name"
    here = socket.gethostname()
    if all(h["host"] == here and not _alive(int(h["pid"])) for h in holders):
        return True
    return "; ".join(
        f"held by {h['user']}@{h['host']} (pid {h['pid']}) since {h['at']}" for h in holders
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return not _ended(pid)


def _ended(pid: int) -> bool:
    """A process that has ended but was not collected by its parent (a zombie, as Linux's
    ``/proc`` tells): it holds nothing any more. The CLI a killed run leaves behind ends
    as soon as its program is gone, and stays a zombie for as long as its new parent,
    the machine's init, takes to collect it; a container's init may never do so."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def settle_pending(stack: Any, name: str, backend: str) -> None:
    """Deal with operations a killed run left pending in the stack's state: a refresh
    (which takes the stack's lock, so a run still under way is named, not raced) asks
    the provider how updates and deletes ended; an interrupted create, which may or may
    not exist in the cloud, needs a person."""
    if not _pending(stack):
        return
    stack.refresh()
    creates = [op for op in _pending(stack) if op.get("type") == "creating"]
    if creates:
        what = ", ".join(
            f"{op['resource']['type']} '{op['resource']['urn'].rsplit('::', 1)[-1]}'"
            for op in creates
        )
        raise EngineError(
            f"an earlier run was stopped while creating {what}: it may exist in the cloud "
            "without being in the stack, and phasegate cannot tell",
            stack=name,
            hint=(
                f"check whether it exists; then, with PULUMI_BACKEND_URL={backend}, run "
                f"`pulumi refresh --stack {name} --clear-pending-creates` if it does not "
                "(or `--import-pending-creates` with its id if it does), then "
                "`migrate recover`"
            ),
        )


def _pending(stack: Any) -> list[dict[str, Any]]:
    deployment = stack.export_stack().deployment or {}
    return list(deployment.get("pending_operations") or [])


def unprotect_for_release(stack: Any) -> dict[str, dict[str, Any]]:
    """Let an up drop protected resources its program no longer declares, without
    deleting them: each one loses ``protect`` and gains ``retainOnDelete`` in the stack's
    state, so Pulumi's delete of it only forgets it (``pulumi state delete``, in effect).
    Those still declared get their options back from the program in the same up.
    Returns the protected resources by URN, with the options they had."""
    state = stack.export_stack()
    resources = state.deployment.get("resources") or []
    protected = {
        r["urn"]: {"type": r["type"], "retainOnDelete": r.get("retainOnDelete", False)}
        for r in resources
        if r.get("protect")
    }
    if protected:
        for resource in resources:
            if resource.get("protect"):
                resource["protect"] = False
                resource["retainOnDelete"] = True
        stack.import_stack(state)
    return protected


def protect_again(stack: Any, protected: Mapping[str, Mapping[str, Any]]) -> None:
    """Put back the options of ``protected`` resources still in the stack's state."""
    state = stack.export_stack()
    for resource in state.deployment.get("resources") or []:
        before = protected.get(resource.get("urn"))
        if before is not None:
            resource["protect"] = True
            resource["retainOnDelete"] = before["retainOnDelete"]
    stack.import_stack(state)
