"""The run's secret values (``phasegate.redaction.SecretValues``) and the places that ask
it: a secret reads ``[secret]`` by its value, not its name, in state files, history,
renderings and JSON."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from phasegate.engines.base import Op, Plan, ResourceChange, StackOutputs
from phasegate.machine import PhaseLifecycle, RunContext
from phasegate.redaction import SECRET_MARK, SecretValues
from phasegate.render import render_reports, render_status
from phasegate.reports import PhaseReport
from phasegate.state import CheckResult, PhaseState, PlanSummary, StateStore

TOKEN = "tok-5f2a9c1e"


# --- the registry -----------------------------------------------------------------------


def test_a_secret_is_hidden_by_value_inside_any_message() -> None:
    secrets = SecretValues([TOKEN])
    assert (
        secrets.mask(f"GET /ok?token={TOKEN} answered 200") == "GET /ok?token=[secret] answered 200"
    )
    assert secrets.mask(f"banner is {TOKEN!r}") == "banner is '[secret]'"


def test_repr_and_json_spellings_are_hidden_too() -> None:
    value = 'pa"ss\\word\n1'
    secrets = SecretValues([value])
    for spelled in (value, repr(value), json.dumps(value), json.dumps({"x": value})):
        assert value not in secrets.mask(spelled)
        assert repr(value)[1:-1] not in secrets.mask(spelled)
        assert json.dumps(value)[1:-1] not in secrets.mask(spelled)


def test_a_structured_secret_is_hidden_whole_and_part_by_part() -> None:
    secrets = SecretValues([{"user": "admin-user", "auth": {"password": "hunter22"}}])
    assert secrets.mask("password hunter22, user admin-user") == (
        "password [secret], user [secret]"
    )


def test_short_texts_and_booleans_are_never_secrets() -> None:
    secrets = SecretValues(["on", True, None, "", 12])
    assert not secrets
    assert secrets.mask("on 12 True None") == "on 12 True None"


def test_the_mark_itself_is_never_a_secret_so_masking_twice_changes_nothing() -> None:
    secrets = SecretValues(["secret", "[secret]", "ecre", TOKEN])
    once = secrets.mask(f"a {TOKEN} secret")
    assert once == "a [secret] secret"
    assert secrets.mask(once) == once


def test_the_longest_secret_is_hidden_whole() -> None:
    secrets = SecretValues(["abcd", "abcdefgh"])
    assert secrets.mask("xabcdefghx") == "x[secret]x"


def test_values_under_secret_like_keys_are_learned_at_any_depth() -> None:
    secrets = SecretValues()
    secrets.add_outputs(
        {
            "url": "https://example.test",
            "api_token": TOKEN,
            "service": {"name": "svc", "auth": {"passphrase": "pp-0123"}},
            "session": "sess-9876",
            "list": [{"db_password": "hunter22"}],
        },
        {"session"},
    )
    shown = secrets.mask(f"{TOKEN} pp-0123 sess-9876 hunter22 https://example.test svc")
    assert shown == "[secret] [secret] [secret] [secret] https://example.test svc"


def test_mask_data_keeps_json_types_and_hides_secret_numbers() -> None:
    secrets = SecretValues([TOKEN, 8443])
    data = {"port": 8443, "other": 443, "ok": True, "msg": f"t={TOKEN}", "list": [TOKEN, None]}
    assert secrets.mask_data(data) == {
        "port": SECRET_MARK,
        "other": 443,
        "ok": True,
        "msg": "t=[secret]",
        "list": [SECRET_MARK, None],
    }
    assert SecretValues().mask_data(data) is data


def test_reveals_says_whether_a_leaf_spells_a_secret() -> None:
    secrets = SecretValues([TOKEN, 8443])
    assert secrets.reveals(f"x{TOKEN}x") and secrets.reveals(8443) and secrets.reveals("18443")
    assert not secrets.reveals("other") and not secrets.reveals(True) and not secrets.reveals({})


def test_threads_may_add_while_others_mask() -> None:
    secrets = SecretValues()
    values = [f"secret-value-{i:04d}" for i in range(200)]

    def add(part: list[str]) -> None:
        for value in part:
            secrets.add(value)
            secrets.mask(value)

    threads = [threading.Thread(target=add, args=(values[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert secrets.mask(" ".join(values)) == " ".join([SECRET_MARK] * len(values))


@given(
    st.text(min_size=4, max_size=20).filter(lambda s: s not in SECRET_MARK),
    st.text(max_size=30),
    st.text(max_size=30),
)
def test_a_secret_never_survives_masking(secret: str, before: str, after: str) -> None:
    secrets = SecretValues([secret])
    assert secret not in secrets.mask(before + secret + after)


# --- the places that write or print -------------------------------------------------------


def _context() -> RunContext:
    return RunContext(
        command="migrate apply", actor="me@here", clock=lambda: "2026-01-01T00:00:00Z"
    )


def test_a_state_file_holds_no_secret_in_outputs_checks_plan_or_history(tmp_path: Path) -> None:
    secrets = SecretValues([TOKEN])
    store = StateStore(tmp_path, "sandbox", secrets)
    state = PhaseState(stack="sandbox-vault", environment="sandbox", phase="vault")
    state.outputs = {"banner": TOKEN, "nested": {"deep": [f"x {TOKEN}"]}, "port": 1}
    state.checks = [CheckResult(name="c", kind="outputs", result="fail", message=f"is {TOKEN}")]
    state.rollback_checks = [CheckResult(name="c", kind="outputs", result="pass", message=TOKEN)]
    state.plan = PlanSummary(
        at="t", fingerprint="sha256:" + "a" * 64, changes={}, resources=[f"create x {TOKEN}"]
    )
    lifecycle = PhaseLifecycle(state, store, _context())
    lifecycle.fire("apply", message=f"planned with {TOKEN}")
    text = store.path("vault").read_text()
    assert TOKEN not in text
    written = yaml.safe_load(text)
    assert written["outputs"] == {
        "banner": "[secret]",
        "nested": {"deep": ["x [secret]"]},
        "port": 1,
    }
    assert written["checks"][0]["message"] == "is [secret]"
    assert written["rollback_checks"][0]["message"] == "[secret]"
    assert written["plan"]["resources"] == ["create x [secret]"]
    assert written["history"][-1]["message"] == "planned with [secret]"
    # What the run holds in memory is as it was: only what is written is hidden.
    assert state.outputs["banner"] == TOKEN


def test_a_state_file_without_secrets_is_written_as_before(tmp_path: Path) -> None:
    state = PhaseState(stack="sandbox-vault", environment="sandbox", phase="vault")
    state.outputs = {"banner": TOKEN}
    StateStore(tmp_path / "a", "sandbox").write(state)
    StateStore(tmp_path / "b", "sandbox", SecretValues()).write(state)
    a = (tmp_path / "a/sandbox/vault.yaml").read_bytes()
    assert a == (tmp_path / "b/sandbox/vault.yaml").read_bytes() and TOKEN.encode() in a


def _report() -> PhaseReport:
    plan = Plan(
        stack="sandbox-vault",
        changes=[ResourceChange(op=Op.CREATE, type="t:x:Y", name=f"res-{TOKEN}")],
        outputs=StackOutputs(values={"banner": TOKEN, "api_token": "ignored-by-key"}),
    )
    check = CheckResult(name="echo", kind="outputs", result="fail", message=f"banner is {TOKEN!r}")
    return PhaseReport(
        "vault", "sandbox-vault", "rolled_back", "rolled back", plan,
        message=f"check echo failed: banner is {TOKEN!r}", checks=[check],
    )  # fmt: skip


@pytest.mark.parametrize("output", ["text", "json"])
def test_reports_render_no_secret(capsys: pytest.CaptureFixture[str], output: str) -> None:
    render_reports(
        [_report()], output, environment="sandbox", title="Apply", secrets=SecretValues([TOKEN])
    )
    shown = capsys.readouterr().out
    assert TOKEN not in shown and "[secret]" in shown
    if output == "json":
        phase = json.loads(shown)["phases"][0]
        assert phase["outputs"] == {"api_token": "[secret]", "banner": "[secret]"}
        assert phase["checks"][0]["message"] == "banner is '[secret]'"


def test_status_json_renders_no_secret(capsys: pytest.CaptureFixture[str]) -> None:
    state = PhaseState(stack="sandbox-vault", environment="sandbox", phase="vault")
    state.outputs = {"banner": TOKEN}
    render_status("sandbox", [state], "json", SecretValues([TOKEN]))
    assert json.loads(capsys.readouterr().out)["phases"][0]["outputs"] == {"banner": "[secret]"}
