"""The sandbox key and the cloud snapshot's seal: where the key lives and how it is made,
which keys are refused, and that a snapshot is checked on its raw bytes (its seal, then
its content hash against its name) when the checkpoint is read, before anything loads it."""

from __future__ import annotations

import hashlib
import pickle
import stat
import threading
from pathlib import Path

import pytest

from phasegate.engines.sandbox import cloud_seal
from phasegate.engines.sandbox.store import Checkpoint, SandboxStore
from phasegate.errors import EngineError

KEY = bytes(range(32))


# --- the key --------------------------------------------------------------------------


def test_the_key_lives_in_the_xdg_config_directory_or_under_home(tmp_path: Path) -> None:
    xdg = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}
    assert cloud_seal.key_path(xdg) == tmp_path / "xdg" / "phasegate" / "sandbox.key"
    relative = {"XDG_CONFIG_HOME": "relative/config", "HOME": str(tmp_path / "home")}
    home_key = tmp_path / "home" / ".config" / "phasegate" / "sandbox.key"
    assert cloud_seal.key_path(relative) == home_key
    assert cloud_seal.key_path({"HOME": str(tmp_path / "home")}) == home_key


def test_the_key_is_made_on_first_use_for_this_user_only(tmp_path: Path) -> None:
    path = tmp_path / "config" / "phasegate" / "sandbox.key"

    key = cloud_seal.user_key(path)

    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert cloud_seal.user_key(path) == key, "the same key on every later use"
    assert [p.name for p in path.parent.iterdir()] == ["sandbox.key"], "no temporary left"


def test_processes_making_the_key_at_once_all_get_the_same_one(tmp_path: Path) -> None:
    path = tmp_path / "phasegate" / "sandbox.key"
    keys: list[bytes] = []
    start = threading.Barrier(8)

    def make() -> None:
        start.wait()
        keys.append(cloud_seal.user_key(path))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(keys) == 8 and len(set(keys)) == 1


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_a_key_others_can_read_is_refused_and_left_as_it_is(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "sandbox.key"
    path.write_text(KEY.hex() + "\n")
    path.chmod(mode)

    with pytest.raises(cloud_seal.KeyProblem) as refused:
        cloud_seal.user_key(path)

    message = str(refused.value)
    assert message.startswith(f"{path}: the sandbox key is readable by group or others")
    assert f"(mode {mode:04o}); run `chmod 600 {path}`" in message
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert path.read_text() == KEY.hex() + "\n"


@pytest.mark.parametrize("text", ["", "not hex\n", "abcd\n", KEY.hex() + "00\n"])
def test_a_file_that_is_not_a_key_is_refused_not_replaced(tmp_path: Path, text: str) -> None:
    path = tmp_path / "sandbox.key"
    path.write_text(text)
    path.chmod(0o600)

    with pytest.raises(cloud_seal.KeyProblem, match="not a sandbox key"):
        cloud_seal.user_key(path)
    assert path.read_text() == text


def test_a_key_that_cannot_be_made_says_where_and_what_to_do(tmp_path: Path) -> None:
    blocker = tmp_path / "config"
    blocker.write_text("a file where the directory would go")
    path = blocker / "phasegate" / "sandbox.key"

    with pytest.raises(cloud_seal.KeyProblem) as refused:
        cloud_seal.user_key(path)
    assert str(refused.value).startswith(f"{path}: cannot make the sandbox key")
    assert "set XDG_CONFIG_HOME" in str(refused.value)


# --- the seal -------------------------------------------------------------------------


def test_a_sealed_dump_unseals_to_itself_under_the_same_key() -> None:
    dump = pickle.dumps({"format": 1, "state": b"\x00" * 100})
    assert cloud_seal.unseal(KEY, cloud_seal.seal(KEY, dump)) == dump


def test_a_seal_made_with_another_key_is_broken() -> None:
    sealed = cloud_seal.seal(bytes(32), b"\x80\x05 any dump")
    with pytest.raises(cloud_seal.SealBroken, match="does not match its content"):
        cloud_seal.unseal(KEY, sealed)


@pytest.mark.parametrize("where", ["seal", "dump", "end"])
def test_any_changed_byte_breaks_the_seal(where: str) -> None:
    sealed = bytearray(cloud_seal.seal(KEY, b"\x80\x05" + b"moto state" * 50))
    index = {"seal": len(cloud_seal.MAGIC) + 3, "dump": len(sealed) // 2, "end": len(sealed) - 1}
    sealed[index[where]] ^= 0x01
    with pytest.raises(cloud_seal.SealBroken):
        cloud_seal.unseal(KEY, bytes(sealed))


def test_a_bare_pickle_is_a_snapshot_from_before_seals() -> None:
    with pytest.raises(cloud_seal.Unsealed, match="written by an older phasegate"):
        cloud_seal.unseal(KEY, pickle.dumps({"format": 1}, protocol=5))


@pytest.mark.parametrize("data", [b"", b"garbage", cloud_seal.MAGIC, cloud_seal.MAGIC + b"00\n"])
def test_what_is_not_a_sealed_snapshot_is_refused(data: bytes) -> None:
    with pytest.raises(cloud_seal.SealBroken):
        cloud_seal.unseal(KEY, data)


# --- the store checks the snapshot when the checkpoint is read -------------------------


def _sandbox(tmp_path: Path, dump: bytes, *, name: str | None = None) -> SandboxStore:
    """A sandbox directory whose checkpoint names a snapshot of ``dump``."""
    key_file = tmp_path / "key" / "sandbox.key"
    key = cloud_seal.user_key(key_file)
    directory = tmp_path / "sandbox" / "test"
    directory.mkdir(parents=True)
    name = name or f"cloud-{hashlib.sha256(dump).hexdigest()[:16]}.pickle"
    (directory / name).write_bytes(cloud_seal.seal(key, dump))
    checkpoint = Checkpoint(environment="test", region="us-east-1", cloud=name)
    (directory / "checkpoint.json").write_text(checkpoint.to_json())
    return SandboxStore(directory, "test", "us-east-1", key_file=key_file)


def test_reading_the_checkpoint_checks_the_snapshot_and_loads_nothing(tmp_path: Path) -> None:
    dump = b"\x80\x05 stands in for an emulator dump"
    store = _sandbox(tmp_path, dump)

    checkpoint = store.load()

    assert store.cloud_dump(checkpoint) == dump
    assert not store.cloud_loaded


def test_a_snapshot_other_than_the_one_the_checkpoint_names_is_refused(tmp_path: Path) -> None:
    store = _sandbox(tmp_path, b"\x80\x05 a dump", name="cloud-0123456789abcdef.pickle")

    with pytest.raises(EngineError) as refused:
        store.load()
    message = str(refused.value)
    assert message.startswith(f"{store.directory / 'cloud-0123456789abcdef.pickle'}: ")
    assert "does not match the hash in its name" in message
    assert "`migrate sandbox reset` starts the sandbox over" in message


def test_a_snapshot_replaced_after_it_was_checked_is_checked_again(tmp_path: Path) -> None:
    store = _sandbox(tmp_path, b"\x80\x05 a dump")
    checkpoint = store.load()
    snapshot = store.directory / str(checkpoint.cloud)
    snapshot.write_bytes(cloud_seal.seal(bytes(32), b"\x80\x05 a forged dump"))

    with pytest.raises(EngineError, match="seal does not match"):
        store.cloud_dump(checkpoint)


def test_a_store_whose_key_is_refused_reads_no_checkpoint(tmp_path: Path) -> None:
    store = _sandbox(tmp_path, b"\x80\x05 a dump")
    store.key_file.chmod(0o644)

    with pytest.raises(EngineError, match="readable by group or others"):
        store.load()
