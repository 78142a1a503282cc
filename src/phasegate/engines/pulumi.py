"""The pulumi engine: the Automation API over the real Pulumi CLI.

Each run materialises the exact program snapshot and stack config that were fingerprinted
into a work directory (a small Pulumi project), so what was planned is what is applied and
a last-known-good snapshot re-applies without the working tree. The program runs inline,
in this process (the Automation API serves it to the CLI), so the CLI needs no Python
language host; its modules are on ``PYTHONPATH`` for the dynamic providers the CLI starts.
The default backend is a local file backend under ``.phasegate/pulumi``; an environment
may name any backend URL.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from phasegate.atomic import write_atomic
from phasegate.aws_sessions import quick_timestamps
from phasegate.engines.base import (
    Engine,
    EventSink,
    Op,
    Plan,
    ProgressEvent,
    ResourceChange,
    StackOutputs,
    StackTarget,
    UpResult,
    _ignore,
)
from phasegate.engines.programs import run_main
from phasegate.engines.pulumi_events import (
    INTERNAL_TYPES,
    EventWatch,
    change_from_metadata,
    planned_outputs,
)
from phasegate.engines.pulumi_policy import policy_args
from phasegate.engines.pulumi_references import planned_references
from phasegate.engines.pulumi_state import (
    protect_again,
    settle_pending,
    stale_lock,
    unprotect_for_release,
)
from phasegate.errors import EngineError
from phasegate.redaction import SecretValues
from phasegate.yamlfile import dump_yaml

__all__ = ["EventWatch", "PulumiEngine", "change_from_metadata"]

_VERIFIED_TAG = "phasegate:verified"
"""The stack tag in which the engine's own record keeps the fingerprint last verified."""


class PulumiEngine(Engine):
    name = "pulumi"

    def __init__(
        self,
        root: Path,
        home: Path,
        backends: Mapping[str, str | None] | None = None,
        *,
        secrets: SecretValues | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.root = root
        self.home = home
        self.stop = stop or threading.Event()
        self.backends = dict(backends or {})
        """Each environment's backend URL (None: the local file backend)."""
        self.secrets = secrets if secrets is not None else SecretValues()
        """Where the engine puts every secret value it learns of (the run's registry)."""

    # -- workspace ----------------------------------------------------------------------

    def _env(self, target: StackTarget | None, environment: str | None = None) -> dict[str, str]:
        if target is not None:
            environment = target.environment
        backend = (
            self.backends.get(environment or "") or (target.backend if target else None)
        ) or f"file://{self.home / 'backend'}"
        backend = self._anchored(backend)
        if backend.startswith("file://"):
            Path(backend[len("file://") :]).expanduser().mkdir(parents=True, exist_ok=True)
        env = {
            "PULUMI_BACKEND_URL": backend,
            "PULUMI_PYTHON_CMD": sys.executable,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
        }
        # The passphrase only ever comes from the user: an empty default would encrypt
        # every secret of the stack with a key anyone can guess.
        for name in ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"):
            if name in os.environ:
                env[name] = os.environ[name]
        if target is not None:
            env["AWS_REGION"] = target.region
            if target.profile:
                env["AWS_PROFILE"] = target.profile
            if target.endpoint_url:
                env["AWS_ENDPOINT_URL"] = target.endpoint_url
        return env

    def _anchored(self, backend: str) -> str:
        """A relative ``file://`` backend is the project's: the CLI runs in a work dir per
        program version, and would otherwise find a new, empty backend in each one."""
        if not backend.startswith("file://"):
            return backend
        path = backend[len("file://") :]
        if not path or path.startswith(("~", "/")):
            return backend  # Pulumi's own default (~/.pulumi), or absolute already
        return f"file://{(self.root / path).resolve()}"

    def work_dir(self, target: StackTarget) -> Path:
        """A Pulumi project holding exactly the target's program snapshot and config."""
        digest = target.program.digest.split(":", 1)[1][:16]
        directory = self.home / "work" / f"{target.name}-{digest}"
        for name, data in target.program.files.items():
            write_atomic(directory / "program" / name, data)
        project = {
            "name": self._project_name(target),
            "runtime": {"name": "python", "options": {"toolchain": "pip"}},
            "main": "program/",
            "stackConfigDir": "stacks",
        }
        write_atomic(directory / "Pulumi.yaml", dump_yaml(project).encode())
        config = target.run_config
        if target.endpoint_url:
            config.setdefault("aws:skipCredentialsValidation", True)
            config.setdefault("aws:skipRequestingAccountId", True)
        write_atomic(
            directory / "stacks" / f"Pulumi.{target.name}.yaml",
            dump_yaml({**dict(target.stack_settings), "config": config}).encode(),
        )
        return directory

    def _policy_args(self, target: StackTarget) -> dict[str, list[str]]:
        """CrossGuard flags: the project's pack, with this stack's config beside it."""
        return policy_args(target.policy_pack, target.policy_config, self.work_dir(target))

    @staticmethod
    def _project_name(target: StackTarget) -> str:
        return target.project

    def _auto(self) -> Any:
        if shutil.which("pulumi") is None:
            raise EngineError(
                "the pulumi engine needs the Pulumi CLI on PATH",
                hint="install it (https://www.pulumi.com/docs/install/) or use engine: sandbox",
            )
        from pulumi import automation

        return automation

    def _stack(self, target: StackTarget, upstream: Mapping[str, StackOutputs]) -> Any:
        auto = self._auto()
        work = self.work_dir(target)
        program = work / "program"
        env = self._env(target)
        # A dynamic provider is pickled by reference to its module: the provider process
        # the CLI starts imports it from the snapshot, as the program did.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(program), os.environ.get("PYTHONPATH", "")) if p
        )
        try:
            return auto.create_or_select_stack(
                stack_name=target.name,
                project_name=self._project_name(target),
                program=lambda: _run_program(program, upstream),
                opts=auto.LocalWorkspaceOptions(work_dir=str(work), env_vars=env),
            )
        except auto.CommandError as exc:
            raise EngineError(_first_line(exc), stack=target.name) from exc

    def _run(
        self,
        target: StackTarget,
        action: Callable[[Any], Any],
        watch: EventWatch | None = None,
        *,
        upstream: Mapping[str, StackOutputs] | None = None,
        changes_state: bool = False,
    ) -> Any:
        """Run ``action`` on the target's stack, its failures as EngineErrors. An action
        that ``changes_state`` first settles what a killed run left: a lock its dead
        holder cannot release, operations it left pending."""
        with _sdk_errors(target.name):
            return self._run_settled(target, action, watch, upstream, changes_state)

    def _run_settled(
        self,
        target: StackTarget,
        action: Callable[[Any], Any],
        watch: EventWatch | None,
        upstream: Mapping[str, StackOutputs] | None,
        changes_state: bool,
    ) -> Any:
        auto = self._auto()
        self._learn_secret_config(target)
        stack = self._stack(target, upstream or {})
        backend = self._env(target)["PULUMI_BACKEND_URL"]

        def settled(s: Any) -> Any:
            if changes_state:
                settle_pending(s, target.name, backend)
            return action(s)

        try:
            try:
                return settled(stack)
            except auto.ConcurrentUpdateError as exc:
                held = stale_lock(str(exc))
                if held is not True:
                    raise EngineError(
                        f"another run holds the stack's lock: {held}",
                        stack=target.name,
                        hint="wait for it to end; if it is gone, run `pulumi cancel --stack "
                        f"{target.name}` with PULUMI_BACKEND_URL={backend}, then try again",
                    ) from exc
                stack.cancel()  # its holder died on this machine: the lock is stale
                return settled(stack)
        except auto.CommandError as exc:
            if watch is not None and watch.mandatory:
                # Stack policies see values only an up knows: the apply failed, and is
                # rolled back as any failed apply (a preview's findings go to the gate).
                raise EngineError(
                    f"{len(watch.mandatory)} mandatory policy violation(s) during the apply: "
                    + "; ".join(watch.mandatory),
                    stack=target.name,
                ) from exc
            # The resource and the provider's own words, not the CLI's summary of them.
            said = watch.errors[0] if watch is not None and watch.errors else _first_line(exc)
            raise EngineError(said, stack=target.name) from exc

    def _learn_secret_config(self, target: StackTarget) -> None:
        """Add the clear values of the stack's ``secure:`` config to the run's secrets where
        phasegate can open them (the passphrase provider, with the passphrase set). Where
        it cannot, the Pulumi CLI decrypts and says what is missing itself, and it marks
        whatever the program derives from them secret."""
        from phasegate.errors import InputError
        from phasegate.passphrase import reveal

        self.secrets.add_keyed(dict(target.config))
        try:
            revealed = reveal(target.config, target.stack_settings, source=target.config_file)
        except InputError:
            return
        for value in revealed.secrets:
            self.secrets.add(value)

    # -- the port -----------------------------------------------------------------------

    def preview(
        self,
        stack: StackTarget,
        *,
        upstream: Mapping[str, StackOutputs] | None = None,
        on_event: EventSink = _ignore,
    ) -> Plan:
        auto = self._auto()
        changes: list[ResourceChange] = []
        outputs = StackOutputs()  # as planned: unknown where only the apply can tell

        def collect(event: Any) -> None:
            nonlocal outputs
            pre = getattr(event, "resource_pre_event", None)
            if pre is not None:
                change = change_from_metadata(pre.metadata)
                if change is not None:
                    changes.append(change)
            outputs = planned_outputs(event) or outputs

        watch = EventWatch(collect)
        policies = self._policy_args(stack)

        def run(s: Any) -> None:
            try:
                s.preview(on_event=watch, diff=True, **policies)
            except auto.CommandError:
                if not watch.mandatory:
                    raise
                # CrossGuard stopped the preview: its findings go to the policy gate.

        self._run(stack, run, watch, upstream=upstream)
        return Plan(stack=stack.name, changes=changes, outputs=outputs, findings=watch.findings)

    def up(
        self,
        stack: StackTarget,
        *,
        on_event: EventSink = _ignore,
        release_protected: bool = False,
    ) -> UpResult:
        changes: list[ResourceChange] = []
        kept: list[str] = []
        watch = EventWatch(self._sink(stack.name, changes, on_event, kept))
        policies = self._policy_args(stack)
        if not release_protected:
            result = self._run(
                stack, lambda s: s.up(on_event=watch, **policies), watch, changes_state=True
            )
            outputs = self._outputs(result.outputs)
            return UpResult(stack=stack.name, changes=changes, outputs=outputs, kept=tuple(kept))

        def run(s: Any) -> tuple[Any, tuple[str, ...]]:
            protected = unprotect_for_release(s)
            try:
                result = s.up(on_event=watch, **policies)
            except BaseException:
                protect_again(s, protected)  # a failed up leaves nothing unprotected
                raise
            left = {r["urn"] for r in s.export_stack().deployment.get("resources") or []}
            released = tuple(
                f"{was['type']} {urn.rsplit('::', 1)[-1]}"
                for urn, was in protected.items()
                if urn not in left
            )
            return result, released

        result, released = self._run(stack, run, watch, changes_state=True)
        return UpResult(
            stack=stack.name,
            changes=changes,
            outputs=self._outputs(result.outputs),
            kept=tuple(dict.fromkeys([*released, *kept])),
        )

    def destroy(self, stack: StackTarget, *, on_event: EventSink = _ignore) -> UpResult:
        changes: list[ResourceChange] = []
        retained: list[str] = []
        watch = EventWatch(self._sink(stack.name, changes, on_event, retained))

        def run(s: Any) -> tuple[str, ...]:
            if not s.export_stack().deployment.get("resources"):
                return ()  # never applied: nothing to destroy
            s.destroy(on_event=watch, exclude_protected=True)
            # What stays: the protected resources and what they depend on (Pulumi keeps
            # those too), not the stack itself or its providers; and what left the stack
            # but not the cloud (retainOnDelete).
            resources = s.export_stack().deployment.get("resources") or []
            left = [
                f"{r['type']} {r['urn'].rsplit('::', 1)[-1]}"
                for r in resources
                if not str(r.get("type", "")).startswith(INTERNAL_TYPES)
            ]
            return tuple(dict.fromkeys([*left, *retained]))

        kept = self._run(stack, run, watch, changes_state=True)
        return UpResult(stack=stack.name, changes=changes, kept=kept)

    def refresh(self, stack: StackTarget) -> list[ResourceChange]:
        changes: list[ResourceChange] = []
        watch = EventWatch(self._sink(stack.name, changes, _ignore))
        self._run(stack, lambda s: s.refresh(on_event=watch), watch)
        return [c for c in changes if c.op is not Op.SAME]

    def drift(self, stack: StackTarget) -> list[ResourceChange]:
        """A preview-only refresh (``pulumi refresh --preview-only``): each step's result
        (delete for a resource the provider no longer reads, update with the properties
        that differ) as it would be, the stack's state left as it is."""
        changes: list[ResourceChange] = []

        def collect(event: Any) -> None:
            # A refresh's pre-event says "refresh"; its outputs event says what it found.
            found = getattr(event, "res_outputs_event", None)
            change = change_from_metadata(found.metadata) if found is not None else None
            if change is not None and change.op is not Op.SAME:
                changes.append(change)

        watch = EventWatch(collect)
        self._run(stack, lambda s: s.preview_refresh(on_event=watch), watch)
        return changes

    def outputs(self, stack_name: str) -> StackOutputs | None:
        auto = self._auto()
        project = self.root / "Pulumi.yaml"
        try:
            with _sdk_errors(stack_name):
                workspace = auto.LocalWorkspace(
                    work_dir=str(self.root if project.exists() else self.home),
                    env_vars=self._env(None, stack_name.split("-", 1)[0]),
                )
            stack = auto.Stack.select(stack_name, workspace)
            if not stack.export_stack().deployment.get("resources"):
                return None  # made by a preview, never applied
            return self._outputs(stack.outputs())
        except auto.StackNotFoundError:
            return None
        except auto.CommandError as exc:
            raise EngineError(_first_line(exc), stack=stack_name) from exc

    def record_verified(self, stack: StackTarget, fingerprint: str) -> None:
        self._run(stack, lambda s: s.set_tag(_VERIFIED_TAG, fingerprint))

    def verified_fingerprint(self, stack: StackTarget) -> str | None:
        # A stack never tagged has no tags (the file backend keeps none until the first);
        # a backend that cannot keep them fails the listing, and record_verified before.
        tags = self._run(stack, lambda s: dict(s.list_tags()))
        found = tags.get(_VERIFIED_TAG)
        return str(found) if found else None

    def _outputs(self, output_map: Mapping[str, Any]) -> StackOutputs:
        values = {k: v.value for k, v in output_map.items()}
        secret = frozenset(k for k, v in output_map.items() if v.secret)
        self.secrets.add_outputs(values, secret)
        return StackOutputs(values=values, secret=secret)

    def aws_client(self, stack: StackTarget, service: str, config: Any = None) -> Any:
        import boto3
        import botocore.session

        core = quick_timestamps(botocore.session.Session())
        session = boto3.Session(
            profile_name=stack.profile, region_name=stack.region, botocore_session=core
        )
        return session.client(service, endpoint_url=stack.endpoint_url, config=config)

    @staticmethod
    def _sink(
        stack_name: str,
        changes: list[ResourceChange],
        on_event: EventSink,
        kept: list[str] | None = None,
    ) -> Callable[[Any], None]:
        """Progress events, and what the run changed into ``changes``; a delete of a
        resource marked ``retainOnDelete`` only left the stack: it goes into ``kept``."""

        def handle(event: Any) -> None:
            for attr, status in (
                ("resource_pre_event", "start"),
                ("res_outputs_event", "done"),
                ("res_op_failed_event", "failed"),
            ):
                found = getattr(event, attr, None)
                if found is None:
                    continue
                change = change_from_metadata(found.metadata)
                if change is None:
                    return
                old = getattr(found.metadata, "old", None)
                if change.op is Op.DELETE and getattr(old, "retain_on_delete", False):
                    if status == "done" and kept is not None:
                        kept.append(f"{change.type} {change.name}")
                    return
                if status == "done" and change.op is not Op.SAME:
                    changes.append(change)  # what changed, as the sandbox reports it
                if change.op is not Op.SAME:
                    on_event(ProgressEvent(stack_name, change.op, change.type, change.name, status))

        return handle


def _run_program(directory: Path, upstream: Mapping[str, StackOutputs]) -> None:
    """The inline program: the snapshot's ``__main__.py``, with references to upstream
    stacks giving what phasegate planned for them (a preview's ``upstream``)."""
    with planned_references(upstream):
        run_main(directory)


@contextmanager
def _sdk_errors(stack: str) -> Iterator[None]:
    """What the Automation API raises besides a CLI failure, as one line about the stack."""
    from pulumi.automation import InvalidVersionError

    try:
        yield
    except InvalidVersionError as exc:
        raise EngineError(
            f"the Pulumi CLI at {shutil.which('pulumi')} cannot run it: {exc}",
            stack=stack,
            hint="install a Pulumi CLI at least as new as the pulumi Python SDK, or build "
            "one with scripts/build-pulumi.sh",
        ) from exc
    except RuntimeError as exc:
        if str(exc) != "summary event never found":  # the SDK's own words
            raise
        raise EngineError(
            "the Pulumi CLI ended its preview without the summary of what it would do",
            stack=stack,
            hint="run it again; nothing was applied",
        ) from exc


def _first_line(exc: Exception) -> str:
    """The engine's own error line, not the whole CLI transcript."""
    text = str(exc)
    for line in text.splitlines():
        # The Automation API prefixes the CLI's streams: " stderr: error: ...".
        stripped = line.strip().removeprefix("stderr:").strip()
        if stripped.startswith("error:"):
            return stripped[len("error:") :].strip()
    return text.strip().splitlines()[-1] if text.strip() else type(exc).__name__
