"""The sandbox's disk: stack checkpoints and the emulated cloud of one environment.

``checkpoint.json`` holds every stack's resources and outputs, the sandbox's own store
(Kubernetes objects and other emulated types), the legacy estate's inventory, and the name
of the cloud snapshot it goes with; values that are secrets of the run are sealed there
(:mod:`~phasegate.engines.sandbox.sealing`). The snapshot is written under its content hash first;
replacing ``checkpoint.json`` is the single commit point, so the checkpoint and the cloud
on disk always agree, wherever a run is killed. In memory, :meth:`SandboxStore.discard`
puts the cloud back as last committed, so a failed operation leaves nothing behind that
a later commit would save unrecorded.

The snapshot is a pickle, sealed with the user's key (``cloud_seal``). Reading the
checkpoint checks the snapshot it names (its seal, and its content hash against its
name) without unpickling it or loading the emulator, which keeps plans fast and refuses
a damaged or foreign snapshot before a run writes anything; the emulator is then loaded
from the very bytes that were checked.

S3 object bodies are not in the snapshot: they are blobs under ``blobs/`` beside it,
written once under their hash and referenced from it (``bodies``), so a commit writes only
the bodies that are new. The blobs no snapshot references any more go with the snapshots
pruned at a commit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phasegate.atomic import write_atomic
from phasegate.engines.sandbox import cloud_seal
from phasegate.engines.sandbox.bodies import BlobStore
from phasegate.engines.sandbox.sealing import Sealer
from phasegate.errors import EngineError
from phasegate.redaction import SecretValues

if TYPE_CHECKING:
    from phasegate.engines.sandbox.emulator import Emulator
    from phasegate.engines.sandbox.legacy import EstateSettings

__all__ = ["FORMAT", "Checkpoint", "ResourceState", "SandboxStore", "StackCheckpoint"]

FORMAT = 1
_RESET = "`migrate sandbox reset` starts the sandbox over"


@dataclass
class ResourceState:
    """One resource as the sandbox last left it."""

    urn: str
    type: str
    name: str
    custom: bool
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    parent: str = ""
    dependencies: list[str] = field(default_factory=list)
    protect: bool = False
    retain_on_delete: bool = False
    """Dropped from the program or destroyed: it leaves the stack and stays in the cloud."""
    emulated: bool = False
    region: str = ""
    """Where it is, when not in the stack's region (its provider's, or its own ``region``)."""


@dataclass
class StackCheckpoint:
    """A stack's resources in creation order (deletes go in reverse) and its outputs."""

    resources: list[ResourceState] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: list[str] = field(default_factory=list)
    released: list[ResourceState] = field(default_factory=list)
    """Protected resources a rollback kept in the cloud that the stack no longer manages;
    a later version that declares one again takes it back instead of creating it."""
    verified: str | None = None
    """The fingerprint phasegate last verified the stack at; None: never verified."""

    def by_urn(self) -> dict[str, ResourceState]:
        return {r.urn: r for r in self.resources}


@dataclass
class Checkpoint:
    environment: str
    region: str
    cloud: str | None = None
    legacy: dict[str, Any] = field(default_factory=dict)
    store: dict[str, Any] = field(default_factory=dict)
    stacks: dict[str, StackCheckpoint] = field(default_factory=dict)

    def to_json(self, seal: Callable[[Any], Any] = lambda data: data) -> str:
        """The checkpoint as JSON, its stacks and store through ``seal``."""
        # Written after every resource operation, so cheaply: plain dicts that share the
        # records' values (asdict() copied them all), and compact JSON, which the C
        # encoder writes (an indented one took most of a commit).
        stacks = {
            name: {
                **vars(stack),
                "resources": [vars(r) for r in stack.resources],
                "released": [vars(r) for r in stack.released],
            }
            for name, stack in self.stacks.items()
        }
        data = {"format": FORMAT, **vars(self), "store": seal(self.store), "stacks": seal(stacks)}
        return json.dumps(data, default=str) + "\n"

    @classmethod
    def from_json(cls, text: str, open_: Callable[[Any], Any] = lambda data: data) -> Checkpoint:
        """A checkpoint from its JSON, its stacks and store through ``open_``."""
        data = json.loads(text)
        if data.pop("format", None) != FORMAT:
            raise ValueError(f"unknown checkpoint format (this phasegate reads {FORMAT})")
        data["stacks"], data["store"] = open_(data["stacks"]), open_(data.get("store", {}))
        stacks = {
            name: StackCheckpoint(
                resources=[ResourceState(**r) for r in s["resources"]],
                outputs=s["outputs"],
                secret_outputs=s["secret_outputs"],
                released=[ResourceState(**r) for r in s.get("released", [])],
                verified=s.get("verified"),
            )
            for name, s in data.pop("stacks").items()
        }
        return cls(stacks=stacks, **data)


class SandboxStore:
    """Checkpoints and cloud snapshot of one environment under ``directory``; the snapshot
    sealed with the key in ``key_file`` (by default the user's, see ``cloud_seal``)."""

    def __init__(
        self,
        directory: Path,
        environment: str,
        region: str,
        secrets: SecretValues | None = None,
        key_file: Path | None = None,
        estate: EstateSettings | None = None,
    ) -> None:
        self.directory = directory
        self.estate = estate
        """What the legacy estate holds when the sandbox is first opened (default: the
        defaults of :class:`~phasegate.engines.sandbox.legacy.EstateSettings`)."""
        self.blobs = BlobStore(directory / "blobs")
        self.environment = environment
        self.region = region
        self.secrets = secrets if secrets is not None else SecretValues()
        """The run's secret values: sealed in the checkpoint, hidden in the manifests."""
        self._sealer = Sealer(directory / "secrets.key", self.secrets)
        self.key_file = key_file or cloud_seal.key_path()
        self._key: bytes | None = None
        self._emulator: Emulator | None = None
        self._committed = b""
        """The cloud as last committed (or loaded): what :meth:`discard` goes back to."""
        self._checked: tuple[str, tuple[int, ...] | None, bytes] | None = None
        """The snapshot last checked: its name, its file's identity, and its dump."""
        self._manifests: dict[str, tuple[tuple[str, frozenset[str]], str]] = {}
        """Kubernetes objects as last rendered: what they were rendered from, the YAML."""

    @property
    def checkpoint_path(self) -> Path:
        return self.directory / "checkpoint.json"

    def load(self) -> Checkpoint:
        """The checkpoint, once the cloud snapshot it names is checked (see module doc)."""
        key = self.key()  # a key that cannot be used stops a run before it writes anything
        try:
            text = self.checkpoint_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return Checkpoint(environment=self.environment, region=self.region)
        try:
            checkpoint = Checkpoint.from_json(text, self._sealer.open)
        except (ValueError, KeyError, TypeError) as exc:
            raise EngineError(
                f"{self.checkpoint_path}: damaged sandbox checkpoint ({exc})", hint=_RESET
            ) from None
        if checkpoint.cloud:
            self._checked_dump(checkpoint.cloud, key)
        return checkpoint

    def key(self) -> bytes:
        """The user's sandbox key (made on first use)."""
        if self._key is None:
            try:
                self._key = cloud_seal.user_key(self.key_file)
            except cloud_seal.KeyProblem as exc:
                raise EngineError(str(exc)) from None
        return self._key

    def cloud_dump(self, checkpoint: Checkpoint) -> bytes:
        """The emulator dump of the cloud snapshot ``checkpoint`` names, checked; empty
        bytes for a checkpoint without one. EngineError, naming the file, if it does not
        check out."""
        if not checkpoint.cloud:
            return b""
        return self._checked_dump(checkpoint.cloud, self.key())

    def _checked_dump(self, name: str, key: bytes) -> bytes:
        """The dump in snapshot ``name`` once its seal and content hash check out; read
        again only if its file changed since it was last checked."""
        path = self.directory / name
        try:
            identity = _identity(path)
            checked = self._checked
            if identity is not None and checked is not None and checked[:2] == (name, identity):
                return checked[2]
            sealed = path.read_bytes()
        except OSError as exc:
            raise EngineError(
                f"{path}: cloud snapshot missing ({exc.strerror or exc})", hint=_RESET
            ) from None
        try:
            dump = cloud_seal.unseal(key, sealed)
        except cloud_seal.Unsealed as exc:
            raise EngineError(
                f"{path}: the sandbox cloud snapshot is not loaded: {exc}", hint=_RESET
            ) from None
        except cloud_seal.SealBroken as exc:
            raise EngineError(
                f"{path}: the sandbox cloud snapshot is not loaded: {exc} "
                f"({self.key_file}); it was damaged, replaced, or written by another user "
                "or machine",
                hint=_RESET,
            ) from None
        if _snapshot_name(dump) != name:
            raise EngineError(
                f"{path}: the sandbox cloud snapshot is not loaded: its content does not "
                "match the hash in its name",
                hint=_RESET,
            )
        self._checked = (name, identity, dump)
        return dump

    def cloud(self, checkpoint: Checkpoint) -> Emulator:
        """The emulated cloud, started and loaded on first use in this process."""
        if self._emulator is None:
            from phasegate.engines.sandbox.emulator import Emulator

            blob = self.cloud_dump(checkpoint)
            emulator = Emulator(region=self.region)
            emulator.start()
            try:
                emulator.load(blob, self._sealer, self.blobs)
            except ValueError as exc:
                emulator.stop()
                raise EngineError(
                    f"{self.directory / str(checkpoint.cloud)}: "
                    f"cannot load the sandbox cloud ({exc})",
                    hint=_RESET,
                ) from None
            except BaseException:
                # A refused blob, say: no emulator may go on answering this process.
                emulator.stop()
                raise
            self._emulator = emulator
            self._committed = blob
            if not checkpoint.legacy:
                from phasegate.engines.sandbox.legacy import create_estate

                checkpoint.legacy = create_estate(
                    emulator.session(), self.environment, self.region, self.estate
                )
                # The estate is the sandbox's starting point, committed or not yet.
                self._committed = emulator.dump(self._sealer, self.blobs)
        return self._emulator

    @property
    def cloud_loaded(self) -> bool:
        return self._emulator is not None

    def commit(self, checkpoint: Checkpoint) -> None:
        """Write the cloud snapshot (if loaded) and then the checkpoint that names it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        blob = self._emulator.dump(self._sealer, self.blobs) if self._emulator is not None else None
        # The blobs of this very dump: once it is committed, no other is needed.
        if blob is not None:
            name = _snapshot_name(blob)
            target = self.directory / name
            # A file of that name is kept only if it is the one checked or written here:
            # any other (an unsealed one from before seals, say) is written again.
            if self._checked is None or self._checked[:2] != (name, _identity(target)):
                write_atomic(target, cloud_seal.seal(self.key(), blob))
                self._checked = (name, _identity(target), blob)
            checkpoint.cloud = name
        write_atomic(self.checkpoint_path, checkpoint.to_json(self._sealer.seal).encode())
        if blob is not None:
            self._committed = blob
        for stale in self.directory.glob("cloud-*.pickle"):
            if stale.name != checkpoint.cloud:
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()
        if blob is not None:
            self.blobs.collect(self.blobs.in_use)
        self._render_manifests(checkpoint)

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Write the checkpoint alone, for a change of the records only (the cloud it
        names stays as committed)."""
        write_atomic(self.checkpoint_path, checkpoint.to_json(self._sealer.seal).encode())

    def discard(self) -> None:
        """Put the cloud in memory back as last committed, undoing whatever an operation
        that failed half way did (a node group rolled to a new launch template version
        before its tagging failed, say): left there, the next commit would save it with
        nothing in the checkpoint saying so."""
        if self._emulator is not None:
            self._emulator.load(self._committed, self._sealer, self.blobs)

    def close(self) -> None:
        if self._emulator is not None:
            self._emulator.stop()
            self._emulator = None

    def reset(self) -> None:
        """Forget everything: cloud, checkpoints, manifests (whatever state they are in:
        this is how a damaged or unsealed sandbox is started over)."""
        self.close()
        self._checked = None
        if self.directory.exists():
            shutil.rmtree(self.directory)

    def _render_manifests(self, checkpoint: Checkpoint) -> None:
        """Write the Kubernetes objects as YAML files people can read and diff."""
        import yaml

        root = self.directory / "kubernetes"
        objects: dict[str, Any] = checkpoint.store.get("kubernetes", {})
        wanted: set[Path] = set()
        for key, manifest in sorted(objects.items()):
            path = root / (key.replace("/", os.sep) + ".yaml")
            wanted.add(path)
            # Rendered again only when the object or the secrets to hide changed: every
            # commit comes here, and YAML is slow to write.
            source = (json.dumps(manifest, default=str), self.secrets.texts())
            rendered = self._manifests.get(key)
            if rendered is None or rendered[0] != source:
                text = yaml.safe_dump(self.secrets.mask_data(manifest), sort_keys=False)
                self._manifests[key] = rendered = (source, text)
            text = rendered[1]
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(path, text.encode())
        if root.exists():
            for path in root.rglob("*.yaml"):
                if path not in wanted:
                    path.unlink()


def _snapshot_name(dump: bytes) -> str:
    """A cloud snapshot's file name: the hash of its content."""
    return f"cloud-{hashlib.sha256(dump).hexdigest()[:16]}.pickle"


def _identity(path: Path) -> tuple[int, ...] | None:
    """What tells a file from its replacement: device, inode, size, modification time
    (None if there is no file)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
