"""The legacy estate's object bodies, made from recipes: the same bytes in every sandbox,
on every read, cheap to make (fixed-width CSV rows, or a seeded 64 KiB block repeated).

The cloud snapshot keeps a body's recipe instead of its bytes (``bodies``). A recipe's
name says which maker it needs: recipes named :data:`RECIPES` make the same bytes
forever, so a change to what they make needs a new name (and this one kept).
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

__all__ = ["RECIPES", "estate_body", "run"]

RECIPES = "estate-1"
_ROW = 32


@functools.cache
def _rows() -> bytes:
    """4,096 fixed-width CSV rows, made once: every small export is a run of them."""
    rows = []
    for i in range(4096):
        seed = hashlib.sha256(f"row/{i}".encode()).hexdigest()
        row = f"{int(seed[:7], 16):09d},{('view', 'cart', 'order')[i % 3]:5},{int(seed[7:11], 16)}"
        rows.append(row.ljust(_ROW - 1) + "\n")
    return "".join(rows).encode()


@functools.cache
def _block(seed: int) -> bytes:
    return hashlib.shake_256(f"legacy-block/{seed}".encode()).digest(1 << 16)


def run(seed: int, size: int) -> bytes:
    """``size`` bytes of the seeded 64 KiB block, repeated."""
    block = _block(seed)
    return (block * (size // len(block) + 1))[:size]


def estate_body(recipe: tuple[Any, ...]) -> bytes:
    """The bytes a recipe stands for: the same in every sandbox, on every read."""
    name, kind, *args = recipe
    if name != RECIPES:
        raise ValueError(f"unknown legacy estate recipe {name!r}")
    if kind == "empty":
        return b""
    if kind == "rows":
        n, count = args
        rows = _rows()
        start = (n * 97) % (len(rows) // _ROW - count) * _ROW
        return (
            b"customer_id,event,amount_cents\n"
            + rows[start : start + count * _ROW]
            + f"{n:09d},total,{count}\n".encode()
        )
    if kind == "runs":
        return b"".join(run(seed, size) for seed, size in args[0])
    raise ValueError(f"unknown legacy estate recipe kind {kind!r}")
