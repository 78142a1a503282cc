"""``secure:`` values in the Pulumi CLI's passphrase format (``phasegate.passphrase``), and
writing one into a stack file people edit (``phasegate.stackfile``)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from phasegate.engines.base import ProgramSource, StackTarget
from phasegate.errors import InputError
from phasegate.lkg import LastKnownGoodStore
from phasegate.passphrase import (
    Crypter,
    crypter_from_state,
    has_secure,
    new_state,
    read_passphrase,
    reveal,
)
from phasegate.stackfile import set_secure_value

PULUMI_STATE = "v1:fozI5u6B030=:v1:F+6ZduKKd8G0/V7L:PGMFeIzwobWRKmEAzUdaQHqC5mMRIQ=="
"""An ``encryptionsalt`` from Pulumi's own tests (pkg/secrets/passphrase/manager_test.go),
made by the Pulumi CLI with the passphrase "password"."""
PASSPHRASE = "password"


@pytest.fixture(scope="module")
def crypter() -> Crypter:
    return crypter_from_state(PASSPHRASE, PULUMI_STATE)


def test_a_salt_the_pulumi_cli_made_opens_with_its_passphrase_only(crypter: Crypter) -> None:
    assert crypter.decrypt(crypter.encrypt("hunter2")) == "hunter2"
    with pytest.raises(ValueError, match="incorrect passphrase"):
        crypter_from_state("password123", PULUMI_STATE)
    with pytest.raises(ValueError, match="not a v1"):
        crypter_from_state(PASSPHRASE, "fozI5u6B030=:v1:F+6ZduL:PGMFeIzwobWRKmEAzUdaQHqC5mMRIQ==")


def test_values_are_aes_256_gcm_with_a_12_byte_nonce_and_the_tag_appended(
    crypter: Crypter,
) -> None:
    version, nonce, sealed = crypter.encrypt("hunter2").split(":")
    assert version == "v1" and len(base64.b64decode(nonce)) == 12
    assert len(base64.b64decode(sealed)) == len("hunter2") + 16
    # Opened without phasegate: PBKDF2-SHA256, 1,000,000 rounds, over the state's salt.
    salt = base64.b64decode(PULUMI_STATE.split(":")[1])
    key = PBKDF2HMAC(hashes.SHA256(), 32, salt, 1_000_000).derive(PASSPHRASE.encode())
    opened = AESGCM(key).decrypt(base64.b64decode(nonce), base64.b64decode(sealed), None)
    assert opened == b"hunter2"


def test_a_new_salt_state_has_pulumis_shape_and_checks_the_passphrase() -> None:
    state, crypter = new_state("s3cret phrase")
    version, salt, check = state.split(":", 2)
    assert version == "v1" and len(base64.b64decode(salt)) == 8
    assert crypter.decrypt(check) == "pulumi"
    assert crypter_from_state("s3cret phrase", state).decrypt(crypter.encrypt("x")) == "x"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"PULUMI_CONFIG_PASSPHRASE": ""}, ""),  # set but empty: Pulumi takes it too
        ({"PULUMI_CONFIG_PASSPHRASE": "a", "PULUMI_CONFIG_PASSPHRASE_FILE": "/nope"}, "a"),
        ({"PULUMI_CONFIG_PASSPHRASE_FILE": ""}, None),
    ],
)
def test_the_passphrase_is_found_as_the_pulumi_cli_finds_it(
    environ: dict[str, str], expected: str | None
) -> None:
    assert read_passphrase(environ) == expected


def test_a_passphrase_file_is_read_trimmed(tmp_path: Path) -> None:
    (tmp_path / "phrase").write_text("  the phrase \n")
    assert read_passphrase({"PULUMI_CONFIG_PASSPHRASE_FILE": str(tmp_path / "phrase")}) == (
        "the phrase"
    )
    with pytest.raises(InputError, match="PULUMI_CONFIG_PASSPHRASE_FILE"):
        read_passphrase({"PULUMI_CONFIG_PASSPHRASE_FILE": str(tmp_path / "missing")})


def test_reveal_decrypts_top_level_and_nested_secure_values(crypter: Crypter) -> None:
    config = {
        "app:plain": "hello",
        "app:db_url": {"secure": crypter.encrypt("postgres://x")},
        "app:nested": {"user": "u", "password": {"secure": crypter.encrypt("pw-1234")}},
    }
    assert has_secure(config["app:nested"]) and not has_secure(config["app:plain"])
    revealed = reveal(
        config,
        {"encryptionsalt": PULUMI_STATE},
        source="stacks/Pulumi.s-p.yaml",
        environ={"PULUMI_CONFIG_PASSPHRASE": PASSPHRASE},
    )
    assert revealed.values == {
        "app:plain": "hello",
        "app:db_url": "postgres://x",
        "app:nested": {"user": "u", "password": "pw-1234"},
    }
    assert revealed.secret_keys == {"app:db_url", "app:nested"}
    assert sorted(revealed.secrets) == ["postgres://x", "pw-1234"]
    assert reveal({"a:b": 1}, {}, source="x", environ={}).values == {"a:b": 1}


_SALT = {"encryptionsalt": PULUMI_STATE}
_KMS = {"secretsprovider": "awskms://alias/x", **_SALT}
_RIGHT = {"PULUMI_CONFIG_PASSPHRASE": PASSPHRASE}
_WRONG = {"PULUMI_CONFIG_PASSPHRASE": "x"}


@pytest.mark.parametrize(
    ("settings", "environ", "message"),
    [
        (_SALT, {}, r"f\.yaml: config\.app:k: .*PULUMI_CONFIG_PASSPHRASE"),
        (_SALT, _WRONG, r"encryptionsalt: incorrect passphrase"),
        ({}, _RIGHT, r"f\.yaml: encryptionsalt: config\.app:k is a secure"),
        (_KMS, {}, r"secretsprovider: .*awskms.*allowed: passphrase"),
    ],
)
def test_what_keeps_a_secure_value_closed_is_one_line_naming_file_and_field(
    crypter: Crypter, settings: dict[str, str], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(InputError, match=message) as caught:
        reveal(
            {"app:k": {"secure": crypter.encrypt("v")}}, settings, source="f.yaml", environ=environ
        )
    assert "\n" not in str(caught.value)


def test_a_value_another_key_sealed_is_refused_by_its_key(crypter: Crypter) -> None:
    _, other = new_state("another phrase")
    with pytest.raises(InputError, match=r"config\.app:k\.0: cannot decrypt"):
        reveal(
            {"app:k": [{"secure": other.encrypt("v")}]},
            {"encryptionsalt": PULUMI_STATE},
            source="f.yaml",
            environ={"PULUMI_CONFIG_PASSPHRASE": PASSPHRASE},
        )


# --- writing a secure value into a stack file -------------------------------------------

STACK = """\
# pilot in sandbox: a comment people wrote
config:
  # who owns it
  phasegate:owner: platform
  phasegate:pool:
    size: 1   # one node
  # last knob
  phasegate:max_gpus: 1
# trailing words
"""


def _set(path: Path, key: str, salt: str | None = None) -> dict:
    set_secure_value(path, key, "v1:bm9uY2U=:Y2lwaGVy", salt)
    return yaml.safe_load(path.read_text())


def test_a_new_key_goes_after_the_last_entry_and_every_line_stays(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.sandbox-pilot.yaml"
    path.write_text(STACK)
    data = _set(path, "app:db_password", salt="v1:c2FsdA==:v1:x:y")
    assert data["config"]["app:db_password"] == {"secure": "v1:bm9uY2U=:Y2lwaGVy"}
    assert data["encryptionsalt"] == "v1:c2FsdA==:v1:x:y"
    lines = path.read_text().splitlines()
    assert [line for line in lines if line in STACK.splitlines()] == STACK.splitlines()
    assert lines.index("encryptionsalt: v1:c2FsdA==:v1:x:y") == lines.index("config:") - 1
    assert lines.index("  app:db_password:") == lines.index("  phasegate:max_gpus: 1") + 1


def test_an_existing_key_is_replaced_where_it_is(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.sandbox-pilot.yaml"
    path.write_text(STACK)
    data = _set(path, "phasegate:pool")
    assert data["config"]["phasegate:pool"] == {"secure": "v1:bm9uY2U=:Y2lwaGVy"}
    lines = path.read_text().splitlines()
    assert lines[lines.index("  phasegate:pool:") + 2] == "  # last knob"
    assert data["config"]["phasegate:max_gpus"] == 1 and "encryptionsalt" not in data


@pytest.mark.parametrize(
    "text", ["", "# nothing yet\n", "config:\n", "config: {}\n", "config: {a:b: 1}"]
)
def test_an_empty_or_flow_config_is_written_in_block_form(tmp_path: Path, text: str) -> None:
    path = tmp_path / "Pulumi.sandbox-pilot.yaml"
    if text:
        path.write_text(text)
    data = _set(path, "app:k", salt="v1:c2FsdA==:v1:x:y")
    assert data["config"]["app:k"] == {"secure": "v1:bm9uY2U=:Y2lwaGVy"}
    assert data["encryptionsalt"] == "v1:c2FsdA==:v1:x:y"
    if "a:b" in text:
        assert data["config"]["a:b"] == 1
    if text.startswith("#"):
        assert path.read_text().startswith(text)


# --- the last known good keeps them encrypted --------------------------------------------


def test_the_last_known_good_keeps_secure_values_and_what_decrypts_them(
    tmp_path: Path, crypter: Crypter
) -> None:
    secure = {"secure": crypter.encrypt("postgres://kept")}
    target = StackTarget(
        project="p",
        environment="sandbox",
        phase="vault",
        region="us-east-1",
        program=ProgramSource(module="vault", files={"vault.py": b"x = 1\n"}),
        config={"app:db_url": secure, "app:plain": "hello"},
        stack_settings={"encryptionsalt": PULUMI_STATE},
        config_file="stacks/Pulumi.sandbox-vault.yaml",
    )
    store = LastKnownGoodStore(tmp_path / "state", lambda _: None)
    lkg = store.keep(target, "sha256:f", [])
    kept = next((tmp_path / "state" / "lkg").glob("config-*.json"))
    assert "postgres://kept" not in kept.read_text() and secure["secure"] in kept.read_text()
    # Restored against a working tree whose salt changed since: the kept one decrypts.
    now = StackTarget(**{**target.__dict__, "stack_settings": {"encryptionsalt": "v1:new"}})
    restored = store.target(now, lkg)
    assert restored.config == target.config
    assert restored.stack_settings == {"encryptionsalt": PULUMI_STATE}
    assert restored.config_file == str(kept)
    revealed = reveal(
        restored.config,
        restored.stack_settings,
        source=restored.config_file,
        environ={"PULUMI_CONFIG_PASSPHRASE": PASSPHRASE},
    )
    assert revealed.values["app:db_url"] == "postgres://kept"


def test_a_config_without_secure_values_is_kept_as_before(tmp_path: Path) -> None:
    target = StackTarget(
        project="p",
        environment="sandbox",
        phase="vault",
        region="us-east-1",
        program=ProgramSource(module="vault", files={}),
        config={"app:plain": "hello"},
        stack_settings={"encryptionsalt": PULUMI_STATE},
    )
    LastKnownGoodStore(tmp_path, lambda _: None).keep(target, "sha256:f", [])
    kept = next((tmp_path / "lkg").glob("config-*.json"))
    assert json.loads(kept.read_text()) == {"app:plain": "hello"}
