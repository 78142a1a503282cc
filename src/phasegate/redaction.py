"""How values that may hold secrets are shown: in state files, plans, logs and JSON."""

from __future__ import annotations

from typing import Any

__all__ = ["redact"]

_SECRET_WORDS = ("secret", "password", "passphrase", "token", "private_key", "credential")


def _secret_sounding(key: str) -> bool:
    return any(word in key.lower() for word in _SECRET_WORDS)


def _hide_nested(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: "[secret]" if _secret_sounding(str(k)) else _hide_nested(v)
            for k, v in sorted(value.items())
        }
    if isinstance(value, list):
        return [_hide_nested(v) for v in value]
    return value


def redact(values: dict[str, Any], secret: frozenset[str] | set[str]) -> dict[str, Any]:
    """Outputs as they may be shown: secret ones, and any secret-sounding key at any
    depth, as [secret]; mappings sorted so the same outputs always read the same."""
    return {
        k: "[secret]" if k in secret or _secret_sounding(k) else _hide_nested(v)
        for k, v in sorted(values.items())
    }
