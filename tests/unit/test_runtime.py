"""The sandbox's run of a program on the Pulumi mock runtime: what escapes it and how."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from phasegate.engines.sandbox.runtime import ProgramFailed, run_program


class _Host:
    def register(self, reg: Any) -> tuple[str, dict[str, Any]]:
        return f"{reg.name}-id", dict(reg.inputs)

    def stack_outputs(self, name: str) -> None:
        return None

    def invoke(self, token: str, args: dict[str, Any]) -> None:
        return None


def _run(tmp_path: Path, body: str) -> Any:
    (tmp_path / "__main__.py").write_text(body)
    return run_program(
        tmp_path, project="t", stack="sandbox-t", config={}, preview=True, host=_Host()
    )


def test_a_program_error_is_a_program_failure_with_its_message(tmp_path: Path) -> None:
    with pytest.raises(ProgramFailed, match="the subnet list is empty"):
        _run(tmp_path, "raise ValueError('the subnet list is empty')\n")


def test_ctrl_c_is_not_turned_into_a_program_failure(tmp_path: Path) -> None:
    # A failure would start an automatic rollback; an interrupt must stop the run instead.
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, "raise KeyboardInterrupt\n")
