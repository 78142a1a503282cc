"""Phase state files (``state/<env>/<phase>.yaml``) and the environment lock.

State files are reviewed in pull requests: deterministic key order, block YAML, secrets
shown as ``[secret]``, an append-only history. Writes are atomic. Each file proves it is
whole (see :mod:`phasegate.integrity`): a damaged, truncated, merged or hand-edited file,
or one of an unknown schema version, stops the run with the file named and is never
overwritten; ``migrate state repair`` seals one a person fixed on purpose.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from phasegate.atomic import write_atomic
from phasegate.errors import LockHeld, StateFileError, StorageError
from phasegate.estimates.model import PhaseEstimate
from phasegate.integrity import chain_problem, content_hash, link
from phasegate.redaction import SecretValues, redact
from phasegate.yamlfile import dump_yaml, read_yaml, validation_to_error

__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "Approval",
    "EnvironmentLock",
    "HistoryEntry",
    "PhaseState",
    "PlanSummary",
    "StateStore",
    "redact",
]

SCHEMA_VERSION = 2

_CUT_SHORT = "the integrity seal (the last key) is missing: the file is cut short"

Status = Literal[
    "pending",
    "planned",  # only read: written by the `plan` of earlier versions
    "applying",
    "verifying",
    "verified",
    "rolling_back",
    "rolled_back",
    "rollback_failed",
]
STATUSES: tuple[str, ...] = Status.__args__  # type: ignore[attr-defined]


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HistoryEntry(_Model):
    """One transition, written before the engine acts on it."""

    at: str = Field(description="UTC time, ISO 8601")
    event: str = Field(description="the lifecycle event: plan, apply, ok, pass, fail, ...")
    from_status: Status = Field(alias="from", description="status before")
    to_status: Status = Field(alias="to", description="status after")
    actor: str = Field(description="who ran it: CI actor or user@host")
    command: str = Field(description="the command line")
    git_commit: str | None = Field(None, description="commit of the project, when known")
    ci_run: str | None = Field(None, description="CI run id, when present")
    ci_url: str | None = Field(None, description="the CI run's page, when present")
    pull_request: str | None = Field(
        None, description="the pull (merge) request the CI run is for, when it is for one"
    )
    message: str | None = Field(None, description="what happened, for failures")
    prev: str | None = Field(
        None,
        description="hash of the entry before (the first entry: of the stack name), so the "
        "history is a hash chain",
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class PlanSummary(_Model):
    """The last plan: its fingerprint and what it would change."""

    at: str
    fingerprint: str
    changes: dict[str, int] = Field(description="resource count per operation")
    resources: list[str] = Field(
        default_factory=list, description="'<op> <type> <name>' for each resource that changes"
    )


class CheckResult(_Model):
    name: str
    kind: str
    result: Literal["pass", "fail", "skipped"]
    message: str = ""
    attempts: int = 0
    duration: float = 0.0
    detail: dict[str, Any] | None = Field(
        default=None,
        description="what the check found, for kinds that report more than a message "
        "(s3_parity: counts, bytes, manifest digests, the first mismatches)",
    )


class DataCopy(_Model):
    """What the phase's data copy did on its last run (``copy:`` in migration.yaml)."""

    at: str = Field(description="when it finished")
    source: str = Field(description="s3://bucket/prefix copied from")
    target: str = Field(description="s3://bucket/prefix copied into")
    listed_objects: int = Field(description="objects the source holds (selected)")
    listed_bytes: int
    copied_objects: int = Field(description="copied by this run: new or changed")
    copied_bytes: int
    skipped_objects: int = Field(description="in the target already, as the source has them")
    failed_objects: int = 0
    failures: list[str] = Field(default_factory=list, description="the first failures, by key")
    seconds: float


class LastKnownGood(_Model):
    """What rollback re-applies: the program snapshot and config of the last verified apply."""

    fingerprint: str
    program: str = Field(description="content address of the phases/ snapshot")
    config: str = Field(description="content address of the stack config")
    checks: str | None = Field(
        default=None, description="content address of the checks it was verified with"
    )
    at: str


class Approval(_Model):
    """A recorded approval: who approved which plan of the phase, and when."""

    by: str
    at: str
    program: str = Field(description="content address of the phases/ snapshot approved")
    fingerprint: str | None = Field(
        default=None,
        description="the plan approved (its fingerprint): void once the plan changes",
    )
    reason: str | None = Field(default=None, description="why it was approved, as given")


class PhaseState(_Model):
    """Where one stack stands."""

    schema_version: Literal[2] = 2
    stack: str
    environment: str
    phase: str
    status: Status = "pending"
    fingerprint: str | None = Field(
        default=None, description="fingerprint of the last plan or apply"
    )
    plan: PlanSummary | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    lkg: LastKnownGood | None = None
    step: int | None = Field(
        default=None,
        description="a stepped phase: the last verified step, from 0 (-1: back at the baseline)",
    )
    steps: int | None = Field(default=None, description="a stepped phase: how many steps")
    approval: Approval | None = Field(
        default=None, description="where the environment requires one: the approval on record"
    )
    data_copy: DataCopy | None = Field(
        default=None, description="the phase's data copy, as its last run left it"
    )
    estimate: PhaseEstimate | None = Field(
        default=None,
        description="the monthly cost, energy and carbon of what is applied: the estimate "
        "of its last verified apply (plans show their delta against it)",
    )
    checks: list[CheckResult] = Field(default_factory=list)
    rollback_checks: list[CheckResult] | None = Field(
        default=None,
        description="the last known good's checks, run again on what the last rollback restored",
    )
    history: list[HistoryEntry] = Field(default_factory=list)
    integrity: str | None = Field(
        default=None,
        description="hash of everything above it, written last: a file cut short or edited "
        "no longer matches",
    )

    def to_yaml(self) -> str:
        """The file's text, sealed: new history entries linked to the chain, and the
        integrity hash of the content as written."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        data.pop("integrity", None)
        # Outputs are maps from the engine in whatever order it had: sort them so equal
        # states write equal bytes. The rest keeps the models' field order.
        data["outputs"] = _sorted(data.get("outputs", {}))
        link(self.stack, data["history"])
        for entry, written in zip(self.history, data["history"], strict=True):
            entry.prev = written["prev"]
        # What is hashed is what a reader parses back from the YAML, key for key.
        data = yaml.safe_load(dump_yaml(data))
        self.integrity = data["integrity"] = content_hash(data)
        return dump_yaml(data)


def now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class StateStore:
    """The state files of one environment."""

    def __init__(self, root: Path, environment: str, secrets: SecretValues | None = None) -> None:
        self.root = root
        self.environment = environment
        self.secrets = secrets if secrets is not None else SecretValues()
        """The run's secret values: none is written to a state file in clear."""

    def path(self, phase: str) -> Path:
        return self.root / self.environment / f"{phase}.yaml"

    def read(self, phase: str) -> PhaseState:
        path = self.path(phase)
        if not path.exists():
            return PhaseState(
                stack=f"{self.environment}-{phase}", environment=self.environment, phase=phase
            )
        state, problem = self._read(phase, path)
        if problem is not None:
            raise StateFileError(
                problem,
                file=path,
                hint="the file is left as it is; if it was changed on purpose, check it, then "
                f"`migrate state repair --env {self.environment} --phase {phase}` seals it",
            )
        return state

    def _read(self, phase: str, path: Path) -> tuple[PhaseState, str | None]:
        """The state and what breaks its seal (None when whole). A file that is not even a
        state file (not YAML, unknown keys, wrong types) raises here."""
        data, node = read_yaml(path, StateFileError)
        if not isinstance(data, dict):
            raise StateFileError("expected a mapping; the file is damaged or empty", file=path)
        version = data.get("schema_version")
        problem = None
        known = isinstance(version, int) and not isinstance(version, bool)  # True == 1
        if known and version == 1:
            # Written before state files were sealed: readable, but nothing proves it whole.
            data = {**data, "schema_version": SCHEMA_VERSION}
            problem = "schema_version 1 is from an older phasegate and carries no integrity seal"
        elif not known or version != SCHEMA_VERSION:
            raise StateFileError(
                f"schema_version {version!r} is not one this phasegate reads",
                file=path,
                hint=f"it reads {SCHEMA_VERSION}; the file is left as it is",
            )
        elif not isinstance(data.get("integrity"), str):
            problem = _CUT_SHORT
        else:
            history = data.get("history")
            entries = history if isinstance(history, list) else []
            stack = str(data.get("stack"))
            broken = chain_problem(stack, [e if isinstance(e, dict) else {} for e in entries])
            if broken is not None:
                problem = broken
            elif content_hash(data) != data["integrity"]:
                problem = (
                    "the content does not match its integrity seal: the file was damaged or "
                    "edited by hand"
                )
        try:
            state = PhaseState.model_validate(data)
        except ValidationError as exc:
            if problem == _CUT_SHORT:  # a file cut short reads best as just that
                raise StateFileError(
                    f"{problem}; what is left does not read as a state file",
                    file=path,
                    hint="the file is left as it is; restore it from version control",
                ) from None
            raise validation_to_error(exc, PhaseState, path, node, StateFileError) from None
        if state.stack != f"{self.environment}-{phase}":
            raise StateFileError(
                f"stack is '{state.stack}', expected '{self.environment}-{phase}'",
                file=path,
                field="stack",
            )
        return state, problem

    def shown(self, text: str | None) -> str | None:
        """A message as a state file may hold it: every secret of the run as [secret]."""
        return None if text is None else self.secrets.mask(text)

    def write(self, state: PhaseState) -> None:
        """Write ``state``; its outputs, check results and plan, which each run writes
        anew, with every secret of the run as [secret]. (History entries are hidden as
        they are made, by the lifecycle: once written, an entry never changes.)"""
        if self.secrets:
            state = self._masked(state)
        write_atomic(self.path(state.phase), state.to_yaml().encode())

    def repair(self, phase: str, entry: Callable[[str, str], HistoryEntry]) -> str:
        """Seal a state file a person fixed on purpose: the chain linked anew and a
        ``repair`` entry (made by ``entry(status, what was wrong)``) appended. Returns what
        was wrong. A file that does not even read as a state file is refused as it is."""
        path = self.path(phase)
        if not path.exists():
            raise StateFileError("there is no state file to repair", file=path)
        state, problem = self._read(phase, path)
        found = problem or "nothing: the seal held"
        for old in state.history:
            old.prev = None
        state.history.append(entry(state.status, found))
        self.write(state)
        return found

    def _masked(self, state: PhaseState) -> PhaseState:
        mask = self.secrets.mask_data

        def checks(results: list[CheckResult] | None) -> list[CheckResult] | None:
            if results is None:
                return None
            return [
                c.model_copy(update={"message": mask(c.message), "detail": mask(c.detail)})
                for c in results
            ]

        plan = state.plan and state.plan.model_copy(
            update={"resources": mask(state.plan.resources)}
        )
        return state.model_copy(
            update={
                "outputs": mask(state.outputs),
                "checks": checks(state.checks),
                "rollback_checks": checks(state.rollback_checks),
                "plan": plan,
            }
        )


class EnvironmentLock:
    """One run per environment at a time.

    The lock is a kernel ``flock`` on ``.phasegate/locks/<env>.lock``, so it dies with its
    holder, even under SIGKILL; the file keeps the holder's pid, host and start time so a
    second run can say who holds it, and a run that finds a dead holder's record says so.
    """

    def __init__(self, directory: Path, environment: str, command: str) -> None:
        self.path = directory / f"{environment}.lock"
        self.environment = environment
        self.command = command
        self._fd: int | None = None
        self.took_over: dict[str, Any] | None = None

    def _holder(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(self.path, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self._holder()
            who = (
                f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
                f"started {holder.get('started', '?')}"
                if holder
                else "a run that is starting"
            )
            raise LockHeld(
                f"environment '{self.environment}' is locked by {who} "
                f"({holder.get('command', 'migrate')})",
                hint="wait for it to finish",
            ) from None
        previous = self._holder()
        if previous.get("pid"):
            self.took_over = previous
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": now(),
            "command": self.command,
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
            os.fsync(fd)
        except OSError as exc:  # a full disk: say where, and let go of the lock
            os.close(fd)
            raise StorageError(self.path, exc) from exc
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    @contextlib.contextmanager
    def held(self) -> Iterator[EnvironmentLock]:
        self.acquire()
        try:
            yield self
        finally:
            self.release()
