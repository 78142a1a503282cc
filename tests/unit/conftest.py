"""Fixtures the unit tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from phasegate.engines.sandbox import emulator as sandbox_emulator
from phasegate.engines.sandbox.emulator import Emulator

REGION = "us-east-1"
ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    """An emulated cloud for one test module, empty at its start and end."""
    with pytest.MonkeyPatch.context() as mp:
        # Set, not deleted: the emulator fills them with setdefault, and only variables
        # the monkeypatch set are put back as they were after the module.
        for name, value in sandbox_emulator._ENV_DEFAULTS.items():
            mp.setenv(name, value)
        emulator = Emulator(REGION, ACCOUNT)
        emulator.start()
        emulator.reset()
        try:
            yield emulator
        finally:
            emulator.reset()
            emulator.stop()
