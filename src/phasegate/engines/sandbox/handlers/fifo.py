"""The names of FIFO topics and queues (SNS, SQS): a FIFO one's name ends in ``.fifo``,
which counts in its length, and the rest is checked as any topic's or queue's name."""

from __future__ import annotations

import re
from typing import Any

from phasegate.engines.sandbox.handlers.base import (
    Handler,
    HandlerError,
    check_name,
    generated_name,
)

__all__ = ["FIFO", "check_fifo_name", "fifo_name"]

FIFO = ".fifo"


def check_fifo_name(
    inputs: dict[str, Any], fifo: bool, pattern: re.Pattern[str], max_len: int, what: str
) -> None:
    """``check_name`` for a topic or queue (``what``): a FIFO one's (``fifo``) name is
    checked without its ending, which it must have."""
    name = inputs.get("name")
    bare = {**inputs, "name": name.removesuffix(FIFO)} if fifo and name else inputs
    check_name(bare, pattern, max_len - (len(FIFO) if fifo else 0), what)
    if fifo and isinstance(name, str) and not name.endswith(FIFO):
        raise HandlerError(f"a FIFO {what}'s name must end in .fifo, not '{name}'")


def fifo_name(
    handler: Handler, logical: str, inputs: dict[str, Any], max_len: int, fifo: bool
) -> str:
    """``generated_name`` for a topic or queue, with room for the ending a FIFO one's
    (``fifo``) gets where it lacks it."""
    made = generated_name(handler, logical, inputs, max_len - len(FIFO))
    return made + FIFO if fifo and not made.endswith(FIFO) else made
