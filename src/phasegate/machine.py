"""The phase lifecycle, one machine per stack (DESIGN §3).

::

    pending --apply--> applying --ok--> verifying --pass--> verified
       ^                  | fail              | fail
       |                  v                   v
       +------------ rolled_back <--ok-- rolling_back --error--> rollback_failed

``migrate plan`` is read-only: it fires nothing and writes no state file. The plan a run
applies is recorded with the ``apply`` transition (its fingerprint and summary), written
before the engine acts. ``planned`` is only read: state files of earlier versions, whose
``plan`` wrote it, apply from there like ``pending``.

Guards are named conditions that say why they block. Every state change is written to
the state file (with a history entry) by ``after_state_change``, before the caller lets
the engine act on it.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transitions import EventData, Machine, MachineError

from phasegate.errors import GateBlocked
from phasegate.state import STATUSES, HistoryEntry, PhaseState, StateStore, now

__all__ = ["INTERRUPTED", "TRANSITIONS", "PhaseLifecycle", "RunContext"]

INTERRUPTED = ("applying", "verifying", "rolling_back")
"""States a run only leaves by finishing; found on disk, they mean the run was killed."""

TRANSITIONS: list[dict[str, Any]] = [
    {
        "trigger": "apply",
        "source": ["pending", "planned", "verified", "rolled_back"],
        "dest": "applying",
        "conditions": ["dependencies_verified", "plan_is_fresh"],
    },
    {"trigger": "ok", "source": "applying", "dest": "verifying"},
    {"trigger": "pass", "source": "verifying", "dest": "verified"},
    {"trigger": "fail", "source": ["applying", "verifying"], "dest": "rolling_back"},
    {"trigger": "ok", "source": "rolling_back", "dest": "rolled_back"},
    {"trigger": "error", "source": "rolling_back", "dest": "rollback_failed"},
    # `migrate recover`, once a person has fixed what made the rollback fail.
    {"trigger": "retry", "source": "rollback_failed", "dest": "rolling_back"},
    # `migrate rollback`: the same rollback, asked for by a person.
    {
        "trigger": "rollback",
        "source": ["planned", "verified", "rolled_back"],
        "dest": "rolling_back",
    },
    {"trigger": "reset", "source": "*", "dest": "pending"},
]


def _git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _ci_url(env: Mapping[str, str]) -> str | None:
    """The CI run's page: GitHub Actions', GitLab CI's or Buildkite's."""
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL") or "https://github.com"
        return f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    return env.get("CI_PIPELINE_URL") or env.get("BUILDKITE_BUILD_URL") or None


_PULL_REF = re.compile(r"^refs/pull/(\d+)/")


def _pull_request(env: Mapping[str, str]) -> str | None:
    """The pull (merge) request a CI run is for: GitHub's ``refs/pull/N/merge`` ref,
    GitLab's merge request IID, Buildkite's pull request number."""
    found = _PULL_REF.match(env.get("GITHUB_REF", ""))
    if found:
        return found.group(1)
    for key in ("CI_MERGE_REQUEST_IID", "BUILDKITE_PULL_REQUEST"):
        value = env.get(key)
        if value and value != "false":  # Buildkite says "false" for a branch build
            return value
    return None


@dataclass
class RunContext:
    """Who runs what, from where: stamped on every history entry."""

    command: str
    actor: str
    git_commit: str | None = None
    ci_run: str | None = None
    ci_url: str | None = None
    pull_request: str | None = None
    clock: Callable[[], str] = field(default=now)

    @classmethod
    def detect(cls, root: Path, command: str, environ: dict[str, str] | None = None) -> RunContext:
        env = dict(os.environ if environ is None else environ)
        actor = (
            env.get("GITHUB_ACTOR")
            or env.get("GITLAB_USER_LOGIN")
            or env.get("BUILDKITE_BUILD_CREATOR")
        )
        if not actor:
            try:
                user = getpass.getuser()
            except (KeyError, OSError):
                user = "unknown"
            actor = f"{user}@{socket.gethostname()}"
        ci_run = (
            env.get("GITHUB_RUN_ID") or env.get("CI_PIPELINE_ID") or env.get("BUILDKITE_BUILD_ID")
        )
        return cls(
            command=command,
            actor=actor,
            git_commit=_git_commit(root) or env.get("GITHUB_SHA") or env.get("CI_COMMIT_SHA"),
            ci_run=ci_run,
            ci_url=_ci_url(env),
            pull_request=_pull_request(env),
        )

    def entry(self, event: str, source: str, dest: str, message: str | None) -> HistoryEntry:
        """A history entry of this run: who, when, what command, from which commit."""
        return HistoryEntry.model_validate(
            {
                "at": self.clock(),
                "event": event,
                "from": source,
                "to": dest,
                "actor": self.actor,
                "command": self.command,
                "git_commit": self.git_commit,
                "ci_run": self.ci_run,
                "ci_url": self.ci_url,
                "pull_request": self.pull_request,
                "message": message,
            }
        )


class PhaseLifecycle:
    """One stack's lifecycle; the model of a ``transitions`` machine.

    ``guards`` maps a guard name to a callable returning None when it holds, or the
    reason it does not.
    """

    status: str

    def __init__(
        self,
        state: PhaseState,
        store: StateStore,
        context: RunContext,
        guards: dict[str, Callable[[], str | None]] | None = None,
    ) -> None:
        self.state = state
        self.store = store
        self.context = context
        self.guards = guards or {}
        self.blocked: str | None = None
        self.machine = Machine(
            model=self,
            states=list(STATUSES),
            transitions=TRANSITIONS,
            initial=state.status,
            auto_transitions=False,
            send_event=True,
            model_attribute="status",
            after_state_change="_persist",
        )

    # -- guards -------------------------------------------------------------------------

    def _guard(self, name: str) -> bool:
        check = self.guards.get(name)
        reason = check() if check else None
        if reason:
            self.blocked = reason
            return False
        return True

    def dependencies_verified(self, event: EventData) -> bool:
        return self._guard("dependencies_verified")

    def plan_is_fresh(self, event: EventData) -> bool:
        return self._guard("plan_is_fresh")

    # -- persistence --------------------------------------------------------------------

    def _persist(self, event: EventData) -> None:
        assert event.transition is not None  # after_state_change runs only on a transition
        source = event.transition.source
        self.state.status = self.status  # type: ignore[assignment]
        self.state.history.append(
            self.context.entry(
                event.event.name,
                event.transition.source,
                event.transition.dest or event.transition.source,  # None: internal
                self.store.shown(event.kwargs.get("message")),
            )
        )
        try:
            self.store.write(self.state)
        except Exception:
            # Not written, not happened: the stack stays where its file says it is, so
            # what the caller does next (say, record a failed rollback) starts from there.
            self.state.history.pop()
            self.state.status = source  # type: ignore[assignment]
            self.machine.set_state(source, model=self)
            raise

    def fire(self, event: str, message: str | None = None) -> bool:
        """Trigger ``event``; False (with ``blocked`` set) when a guard stops it."""
        self.blocked = None
        try:
            return bool(self.trigger(event, message=message))  # type: ignore[attr-defined]
        except MachineError:
            raise GateBlocked(
                f"stack {self.state.stack} is {self.state.status}: "
                f"'{event}' is not allowed from there",
                hint="`migrate status` shows where each stack stands",
            ) from None
