"""The Engine port: what turns a phase program into cloud resources.

The orchestrator talks only to this port. Each engine lives in its own module and turns
its own failures into :class:`~phasegate.errors.EngineError` here at the boundary.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "UNKNOWN",
    "DeclaredResource",
    "Engine",
    "EventSink",
    "Op",
    "Plan",
    "ProgramSource",
    "ProgressEvent",
    "ResourceChange",
    "SandboxControls",
    "StackOutputs",
    "StackTarget",
    "UpResult",
    "Violation",
]

UNKNOWN = "(known after apply)"
"""How a value that only an apply can tell (an id, an ARN) is shown in plans and outputs."""


class Op(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    IMPORT = "import"
    """An existing cloud resource taken into the stack (``import`` resource option)."""
    SAME = "same"


@dataclass(frozen=True)
class ProgramSource:
    """The exact program a stack runs: its ``phases/`` files by name, content-addressed.

    The engine runs this snapshot, not the working tree, so what was fingerprinted is
    what runs, and a last-known-good snapshot can be re-applied without git.
    """

    module: str
    files: Mapping[str, bytes]

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + hashlib.sha256(self.files[name]).digest())
        return "sha256:" + h.hexdigest()

    @classmethod
    def from_directory(cls, directory: Path, module: str, other_phases: set[str]) -> ProgramSource:
        """The files of ``directory`` that ``module`` uses: every file (data files too)
        but other phases' modules and folders, bytecode caches, hidden files and
        virtualenvs (a folder with ``pyvenv.cfg``)."""
        files: dict[str, bytes] = {}
        venvs = {p.parent for p in directory.rglob("pyvenv.cfg")}
        for path in sorted(directory.rglob("*")):
            rel = path.relative_to(directory)
            if (
                not path.is_file()
                or any(part.startswith(".") or part == "__pycache__" for part in rel.parts)
                or path.suffix in (".pyc", ".pyo")
                or (path.suffix == ".py" and path.stem in other_phases and path.parent == directory)
                or (len(rel.parts) > 1 and rel.parts[0] in other_phases)
                or any(v in path.parents for v in venvs)
            ):
                continue
            files[rel.as_posix()] = path.read_bytes()
        return cls(module=module, files=files)


@dataclass(frozen=True)
class StackTarget:
    """One (environment, phase) pair and everything an engine needs to run it."""

    project: str
    environment: str
    phase: str
    region: str
    program: ProgramSource
    config: Mapping[str, Any]
    protected: frozenset[str] = frozenset()
    endpoint_url: str | None = None
    profile: str | None = None
    backend: str | None = None
    policy_pack: Path | None = None
    """The project's policy pack directory; engines that run CrossGuard pass it on."""
    policy_config: Mapping[str, Any] = field(default_factory=dict)
    """The pack's config for this stack (enforcement overrides, the GPU cap)."""
    stack_settings: Mapping[str, Any] = field(default_factory=dict)
    """The stack file's other settings (secretsprovider, encryptionsalt, encryptedkey,
    environment): what decrypts its ``secure:`` values, which ``config`` keeps
    encrypted, and the ESC environments it imports."""
    config_file: str = ""
    """Where ``config`` comes from (the stack file, or a last known good's copy of it), for
    errors about it."""

    @property
    def name(self) -> str:
        return f"{self.environment}-{self.phase}"

    def is_protected(self, resource: str) -> bool:
        """Whether migration.yaml protects a resource of this stack (names or globs)."""
        return any(fnmatch.fnmatchcase(resource, pattern) for pattern in self.protected)

    @property
    def run_config(self) -> dict[str, Any]:
        """The config a program runs with: the stack's, plus what phasegate tells it."""
        return {
            "phasegate:phase": self.phase,
            "phasegate:program": self.program.module,
            "phasegate:protected": sorted(self.protected),
            **dict(self.config),
        }

    @property
    def config_digest(self) -> str:
        text = json.dumps(self.config, sort_keys=True, separators=(",", ":"), default=str)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ResourceChange:
    """What an engine will do (plan) or did (result) to one resource."""

    op: Op
    type: str
    name: str
    urn: str = ""
    changed: tuple[str, ...] = ()
    protected: bool = False
    emulated: bool = False
    refused: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op.value, "type": self.type, "name": self.name}
        if self.changed:
            out["changed"] = list(self.changed)
        if self.protected:
            out["protected"] = True
        if self.emulated:
            out["emulated"] = True
        if self.refused:
            out["refused"] = self.refused
        return out


@dataclass(frozen=True)
class DeclaredResource:
    """A resource as the program declares it: what policies are checked against."""

    type: str
    name: str
    inputs: Mapping[str, Any]
    protected: bool = False


@dataclass(frozen=True)
class StackOutputs:
    """A stack's exported outputs; names in ``secret`` are never shown in clear."""

    values: Mapping[str, Any] = field(default_factory=dict)
    secret: frozenset[str] = frozenset()

    def redacted(self) -> dict[str, Any]:
        """The outputs as they may be shown: secret ones as [secret]."""
        from phasegate.redaction import redact

        return redact(dict(self.values), self.secret)

    @property
    def digest(self) -> str:
        text = json.dumps(dict(sorted(self.values.items())), sort_keys=True, default=str)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _counts(changes: list[ResourceChange]) -> dict[str, int]:
    counter = Counter(c.op.value for c in changes)
    return {op.value: counter.get(op.value, 0) for op in Op}


@dataclass(frozen=True)
class Violation:
    """One resource (or the stack) breaking one policy rule."""

    rule: str
    enforcement: str  # "mandatory" | "advisory"
    resource_type: str
    resource_name: str
    message: str


@dataclass(frozen=True)
class Plan:
    """The changes a preview found, and the outputs the stack would export."""

    stack: str
    changes: list[ResourceChange]
    outputs: StackOutputs = field(default_factory=StackOutputs)
    resources: list[DeclaredResource] = field(default_factory=list)
    """Every resource the program declares, with its inputs (unknown ones as UNKNOWN)."""
    findings: list[Violation] = field(default_factory=list)
    """What an engine's own policy run found (CrossGuard, on the pulumi engine); the
    policy gate takes them with the project's rules' own."""

    @property
    def counts(self) -> dict[str, int]:
        return _counts(self.changes)

    @property
    def has_changes(self) -> bool:
        return any(c.op is not Op.SAME for c in self.changes)

    @property
    def refused(self) -> list[ResourceChange]:
        return [c for c in self.changes if c.refused]


@dataclass(frozen=True)
class UpResult:
    """What an apply (or destroy) did."""

    stack: str
    changes: list[ResourceChange]
    outputs: StackOutputs = field(default_factory=StackOutputs)
    kept: tuple[str, ...] = ()
    """Protected resources a destroy left in place, or a rollback's up released, as
    "type name"."""

    @property
    def counts(self) -> dict[str, int]:
        return _counts(self.changes)


@dataclass(frozen=True)
class ProgressEvent:
    """One resource operation starting, finishing or failing."""

    stack: str
    op: Op
    type: str
    name: str
    status: str  # "start" | "done" | "failed"
    message: str = ""


EventSink = Callable[[ProgressEvent], None]


def _ignore(_: ProgressEvent) -> None:
    return None


class Engine(ABC):
    """The port every engine implements."""

    name: str
    stop: threading.Event
    """Set when the person running phasegate asks it to stop (Ctrl-C, SIGTERM): the engine
    finishes the resource operation under way, records it as done, starts no other, and
    raises :class:`~phasegate.errors.Interrupted`."""

    @abstractmethod
    def preview(
        self,
        stack: StackTarget,
        *,
        upstream: Mapping[str, StackOutputs] | None = None,
        on_event: EventSink = _ignore,
    ) -> Plan:
        """What ``up`` would change; no side effects. ``upstream`` overrides the outputs
        of other stacks by stack name (planned outputs of phases not applied yet)."""

    @abstractmethod
    def up(
        self,
        stack: StackTarget,
        *,
        on_event: EventSink = _ignore,
        release_protected: bool = False,
    ) -> UpResult:
        """Make the cloud match the program; returns what changed and the outputs.

        A protected resource the program no longer declares stops the run, as Pulumi's
        ``protect`` does; with ``release_protected`` (a rollback re-applying a version
        that never had it) it is left in the cloud, dropped from the stack's records,
        and named in ``kept``: a rollback never deletes data, nor fails for keeping it."""

    @abstractmethod
    def destroy(self, stack: StackTarget, *, on_event: EventSink = _ignore) -> UpResult:
        """Delete the stack's resources except protected ones, which are reported as kept."""

    @abstractmethod
    def refresh(self, stack: StackTarget) -> list[ResourceChange]:
        """Bring the engine's record of the stack in line with the cloud; returns drift."""

    @abstractmethod
    def drift(self, stack: StackTarget) -> list[ResourceChange]:
        """What ``refresh`` would change, read only: a DELETE for each resource the cloud
        no longer has, an UPDATE (with the ``changed`` properties) for one changed outside
        the engine, where the engine can tell. The engine's record stays as it is, so a
        preview still diffs against what was applied."""

    def unchanged_plan(self, stack_name: str) -> Plan | None:
        """The plan of a stack at the very inputs it was last applied with, from what
        the engine recorded, without running its program; None when only a preview can
        tell (anyone but phasegate may have changed what the preview diffs against, as a
        person running ``pulumi up`` by hand can)."""
        return None

    @abstractmethod
    def outputs(self, stack_name: str) -> StackOutputs | None:
        """The stack's current outputs, or None if the stack was never applied."""

    @abstractmethod
    def aws_client(self, stack: StackTarget, service: str, config: Any = None) -> Any:
        """A boto3 client of ``service`` on the AWS API the stack's resources live in;
        ``config`` (a botocore Config) sizes it for a caller with many requests at once
        (the data copy's workers)."""

    @abstractmethod
    def record_verified(self, stack: StackTarget, fingerprint: str) -> None:
        """Mark in the engine's own record that the stack was verified at ``fingerprint``:
        the second witness, beside the state file, that a rollback asks before it takes
        the destroy path."""

    @abstractmethod
    def verified_fingerprint(self, stack: StackTarget) -> str | None:
        """The fingerprint the engine's own record says the stack was last verified at;
        None when it was never verified. Raises EngineError when the engine cannot tell."""

    def cloud_writes_keeper(self, stack: StackTarget) -> Callable[[], None] | None:
        """What makes durable the writes made through :meth:`aws_client` (a phase's data
        copy), to be called with none under way: the sandbox writes its emulated cloud
        back. None for a real cloud, which has them already."""
        return None

    def sandbox_controls(self) -> SandboxControls | None:
        """The emulated cloud's own controls; None for an engine on a real cloud."""
        return None

    def close(self) -> None:  # noqa: B027 - most engines hold nothing open
        """Release what the engine holds open (emulators, workspaces)."""


class SandboxControls(Protocol):
    """What only an emulated cloud can do: the chores of ``migrate sandbox``."""

    def reset(self, environment: str, region: str) -> None:
        """Empty the environment's emulated cloud and every stack's checkpoint."""

    def set_alarm(self, environment: str, name: str, state: str) -> None:
        """Put a CloudWatch alarm in ALARM or OK, and keep it so."""

    def set_offerings(self, environment: str, instance_type: str, zones: list[str] | None) -> None:
        """Offer ``instance_type`` in exactly ``zones`` of the emulated cloud, in every
        ``describe_instance_type_offerings`` it answers, and keep it so; ``[]`` offers it
        nowhere, None gives back the emulator's own answer."""

    def inventory(self, environment: str) -> Mapping[str, Any]:
        """What the emulated cloud holds, per stack."""

    def serve(
        self,
        environment: str,
        *,
        port: int,
        ready: Callable[[str], None],
        stop: threading.Event,
        host: str = "127.0.0.1",
    ) -> None:
        """Expose the cloud as an AWS endpoint on ``host`` (an IP address; loopback by
        default) until ``stop`` is set."""
