"""Fixtures the unit tests share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from phasegate.engines.sandbox import emulator as sandbox_emulator
from phasegate.engines.sandbox.emulator import Emulator
from phasegate.engines.sandbox.handlers import CloudContext

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


@pytest.fixture
def ctx(emu: Emulator) -> CloudContext:
    """The module's cloud as handlers see it (each test makes its own resources), with
    an empty sandbox store."""
    return CloudContext(
        session=emu.session(), region=REGION, account_id=ACCOUNT, store={}, make_client=emu.client
    )


@pytest.fixture
def ec2(ctx: CloudContext) -> Any:
    return ctx.client("ec2")


@pytest.fixture
def s3(ctx: CloudContext) -> Any:
    return ctx.client("s3")


@pytest.fixture
def kms(ctx: CloudContext) -> Any:
    return ctx.client("kms")


@pytest.fixture
def iam(ctx: CloudContext) -> Any:
    return ctx.client("iam")
