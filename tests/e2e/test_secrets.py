"""Secrets by value, through the real CLI on the sandbox: whatever is secret anywhere in a
run (a secret output, a ``secure:`` config value, a value read with ``get_secret``, a value
under a secret-like key) reads ``[secret]`` in every message, file and rendering, even
echoed under an innocent name or inside a longer message; ``secure:`` values are the
Pulumi CLI's own passphrase format, kept encrypted in the last known good.

The secrets live in a small phase of their own, ``vault``, added to a copy of the shipped
project; its program derives every secret value at run time, so that no file the project
holds spells one out and any clear value found on disk is phasegate's doing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from phasegate import faults

PASSPHRASE = "correct horse battery staple"
WITH_PASSPHRASE = {"PULUMI_CONFIG_PASSPHRASE": PASSPHRASE}


def derived(label: str) -> str:
    """As the vault program computes its secrets."""
    return f"{label}-" + hashlib.sha256(f"phasegate-secrets-{label}".encode()).hexdigest()[:16]


SESSION = derived("session")  # a secret output (pulumi.Output.secret)
TOKEN = derived("token")  # under a secret-like key: api_token
NESTED = derived("passphrase")  # under a nested secret-like key: service.auth.passphrase
ADMIN = derived("admin")  # a secure: value the program reads in clear and exports as `banner`
DB_PASSWORD = derived("db")
DB_URL = f"postgres://app:{DB_PASSWORD}@db.internal/app"  # secure:, read with get_secret
CLEAR = {
    "secret output": SESSION,
    "secret-like key": TOKEN,
    "nested secret-like key": NESTED,
    "secure: value": ADMIN,
    "get_secret value": DB_URL,
    "part of a get_secret value": DB_PASSWORD,
    "the passphrase": PASSPHRASE,
}

VAULT_PROGRAM = '''"""vault: a phase holding a secret of every kind (tests/e2e/test_secrets.py)."""

from __future__ import annotations

import hashlib

import pulumi
import pulumi_kubernetes as k8s


def derived(label: str) -> str:
    return f"{label}-" + hashlib.sha256(f"phasegate-secrets-{label}".encode()).hexdigest()[:16]


def program() -> None:
    config = pulumi.Config("vault")
    session = pulumi.Output.secret(derived("session"))
    data = {"note": session, "plain": "hello"}
    admin = config.get("admin_pw")
    if admin is not None:
        if config.get("fail"):
            raise RuntimeError(f"cannot sign in as admin with {admin}")
        data["motd"] = f"admins sign in with {admin}"
        pulumi.export("banner", admin)
    db = config.get_secret("db_url")
    if db is not None:
        data["db"] = db
        expected = f"postgres://app:{derived('db')}@db.internal/app"
        pulumi.export("db", db)
        pulumi.export("db_ok", db.apply(lambda value: value == expected))
    k8s.core.v1.ConfigMap(
        "settings", metadata={"name": "settings", "namespace": "default"}, data=data
    )
    pulumi.export("api_token", derived("token"))
    pulumi.export("service", {"name": "svc", "auth": {"passphrase": derived("passphrase")}})
    pulumi.export("session", session)
'''

ECHO = {
    "name": "echo",
    "kind": "outputs",
    "retries": 0,
    "interval": 0,
    "params": {"equals": {"api_token": "x", "service": {}, "session": "x"}},
}
"""A failing check whose message echoes every output it compares."""


def add_vault(project: Path, checks: list[dict[str, Any]] | None = None) -> None:
    """The vault phase in ``project``: its program, an empty stack config, its checks."""
    (project / "phases" / "vault.py").write_text(VAULT_PROGRAM)
    stack = project / "stacks" / "Pulumi.sandbox-vault.yaml"
    if not stack.exists():
        stack.write_text("# the vault phase's secrets\nconfig: {}\n")
    path = project / "migration.yaml"
    data = yaml.safe_load(path.read_text())
    data["phases"] = [p for p in data["phases"] if p["name"] != "vault"]
    data["phases"].append({"name": "vault", "program": "vault", "checks": checks or []})
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def set_secret(cli: Any, project: Path, key: str, value: str) -> subprocess.CompletedProcess[str]:
    """``migrate config set-secret`` with the value on stdin, as a user pipes it."""
    return subprocess.run(
        [*cli.command, "config", "set-secret", "--phase", "vault", key],
        cwd=project,
        env={**cli.env, **WITH_PASSPHRASE},
        input=value + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run(cli: Any, project: Path, *args: str, fault: str | None = None) -> Any:
    env = dict(WITH_PASSPHRASE)
    if fault:
        env[faults.VARIABLE] = fault
    return cli.run(project, *args, env=env)


def state(project: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((project / "state/sandbox/vault.yaml").read_text())
    return loaded


def leaks(text: str, values: dict[str, str] = CLEAR) -> list[str]:
    return [what for what, value in values.items() if value in text]


def files_with(project: Path, values: dict[str, str] = CLEAR) -> list[str]:
    """Every file under the project that holds one of ``values`` in clear, and which."""
    found = []
    for path in sorted(project.rglob("*")):
        if path.is_file() and not path.is_symlink() and "__pycache__" not in path.parts:
            data = path.read_bytes()
            found += [
                f"{path.relative_to(project)}: {what}"
                for what, value in values.items()
                if value.encode() in data
            ]
    return found


def pulumi_decrypt(salt_state: str, value: str, passphrase: str) -> str:
    """The Pulumi CLI's passphrase format, written out here independently of phasegate:
    a key by PBKDF2-SHA256 (1,000,000 iterations, 32 bytes) over the salt of
    ``encryptionsalt: v1:<salt>:v1:<nonce>:<ct>`` (whose ciphertext is "pulumi"), and
    ``v1:<nonce>:<ct>`` values in AES-256-GCM."""
    version, salt, check = salt_state.split(":", 2)
    assert version == "v1"
    kdf = PBKDF2HMAC(hashes.SHA256(), 32, base64.b64decode(salt), 1_000_000)
    key = AESGCM(kdf.derive(passphrase.encode()))

    def open_(sealed: str) -> str:
        tag, nonce, ciphertext = sealed.split(":")
        assert tag == "v1" and len(base64.b64decode(nonce)) == 12
        return key.decrypt(base64.b64decode(nonce), base64.b64decode(ciphertext), None).decode()

    assert open_(check) == "pulumi"
    return open_(value)


# --- what was seen, each a test that failed before secrets were masked by value ---------


def test_a_failing_outputs_check_shows_no_secret_like_value(cli: Any, fresh_project: Path) -> None:
    add_vault(fresh_project, [ECHO])
    text = run(cli, fresh_project, "apply", "--yes", "--phase", "vault")
    assert text.returncode == 3, text.stderr
    as_json = run(cli, fresh_project, "apply", "--yes", "--phase", "vault", "--output", "json")
    assert as_json.returncode == 3, as_json.stderr
    shown = {"secret output": SESSION, "api_token": TOKEN, "service.auth.passphrase": NESTED}
    for where, output in (
        ("terminal", text.stdout),
        ("error line", text.stderr),
        ("--output json", as_json.stdout),
        ("error line (json run)", as_json.stderr),
    ):
        assert not leaks(output, shown), f"{where} shows {leaks(output, shown)}:\n{output}"
    check = json.loads(as_json.stdout)["phases"][0]["checks"][0]
    assert check["message"] == (
        "api_token is '[secret]', expected 'x'; service is "
        "{'auth': {'passphrase': '[secret]'}, 'name': 'svc'}, expected {}; "
        "session is '[secret]', expected 'x'"
    )
    recorded = state(fresh_project)
    messages = [c["message"] for c in recorded["checks"]]
    messages += [h.get("message") or "" for h in recorded["history"]]
    assert any("api_token is '[secret]'" in m for m in messages)
    assert not leaks("\n".join(messages), shown)
    assert not files_with(fresh_project, shown)


def test_the_sandbox_checkpoint_holds_no_secret_in_clear(cli: Any, fresh_project: Path) -> None:
    add_vault(fresh_project)
    result = run(cli, fresh_project, "apply", "--yes", "--phase", "vault")
    assert result.returncode == 0, result.stderr
    sandbox = fresh_project / ".phasegate" / "sandbox"
    shown = {"secret output": SESSION, "api_token": TOKEN, "service.auth.passphrase": NESTED}
    assert not files_with(sandbox, shown)
    manifest = yaml.safe_load(
        (sandbox / "sandbox/kubernetes/default/ConfigMap/settings.yaml").read_text()
    )
    assert manifest["data"] == {"note": "[secret]", "plain": "hello"}
    # Sealed, not lost: a later run still has the values (the check reads them in clear).
    add_vault(fresh_project, [{**ECHO, "params": {"equals": {"session": SESSION}}}])
    again = run(cli, fresh_project, "apply", "--yes", "--phase", "vault")
    assert again.returncode == 0, again.stdout + again.stderr
    assert state(fresh_project)["checks"][0]["result"] == "pass"


def test_secure_config_runs_on_the_sandbox_as_a_secret(cli: Any, fresh_project: Path) -> None:
    add_vault(
        fresh_project, [{"name": "db", "kind": "outputs", "params": {"equals": {"db_ok": True}}}]
    )
    for key, value in (("vault:admin_pw", ADMIN), ("vault:db_url", DB_URL)):
        written = set_secret(cli, fresh_project, key, value)
        assert written.returncode == 0, written.stderr
    result = run(cli, fresh_project, "apply", "--yes", "--phase", "vault")
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = state(fresh_project)["outputs"]
    # get_secret: a secret output; get: an innocent name, hidden by its value.
    assert outputs["db"] == outputs["db_ok"] == outputs["banner"] == "[secret]"
    checkpoint = json.loads(
        (fresh_project / ".phasegate/sandbox/sandbox/checkpoint.json").read_text()
    )
    assert {"db", "db_ok", "session"} <= set(
        checkpoint["stacks"]["sandbox-vault"]["secret_outputs"]
    )
    assert not files_with(fresh_project)


def test_a_missing_passphrase_is_one_line_naming_the_stack_file_and_variable(
    cli: Any, fresh_project: Path
) -> None:
    add_vault(fresh_project)
    assert set_secret(cli, fresh_project, "vault:admin_pw", ADMIN).returncode == 0
    result = cli.run(fresh_project, "plan", "--phase", "vault")
    assert result.returncode == 1
    # The run's first line (what it set out to do), then the one error line.
    headline, *lines = result.stderr.strip().splitlines()
    assert headline == "Planning sandbox: vault", result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "stacks/Pulumi.sandbox-vault.yaml" in lines[0]
    assert "config.vault:admin_pw" in lines[0]
    assert "PULUMI_CONFIG_PASSPHRASE" in lines[0] and "Traceback" not in result.stderr
    wrong = cli.run(
        fresh_project, "plan", "--phase", "vault", env={"PULUMI_CONFIG_PASSPHRASE": "nope"}
    )
    assert wrong.returncode == 1 and "encryptionsalt" in wrong.stderr, wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 2, wrong.stderr


def test_set_secret_writes_the_pulumi_format_and_keeps_the_file_as_it_was(
    cli: Any, fresh_project: Path
) -> None:
    path = fresh_project / "stacks" / "Pulumi.sandbox-pilot.yaml"
    before = path.read_text()
    written = subprocess.run(
        [*cli.command, "config", "set-secret", "--phase", "pilot", "db_password"],
        cwd=fresh_project,
        env={**cli.env, **WITH_PASSPHRASE},
        input=ADMIN + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert written.returncode == 0, written.stderr
    assert ADMIN not in written.stdout + written.stderr
    after = path.read_text()
    data = yaml.safe_load(after)
    # Pulumi's own shape: a namespaced key (the project's name), encryptionsalt beside config.
    secure = data["config"]["phasegate:db_password"]["secure"]
    assert pulumi_decrypt(data["encryptionsalt"], secure, PASSPHRASE) == ADMIN
    # Every line the user wrote (comments too) is still there, in order.
    kept = [line for line in after.splitlines() if line in before.splitlines()]
    assert kept == before.splitlines()
    assert ADMIN not in after
    # A second value reuses the salt (and refuses a wrong passphrase).
    wrong = subprocess.run(
        [*cli.command, "config", "set-secret", "--phase", "pilot", "api_token"],
        cwd=fresh_project,
        env={**cli.env, "PULUMI_CONFIG_PASSPHRASE": "nope"},
        input="x\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert wrong.returncode == 1 and "encryptionsalt" in wrong.stderr
    assert path.read_text() == after


def test_the_last_known_good_keeps_config_secrets_encrypted_and_a_rollback_decrypts_them(
    cli: Any, fresh_project: Path
) -> None:
    db_ok = {
        "name": "db",
        "kind": "outputs",
        "params": {"equals": {"db_ok": True}},
        "retries": 0,  # its failure is final at once
    }
    add_vault(fresh_project, [db_ok])
    assert set_secret(cli, fresh_project, "vault:db_url", DB_URL).returncode == 0
    assert run(cli, fresh_project, "apply", "--yes", "--phase", "vault").returncode == 0
    stack = yaml.safe_load((fresh_project / "stacks/Pulumi.sandbox-vault.yaml").read_text())
    kept = [p for p in (fresh_project / "state" / "lkg").glob("config-*.json")]
    assert len(kept) == 1 and DB_URL not in kept[0].read_text()
    assert stack["config"]["vault:db_url"]["secure"] in kept[0].read_text()
    # A new value the check refuses, under a new salt (the stack file written afresh):
    # the rollback re-applies the last known good's value, decrypted with its own salt.
    (fresh_project / "stacks/Pulumi.sandbox-vault.yaml").write_text("config: {}\n")
    assert set_secret(cli, fresh_project, "vault:db_url", "postgres://elsewhere").returncode == 0
    again = yaml.safe_load((fresh_project / "stacks/Pulumi.sandbox-vault.yaml").read_text())
    assert again["encryptionsalt"] != stack["encryptionsalt"]
    failed = run(cli, fresh_project, "apply", "--yes", "--phase", "vault")
    assert failed.returncode == 3, failed.stdout + failed.stderr
    recorded = state(fresh_project)
    assert [c["result"] for c in recorded["checks"]] == ["fail"]
    assert [c["result"] for c in recorded["rollback_checks"]] == ["pass"]
    assert "postgres://elsewhere" not in failed.stdout + failed.stderr
    assert not files_with(fresh_project, {**CLEAR, "new value": "postgres://elsewhere"})


def test_the_error_line_and_the_debug_traceback_hide_a_secret_a_program_fails_with(
    cli: Any, fresh_project: Path
) -> None:
    add_vault(fresh_project)
    assert set_secret(cli, fresh_project, "vault:admin_pw", ADMIN).returncode == 0
    with (fresh_project / "stacks/Pulumi.sandbox-vault.yaml").open("a") as stack:
        stack.write("  vault:fail: 'yes'\n")
    result = run(cli, fresh_project, "plan", "--phase", "vault")
    assert result.returncode == 1
    assert "cannot sign in as admin with [secret]" in result.stderr, result.stderr
    assert not leaks(result.stdout + result.stderr)
    debug = run(cli, fresh_project, "--debug", "plan", "--phase", "vault")
    assert "Traceback" in debug.stderr and not leaks(debug.stdout + debug.stderr)


# --- the whole story ---------------------------------------------------------------------


def test_no_clear_secret_anywhere_after_apply_fail_rollback_recover(
    cli: Any, fresh_project: Path
) -> None:
    """One secret of each kind, through apply, a failing check that echoes them all, an
    automatic rollback, a run killed as it rolls back, recover, a rollback by hand,
    status and plan: no output and no file under the project shows one in clear."""
    project = fresh_project
    add_vault(project)
    outputs: list[str] = []

    def step(*args: str, code: int | None = 0, fault: str | None = None) -> Any:
        result = run(cli, project, *args, fault=fault)
        outputs.extend([result.stdout, result.stderr])
        if code is not None:
            assert result.returncode == code, f"{args}: {result.stdout}{result.stderr}"
        return result

    for key, value in (("vault:admin_pw", ADMIN), ("vault:db_url", DB_URL)):
        written = set_secret(cli, project, key, value)
        assert written.returncode == 0, written.stderr
        outputs.extend([written.stdout, written.stderr])
    step("apply", "--yes", "--phase", "vault")
    echo_all = {"api_token": "x", "service": {}, "session": "x", "db": "x", "banner": "x"}
    add_vault(project, [{**ECHO, "params": {"equals": echo_all}}])
    failed = step("apply", "--yes", "--phase", "vault", code=3)
    assert "banner is '[secret]', expected 'x'" in failed.stdout
    killed = step(
        "apply", "--yes", "--phase", "vault", "--output", "json", code=None, fault="rollback:1"
    )
    assert killed.returncode < 0 and state(project)["status"] == "rolling_back"
    recovered = step("recover", "--output", "json")
    assert json.loads(recovered.stdout)["phases"][0]["outcome"] == "rolled back"
    step("rollback", "--phase", "vault")
    step("status")
    step("status", "--output", "json")
    step("plan", "--phase", "vault", "--output", "json")
    step("sandbox", "status", "--output", "json")

    recorded = state(project)
    assert recorded["outputs"]["banner"] == "[secret]"
    assert any("banner is '[secret]'" in c["message"] for c in recorded["checks"])
    assert not leaks("\n".join(outputs)), leaks("\n".join(outputs))
    assert not files_with(project)
