"""How values that may hold secrets are shown: in state files, plans, logs and JSON.

Two rules, and every place phasegate writes or prints applies both:

* **by key** (:func:`redact`): an output the engine marks secret, and any value under a
  secret-sounding key at any depth (``api_token``, ``auth.passphrase``), reads ``[secret]``;
* **by value** (:class:`SecretValues`): one registry per run collects every value that is
  secret anywhere in it (secret outputs and inputs, ``secure:`` config, values a program
  reads with ``get_secret``, values under secret-sounding keys) as the engine learns them;
  the state files, the renderings, the sandbox's records and the CLI's error line put
  ``[secret]`` wherever one of them turns up: under an innocent name, inside a longer
  message, in ``repr`` or JSON spelling.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["SECRET_MARK", "SHORTEST_SECRET", "SecretValues", "redact", "secret_sounding"]

SECRET_MARK = "[secret]"
"""What a secret reads as, wherever phasegate shows or writes it."""

SHORTEST_SECRET = 4
"""Texts shorter than this are not hidden: an empty string, a "1" or an "on" sits inside
ordinary words and numbers, so hiding it would garble every message, and a secret that
short protects nothing anyway."""

_SECRET_WORDS = ("secret", "password", "passphrase", "token", "private_key", "credential")


def secret_sounding(key: str) -> bool:
    """Whether a name says its value is secret (``db_password``, ``API_TOKEN``)."""
    return any(word in key.lower() for word in _SECRET_WORDS)


def _hide_nested(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: SECRET_MARK if secret_sounding(str(k)) else _hide_nested(v)
            for k, v in sorted(value.items())
        }
    if isinstance(value, list):
        return [_hide_nested(v) for v in value]
    return value


def redact(values: dict[str, Any], secret: frozenset[str] | set[str]) -> dict[str, Any]:
    """Outputs as they may be shown: secret ones, and any secret-sounding key at any
    depth, as [secret]; mappings sorted so the same outputs always read the same."""
    return {
        k: SECRET_MARK if k in secret or secret_sounding(k) else _hide_nested(v)
        for k, v in sorted(values.items())
    }


def texts(value: Any) -> Iterator[str]:
    """Every way a message may spell ``value``: as itself, escaped the way ``repr`` and
    JSON escape it, and a list or map whole (Python and JSON forms) and part by part,
    since a reference may pick one part (``${outputs.db.password}``)."""
    if value is None or isinstance(value, bool):
        return  # true, false and None are everywhere and secret nowhere
    if isinstance(value, str):
        yield value
        yield repr(value)[1:-1]
        yield json.dumps(value)[1:-1]
    elif isinstance(value, int | float):
        yield str(value)
    elif isinstance(value, Mapping | list | tuple):
        yield str(value)
        yield json.dumps(value, default=str)
        yield json.dumps(value, default=str, separators=(",", ":"))
        for part in value.values() if isinstance(value, Mapping) else value:
            yield from texts(part)
    else:
        yield str(value)


def _under_secret_keys(value: Any) -> Iterator[Any]:
    """The values under secret-sounding keys, at any depth of ``value``."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if secret_sounding(str(key)):
                yield item
            else:
                yield from _under_secret_keys(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _under_secret_keys(item)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


class SecretValues:
    """The secret values of one run, and what puts ``[secret]`` in their place.

    The engine adds to it as it learns of secrets; everything that writes or prints asks
    it. It keeps texts, not values (a value is added as every way it may be spelled) and
    only grows: a value secret once in a run stays hidden for the rest of it. Safe to add
    to from the worker threads a Pulumi program registers resources on.
    """

    def __init__(self, values: Iterable[Any] = ()) -> None:
        self._texts: set[str] = set()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None
        for value in values:
            self.add(value)

    def __bool__(self) -> bool:
        return bool(self._texts)

    def texts(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._texts)

    def add(self, value: Any) -> None:
        """``value`` is secret: a string, a number, or a list or map (whole and each part)."""
        new = {
            text
            for text in texts(value)
            if len(text) >= SHORTEST_SECRET and text not in SECRET_MARK
        }
        with self._lock:
            if not new <= self._texts:
                self._texts |= new
                self._pattern = None

    def add_keyed(self, data: Any) -> None:
        """Every text under a secret-sounding key in ``data``, at any depth. (Numbers there
        are hidden by key only: a ``token_ttl: 3600`` must not hide every 3600.)"""
        for value in _under_secret_keys(data):
            for text in _strings(value):
                self.add(text)

    def add_outputs(self, values: Mapping[str, Any], secret: Iterable[str]) -> None:
        """A stack's outputs: those the engine marks secret, and what sits under a
        secret-sounding name."""
        for name in secret:
            if name in values:
                self.add(values[name])
        self.add_keyed(values)

    def _compiled(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._texts:
                # Longest first, so a secret that holds another is hidden whole.
                ordered = sorted(self._texts, key=lambda t: (-len(t), t))
                self._pattern = re.compile("|".join(re.escape(t) for t in ordered))
            return self._pattern

    def mask(self, text: str) -> str:
        """``text`` with every spelling of every secret as ``[secret]``."""
        pattern = self._compiled()
        return pattern.sub(SECRET_MARK, text) if pattern is not None else text

    def reveals(self, value: Any) -> bool:
        """Whether a string or number spells a secret, whole or in part."""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return False
        pattern = self._compiled()
        return pattern is not None and pattern.search(str(value)) is not None

    def mask_data(self, data: Any) -> Any:
        """``data`` (JSON-like) with each string masked and each number that is a secret
        as ``[secret]``; keys and structure as they were."""
        if not self:
            return data
        if isinstance(data, str):
            return self.mask(data)
        if isinstance(data, bool) or data is None:
            return data
        if isinstance(data, int | float):
            return SECRET_MARK if str(data) in self._texts else data
        if isinstance(data, Mapping):
            return {k: self.mask_data(v) for k, v in data.items()}
        if isinstance(data, list | tuple):
            return [self.mask_data(v) for v in data]
        return data
