"""Last-known-good snapshots: the exact program, stack config and checks of a phase's last
verified apply, content-addressed under ``state/lkg/``. A rollback restores that version
from here, never from the working tree or git.

A config with ``secure:`` values is kept as the stack file has it, encrypted, together
with the stack file's ``encryptionsalt`` (and ``secretsprovider``) that decrypts it, so a
rollback decrypts it again even after the working tree's salt or passphrase changed; the
clear values are never written here."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from phasegate.atomic import write_atomic
from phasegate.checks import CheckSpec
from phasegate.engines.base import ProgramSource, StackTarget
from phasegate.errors import EngineError
from phasegate.passphrase import has_secure
from phasegate.planning import digest
from phasegate.spec import PhaseSpec
from phasegate.state import LastKnownGood, now

__all__ = ["LastKnownGoodStore"]

_WITH_SETTINGS = "phasegate-lkg-config/2"
"""The ``format`` of a kept config that carries its stack file's secret settings."""


class LastKnownGoodStore:
    """The snapshots beside one project's state files."""

    def __init__(self, state_dir: Path, on_notice: Callable[[str], None]) -> None:
        self.directory = state_dir / "lkg"
        self.on_notice = on_notice

    def _path(self, kind: str, content: str) -> Path:
        """Where a last-known-good program or config is kept, by its content address."""
        return self.directory / f"{kind}-{content.split(':', 1)[1][:24]}.json"

    def keep(
        self, target: StackTarget, fingerprint: str, checks: Sequence[CheckSpec]
    ) -> LastKnownGood:
        """Store the program snapshot, the config and the checks it passed: a rollback
        restores that version and judges it by those."""
        program = {"module": target.program.module, **_files_as_json(target.program.files)}
        program_id = target.program.digest
        config_id = target.config_digest
        checked = [c.model_dump(mode="json") for c in checks]
        checks_id = digest(checked)
        config: dict[str, Any] = dict(target.config)
        if any(has_secure(v) for v in config.values()):
            config = {
                "format": _WITH_SETTINGS,
                "config": config,
                "stack_settings": dict(sorted(target.stack_settings.items())),
            }
        for kind, content, data in (
            ("program", program_id, program),
            ("config", config_id, config),
            ("checks", checks_id, checked),
        ):
            path = self._path(kind, content)
            if not path.exists():
                write_atomic(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
        return LastKnownGood(
            fingerprint=fingerprint,
            program=program_id,
            config=config_id,
            checks=checks_id,
            at=now(),
        )

    def load(self, kind: str, content: str) -> Any:
        """The kept program, config or checks at ``content``, once it matches that digest:
        one changed since it was kept is refused, never used."""
        path = self._path(kind, content)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise _Unreadable(f"last known good {kind} {path} is unreadable: {exc}") from None
        if _digest(kind, data) != content:
            raise _Tampered(
                f"{path}: the last known good {kind} does not match its digest "
                f"{content.split(':', 1)[-1][:12]} (changed after it was kept), so it is not used",
                hint="restore the file from version control, then `migrate recover`",
            )
        return data

    def program_module(self, lkg: LastKnownGood) -> str:
        """The module of the last known good's program (the stack's entry point)."""
        return str(self.load("program", lkg.program)["module"])

    def target(self, target: StackTarget, lkg: LastKnownGood) -> StackTarget:
        """``target`` with the last known good's program and config. Its checks are
        verified here too, so that nothing is applied of a last known good any of whose
        snapshots was changed since it was kept."""
        program = self.load("program", lkg.program)
        source = ProgramSource(
            module=program["module"],
            files=_files_from_json(program),
        )
        config = self.load("config", lkg.config)
        if lkg.checks is not None:
            with contextlib.suppress(_Unreadable):  # gone: see checks()
                self.load("checks", lkg.checks)
        settings = target.stack_settings
        if isinstance(config, dict) and config.get("format") == _WITH_SETTINGS:
            config, settings = config["config"], config["stack_settings"]
        return StackTarget(
            **{
                **target.__dict__,
                "program": source,
                "config": config,
                "stack_settings": settings,
                "config_file": str(self._path("config", lkg.config)),
            }
        )

    def checks(self, spec: PhaseSpec, lkg: LastKnownGood) -> list[CheckSpec]:
        """The checks the last known good passed (the phase's current ones for a last
        known good kept before checks were kept with it)."""
        if lkg.checks is None:
            return list(spec.checks)
        try:
            return [CheckSpec.model_validate(c) for c in self.load("checks", lkg.checks)]
        except (_Unreadable, ValueError) as exc:
            # A check kind changed since (or its file is gone): the restore is judged by
            # the phase's checks as they are now rather than not at all, and said so.
            # Checks changed since they were kept are refused (_Tampered), not replaced.
            self.on_notice(
                f"{spec.name}: the last known good's checks no longer read "
                f"({str(exc).splitlines()[0]}); checking it with the phase's current checks"
            )
            return list(spec.checks)


class _Unreadable(EngineError):
    """A snapshot file is missing or is not JSON."""


class _Tampered(EngineError):
    """A snapshot file reads but does not match the digest it is kept under."""


def _files_as_json(files: Mapping[str, bytes]) -> dict[str, dict[str, str]]:
    """A program's files as JSON: text as it reads (reviewable in a diff), any other file
    (an image, a zip, model weights) in base64 under ``binary``."""
    text: dict[str, str] = {}
    binary: dict[str, str] = {}
    for name, data in sorted(files.items()):
        try:
            text[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            binary[name] = base64.b64encode(data).decode("ascii")
    return {"files": text, **({"binary": binary} if binary else {})}


def _files_from_json(program: Mapping[str, Any]) -> dict[str, bytes]:
    """The files ``_files_as_json`` wrote, byte for byte."""
    files = {k: v.encode("utf-8") for k, v in program["files"].items()}
    files.update({k: base64.b64decode(v) for k, v in program.get("binary", {}).items()})
    return files


def _digest(kind: str, data: Any) -> str | None:
    """The digest ``data`` has as a kept ``kind``, computed as when it was kept (None if
    it is not shaped like one)."""
    try:
        if kind == "program":
            return ProgramSource(module=data["module"], files=_files_from_json(data)).digest
        if kind == "config" and isinstance(data, dict) and data.get("format") == _WITH_SETTINGS:
            return digest(data["config"])  # kept with the salt that decrypts its secure: values
        return digest(data)
    except (KeyError, TypeError, AttributeError, binascii.Error):
        return None
