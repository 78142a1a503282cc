"""How a state file proves it is whole.

Every history entry carries ``prev``, the hash of the entry before it (the first one: of
the stack's name), so the history is a hash chain: an entry removed, changed, reordered
or spliced in from another branch breaks it at a place that can be named. The file's last
key, ``integrity``, is the hash of everything above it, so a file cut at any line, or
edited anywhere, no longer matches. The hashes are plain SHA-256, not a secret: they
catch damage, merges and hand edits, and a person who means an edit seals the file again
with ``migrate state repair``, which records that it did so in the history.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["anchor", "chain_problem", "content_hash", "entry_hash", "link"]


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def anchor(stack: str) -> str:
    """What the first history entry of ``stack`` links to: histories do not move between
    stacks."""
    return _digest({"stack": stack})


def entry_hash(entry: Mapping[str, Any]) -> str:
    """The hash of one history entry as written (its ``prev`` included)."""
    return _digest(dict(entry))


def content_hash(document: Mapping[str, Any]) -> str:
    """The hash of a state file's content, everything but ``integrity`` itself."""
    return _digest({k: v for k, v in document.items() if k != "integrity"})


def link(stack: str, entries: Sequence[dict[str, Any]]) -> None:
    """Give every entry without ``prev`` the hash of the one before it (new entries are
    appended unlinked; linked ones are kept as they are)."""
    before = anchor(stack)
    for entry in entries:
        if entry.get("prev") is None:
            entry["prev"] = before
        before = entry_hash(entry)


def chain_problem(stack: str, entries: Sequence[Mapping[str, Any]]) -> str | None:
    """Where the history's chain breaks, in words, or None when it holds."""
    hashes: list[str] = []
    for number, entry in enumerate(entries, start=1):
        expected = hashes[-1] if hashes else anchor(stack)
        prev = entry.get("prev")
        what = f"history entry {number} ({entry.get('event')} at {entry.get('at')})"
        if prev != expected:
            if prev is None:
                return f"{what} has no link to the entry before it"
            if prev == anchor(stack):
                return (
                    f"{what} starts a second history: two runs' state files were merged "
                    f"(the histories fork before entry 1)"
                )
            if prev in hashes:
                fork = hashes.index(prev) + 1
                return (
                    f"{what} follows entry {fork}, not entry {number - 1}: two runs' state "
                    f"files were merged (the histories fork after entry {fork})"
                )
            if number == 1:
                return f"{what} does not start this stack's history: entries before it are gone"
            return (
                f"{what} does not follow entry {number - 1}: an entry was removed, changed "
                "or reordered"
            )
        hashes.append(entry_hash(entry))
    return None
