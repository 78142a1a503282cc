"""One run of one stack's program: the host that decides, resource by resource, what happens.

The runtime asks it about every registration. In a preview it diffs against the stack's
checkpoint and answers with the outputs to expect; in an up it acts on the emulated cloud
through the resource handlers and commits checkpoint and cloud together after every
resource operation, then deletes, in reverse order, what the program no longer declares
and the originals of create-before-delete replacements. Destroy and refresh use it on the
checkpoint alone, with no program.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections.abc import Mapping
from typing import Any

from phasegate import faults
from phasegate.engines.base import (
    UNKNOWN,
    DeclaredResource,
    Engine,
    EventSink,
    Op,
    ProgressEvent,
    ResourceChange,
    StackOutputs,
    StackTarget,
)
from phasegate.engines.sandbox.diff import _diff, _has_unknown
from phasegate.engines.sandbox.functions import ACCOUNT_ID, answer
from phasegate.engines.sandbox.handlers import (
    CloudContext,
    Handler,
    HandlerError,
    RunContext,
    handler_for,
)
from phasegate.engines.sandbox.lookups import lookup, reads_cloud
from phasegate.engines.sandbox.runtime import ProgramFailed, Registration
from phasegate.engines.sandbox.store import (
    Checkpoint,
    ResourceState,
    SandboxStore,
    StackCheckpoint,
)

__all__: list[str] = []


class _Deployment:
    """One run of one stack's program: the host the runtime asks about each resource."""

    def __init__(
        self,
        engine: Engine,
        stack: StackTarget,
        store: SandboxStore,
        checkpoint: Checkpoint,
        *,
        preview: bool,
        upstream: Mapping[str, StackOutputs],
        on_event: EventSink,
        run: RunContext | None = None,
    ) -> None:
        self.engine = engine
        self.stack = stack
        self.store = store
        self.checkpoint = checkpoint
        self.preview = preview
        self.upstream = upstream
        self.on_event = on_event
        self.run = run or RunContext(project=stack.project)
        """The program's modules and config, for the providers a program defines."""
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
        self._contexts: dict[str, CloudContext] = {}
        self.provider_regions: dict[str, str] = {}
        """The region each explicit aws provider of the program names, by its URN."""
        self._committed_store = copy.deepcopy(checkpoint.store)
        self.released: list[ResourceState] = list(old.released)
        """Protected resources rollbacks left in the cloud and dropped from the stack."""
        self.newly_released: list[ResourceState] = []
        self.retained: list[ResourceState] = []
        """Resources marked retainOnDelete this run dropped from the stack, not deleted."""
        self.operations_done = 0
        """Resource operations carried out and recorded by this run."""

    def _stop_point(self) -> None:
        """Between two resource operations: once a stop is asked for, start no other (the
        one under way has been recorded). The engine reports the run as interrupted."""
        if self.engine.stop.is_set():
            raise ProgramFailed("stopped on request")

    # -- the runtime's questions --------------------------------------------------------

    def register(self, reg: Registration) -> tuple[str, dict[str, Any]]:
        with self._lock:
            self._stop_point()
            self.seen.add(reg.urn)
            old = self.old.get(reg.urn) or self._released(reg.urn)
            if reg.remote:
                # Its children are made by its provider plugin, which the sandbox cannot
                # run: an empty plan here would report success for what it did not do.
                self.declared.append(DeclaredResource(reg.type, reg.name, reg.inputs, False))
                return self._refuse(
                    reg,
                    "a multi-language component (built by its provider plugin), which the "
                    "sandbox engine cannot run",
                )
            if not reg.custom or reg.type.startswith("pulumi:providers:"):
                return self._bookkeeping(reg, old)
            handler = handler_for(reg.type)
            protected = reg.protect or self.stack.is_protected(reg.name)
            self.declared.append(DeclaredResource(reg.type, reg.name, reg.inputs, protected))
            if handler is None:
                return self._refuse(reg, "the sandbox engine has no emulation for this type")
            unemulated = handler.unemulated(reg.inputs)
            if unemulated:
                reason = f"inputs the sandbox does not emulate: {', '.join(unemulated)}"
                return self._refuse(reg, reason)
            known = {k: v for k, v in reg.inputs.items() if not _has_unknown(v)}
            try:
                missing = handler.missing(reg.inputs)  # unknown until apply: given
                if missing:
                    verb = "is" if len(missing) == 1 else "are"
                    raise HandlerError(f"{', '.join(missing)} {verb} required")
                handler.validate(known)
                checked = handler.check(self.run, old.inputs if old else None, reg.inputs)
                reg = dataclasses.replace(reg, inputs=checked)
                decision = _diff(handler, old, reg, self.run)
            except HandlerError as exc:
                raise ProgramFailed(f"{reg.type} '{reg.name}': {exc}") from None
            op, changed = decision.op, decision.changed
            if old is not None and old.region != self.region_of(reg):
                op, changed = Op.REPLACE, tuple(sorted({*changed, "region"}))  # moves it
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
            return self._act(handler, reg, change, old, delete_first=decision.delete_first)

    def stack_outputs(self, stack_name: str) -> StackOutputs | None:
        if stack_name in self.upstream:
            return self.upstream[stack_name]
        found = self.engine.outputs(stack_name)
        if found is None and not self.preview:
            raise ProgramFailed(f"stack {stack_name} has no outputs yet: apply it first")
        return found

    def invoke(self, token: str, args: dict[str, Any]) -> dict[str, Any] | None:
        if reads_cloud(token):
            if _has_unknown(args):
                return None  # known once what it looks for is
            region = args.get("region") if isinstance(args.get("region"), str) else ""
            try:
                return lookup(token, args, self._opened(region or ""))
            except ValueError as exc:
                raise ProgramFailed(f"the function call {token}: {exc}") from None
        try:
            found = answer(token, args, self.stack.region)
        except ValueError as exc:
            raise ProgramFailed(f"the function call {token}: {exc}") from None
        if found is None:
            raise ProgramFailed(f"the sandbox engine cannot answer the function call {token}")
        return found

    def _opened(self, region: str) -> CloudContext:
        """The emulated cloud for a lookup, on a plan as on an apply. Opened for the first
        time, it is made with the legacy estate, the world before the migration: kept
        then, even by a plan, so that the apply finds the very cloud the plan read."""
        made = not self.checkpoint.legacy
        ctx = self.context(region)
        if made and self.preview:
            self.store.commit(self.checkpoint)
        return ctx

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
        region = reg.inputs.get("region")
        if reg.type == "pulumi:providers:aws" and isinstance(region, str) and region:
            self.provider_regions[reg.urn] = region
        id_ = old.id if old else ("" if self.preview else f"{reg.name}-sandbox")
        if not self.preview:
            self._record(reg, id_, dict(reg.inputs), emulated=False)
        return id_, dict(reg.inputs)

    # -- up -----------------------------------------------------------------------------

    def context(self, region: str = "") -> CloudContext:
        """The emulated cloud in ``region`` (the stack's by default): one emulator, all
        regions, as AWS is one account across them."""
        region = region or self.stack.region
        if region not in self._contexts:
            emulator = self.store.cloud(self.checkpoint)
            self._contexts[region] = CloudContext(
                session=emulator.session(),
                region=region,
                account_id=ACCOUNT_ID,
                store=self.checkpoint.store,
                make_client=emulator.client,
                run=self.run,
            )
        return self._contexts[region]

    def region_of(self, reg: Registration) -> str:
        """Where a resource goes: its own ``region`` input, else its provider's, else
        the stack's; "" for the stack's own."""
        own = reg.inputs.get("region")
        if isinstance(own, str) and own and own != UNKNOWN:
            region = own
        else:
            region = self.provider_regions.get(reg.provider.rsplit("::", 1)[0], "")
        return "" if region == self.stack.region else region

    def _act(
        self,
        handler: Handler,
        reg: Registration,
        change: ResourceChange,
        old: ResourceState | None,
        *,
        delete_first: bool = False,
    ) -> tuple[str, dict[str, Any]]:
        if change.refused:
            raise ProgramFailed(f"{reg.type} '{reg.name}': {change.refused}")
        if change.op is Op.SAME and old is not None:
            self._record(reg, old.id, old.outputs, emulated=handler.emulated)
            return old.id, old.outputs
        ctx = self.context(self.region_of(reg))
        self._event(change, "start")
        try:
            faults.point("resource-op-fail")
            if change.op is Op.UPDATE and old is not None:
                outputs = handler.update(ctx, old.id, old.inputs, reg.inputs, old.outputs)
                id_ = old.id
            else:
                if change.op is Op.REPLACE and old is not None:
                    named = handler.name_key is not None and handler.name_key in reg.inputs
                    first = reg.delete_before_replace or handler.delete_before_replace
                    if delete_first or first or named:
                        handler.delete(self.context(old.region), old.id, old.outputs)
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
        self.operations_done += 1
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
            retain_on_delete=reg.retain_on_delete,
            emulated=emulated,
            region=self.region_of(reg),
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
        if handler is not None and not handler.exists(
            self.context(found.region), found.id, found.outputs
        ):
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
            verified=previous.verified,  # the record outlives every apply of the stack
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
        Returns the deletes of what the program no longer declares.

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
        # The delete of a replaced original is the end of its replacement, reported once.
        originals = {id(r) for r in self.replaced}
        for state in [r for r in reversed(self.current) if id(r) in doomed]:
            self._stop_point()
            if state.retain_on_delete:  # it leaves the stack, and stays in the cloud
                self._forget(state)
                self._commit()
                self.retained.append(state)
                continue
            change = self._delete(state)
            if id(state) not in originals:
                done.append(change)
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
                handler.delete(self.context(state.region), state.id, state.outputs)
            except Exception as exc:
                self._discard()
                self._event(change, "failed", str(exc))
                raise ProgramFailed(f"deleting {state.type} '{state.name}': {exc}") from None
        self._forget(state)
        self._commit()
        if state.custom and not state.type.startswith("pulumi:providers:"):
            self.operations_done += 1
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
