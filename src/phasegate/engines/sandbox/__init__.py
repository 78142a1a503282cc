"""The sandbox engine: phase programs on the Pulumi SDK's mock runtime, resources in moto.

It diffs what a program declares against the stack's checkpoint as an engine does
(create, update, replace, delete, same), acts in dependency order (deletes in reverse),
keeps protected resources, and commits checkpoint and cloud together after every
resource operation.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from phasegate import faults
from phasegate.atomic import write_atomic
from phasegate.engines.base import (
    UNKNOWN,
    DeclaredResource,
    Engine,
    EventSink,
    Op,
    Plan,
    ProgramSource,
    ProgressEvent,
    ResourceChange,
    StackOutputs,
    StackTarget,
    UpResult,
    _ignore,
)
from phasegate.engines.sandbox.handlers import CloudContext, Handler, HandlerError, handler_for
from phasegate.engines.sandbox.runtime import ProgramFailed, Registration, run_program
from phasegate.engines.sandbox.store import (
    Checkpoint,
    ResourceState,
    SandboxStore,
    StackCheckpoint,
)
from phasegate.errors import EngineError, InputError

__all__ = ["SandboxEngine"]

_ACCOUNT_ID = "123456789012"


def _has_unknown(value: Any) -> bool:
    if isinstance(value, str):
        return value == UNKNOWN
    if isinstance(value, dict):
        return any(_has_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_unknown(v) for v in value)
    return False


def _diff(
    handler: Handler | None, old: ResourceState | None, reg: Registration
) -> tuple[Op, tuple[str, ...]]:
    if old is None:
        return Op.CREATE, ()
    if old.type != reg.type:
        return Op.REPLACE, ("type",)
    keys = (set(old.inputs) | set(reg.inputs)) - set(reg.ignore_changes)
    changed = tuple(
        sorted(
            k
            for k in keys
            if old.inputs.get(k) != reg.inputs.get(k) or _has_unknown(reg.inputs.get(k))
        )
    )
    if not changed:
        return Op.SAME, ()
    forcing = (handler.replace_on if handler else frozenset()) | set(reg.replace_on_changes)
    replaces = any(_changed_at(old.inputs, reg.inputs, key) for key in forcing)
    return (Op.REPLACE if replaces else Op.UPDATE), changed


def _changed_at(old: Mapping[str, Any], new: Mapping[str, Any], key: str) -> bool:
    """Whether the (possibly nested, ``a.b``) input ``key`` differs or is unknown."""
    for part in key.split(".")[:-1]:
        old_part, new_part = old.get(part), new.get(part)
        old = old_part if isinstance(old_part, Mapping) else {}
        new = new_part if isinstance(new_part, Mapping) else {}
    last = key.rsplit(".", 1)[-1]
    return old.get(last) != new.get(last) or _has_unknown(new.get(last))


def _split_stack(name: str) -> str:
    return name.split("-", 1)[0]


class _Deployment:
    """One run of one stack's program: the host the runtime asks about each resource."""

    def __init__(
        self,
        engine: SandboxEngine,
        stack: StackTarget,
        store: SandboxStore,
        checkpoint: Checkpoint,
        *,
        preview: bool,
        upstream: Mapping[str, StackOutputs],
        on_event: EventSink,
    ) -> None:
        self.engine = engine
        self.stack = stack
        self.store = store
        self.checkpoint = checkpoint
        self.preview = preview
        self.upstream = upstream
        self.on_event = on_event
        old = checkpoint.stacks.get(stack.name) or StackCheckpoint()
        self.old = {r.urn: r for r in old.resources}
        # The stack's resources as they stand now, in an order that deletes can reverse.
        self.current: list[ResourceState] = list(old.resources)
        self.seen: set[str] = set()
        self.changes: list[ResourceChange] = []
        self.declared: list[DeclaredResource] = []
        # Originals of create-before-delete replacements, deleted last. A run killed
        # between the create and the delete leaves both under one URN: the earlier is it.
        self.replaced: list[ResourceState] = [r for r in old.resources if self.old[r.urn] is not r]
        self._lock = threading.Lock()
        self._ctx: CloudContext | None = None
        self._committed_store = copy.deepcopy(checkpoint.store)
        self.released: list[ResourceState] = list(old.released)
        """Protected resources rollbacks left in the cloud and dropped from the stack."""
        self.newly_released: list[ResourceState] = []

    # -- the runtime's questions --------------------------------------------------------

    def register(self, reg: Registration) -> tuple[str, dict[str, Any]]:
        with self._lock:
            self.seen.add(reg.urn)
            old = self.old.get(reg.urn) or self._released(reg.urn)
            if not reg.custom or reg.type.startswith("pulumi:providers:"):
                return self._bookkeeping(reg, old)
            handler = handler_for(reg.type)
            protected = reg.protect or self.stack.is_protected(reg.name)
            self.declared.append(DeclaredResource(reg.type, reg.name, reg.inputs, protected))
            if handler is None:
                return self._refuse(reg, "the sandbox engine has no emulation for this type")
            known = {k: v for k, v in reg.inputs.items() if not _has_unknown(v)}
            try:
                handler.validate(known)
            except HandlerError as exc:
                raise ProgramFailed(f"{reg.type} '{reg.name}': {exc}") from None
            op, changed = _diff(handler, old, reg)
            change = ResourceChange(
                op=op,
                type=reg.type,
                name=reg.name,
                urn=reg.urn,
                changed=changed,
                protected=protected,
                emulated=handler.emulated,
            )
            if op is Op.REPLACE and protected:
                change = ResourceChange(
                    **{**change.__dict__, "refused": "protected: cannot be replaced"}
                )
            self.changes.append(change)
            if self.preview:
                return self._planned(handler, reg, op, old)
            return self._act(handler, reg, change, old)

    def stack_outputs(self, stack_name: str) -> StackOutputs | None:
        if stack_name in self.upstream:
            return self.upstream[stack_name]
        found = self.engine.outputs(stack_name)
        if found is None and not self.preview:
            raise ProgramFailed(f"stack {stack_name} has no outputs yet: apply it first")
        return found

    def invoke(self, token: str, args: dict[str, Any]) -> dict[str, Any] | None:
        if token == "aws:route53/getZone:getZone":
            name = str(args.get("name", "")).rstrip(".")
            zones = self.checkpoint.legacy.get("zones", {})
            if name not in zones and not self.preview:
                self.context()  # opening the cloud creates the legacy estate
                zones = self.checkpoint.legacy.get("zones", {})
            if name in zones:
                zone_id = zones[name]
                return {"id": zone_id, "zoneId": zone_id, "name": name, "privateZone": False}
            if self.preview and not self.checkpoint.legacy:
                return None  # the legacy estate is created on the first apply
            raise ProgramFailed(f"no hosted zone named '{name}' in the sandbox")
        if token == "aws:index/getRegion:getRegion":
            return {"id": self.stack.region, "name": self.stack.region, "region": self.stack.region}
        raise ProgramFailed(f"the sandbox engine cannot answer the function call {token}")

    # -- preview ------------------------------------------------------------------------

    def _planned(
        self, handler: Handler, reg: Registration, op: Op, old: ResourceState | None
    ) -> tuple[str, dict[str, Any]]:
        if op is Op.SAME and old is not None:
            return old.id, old.outputs
        if op is Op.UPDATE and old is not None:
            unknown = {k: UNKNOWN for k in handler.changed_by_update}
            return old.id, {**old.outputs, **reg.inputs, **unknown}
        unknown = {k: UNKNOWN for k in handler.computed if k not in reg.inputs}
        return "", {**reg.inputs, **unknown}

    def _refuse(self, reg: Registration, reason: str) -> tuple[str, dict[str, Any]]:
        self.changes.append(
            ResourceChange(op=Op.CREATE, type=reg.type, name=reg.name, urn=reg.urn, refused=reason)
        )
        if not self.preview:
            raise ProgramFailed(f"{reg.type} '{reg.name}': {reason}")
        return "", dict(reg.inputs)

    def _bookkeeping(self, reg: Registration, old: ResourceState | None) -> tuple[str, dict]:
        """Components and providers: recorded, never acted on in the cloud."""
        id_ = old.id if old else ("" if self.preview else f"{reg.name}-sandbox")
        if not self.preview:
            self._record(reg, id_, dict(reg.inputs), emulated=False)
        return id_, dict(reg.inputs)

    # -- up -----------------------------------------------------------------------------

    def context(self) -> CloudContext:
        if self._ctx is None:
            emulator = self.store.cloud(self.checkpoint)
            self._ctx = CloudContext(
                session=emulator.session(),
                region=self.stack.region,
                account_id=_ACCOUNT_ID,
                store=self.checkpoint.store,
                make_client=emulator.client,
            )
        return self._ctx

    def _act(
        self, handler: Handler, reg: Registration, change: ResourceChange, old: ResourceState | None
    ) -> tuple[str, dict[str, Any]]:
        if change.refused:
            raise ProgramFailed(f"{reg.type} '{reg.name}': {change.refused}")
        if change.op is Op.SAME and old is not None:
            self._record(reg, old.id, old.outputs, emulated=handler.emulated)
            return old.id, old.outputs
        ctx = self.context()
        self._event(change, "start")
        try:
            faults.point("resource-op-fail")
            if change.op is Op.UPDATE and old is not None:
                outputs = handler.update(ctx, old.id, old.inputs, reg.inputs, old.outputs)
                id_ = old.id
            else:
                if change.op is Op.REPLACE and old is not None:
                    named = handler.name_key is not None and handler.name_key in reg.inputs
                    if reg.delete_before_replace or named or handler.delete_before_replace:
                        handler.delete(ctx, old.id, old.outputs)
                        self._forget(old)
                        self._commit()
                    else:
                        self.replaced.append(old)
                id_, outputs = handler.create(ctx, reg.name, reg.inputs)
        except (HandlerError, ProgramFailed, faults.FaultInjected) as exc:
            self._discard()
            self._event(change, "failed", str(exc))
            raise ProgramFailed(f"{reg.type} '{reg.name}': {exc}") from None
        except Exception as exc:
            self._discard()
            self._event(change, "failed", str(exc))
            raise ProgramFailed(f"{reg.type} '{reg.name}': {type(exc).__name__}: {exc}") from None
        self._record(reg, id_, outputs, emulated=handler.emulated)
        self._commit()
        self._passed(change)
        self._event(change, "done")
        return id_, outputs

    def _record(self, reg: Registration, id_: str, outputs: dict, *, emulated: bool) -> None:
        state = ResourceState(
            urn=reg.urn,
            type=reg.type,
            name=reg.name,
            custom=reg.custom,
            id=id_,
            inputs=dict(reg.inputs),
            outputs=dict(outputs),
            parent=reg.parent,
            dependencies=sorted(set(reg.dependencies) | ({reg.parent} if reg.parent else set())),
            protect=reg.protect or self.stack.is_protected(reg.name),
            emulated=emulated,
        )
        # Registration order is dependency order: moving the resource last keeps the
        # list one whose reverse is a safe delete order.
        self.current = [r for r in self.current if r.urn != reg.urn or r in self.replaced]
        self.current.append(state)
        self.released = [r for r in self.released if r.urn != reg.urn]

    def _released(self, urn: str) -> ResourceState | None:
        """A resource a rollback released, declared again: taken back as it stands (no
        create of what exists), then updated to what the program declares."""
        found = next((r for r in self.released if r.urn == urn), None)
        if found is None or self.preview:
            return found
        handler = handler_for(found.type)
        if handler is not None and not handler.exists(self.context(), found.id, found.outputs):
            self.released.remove(found)  # deleted by hand since: made anew
            return None
        return found

    def _forget(self, state: ResourceState) -> None:
        """Drop one resource; not its URN, which the original of a replacement a killed
        run left half done shares (still in the cloud, deleted after the replacement)."""
        self.current = [r for r in self.current if r is not state]
        if state in self.replaced:
            self.replaced.remove(state)

    def _commit(self, outputs: StackOutputs | None = None) -> None:
        previous = self.checkpoint.stacks.get(self.stack.name) or StackCheckpoint()
        self.checkpoint.stacks[self.stack.name] = StackCheckpoint(
            resources=list(self.current),
            outputs=dict(outputs.values) if outputs else previous.outputs,
            secret_outputs=sorted(outputs.secret) if outputs else previous.secret_outputs,
            released=list(self.released),
        )
        self.store.commit(self.checkpoint)
        self._committed_store = copy.deepcopy(self.checkpoint.store)

    def _discard(self) -> None:
        """After a failed operation: the cloud and the sandbox's own records back as last
        committed, so that what it did half way is not saved by the next commit."""
        self.store.discard()
        self.checkpoint.store.clear()
        self.checkpoint.store.update(copy.deepcopy(self._committed_store))

    @staticmethod
    def _passed(change: ResourceChange) -> None:
        """The ``resource-op`` fault point, right after an operation is committed; a
        ``fail`` there fails the run with the operation done, as an error on the next
        API call would."""
        try:
            faults.point("resource-op")
        except faults.FaultInjected as exc:
            raise ProgramFailed(
                f"after {change.op.value} {change.type} '{change.name}': {exc}"
            ) from None

    def _event(self, change: ResourceChange, status: str, message: str = "") -> None:
        self.on_event(
            ProgressEvent(
                stack=self.stack.name,
                op=change.op,
                type=change.type,
                name=change.name,
                status=status,
                message=message,
            )
        )

    def delete_leftovers(self, *, release_protected: bool = False) -> list[ResourceChange]:
        """Delete what the program no longer declares, then replaced originals; reverse order.

        A protected leftover stops the run, unless ``release_protected`` (a rollback to a
        version that never had it): then it stays in the cloud, leaves the stack's
        records, and is in :attr:`released`."""
        done: list[ResourceChange] = []
        gone = [r for r in reversed(self.current) if r.urn not in self.seen]
        for state in [r for r in gone if r.protect]:
            if not release_protected:
                raise ProgramFailed(
                    f"{state.type} '{state.name}' is protected and no longer in the program: "
                    "it will not be deleted (remove its protection first to delete it)"
                )
            self._forget(state)
            self.released.append(state)
            self.newly_released.append(state)
            self._commit()
        gone = [r for r in gone if not r.protect]
        # One pass in reverse creation order over both kinds, each resource once: a
        # replaced original may depend on something no longer declared, or the reverse.
        doomed = {id(r) for r in (*gone, *self.replaced)}
        for state in [r for r in reversed(self.current) if id(r) in doomed]:
            done.append(self._delete(state))
        return done

    def _delete(self, state: ResourceState) -> ResourceChange:
        change = ResourceChange(op=Op.DELETE, type=state.type, name=state.name, urn=state.urn)
        if state.custom and not state.type.startswith("pulumi:providers:"):
            handler = handler_for(state.type)
            if handler is None:
                raise ProgramFailed(f"{state.type} '{state.name}': no sandbox handler to delete it")
            self._event(change, "start")
            try:
                faults.point("resource-op-fail")
                handler.delete(self.context(), state.id, state.outputs)
            except Exception as exc:
                self._discard()
                self._event(change, "failed", str(exc))
                raise ProgramFailed(f"deleting {state.type} '{state.name}': {exc}") from None
        self._forget(state)
        self._commit()
        if state.custom and not state.type.startswith("pulumi:providers:"):
            self._passed(change)
            self._event(change, "done")
        return change

    def planned_deletes(self) -> list[ResourceChange]:
        found = []
        for state in reversed(self.current):
            if state.urn in self.seen or not state.custom or state.type.startswith("pulumi:"):
                continue
            found.append(
                ResourceChange(
                    op=Op.DELETE,
                    type=state.type,
                    name=state.name,
                    urn=state.urn,
                    protected=state.protect,
                    refused="protected: will not be deleted" if state.protect else None,
                )
            )
        return found


class SandboxEngine(Engine):
    """The embedded engine. ``root`` is ``.phasegate/sandbox`` of the project."""

    name = "sandbox"

    def __init__(self, root: Path, regions: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.regions = dict(regions or {})
        self._stores: dict[str, SandboxStore] = {}

    def store(self, environment: str, region: str | None = None) -> SandboxStore:
        if environment not in self._stores:
            region = region or self.regions.get(environment, "us-east-1")
            self._stores[environment] = SandboxStore(self.root / environment, environment, region)
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
        deployment = _Deployment(
            self,
            stack,
            store,
            checkpoint,
            preview=preview,
            upstream=upstream or {},
            on_event=on_event,
        )
        config = {**stack.run_config, "aws:region": stack.region}
        try:
            outputs = run_program(
                self._program_dir(stack.program),
                project=stack.project,
                stack=stack.name,
                config=config,
                preview=preview,
                host=deployment,
            )
        except ProgramFailed as exc:
            raise EngineError(str(exc), stack=stack.name) from exc
        return deployment, outputs

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
            raise EngineError(str(exc), stack=stack.name) from exc
        deployment._commit(outputs)
        changes = [c for c in deployment.changes if c.op is not Op.SAME] + deleted
        kept = tuple(f"{r.type} {r.name}" for r in deployment.newly_released)
        return UpResult(stack=stack.name, changes=changes, outputs=outputs, kept=kept)

    def destroy(self, stack: StackTarget, *, on_event: EventSink = _ignore) -> UpResult:
        store = self.store(stack.environment, stack.region)
        checkpoint = store.load()
        deployment = _Deployment(
            self, stack, store, checkpoint, preview=False, upstream={}, on_event=on_event
        )
        kept = [r for r in deployment.current if r.protect or stack.is_protected(r.name)]
        deployment.seen = {r.urn for r in kept}
        try:
            deleted = deployment.delete_leftovers()
        except ProgramFailed as exc:
            raise EngineError(str(exc), stack=stack.name) from exc
        deployment._commit(StackOutputs())
        return UpResult(
            stack=stack.name, changes=deleted, kept=tuple(f"{r.type} {r.name}" for r in kept)
        )

    def refresh(self, stack: StackTarget) -> list[ResourceChange]:
        """Reconcile the stack's checkpoint with the cloud: each resource the cloud no
        longer has is dropped (only that one: of a replacement a killed run left half
        done, the half that exists stays for the next run to finish), and checkpoint,
        cloud snapshot and manifests are written again, whatever a killed run left."""
        store = self.store(stack.environment, stack.region)
        checkpoint = store.load()
        deployment = _Deployment(
            self, stack, store, checkpoint, preview=False, upstream={}, on_event=_ignore
        )
        drift: list[ResourceChange] = []
        for state in list(deployment.current):
            handler = handler_for(state.type) if state.custom else None
            if handler is None or state.type.startswith("pulumi:"):
                continue
            if not handler.exists(deployment.context(), state.id, state.outputs):
                deployment._forget(state)
                drift.append(
                    ResourceChange(op=Op.DELETE, type=state.type, name=state.name, urn=state.urn)
                )
        deployment._commit()
        return drift

    def outputs(self, stack_name: str) -> StackOutputs | None:
        environment = _split_stack(stack_name)
        checkpoint = self.store(environment).load()
        found = checkpoint.stacks.get(stack_name)
        if found is None or (not found.resources and not found.outputs):
            return None
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
        outputs = StackOutputs(values=found.outputs, secret=frozenset(found.secret_outputs))
        return Plan(stack_name, same, outputs)

    # -- the sandbox's own commands ----------------------------------------------------------

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
            "legacy": checkpoint.legacy,
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

    def aws_client(self, stack: StackTarget, service: str) -> Any:
        """A client of the environment's emulated cloud, in this process (read by checks)."""
        store = self.store(stack.environment, stack.region)
        return store.cloud(store.load()).client(service, stack.region)

    def serve(
        self,
        environment: str,
        *,
        port: int,
        ready: Any,
        stop: threading.Event,
    ) -> None:
        """Serve the emulated cloud on 127.0.0.1 until ``stop``; write back what changed."""
        from phasegate.engines.sandbox.server import serve

        store = self.store(environment)
        checkpoint = store.load()
        emulator = store.cloud(checkpoint)
        store.commit(checkpoint)  # a first serve creates the legacy estate: keep it
        try:
            serve(emulator, "127.0.0.1", port, ready=ready, stop=stop)
        finally:
            store.commit(checkpoint)
