"""``migrate sandbox``: the chores only an emulated cloud has (reset, alarms, instance
type offerings, inventory, serving it as an endpoint), done under the environment's lock
and reached through the engine port's sandbox controls, so this module names no concrete
engine."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable
from typing import Any

from phasegate.engines.base import SandboxControls
from phasegate.environment import Environment
from phasegate.errors import InputError
from phasegate.gates import refuse_interrupted

__all__ = ["SandboxAdmin"]


class SandboxAdmin:
    """The emulated cloud of one environment."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment

    def _controls(self) -> SandboxControls:
        controls = self.environment.engine.sandbox_controls()
        if controls is None:
            env = self.environment.spec
            envs = self.environment.project.migration.environments
            sandboxes = [e.name for e in envs if e.engine == "sandbox"]
            raise InputError(
                f"environment '{env.name}' uses the {env.engine} engine, not the sandbox",
                field="--env",
                hint=f"allowed: {', '.join(sandboxes) or 'none (no environment uses the sandbox)'}",
            )
        return controls

    def _refuse_interrupted(self) -> None:
        env = self.environment
        refuse_interrupted(env.project.migration.phases, env.read_all(), env.name)

    def reset(self) -> list[str]:
        """Empty the environment's emulated cloud and checkpoints; every stack back to
        pending with its history kept."""
        controls = self._controls()
        env = self.environment
        with env.locked():
            states = env.read_all()
            controls.reset(env.name, env.spec.region)
            done = []
            for spec in env.project.migration.phases:
                state = states[spec.name]
                if state.status == "pending" and not state.outputs:
                    continue
                state.outputs, state.lkg, state.plan, state.fingerprint = {}, None, None, None
                state.checks, state.rollback_checks = [], None
                # A start over: a stepped phase (the cutover) begins at its first step again.
                state.step, state.steps = None, None
                env.lifecycle(state).fire(
                    "reset", message="sandbox reset: the emulated cloud was emptied"
                )
                done.append(state.stack)
            return done

    def set_alarm(self, name: str, state: str) -> None:
        """Set an alarm of the emulated cloud to ALARM or OK, as its metric would."""
        controls = self._controls()
        with self.environment.locked():
            self._refuse_interrupted()
            controls.set_alarm(self.environment.name, name, state)

    def set_offerings(self, instance_type: str, zones: list[str] | None) -> None:
        """Offer an instance type in exactly these zones of the emulated cloud (``[]``:
        nowhere; None: as the emulator's own data says)."""
        controls = self._controls()
        with self.environment.locked():
            # A plan of a stack mid-run would read offerings its apply did not.
            self._refuse_interrupted()
            controls.set_offerings(self.environment.name, instance_type, zones)

    def inventory(self) -> dict[str, Any]:
        """What the emulated cloud holds, its stacks in phase order (any other after)."""
        found = dict(self._controls().inventory(self.environment.name))
        env = self.environment
        order = [f"{env.name}-{spec.name}" for spec in env.project.migration.phases]
        stacks: dict[str, Any] = found.get("stacks", {})
        rank = {name: i for i, name in enumerate(order)}
        found["stacks"] = dict(
            sorted(stacks.items(), key=lambda item: (rank.get(item[0], len(order)), item[0]))
        )
        return found

    def serve(
        self,
        *,
        port: int,
        ready: Callable[[str], None],
        stop: threading.Event,
        host: str = "127.0.0.1",
    ) -> None:
        """Serve the emulated cloud on ``host`` (loopback by default), holding the
        environment lock meanwhile."""
        if host != "localhost":
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise InputError(
                    f"'{host}' is not an IP address",
                    field="--host",
                    hint="allowed: an IPv4 or IPv6 address (127.0.0.1, 10.0.0.5, ::1) or localhost",
                ) from None
        controls = self._controls()
        with self.environment.locked():
            # What a client changes while a stack is mid-run would be taken for its drift.
            self._refuse_interrupted()
            controls.serve(self.environment.name, port=port, ready=ready, stop=stop, host=host)
