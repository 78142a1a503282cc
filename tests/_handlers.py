"""Sandbox handlers as the engine calls them, for the tests that drive one directly
against the emulated cloud."""

from __future__ import annotations

from typing import Any

from phasegate.engines.sandbox.handlers import CloudContext, Handler, handler_for


def handler_of(token: str) -> Handler:
    """The registered handler of ``token`` (a test of a type the sandbox lacks fails)."""
    found = handler_for(token)
    assert found is not None, token
    return found


def create(
    ctx: CloudContext, token: str, inputs: dict[str, Any], name: str = "res"
) -> tuple[str, dict[str, Any]]:
    """As a plan then an apply do it: every input is one the handler emulates (no
    refusal), the handler's checks pass, then the create."""
    made = handler_of(token)
    assert made.unemulated(inputs) == [], made.unemulated(inputs)
    made.validate(inputs)
    return made.create(ctx, name, inputs)
