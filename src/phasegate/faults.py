"""Fault injection: named points where a run can be made to die or fail on purpose.

Off unless ``PHASEGATE_FAULTS`` is set, which is how the crash-recovery tests (and anyone
rehearsing an outage) kill a real ``migrate`` at an exact moment. The variable holds
comma-separated ``POINT:N[:ACTION]`` entries: at the N-th time this process passes
POINT, ACTION happens. Actions: ``kill`` (the default; SIGKILL, as a machine losing
power would), ``fail`` (the operation raises, as a cloud API error would) and ``full``
(the disk fills up there: from then on every file the run writes atomically, state
files, last-known-good snapshots and the sandbox's checkpoint alike, fails with ENOSPC,
as on a full disk; the run goes on).

Points:

* ``resource-op``: right after the sandbox engine commits a resource operation (a
  create, update, replace or delete of a cloud resource, in an apply, a rollback's
  re-apply or a destroy alike); ``resource-op:N`` kills the run with N operations done
  and saved. ``fail`` there fails the run with the N-th operation done.
* ``resource-op-fail``: just before the sandbox engine calls the cloud for an operation;
  it counts the same operations as ``resource-op``. ``fail`` makes the N-th operation
  fail as a cloud API error would, before it changes anything (in a rollback, that is a
  rollback that fails: ``rollback_failed``, exit 4); ``kill`` dies with N-1 done.
* ``check``: before each check runs (after an apply, and after a rollback's re-apply).
* ``rollback``: as a rollback starts, with the stack already in ``rolling_back``.
* ``copy-object``: right after a phase's data copy has copied an object and added it to
  its journal (which reaches the disk in batches); ``copy-object:N`` kills the run with N
  objects copied.
* ``scaffold-write``: before each file ``migrate init`` or ``migrate new-phase`` writes;
  ``fail`` there fails that write, and what the command wrote before it is taken back.

Counts are per process: ``resource-op:5`` in a run that applies two phases is the fifth
operation of the run, whichever phase it belongs to.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
from collections import Counter
from pathlib import Path

__all__ = ["VARIABLE", "FaultInjected", "point", "writing"]

VARIABLE = "PHASEGATE_FAULTS"

_hits: Counter[str] = Counter()
_lock = threading.Lock()
_disk_full = threading.Event()


class FaultInjected(Exception):
    """A ``fail`` fault: stands for an error of the cloud or the engine."""


def _plan() -> dict[str, tuple[int, str]]:
    found: dict[str, tuple[int, str]] = {}
    for entry in filter(None, (e.strip() for e in os.environ.get(VARIABLE, "").split(","))):
        name, _, rest = entry.partition(":")
        count, _, action = rest.partition(":")
        if not count.isdigit() or action not in ("", "kill", "fail", "full"):
            raise ValueError(f"{VARIABLE}: '{entry}' is not POINT:N[:kill|fail|full]")
        found[name] = (int(count), action or "kill")
    return found


def point(name: str) -> None:
    """Pass the point ``name``; die or fail here if the run was told to."""
    if VARIABLE not in os.environ:
        return
    wanted = _plan().get(name)
    with _lock:
        _hits[name] += 1
        hit = _hits[name]
    if wanted is None or hit != wanted[0]:
        return
    if wanted[1] == "fail":
        raise FaultInjected(f"injected fault at {name} #{hit}")
    if wanted[1] == "full":
        _disk_full.set()
        return
    os.kill(os.getpid(), signal.SIGKILL)


def writing(path: Path) -> None:
    """About to write ``path``: fails as a full disk would once a ``full`` fault has hit."""
    if _disk_full.is_set():
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
