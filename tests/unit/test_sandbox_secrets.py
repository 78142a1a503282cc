"""The sandbox keeps no secret in clear: its checkpoint seals every secret value of the
run and opens them again (teaching a later run what was secret), and the runtime hears of
every value a program holds as a secret."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from phasegate.engines.sandbox.runtime import _secret_parts, run_program
from phasegate.engines.sandbox.sealing import SEALED, Sealer
from phasegate.engines.sandbox.store import Checkpoint, SandboxStore, StackCheckpoint
from phasegate.errors import EngineError
from phasegate.redaction import SecretValues

SECRET = "sess-4be1c0de"
SIG = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


def _checkpoint() -> Checkpoint:
    return Checkpoint(
        environment="sandbox",
        region="us-east-1",
        legacy={"bucket": "legacy-exports"},
        store={"kubernetes": {"default/ConfigMap/settings": {"data": {"note": SECRET}}}},
        stacks={
            "sandbox-vault": StackCheckpoint(
                outputs={"session": SECRET, "url": f"https://u:{SECRET}@h", "port": 443},
                secret_outputs=["session"],
            )
        },
    )


def test_a_checkpoint_seals_every_secret_and_opens_them_again(tmp_path: Path) -> None:
    sealer = Sealer(tmp_path / "secrets.key", SecretValues([SECRET]))
    text = _checkpoint().to_json(sealer.seal)
    assert SECRET not in text
    outputs = json.loads(text)["stacks"]["sandbox-vault"]["outputs"]
    assert set(outputs["session"]) == {SEALED} and set(outputs["url"]) == {SEALED}
    assert outputs["port"] == 443
    assert stat.S_IMODE((tmp_path / "secrets.key").stat().st_mode) == 0o600
    # A later run (a new registry) gets the values back, and learns they are secret.
    later = SecretValues()
    opened = Checkpoint.from_json(text, Sealer(tmp_path / "secrets.key", later).open)
    assert opened == _checkpoint()
    assert later.mask(f"echo {SECRET}") == "echo [secret]"


def test_an_unchanged_checkpoint_is_written_the_same_and_one_without_secrets_as_before(
    tmp_path: Path,
) -> None:
    sealer = Sealer(tmp_path / "secrets.key", SecretValues([SECRET]))
    assert _checkpoint().to_json(sealer.seal) == _checkpoint().to_json(sealer.seal)
    plain = Sealer(tmp_path / "other.key", SecretValues())
    assert _checkpoint().to_json(plain.seal) == _checkpoint().to_json()
    assert not (tmp_path / "other.key").exists()


def test_a_sealed_checkpoint_without_its_key_is_refused_by_name(tmp_path: Path) -> None:
    text = _checkpoint().to_json(Sealer(tmp_path / "secrets.key", SecretValues([SECRET])).seal)
    (tmp_path / "secrets.key").unlink()
    with pytest.raises(EngineError, match=r"secrets\.key is missing.*sandbox reset"):
        Checkpoint.from_json(text, Sealer(tmp_path / "secrets.key", SecretValues()).open)
    (tmp_path / "secrets.key").write_bytes(b"\0" * 32)
    with pytest.raises(EngineError, match="does not open"):
        Checkpoint.from_json(text, Sealer(tmp_path / "secrets.key", SecretValues()).open)


def test_the_store_seals_on_commit_and_hides_secrets_in_rendered_manifests(
    tmp_path: Path,
) -> None:
    secrets = SecretValues([SECRET])
    store = SandboxStore(tmp_path / "sandbox", "sandbox", "us-east-1", secrets)
    store.commit(_checkpoint())
    on_disk = [p for p in (tmp_path / "sandbox").rglob("*") if p.is_file()]
    assert on_disk and not [p for p in on_disk if SECRET.encode() in p.read_bytes()]
    manifest = tmp_path / "sandbox/kubernetes/default/ConfigMap/settings.yaml"
    assert "note: '[secret]'" in manifest.read_text()
    assert SandboxStore(tmp_path / "sandbox", "sandbox", "us-east-1").load() == _checkpoint()


def _secret(value: Any) -> dict[str, Any]:
    return {SIG: SECRET_SIG, "value": value}


def test_the_runtime_finds_every_secret_a_program_sends() -> None:
    wire = {
        "tags": {"Name": "x", "Token": _secret(SECRET)},
        "list": [1, _secret(["a-secret", 2])],
        "plain": "hello",
    }
    assert list(_secret_parts(wire)) == [SECRET, ["a-secret", 2]]
    assert list(_secret_parts("hello")) == []


class _Host:
    def __init__(self) -> None:
        self.registered: list[Any] = []

    def register(self, reg: Any) -> tuple[str, dict[str, Any]]:
        self.registered.append(reg)
        return f"{reg.name}-id", dict(reg.inputs)

    def stack_outputs(self, name: str) -> None:
        return None

    def invoke(self, token: str, args: dict[str, Any]) -> None:
        return None


PROGRAM = """\
import pulumi

config = pulumi.Config("app")
secure = config.get_secret("db_url")
plain_read_as_secret = config.get_secret("region_hint")
pulumi.CustomResource("t:x:Y", "thing", {"url": secure, "hint": "ok"})
pulumi.export("db", secure)
pulumi.export("hint", plain_read_as_secret)
pulumi.export("open", config.get("db_url"))
"""


def test_secret_config_reaches_the_program_as_a_secret_and_the_engine_hears_of_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "__main__.py").write_text(PROGRAM)
    heard: list[Any] = []
    host = _Host()
    outputs = run_program(
        tmp_path,
        project="t",
        stack="sandbox-t",
        config={"app:db_url": "postgres://x:pw-1234@h", "app:region_hint": "eu-west-9x"},
        preview=False,
        host=host,
        secret_keys={"app:db_url"},
        on_secret=heard.append,
    )
    assert outputs.secret == {"db", "hint"}  # get_secret: secret, whatever the config
    assert outputs.values["open"] == "postgres://x:pw-1234@h"
    assert host.registered[0].secret_inputs == {"url"}
    assert "postgres://x:pw-1234@h" in heard and "eu-west-9x" in heard
    assert "ok" not in heard
