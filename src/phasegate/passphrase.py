"""``secure:`` stack config values in the Pulumi CLI's passphrase format, without the CLI.

The format, as Pulumi's ``pkg/secrets/passphrase/manager.go`` and
``sdk/go/common/resource/config/crypt.go`` (``symmetricCrypter``) write it:

* the stack file's ``encryptionsalt: v1:<salt>:v1:<nonce>:<ciphertext>``: an 8-byte random
  salt, and the word ``pulumi`` encrypted under the stack's key, which tells a right
  passphrase from a wrong one;
* each secret ``<key>: {secure: v1:<nonce>:<ciphertext>}``: AES-256-GCM with a 12-byte
  random nonce, the tag appended to the ciphertext, no associated data;
* the key: PBKDF2-HMAC-SHA256 of the passphrase over the salt, 1,000,000 iterations,
  32 bytes; base64 throughout is the standard alphabet, padded;
* the passphrase: ``PULUMI_CONFIG_PASSPHRASE`` when set (even empty), otherwise the
  contents of the file ``PULUMI_CONFIG_PASSPHRASE_FILE`` names, trimmed.

So a value written by ``pulumi config set --secret`` reads here and one written by
``migrate config set-secret`` reads with Pulumi. Only the passphrase provider: a stack
whose ``secretsprovider`` is a cloud KMS needs the Pulumi CLI (engine ``pulumi``).
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phasegate.errors import InputError

__all__ = [
    "PASSPHRASE_VARIABLES",
    "Crypter",
    "RevealedConfig",
    "crypter_from_state",
    "has_secure",
    "new_state",
    "read_passphrase",
    "reveal",
]

PASSPHRASE_VARIABLES = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")
ITERATIONS = 1_000_000
_KEY_BYTES = 32
_SALT_BYTES = 8
_NONCE_BYTES = 12
_CHECK = "pulumi"
"""What the salt state's own ciphertext holds under the right key."""
_PROVIDERS = ("", "passphrase")
"""``secretsprovider`` values that mean the passphrase provider (unset is the default)."""


class Crypter:
    """Encrypts and decrypts values under one stack's key."""

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)

    @classmethod
    def from_passphrase(cls, passphrase: str, salt: bytes) -> Crypter:
        return cls(_derive(passphrase, salt))

    def encrypt(self, plaintext: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), None)
        return f"v1:{_b64(nonce)}:{_b64(sealed)}"

    def decrypt(self, value: str) -> str:
        """The plaintext of ``v1:<nonce>:<ciphertext>``; ValueError if it is not one this
        key opens."""
        from cryptography.exceptions import InvalidTag

        parts = value.split(":")
        if len(parts) != 3 or parts[0] != "v1":
            raise ValueError("not a v1:<nonce>:<ciphertext> value")
        try:
            nonce, sealed = base64.b64decode(parts[1]), base64.b64decode(parts[2])
        except binascii.Error:
            raise ValueError("not base64") from None
        if len(nonce) != _NONCE_BYTES:
            raise ValueError("the nonce is not 12 bytes")
        try:
            return self._aead.decrypt(nonce, sealed, None).decode()
        except InvalidTag:
            raise ValueError("it does not open with this key") from None


@functools.lru_cache(maxsize=8)
def _derive(passphrase: str, salt: bytes) -> bytes:
    """The stack key; about half a second each, so once per passphrase and salt a run."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    kdf = PBKDF2HMAC(hashes.SHA256(), _KEY_BYTES, salt, ITERATIONS)
    return kdf.derive(passphrase.encode())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def new_state(passphrase: str) -> tuple[str, Crypter]:
    """A new ``encryptionsalt`` value and the crypter of its key."""
    salt = os.urandom(_SALT_BYTES)
    crypter = Crypter.from_passphrase(passphrase, salt)
    return f"v1:{_b64(salt)}:{crypter.encrypt(_CHECK)}", crypter


def crypter_from_state(passphrase: str, state: str) -> Crypter:
    """The crypter of an ``encryptionsalt`` value; ValueError for a malformed one or a
    wrong passphrase (the salt's own ciphertext does not open to ``pulumi``)."""
    version, _, rest = state.partition(":")
    salt_text, _, check = rest.partition(":")
    if version != "v1" or not check:
        raise ValueError("not a v1:<salt>:v1:<nonce>:<ciphertext> value")
    try:
        salt = base64.b64decode(salt_text, validate=True)
    except binascii.Error:
        raise ValueError("its salt is not base64") from None
    crypter = Crypter.from_passphrase(passphrase, salt)
    try:
        opened = crypter.decrypt(check)
    except ValueError:
        opened = None
    if opened != _CHECK:
        raise ValueError("incorrect passphrase")
    return crypter


def read_passphrase(environ: Mapping[str, str] | None = None) -> str | None:
    """The passphrase as the Pulumi CLI finds it, or None when neither variable is set."""
    env = os.environ if environ is None else environ
    if "PULUMI_CONFIG_PASSPHRASE" in env:
        return env["PULUMI_CONFIG_PASSPHRASE"]
    name = env.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if not name:
        return None
    try:
        return Path(name).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"cannot read the passphrase file {name}: {exc}",
            field="PULUMI_CONFIG_PASSPHRASE_FILE",
        ) from None


def _is_secure(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"secure"}


def has_secure(value: Any) -> bool:
    """Whether a config value is, or holds (as a map's or list's part), a ``secure:`` one."""
    if _is_secure(value):
        return True
    if isinstance(value, Mapping):
        return any(has_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(has_secure(v) for v in value)
    return False


@dataclass(frozen=True)
class RevealedConfig:
    """A stack config with its ``secure:`` values decrypted."""

    values: dict[str, Any]
    secret_keys: frozenset[str]
    """The keys whose values are, or hold, a decrypted secret: the program gets them as
    secrets."""
    secrets: tuple[str, ...]
    """The decrypted values themselves."""


def reveal(
    config: Mapping[str, Any],
    settings: Mapping[str, str],
    *,
    source: str,
    environ: Mapping[str, str] | None = None,
) -> RevealedConfig:
    """Decrypt every ``secure:`` value of a stack config (``settings``: the stack file's
    other keys). Errors are one InputError naming ``source`` (the stack file, or the last
    known good the config came from), the field and what would do."""
    keys = sorted(k for k, v in config.items() if has_secure(v))
    if not keys:
        return RevealedConfig(dict(config), frozenset(), ())
    first = f"config.{keys[0]}"
    provider = settings.get("secretsprovider") or ""
    if provider not in _PROVIDERS:
        raise InputError(
            f"secure: values of the '{provider}' secrets provider need the Pulumi CLI",
            file=source,
            field="secretsprovider",
            hint="the sandbox decrypts the passphrase provider's (allowed: passphrase)",
        )
    state = settings.get("encryptionsalt")
    if not state:
        raise InputError(
            f"{first} is a secure: value but the file has no encryptionsalt",
            file=source,
            field="encryptionsalt",
            hint="write secrets with `migrate config set-secret` or `pulumi config set --secret`",
        )
    passphrase = read_passphrase(environ)
    if passphrase is None:
        raise InputError(
            "secure: values need the stack's passphrase: set PULUMI_CONFIG_PASSPHRASE "
            "(or PULUMI_CONFIG_PASSPHRASE_FILE to a file holding it)",
            file=source,
            field=first,
        )
    try:
        crypter = crypter_from_state(passphrase, state)
    except ValueError as exc:
        raise InputError(
            f"{exc}: the passphrase (PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE) "
            "does not unlock this stack's secrets",
            file=source,
            field="encryptionsalt",
        ) from None
    found: list[str] = []

    def open_(value: Any, where: str) -> Any:
        if _is_secure(value):
            try:
                found.append(crypter.decrypt(str(value["secure"])))
            except ValueError as exc:
                raise InputError(
                    f"cannot decrypt this secure: value ({exc})",
                    file=source,
                    field=where,
                    hint="allowed: v1:<nonce>:<ciphertext> under this file's encryptionsalt",
                ) from None
            return found[-1]
        if isinstance(value, Mapping):
            return {k: open_(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [open_(v, f"{where}.{i}") for i, v in enumerate(value)]
        return value

    values = {k: open_(v, f"config.{k}") if k in keys else v for k, v in config.items()}
    return RevealedConfig(values, frozenset(keys), tuple(found))
