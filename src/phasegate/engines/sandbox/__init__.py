"""The sandbox engine: phase programs on the Pulumi SDK's mock runtime, resources in moto.

It diffs what a program declares against the stack's checkpoint as an engine does
(create, update, replace, delete, same), acts in dependency order (deletes in reverse),
keeps protected resources, and commits checkpoint and cloud together after every
resource operation.

:class:`SandboxEngine` is the port and the sandbox's own commands (inventory, alarms,
serve); one run of a stack's program is a ``deployment``, which classifies each change
with ``diff`` and acts on the emulated cloud (``emulator``) through ``handlers``, saving
to the environment's ``store``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from phasegate.atomic import write_atomic
from phasegate.engines.base import (
    Engine,
    EventSink,
    Op,
    Plan,
    ProgramSource,
    ResourceChange,
    StackOutputs,
    StackTarget,
    UpResult,
    _ignore,
)
from phasegate.engines.sandbox.deployment import _Deployment
from phasegate.engines.sandbox.handlers import RunContext, handler_for
from phasegate.engines.sandbox.runtime import ProgramFailed, _config_for_sdk, run_program
from phasegate.engines.sandbox.store import (
    Checkpoint,
    ResourceState,
    SandboxStore,
    StackCheckpoint,
)
from phasegate.errors import EngineError, InputError, Interrupted
from phasegate.passphrase import RevealedConfig, reveal
from phasegate.redaction import SecretValues

__all__ = ["SandboxEngine"]


def _split_stack(name: str) -> str:
    return name.split("-", 1)[0]


class SandboxEngine(Engine):
    """The embedded engine. ``root`` is ``.phasegate/sandbox`` of the project."""

    name = "sandbox"

    def __init__(
        self,
        root: Path,
        regions: Mapping[str, str] | None = None,
        *,
        secrets: SecretValues | None = None,
        stop: threading.Event | None = None,
        estates: Mapping[str, Mapping[str, int]] | None = None,
    ) -> None:
        self.root = root
        self.estates = {name: dict(settings) for name, settings in (estates or {}).items()}
        """Per environment: what its legacy estate holds (``EstateSettings`` fields)."""
        self.regions = dict(regions or {})
        self.stop = stop or threading.Event()
        self.secrets = secrets if secrets is not None else SecretValues()
        """Where the engine puts every secret value it learns of (the run's registry)."""
        self._stores: dict[str, SandboxStore] = {}

    def store(self, environment: str, region: str | None = None) -> SandboxStore:
        if environment not in self._stores:
            region = region or self.regions.get(environment, "us-east-1")
            from phasegate.engines.sandbox.legacy import EstateSettings

            self._stores[environment] = SandboxStore(
                self.root / environment,
                environment,
                region,
                self.secrets,
                estate=EstateSettings(**self.estates.get(environment, {})),
            )
        return self._stores[environment]

    def close(self) -> None:
        for store in self._stores.values():
            store.close()

    def _program_dir(self, program: ProgramSource) -> Path:
        """The snapshot the stack runs, written once under its content hash."""
        directory = self.root / "programs" / program.digest.split(":", 1)[1][:20]
        if not (directory / ".complete").exists():
            for name, data in program.files.items():
                write_atomic(directory / name, data)
            write_atomic(directory / ".complete", program.digest.encode())
        return directory

    def _run(
        self,
        stack: StackTarget,
        *,
        preview: bool,
        upstream: Mapping[str, StackOutputs] | None,
        on_event: EventSink,
    ) -> tuple[_Deployment, StackOutputs]:
        store = self.store(stack.environment, stack.region)
        checkpoint = store.load()
        revealed = self._reveal(stack)
        config = {**stack.run_config, **revealed.values, "aws:region": stack.region}
        deployment = _Deployment(
            self,
            stack,
            store,
            checkpoint,
            preview=preview,
            upstream=upstream or {},
            on_event=on_event,
            run=self._run_context(stack, config),
        )
        try:
            outputs = run_program(
                self._program_dir(stack.program),
                project=stack.project,
                stack=stack.name,
                config=config,
                preview=preview,
                host=deployment,
                secret_keys=revealed.secret_keys,
                on_secret=self.secrets.add,
            )
        except ProgramFailed as exc:
            raise self._failure(stack, deployment, exc) from exc
        self.secrets.add_outputs(outputs.values, outputs.secret)
        return deployment, outputs

    def _run_context(
        self, stack: StackTarget, config: Mapping[str, Any] | None = None
    ) -> RunContext:
        """The program's modules and config for the providers it defines. Without a run of
        the program (destroy, refresh) its ``secure:`` config stays encrypted."""
        if config is None:
            config = {**stack.run_config, "aws:region": stack.region}
        return RunContext(
            project=stack.project,
            program=self._program_dir(stack.program),
            config=_config_for_sdk(stack.project, config),
        )

    def _failure(
        self, stack: StackTarget, deployment: _Deployment, exc: ProgramFailed
    ) -> EngineError | Interrupted:
        """A run that stopped: on request (between two operations, each recorded), or
        because something failed."""
        if self.stop.is_set():
            done = deployment.operations_done
            return Interrupted(
                f"{stack.name}: stopped on request after {done} resource operation(s)"
            )
        return EngineError(str(exc), stack=stack.name)

    def _reveal(self, stack: StackTarget) -> RevealedConfig:
        """The stack config with its ``secure:`` values decrypted, as Pulumi's passphrase
        secrets provider does; they and any value under a secret-sounding key join the
        run's secrets. A value that cannot be decrypted fails the stack's run (a rollback
        too, which then fails rather than stopping half way)."""
        source = stack.config_file or f"the config of stack {stack.name}"
        try:
            revealed = reveal(stack.config, stack.stack_settings, source=source)
        except InputError as exc:
            raise EngineError(str(exc), stack=stack.name) from None
        for value in revealed.secrets:
            self.secrets.add(value)
        self.secrets.add_keyed(revealed.values)
        return revealed

    def preview(
        self,
        stack: StackTarget,
        *,
        upstream: Mapping[str, StackOutputs] | None = None,
        on_event: EventSink = _ignore,
    ) -> Plan:
        deployment, outputs = self._run(stack, preview=True, upstream=upstream, on_event=on_event)
        changes = deployment.changes + deployment.planned_deletes()
        return Plan(
            stack=stack.name, changes=changes, outputs=outputs, resources=deployment.declared
        )

    def up(
        self,
        stack: StackTarget,
        *,
        on_event: EventSink = _ignore,
        release_protected: bool = False,
    ) -> UpResult:
        deployment, outputs = self._run(stack, preview=False, upstream=None, on_event=on_event)
        try:
            deleted = deployment.delete_leftovers(release_protected=release_protected)
        except ProgramFailed as exc:
            raise self._failure(stack, deployment, exc) from exc
        deployment._commit(outputs)
        changes = [c for c in deployment.changes if c.op is not Op.SAME] + deleted
        kept = tuple(
            f"{r.type} {r.name}" for r in (*deployment.newly_released, *deployment.retained)
        )
        return UpResult(stack=stack.name, changes=changes, outputs=outputs, kept=kept)

    def _on_checkpoint(self, stack: StackTarget, on_event: EventSink) -> _Deployment:
        """A run of the stack on its checkpoint alone, with no program (destroy, refresh)."""
        store = self.store(stack.environment, stack.region)
        return _Deployment(
            self,
            stack,
            store,
            store.load(),
            preview=False,
            upstream={},
            on_event=on_event,
            run=self._run_context(stack),
        )

    def destroy(self, stack: StackTarget, *, on_event: EventSink = _ignore) -> UpResult:
        deployment = self._on_checkpoint(stack, on_event)
        kept = [r for r in deployment.current if r.protect or stack.is_protected(r.name)]
        deployment.seen = {r.urn for r in kept}
        try:
            deleted = deployment.delete_leftovers()
        except ProgramFailed as exc:
            raise self._failure(stack, deployment, exc) from exc
        deployment._commit(StackOutputs())
        kept += deployment.retained
        return UpResult(
            stack=stack.name, changes=deleted, kept=tuple(f"{r.type} {r.name}" for r in kept)
        )

    def refresh(self, stack: StackTarget) -> list[ResourceChange]:
        """Reconcile the stack's checkpoint with the cloud: each resource the cloud no
        longer has is dropped (only that one: of a replacement a killed run left half
        done, the half that exists stays for the next run to finish), and checkpoint,
        cloud snapshot and manifests are written again, whatever a killed run left."""
        deployment = self._on_checkpoint(stack, _ignore)
        drift: list[ResourceChange] = []
        for state in self._gone(deployment):
            deployment._forget(state)
            drift.append(
                ResourceChange(op=Op.DELETE, type=state.type, name=state.name, urn=state.urn)
            )
        deployment._commit()
        return drift

    def drift(self, stack: StackTarget) -> list[ResourceChange]:
        """Each resource of the checkpoint the cloud no longer has, as a DELETE; nothing is
        written (a handler tells whether a resource exists, not how it differs, so there
        is no UPDATE here)."""
        deployment = self._on_checkpoint(stack, _ignore)
        return [
            ResourceChange(op=Op.DELETE, type=state.type, name=state.name, urn=state.urn)
            for state in self._gone(deployment)
        ]

    @staticmethod
    def _gone(deployment: _Deployment) -> list[ResourceState]:
        """The stack's resources (of the types the sandbox acts on) the cloud lacks."""
        gone = []
        for state in list(deployment.current):
            handler = handler_for(state.type) if state.custom else None
            if handler is None or state.type.startswith("pulumi:"):
                continue
            if not handler.exists(deployment.context(state.region), state.id, state.outputs):
                gone.append(state)
        return gone

    def outputs(self, stack_name: str) -> StackOutputs | None:
        environment = _split_stack(stack_name)
        checkpoint = self.store(environment).load()
        found = checkpoint.stacks.get(stack_name)
        if found is None or (not found.resources and not found.outputs):
            return None
        self.secrets.add_outputs(found.outputs, found.secret_outputs)
        return StackOutputs(values=found.outputs, secret=frozenset(found.secret_outputs))

    def unchanged_plan(self, stack_name: str) -> Plan | None:
        """Every recorded resource the same: a preview diffs against this checkpoint,
        which only phasegate writes."""
        environment = _split_stack(stack_name)
        found = self.store(environment).load().stacks.get(stack_name)
        if found is None or (not found.resources and not found.outputs):
            return None
        same = [
            ResourceChange(
                op=Op.SAME,
                type=r.type,
                name=r.name,
                urn=r.urn,
                protected=r.protect,
                emulated=r.emulated,
            )
            for r in found.resources
            if r.custom and not r.type.startswith("pulumi:providers:")
        ]
        self.secrets.add_outputs(found.outputs, found.secret_outputs)
        outputs = StackOutputs(values=found.outputs, secret=frozenset(found.secret_outputs))
        return Plan(stack_name, same, outputs)

    # -- the sandbox's own commands ----------------------------------------------------------

    def record_verified(self, stack: StackTarget, fingerprint: str) -> None:
        store = self.store(stack.environment)
        checkpoint = store.load()
        checkpoint.stacks.setdefault(stack.name, StackCheckpoint()).verified = fingerprint
        store.save_checkpoint(checkpoint)

    def verified_fingerprint(self, stack: StackTarget) -> str | None:
        found = self.store(stack.environment).load().stacks.get(stack.name)
        return found.verified if found is not None else None

    def cloud_writes_keeper(self, stack: StackTarget) -> Callable[[], None]:
        """Commits the emulated cloud, as the copy left it, with the checkpoint."""
        store = self.store(stack.environment, stack.region)

        def keep() -> None:
            if store.cloud_loaded:
                store.commit(store.load())

        return keep

    def sandbox_controls(self) -> SandboxEngine:
        return self

    def reset(self, environment: str, region: str) -> None:
        """Empty the environment's emulated cloud and every stack's checkpoint."""
        self.store(environment, region).reset()

    def inventory(self, environment: str) -> dict[str, Any]:
        """What the emulated cloud of ``environment`` holds, from its checkpoint."""
        store = self.store(environment)
        checkpoint = store.load()
        snapshot = store.directory / checkpoint.cloud if checkpoint.cloud else None
        return {
            "environment": environment,
            "directory": str(store.directory),
            "initialised": store.checkpoint_path.exists(),
            "cloud_snapshot_bytes": snapshot.stat().st_size
            if snapshot and snapshot.exists()
            else 0,
            "legacy": self._legacy_now(store, checkpoint),
            "stacks": {
                name: [
                    {"type": r.type, "name": r.name, "id": r.id, "protected": r.protect}
                    for r in stack.resources
                    if r.custom and not r.type.startswith("pulumi:")
                ]
                for name, stack in sorted(checkpoint.stacks.items())
            },
            "kubernetes_objects": sorted(checkpoint.store.get("kubernetes", {})),
        }

    @staticmethod
    def _legacy_now(store: SandboxStore, checkpoint: Checkpoint) -> dict[str, Any]:
        """The legacy estate, its bucket's objects and bytes counted as they are now
        (people add exports through `sandbox serve`); None for a bucket deleted since."""
        legacy = dict(checkpoint.legacy)
        if not legacy.get("bucket") or not checkpoint.cloud:
            return legacy
        from phasegate.engines.sandbox.emulator import bucket_versions

        emulator = store.cloud(checkpoint)
        counts = bucket_versions(emulator.account_id, store.region, legacy["bucket"])
        if counts is None:
            legacy.update(objects=None, bytes=None, versions=None, delete_markers=None)
        else:
            legacy.update(counts)
        return legacy

    def set_alarm(self, environment: str, name: str, state: str) -> None:
        """Put a CloudWatch alarm of the emulated cloud in ALARM or OK, and keep it so."""
        store = self.store(environment)
        checkpoint = store.load()
        cloudwatch = store.cloud(checkpoint).client("cloudwatch", store.region)
        names = [a["AlarmName"] for a in cloudwatch.describe_alarms()["MetricAlarms"]]
        if name not in names:
            raise InputError(
                f"no alarm named '{name}' in the {environment} sandbox",
                field="NAME",
                hint=f"allowed: {', '.join(sorted(names)) or 'none (apply the cutover first)'}",
            )
        cloudwatch.set_alarm_state(
            AlarmName=name, StateValue=state, StateReason="set by `migrate sandbox alarm`"
        )
        store.commit(checkpoint)

    def set_offerings(self, environment: str, instance_type: str, zones: list[str] | None) -> None:
        """Offer ``instance_type`` in exactly ``zones`` of the emulated cloud (``[]``: in
        none; None: as the emulator's own data says), and keep it so."""
        from phasegate.engines.sandbox.zone_offerings import UnknownInstanceType, hold_offerings

        store = self.store(environment)
        checkpoint = store.load()
        emulator = store.cloud(checkpoint)
        try:
            hold_offerings(emulator.account_id, store.region, instance_type, zones)
        except ValueError as exc:
            field = "TYPE" if isinstance(exc, UnknownInstanceType) else "--zones"
            raise InputError(str(exc), field=field) from None
        store.commit(checkpoint)

    def aws_client(self, stack: StackTarget, service: str, config: Any = None) -> Any:
        """A client of the environment's emulated cloud, in this process (read by checks
        and by planning, written by the data copy). Opened for the first time, the cloud
        is made with the legacy estate and kept, as a program's lookup keeps it: the
        apply finds that very cloud."""
        store = self.store(stack.environment, stack.region)
        checkpoint = store.load()
        made = not checkpoint.legacy and not store.cloud_loaded
        client = store.cloud(checkpoint).client(service, stack.region, config)
        if made:
            store.commit(checkpoint)
        return client

    def serve(
        self,
        environment: str,
        *,
        port: int,
        ready: Any,
        stop: threading.Event,
        host: str = "127.0.0.1",
    ) -> None:
        """Serve the emulated cloud on ``host`` until ``stop``; write back what changed."""
        from phasegate.engines.sandbox.server import serve

        store = self.store(environment)
        checkpoint = store.load()
        emulator = store.cloud(checkpoint)
        store.commit(checkpoint)  # a first serve creates the legacy estate: keep it
        try:
            serve(emulator, host, port, ready=ready, stop=stop)
        finally:
            store.commit(checkpoint)
