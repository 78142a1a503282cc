"""Secret values in the sandbox's checkpoint, encrypted at rest.

The checkpoint keeps each stack's resource inputs and outputs and its stack outputs, so a
later run can diff against them, answer ``StackReference`` reads and run checks. Every
value there that spells a secret of the run (see :class:`~phasegate.redaction.SecretValues`)
is written as ``{"phasegate:sealed": "v1:<nonce>:<ciphertext>"}`` instead: AES-256-GCM
under a key of the environment's own, ``secrets.key`` beside the checkpoint (mode 0600,
git-ignored with the rest of ``.phasegate/``, gone with ``migrate sandbox reset``). Reading
the checkpoint opens them again and adds each to the run's secret values, so a value
secret in an earlier run stays hidden in this one.

The nonce is derived from the key and the value, so an unchanged checkpoint is written
byte for byte the same; equal values get equal ciphertexts, which a file only phasegate
reads may show.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

from phasegate.atomic import write_atomic
from phasegate.errors import EngineError
from phasegate.redaction import SecretValues

__all__ = ["SEALED", "Sealer"]

SEALED = "phasegate:sealed"
"""The key of a sealed value's one-entry mapping; no stack config or output has it."""

_KEY_BYTES = 32
_NONCE_BYTES = 12


class Sealer:
    """Seals and opens the secret values of one environment's checkpoint."""

    def __init__(self, key_path: Path, secrets: SecretValues) -> None:
        self.key_path = key_path
        self.secrets = secrets
        self._key: bytes | None = None

    def _load_key(self, create: bool) -> bytes:
        if self._key is None:
            try:
                key = self.key_path.read_bytes()
            except FileNotFoundError:
                if not create:
                    raise EngineError(
                        f"{self.key_path} is missing: the sandbox checkpoint's sealed "
                        "secrets cannot be opened",
                        hint="`migrate sandbox reset` starts the sandbox over",
                    ) from None
                key = os.urandom(_KEY_BYTES)
                write_atomic(self.key_path, key, mode=0o600)
            if len(key) != _KEY_BYTES:
                raise EngineError(
                    f"{self.key_path}: not a sandbox key ({len(key)} bytes, not {_KEY_BYTES})",
                    hint="`migrate sandbox reset` starts the sandbox over",
                )
            self._key = key
        return self._key

    def seal(self, data: Any) -> Any:
        """``data`` with every value that spells a secret sealed (nothing to seal: as is)."""
        if not self.secrets:
            return data
        return self._walk_seal(data)

    def _walk_seal(self, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: self._walk_seal(v) for k, v in data.items()}
        if isinstance(data, list):
            return [self._walk_seal(v) for v in data]
        if self.secrets.reveals(data):
            return {SEALED: self._encrypt(json.dumps(data))}
        return data

    def open(self, data: Any) -> Any:
        """``data`` with every sealed value opened, and added to the run's secrets."""
        if isinstance(data, dict):
            if set(data) == {SEALED} and isinstance(data[SEALED], str):
                value = json.loads(self._decrypt(data[SEALED]))
                self.secrets.add(value)
                return value
            return {k: self.open(v) for k, v in data.items()}
        if isinstance(data, list):
            return [self.open(v) for v in data]
        return data

    def _encrypt(self, plaintext: str) -> str:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key = self._load_key(create=True)
        data = plaintext.encode()
        nonce_key = hashlib.sha256(b"phasegate sealing nonce\0" + key).digest()
        nonce = hmac.new(nonce_key, data, hashlib.sha256).digest()[:_NONCE_BYTES]
        sealed = AESGCM(key).encrypt(nonce, data, None)
        return f"v1:{base64.b64encode(nonce).decode()}:{base64.b64encode(sealed).decode()}"

    def _decrypt(self, value: str) -> str:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key = self._load_key(create=False)
        try:
            version, nonce, sealed = value.split(":")
            if version != "v1":
                raise ValueError(f"unknown version {version!r}")
            return (
                AESGCM(key)
                .decrypt(base64.b64decode(nonce), base64.b64decode(sealed), None)
                .decode()
            )
        except (ValueError, InvalidTag) as exc:
            raise EngineError(
                f"{self.key_path.parent / 'checkpoint.json'}: a sealed secret does not open "
                f"with {self.key_path} ({type(exc).__name__})",
                hint="`migrate sandbox reset` starts the sandbox over",
            ) from None
