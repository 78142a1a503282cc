"""One environment of a project as a command works on it: its engine, its state files
and its lock, and the stacks an earlier run left unfinished refused before anything runs."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence

from phasegate.engines.base import Engine, EventSink, _ignore
from phasegate.errors import Interrupted, StorageError
from phasegate.events import RunSink, ignore
from phasegate.gates import refuse_interrupted
from phasegate.machine import INTERRUPTED, PhaseLifecycle, RunContext
from phasegate.project import Project
from phasegate.spec import EnvironmentSpec, PhaseSpec
from phasegate.state import EnvironmentLock, PhaseState, StateStore

__all__ = ["Environment"]


class Environment:
    """What every command on one environment shares."""

    def __init__(
        self,
        project: Project,
        environment: str | None,
        context: RunContext,
        *,
        engine: Engine | None = None,
        on_event: EventSink = _ignore,
        on_progress: RunSink = ignore,
        on_notice: Callable[[str], None] = lambda _: None,
        stop: threading.Event | None = None,
    ) -> None:
        self.project = project
        self.stop = stop or threading.Event()
        """Set when the person running the command asks it to stop (Ctrl-C, SIGTERM)."""
        self.spec: EnvironmentSpec = project.migration.environment(environment)
        self.context = context
        self.on_event = on_event
        """Where the engine reports each resource operation."""
        self.on_progress = on_progress
        """Where the run reports its phases' stages and its checks' attempts."""
        self.on_notice = on_notice
        self.states = StateStore(project.state_dir, self.spec.name, project.secrets)
        self._engine = engine

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def engine(self) -> Engine:
        """Built on first use: ``status`` never needs one."""
        if self._engine is None:
            self._engine = self.project.engine(self.spec, stop=self.stop)
        return self._engine

    def sleep(self, seconds: float) -> None:
        """Wait between two looks of a check, unless a stop is asked for: then stop."""
        if self.stop.wait(seconds) or self.stop.is_set():
            raise Interrupted("stopped on request while the checks were running")

    def phases(self, phase: str | None = None) -> list[PhaseSpec]:
        """The phases a command selects: all in order, or the one named."""
        if phase is None:
            return list(self.project.migration.phases)
        return [self.project.migration.phase(phase)]

    def read_all(self) -> dict[str, PhaseState]:
        """Every phase's state; a damaged file stops here, before anything is written."""
        return {p.name: self.states.read(p.name) for p in self.project.migration.phases}

    def lifecycle(
        self, state: PhaseState, guards: dict[str, Callable[[], str | None]] | None = None
    ) -> PhaseLifecycle:
        return PhaseLifecycle(state, self.states, self.context, guards)

    @contextlib.contextmanager
    def locked(self, shared: bool = True) -> Iterator[None]:
        """Hold the environment's lock for the block: the local file lock, then the shared
        one if configured (and ``shared``); released in reverse order. A command that
        only reads the cloud (a plan) takes the local lock alone: it must not hold up, or
        be held up by, a run on another machine."""
        lock = EnvironmentLock(
            self.project.work_dir / "locks", self.spec.name, self.context.command
        )
        lock.acquire()
        try:
            if lock.took_over:
                held = lock.took_over
                self.on_notice(
                    f"took over the lock of environment '{self.spec.name}' left by pid "
                    f"{held.get('pid')} on {held.get('host')} (started {held.get('started')}), "
                    "which is no longer running"
                )
            if not shared:
                yield
                return
            with self._shared_lock():
                yield
        finally:
            lock.release()

    @contextlib.contextmanager
    def _shared_lock(self) -> Iterator[None]:
        """The lock other machines see too, when the environment configures one."""
        if self.spec.lock is None:
            yield
            return
        from phasegate.shared_lock import DynamoDBLock

        shared = DynamoDBLock.for_environment(
            self.project.name,
            self.spec,
            self.spec.lock,
            self.context,
            on_notice=self.on_notice,
            on_lost=self.stop.set,
        )
        with shared.held():
            yield

    def repair_state(self, phase: str, reason: str) -> str:
        """Seal the state file of ``phase`` again after a person fixed it on purpose; the
        history records who did, why, and what was wrong. Returns what was wrong."""
        spec = self.project.migration.phase(phase)
        with self.locked():
            return self.states.repair(
                spec.name,
                lambda status, found: self.context.entry(
                    "repair", status, status, f"sealed again by hand: {reason} (found: {found})"
                ),
            )

    @contextlib.contextmanager
    def opened(
        self, phases: Sequence[PhaseSpec], *, shared: bool = True
    ) -> Iterator[dict[str, PhaseState]]:
        """Locked, every state file read, interrupted stacks refused, and every selected
        stack config validated: a bad value in a late phase must not leave the earlier
        phases' plans recorded."""
        with self.locked(shared):
            states = self.read_all()
            refuse_interrupted(self.project.migration.phases, states, self.spec.name)
            for spec in phases:
                self.project.validate_config(self.spec.name, spec)
            with self.naming_unfinished(states):
                yield states

    @contextlib.contextmanager
    def naming_unfinished(self, states: Mapping[str, PhaseState]) -> Iterator[None]:
        """A file that cannot be written stops the run where it is: the error says which
        stacks that leaves mid-run and that `migrate recover` finishes them. (A transition
        that cannot be written is not made, so ``states`` is what the files say.)"""
        try:
            yield
        except StorageError as exc:
            unfinished = [(s.stack, s.status) for s in states.values() if s.status in INTERRUPTED]
            exc.mid_run(unfinished)
            raise
