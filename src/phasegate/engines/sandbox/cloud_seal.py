"""The cloud snapshot's seal: an HMAC-SHA256 under a key of the user's, kept outside the
project, over the snapshot's raw bytes.

A cloud snapshot is a pickle, and loading a pickle runs whatever it names. A checksum
beside it proves nothing (whoever writes the file writes the checksum), so the snapshot
is sealed with a key only this user can read: ``$XDG_CONFIG_HOME/phasegate/sandbox.key``
(``~/.config/phasegate/sandbox.key`` without it), made on first use with mode 0600 in a
0700 directory. :func:`unseal` checks the seal before a byte of the pickle is read, so a
file dropped into the project (or a snapshot copied from another user or machine) is
refused, never loaded. A key readable by group or others is refused too.

A sealed snapshot is :data:`MAGIC`, the seal in hex and a newline, then the dump.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "MAGIC",
    "KeyProblem",
    "SealBroken",
    "Unsealed",
    "key_path",
    "seal",
    "unseal",
    "user_key",
]

MAGIC = b"phasegate sandbox cloud snapshot, hmac-sha256\n"
_KEY_BYTES = 32
_SEAL_HEX = 2 * hashlib.sha256().digest_size


class KeyProblem(ValueError):
    """The key file cannot be used; the message says why and what to do."""


class Unsealed(ValueError):
    """The snapshot carries no seal: written by a phasegate from before seals."""


class SealBroken(ValueError):
    """The snapshot's seal does not match its bytes under this user's key."""


def key_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the sandbox key of the user whose environment ``environ`` is (this
    process's by default) lives: the XDG config directory, or ~/.config."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME", "")
    if base and os.path.isabs(base):  # the XDG spec ignores a relative path, and so do we
        return Path(base) / "phasegate" / "sandbox.key"
    home = environ.get("HOME")
    root = Path(home) if home else Path.home()
    return root / ".config" / "phasegate" / "sandbox.key"


def user_key(path: Path) -> bytes:
    """The key in ``path``, made there (0600, its directory 0700) if there is none.

    KeyProblem, with what to do, if it is readable by others, malformed or cannot be made.
    """
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        return _read_key(path)  # none yet: made below, on first use
    _make_key(path)
    try:
        return _read_key(path)
    except FileNotFoundError as exc:
        raise KeyProblem(f"{path}: the sandbox key vanished as it was made ({exc})") from None


def seal(key: bytes, dump: bytes) -> bytes:
    """``dump`` with its seal, as written to disk."""
    return MAGIC + _mac(key, dump).encode() + b"\n" + dump


def unseal(key: bytes, sealed: bytes) -> bytes:
    """The dump inside ``sealed`` once its seal checks out; Unsealed or SealBroken if not.

    Only the raw bytes are looked at: nothing is unpickled here.
    """
    if not sealed.startswith(MAGIC):
        if sealed[:1] == b"\x80":  # a bare pickle: the format before seals
            raise Unsealed("it has no seal (written by an older phasegate)")
        raise SealBroken("it is not a sealed sandbox snapshot")
    start = len(MAGIC)
    given = sealed[start : start + _SEAL_HEX]
    dump = sealed[start + _SEAL_HEX + 1 :]
    if sealed[start + _SEAL_HEX : start + _SEAL_HEX + 1] != b"\n" or not hmac.compare_digest(
        given, _mac(key, dump).encode()
    ):
        raise SealBroken("its seal does not match its content under this user's sandbox key")
    return dump


def _mac(key: bytes, dump: bytes) -> str:
    return hmac.new(key, dump, hashlib.sha256).hexdigest()


def _read_key(path: Path) -> bytes:
    """The key in ``path``; FileNotFoundError (or NotADirectoryError) if there is none,
    KeyProblem if it cannot be used."""
    try:
        with open(path, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise KeyProblem(f"{path}: the sandbox key is not a regular file")
            if os.name == "posix" and info.st_mode & 0o077:
                raise KeyProblem(
                    f"{path}: the sandbox key is readable by group or others "
                    f"(mode {stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {path}`"
                )
            text = file.read(4 * _KEY_BYTES)
    except (FileNotFoundError, NotADirectoryError, KeyProblem):
        raise
    except OSError as exc:
        raise KeyProblem(
            f"{path}: cannot read the sandbox key ({exc.strerror or exc}); it must be a "
            "file of yours, mode 0600"
        ) from None
    try:
        key = bytes.fromhex(text.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != _KEY_BYTES:
        raise KeyProblem(
            f"{path}: not a sandbox key ({_KEY_BYTES * 2} hex digits expected); remove it "
            "for a new one, then `migrate sandbox reset` (snapshots sealed with any "
            "other key do not load)"
        )
    return key


def _make_key(path: Path) -> None:
    """Write a new key to ``path`` unless another process got there first."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(secrets.token_bytes(_KEY_BYTES).hex().encode() + b"\n")
                file.flush()
                os.fsync(file.fileno())
            # A link never replaces a key another process made meanwhile.
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
    except OSError as exc:
        raise KeyProblem(
            f"{path}: cannot make the sandbox key ({exc.strerror or exc}); set "
            "XDG_CONFIG_HOME to a directory of yours that can be written"
        ) from None
