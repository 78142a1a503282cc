"""The errors the core raises; the CLI boundary maps each to one line and an exit code.

The core never prints or exits. Every error carries what the user needs to act on it
(the file, the field, the stack, a hint), and its ``exit_code`` is the documented one.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from enum import IntEnum
from pathlib import Path

__all__ = [
    "EngineError",
    "ExitCode",
    "GateBlocked",
    "InputError",
    "Interrupted",
    "LockHeld",
    "PhasegateError",
    "RollbackFailed",
    "RolledBack",
    "StateFileError",
    "StorageError",
    "aws_error_code",
    "describe",
]


class ExitCode(IntEnum):
    """The documented, stable exit codes (DESIGN §8)."""

    OK = 0
    ERROR = 1
    CHANGES = 2
    ROLLED_BACK = 3
    ROLLBACK_FAILED = 4
    BLOCKED = 5
    INTERRUPTED = 130


class PhasegateError(Exception):
    """Base of every error phasegate raises on purpose."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class InputError(PhasegateError):
    """A file or flag the user gave is wrong: names the file and the field."""

    def __init__(
        self,
        message: str,
        *,
        file: Path | str | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if file is not None:
            where = f"{file}"
            if field:
                where += f": {field}"
            where += ": "
        elif field:
            where = f"{field}: "
        super().__init__(where + message, hint=hint)
        self.file = file
        self.field = field


class StateFileError(InputError):
    """A state file is damaged or of an unknown version; it is never overwritten."""


class GateBlocked(PhasegateError):
    """A gate does not hold (dependency, lock, interrupted run): nothing was changed."""

    exit_code = ExitCode.BLOCKED


class LockHeld(GateBlocked):
    """Another run holds the environment lock."""


class EngineError(PhasegateError):
    """The engine could not preview or apply a stack."""

    def __init__(self, message: str, *, stack: str | None = None, hint: str | None = None):
        super().__init__(f"{stack}: {message}" if stack else message, hint=hint)
        self.stack = stack


class RolledBack(PhasegateError):
    """An apply failed and the phase was rolled back to its last known good."""

    exit_code = ExitCode.ROLLED_BACK


class RollbackFailed(PhasegateError):
    """An apply failed and so did its rollback: the stack needs a person."""

    exit_code = ExitCode.ROLLBACK_FAILED


class StorageError(PhasegateError, OSError):
    """A file phasegate keeps could not be written: the disk is full, or its directory is
    read-only or not this user's. Names the path; the file's previous content is intact
    (writes are atomic), so nothing is half written. Still an OSError (same errno), so
    code that handled the bare error handles this one."""

    _REMEDIES = {
        errno.ENOSPC: "free space on its filesystem",
        errno.EDQUOT: "free space on its filesystem (the disk quota is used up)",
        errno.EACCES: "make its directory writable for this user",
        errno.EPERM: "make its directory writable (is it immutable? see lsattr)",
        errno.EROFS: "mount its filesystem read-write",
    }

    def __init__(self, path: Path | str, error: OSError) -> None:
        self.path = Path(path)
        self.remedy = self._REMEDIES.get(error.errno or 0, "fix what stops the write")
        reason = error.strerror or str(error)
        super().__init__(
            f"{path}: cannot write: {reason}", hint=f"{self.remedy}, then run the command again"
        )
        self.errno, self.strerror, self.filename = error.errno, reason, str(path)

    def mid_run(self, stacks: Sequence[tuple[str, str]]) -> None:
        """Say which stacks the failed write leaves mid-run (stack, status), and that
        ``migrate recover`` finishes them once the write can succeed."""
        if stacks:
            left = ", ".join(f"{stack} stays {status}" for stack, status in stacks)
            self.hint = f"{left}: {self.remedy}, then run `migrate recover`"


class Interrupted(BaseException):
    """The person running phasegate asked it to stop (Ctrl-C, SIGTERM), and it stopped
    between two resource operations or two looks of a check.

    A BaseException, as KeyboardInterrupt is: no ``except Exception`` on the way (a
    check's probe, a rollback's error handling) may take it for a failure and act on it.
    The orchestrator adds what the run did and where it leaves each stack."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint: str | None = None

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


def describe(exc: BaseException) -> str:
    """One line for any error: phasegate's own as they read, an OSError by its path and
    reason, anything else with its type, as the CLI boundary would show it."""
    if isinstance(exc, StorageError):
        return exc.message  # its hint is for a whole run; a caller words its own
    if isinstance(exc, PhasegateError):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def aws_error_code(exc: BaseException) -> str:
    """The AWS error code of a boto3 ClientError (``NoSuchBucket``, ...); '' for anything else."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))
