"""The progress renderings fed events by hand: the words of every operation, failures,
and secrets, which the end-to-end runs cannot all reach (a replace, a failed delete)."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from typing import Any

import pytest

from phasegate.checks import CheckContext, CheckSpec, run_check
from phasegate.cli.copy_progress import eta
from phasegate.cli.live_view import PhaseView
from phasegate.cli.progress import JsonLines, Lines, LiveView, progress_for
from phasegate.engines.base import Op, ProgressEvent
from phasegate.events import CheckEvent, CopyEvent, PhaseEvent, RunEvent, max_attempts
from phasegate.redaction import SecretValues

BUCKET = "aws:s3/bucket:Bucket"


class _Pipe(io.StringIO):
    encoding = "utf-8"

    def isatty(self) -> bool:
        return False


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _feed(progress: Lines | JsonLines) -> None:
    progress(RunEvent("apply", "sandbox", ("pilot", "data_layer")))
    progress(PhaseEvent("sandbox-pilot", "pilot", "applying", total=5))
    for op in (Op.CREATE, Op.UPDATE, Op.REPLACE, Op.DELETE):
        progress(ProgressEvent("sandbox-pilot", op, BUCKET, f"b-{op.value}", "start"))
        progress(ProgressEvent("sandbox-pilot", op, BUCKET, f"b-{op.value}", "done"))
    progress(ProgressEvent("sandbox-pilot", Op.DELETE, BUCKET, "old", "start"))
    progress(ProgressEvent("sandbox-pilot", Op.DELETE, BUCKET, "old", "failed", "hunter22 denied"))
    progress(PhaseEvent("sandbox-pilot", "pilot", "verifying", total=1))
    most = max_attempts(retries=4, required_passes=1)
    progress(CheckEvent("sandbox-pilot", "ready", "http", "start", max_attempts=most))
    progress(CheckEvent("sandbox-pilot", "ready", "http", "attempt", 1, most))
    progress(CheckEvent("sandbox-pilot", "ready", "http", "waiting", 1, most, 2.0, "failed: 503"))
    progress(CheckEvent("sandbox-pilot", "ready", "http", "attempt", 2, most))
    progress(CheckEvent("sandbox-pilot", "ready", "http", "pass", 2, most, 2.5, "200 in 4 ms"))
    progress(PhaseEvent("sandbox-pilot", "pilot", "rolling_back"))
    progress(PhaseEvent("sandbox-pilot", "pilot", "done", outcome="rolled back"))
    progress(RunEvent("apply", "sandbox", ("pilot", "data_layer"), status="done"))


def test_plain_lines_say_each_operation_in_english_and_hide_secrets() -> None:
    out = _Pipe()
    _feed(Lines(SecretValues(["hunter22"]), out))
    lines = out.getvalue().splitlines()
    assert lines[0] == "Applying sandbox: pilot → data_layer"
    done = [line.rsplit(" (", 1)[0] for line in lines[1:5]]
    assert done == [
        f"sandbox-pilot: created {BUCKET} b-create",
        f"sandbox-pilot: updated {BUCKET} b-update",
        f"sandbox-pilot: replaced {BUCKET} b-replace",
        f"sandbox-pilot: deleted {BUCKET} b-delete",
    ]
    assert lines[5] == f"sandbox-pilot: deleting {BUCKET} old failed: [secret] denied"
    assert lines[6:] == [
        "sandbox-pilot: check ready (http): attempt 1/5",
        "sandbox-pilot: check ready (http): attempt 1/5: failed: 503; next attempt in 2s",
        "sandbox-pilot: check ready (http): attempt 2/5",
        "sandbox-pilot: check ready (http): passed after 2 attempts (2.5s): 200 in 4 ms",
        "sandbox-pilot: rolling back",
        lines[-1],
    ]
    assert lines[-1].startswith(
        "sandbox-pilot rolled back: 1 created, 1 updated, 1 replaced, 1 deleted, 1 failed; "
        "checks: 1 passed; "
    )
    assert "hunter22" not in out.getvalue()


def test_json_lines_are_one_object_per_event_with_secrets_hidden() -> None:
    out = io.StringIO()
    _feed(JsonLines(SecretValues(["hunter22"]), out))
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events[:3]] == ["run", "phase", "resource"]
    failed = next(e for e in events if e.get("status") == "failed")
    assert failed == {
        "event": "resource",
        "stack": "sandbox-pilot",
        "op": "delete",
        "type": BUCKET,
        "name": "old",
        "status": "failed",
        "seconds": failed["seconds"],
        "message": "[secret] denied",
    }
    waiting = next(e for e in events if e.get("status") == "waiting")
    assert waiting == {
        "event": "check",
        "stack": "sandbox-pilot",
        "check": "ready",
        "kind": "http",
        "status": "waiting",
        "attempt": 1,
        "max_attempts": 5,
        "seconds": 2.0,
        "message": "failed: 503",
    }
    assert "hunter22" not in out.getvalue()


@pytest.mark.parametrize(
    ("output", "tty", "env", "kind"),
    [
        ("text", True, {}, LiveView),
        ("text", False, {}, Lines),
        ("text", True, {"NO_COLOR": "1"}, Lines),
        ("text", True, {"TERM": "dumb"}, Lines),
        ("json", True, {}, JsonLines),
        ("json", False, {}, JsonLines),
    ],
)
def test_the_rendering_suits_where_stderr_goes(
    monkeypatch: pytest.MonkeyPatch, output: str, tty: bool, env: dict[str, str], kind: type
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    stream = _Tty() if tty else _Pipe()
    progress = progress_for(output, SecretValues(), stream)
    try:
        assert type(progress) is kind
    finally:
        progress.close()


def test_a_check_may_take_as_many_attempts_as_max_attempts_says() -> None:
    # Each survivable failure after required_passes - 1 passes, then the passes needed.
    assert max_attempts(retries=3, required_passes=1) == 4
    assert max_attempts(retries=1, required_passes=2) == 4  # pass fail pass pass
    assert max_attempts(retries=0, required_passes=3) == 3


# --- what run_check reports -----------------------------------------------------------


def scripted(ctx: CheckContext, **_: Any) -> Any:
    """A check function that answers from ``ctx.config['script']``, one answer per call."""
    return ctx.config["script"].pop(0)


def test_run_check_reports_each_attempt_each_wait_and_the_verdict() -> None:
    events: list[CheckEvent] = []
    slept: list[float] = []
    script: list[Any] = [(False, "not yet hunter22"), True, (True, "ready")]
    ctx = CheckContext(
        environment="sandbox",
        stack="sandbox-pilot",
        outputs={},
        config={"script": script},
        sleep=slept.append,
        secret_values=("hunter22",),
        on_event=events.append,
    )
    spec = CheckSpec(
        name="ready",
        kind="python",
        params={"function": f"{__name__}:scripted"},
        interval=2,
        retries=1,
        required_passes=2,
    )
    result = run_check(spec, ctx)
    assert (result.result, result.attempts) == ("pass", 3)
    said = [(e.status, e.attempt, e.max_attempts, e.seconds, e.message) for e in events]
    assert said[:-1] == [
        ("start", 0, 4, 0.0, ""),
        ("attempt", 1, 4, 0.0, ""),
        ("waiting", 1, 4, 2, "failed: not yet [secret]"),
        ("attempt", 2, 4, 0.0, ""),
        ("waiting", 2, 4, 2, f"passed, 1 of 2 in a row: {__name__}:scripted returned True"),
        ("attempt", 3, 4, 0.0, ""),
    ]
    assert said[-1][:2] == ("pass", 3) and said[-1][4] == "ready"
    assert slept == [2, 2]
    assert {(e.stack, e.check, e.kind) for e in events} == {("sandbox-pilot", "ready", "python")}


# --- the data copy --------------------------------------------------------------------

LAKE = "s3://lake-raw/legacy/"
MIB = 1024 * 1024


class _Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _copying(copied: int, seconds: float, failed: int = 0) -> CopyEvent:
    """300 objects of 2 MiB in all to copy, ``copied`` of them (and their share of bytes)."""
    return CopyEvent(
        "sandbox-data_layer", LAKE, "copying", copied, 300, copied * 2 * MIB // 300, 2 * MIB,
        failed, listed=310, seconds=seconds,
    )  # fmt: skip


def test_plain_copy_lines_say_the_start_then_one_per_10_seconds_then_the_end() -> None:
    clock, out = _Clock(), _Pipe()
    progress = Lines(SecretValues(), out, clock)
    progress(CopyEvent("sandbox-data_layer", LAKE, "listing", listed=1000, seconds=0.5))
    for second in range(1, 26):  # the copy reports 5 times a second: a line every 10 s
        for fifth in range(5):
            clock.now = 100 + second + fifth / 5
            progress(_copying(copied=min(300, 12 * second), seconds=second + fifth / 5))
    clock.now = 126
    done = CopyEvent("sandbox-data_layer", LAKE, "done", 300, 300, 2 * MIB, 2 * MIB, 0, 310, 26.0)
    progress(done)
    progress(PhaseEvent("sandbox-data_layer", "data_layer", "done", outcome="applied"))
    head = f"sandbox-data_layer: copy into {LAKE}: "
    assert out.getvalue().splitlines() == [
        head + "listing, 1000 source objects so far (0s)",
        head + "300 objects, 2.0 MiB to copy of 310 listed",
        head + "132/300 objects, 0.9/2.0 MiB, 12.0 objects/s, 0.1 MiB/s, ETA 14s (11s)",
        head + "252/300 objects, 1.7/2.0 MiB, 12.0 objects/s, 0.1 MiB/s, ETA 4s (21s)",
        head + "done: 300/300 objects, 2.0 MiB copied, 0 failed, 310 listed, in 26.0s "
        "(11.5 objects/s, 0.1 MiB/s)",
        out.getvalue().splitlines()[-1],
    ]
    assert (
        out.getvalue()
        .splitlines()[-1]
        .startswith("sandbox-data_layer applied: copied 300/300 objects; ")
    )


def test_a_stopped_copy_says_so_and_a_second_copy_starts_afresh() -> None:
    clock, out = _Clock(), _Pipe()
    progress = Lines(SecretValues(), out, clock)
    progress(_copying(0, 0.0))
    progress(replace(_copying(30, 3.0, failed=2), status="done"))
    progress(_copying(0, 0.0))  # the next apply's copy, straight away
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[1].endswith("stopped: 30/300 objects, 0.2 MiB copied, 2 failed, 310 listed, "
                             "in 3.0s (10.0 objects/s, 0.1 MiB/s)")  # fmt: skip
    assert lines[2] == lines[0]


def test_the_copy_eta_is_the_slower_of_objects_and_bytes() -> None:
    assert eta(_copying(0, 0.0)) is None and eta(_copying(0, 5.0)) is None
    assert eta(_copying(100, 10.0)) == pytest.approx(20.0, abs=0.01)  # 10/s, 200 left
    # A few large objects left: by objects 1 s, by bytes 9 s
    late = CopyEvent("s", LAKE, "copying", 90, 100, MIB, 10 * MIB, seconds=9.0)
    assert eta(late) == pytest.approx(81.0)


def test_json_lines_carry_each_copy_event_whole() -> None:
    out = io.StringIO()
    JsonLines(SecretValues(), out)(_copying(60, 6.0))
    assert json.loads(out.getvalue()) == {
        "event": "copy",
        "stack": "sandbox-data_layer",
        "target": LAKE,
        "status": "copying",
        "copied_objects": 60,
        "total_objects": 300,
        "copied_bytes": 60 * 2 * MIB // 300,
        "total_bytes": 2 * MIB,
        "failed": 0,
        "listed": 310,
        "seconds": 6.0,
    }


def test_the_live_view_shows_the_copy_with_objects_bytes_rate_and_eta() -> None:
    from rich.console import Console

    progress = LiveView(SecretValues(), _Tty())
    try:
        progress(PhaseEvent("sandbox-data_layer", "data_layer", "applying", total=2))
        progress(_copying(150, 10.0))
        screen = io.StringIO()
        Console(file=screen, width=160, color_system=None).print(
            PhaseView(progress, "sandbox-data_layer")
        )
        drawn = screen.getvalue()
        assert "sandbox-data_layer copying" in drawn
        row = next(line for line in drawn.splitlines() if "copy " in line and "objects" in line)
        assert "150/300 objects, 1.0/2.0 MiB · ETA 10s · 15.0 objects/s, 0.1 MiB/s" in row
        progress(replace(_copying(300, 20.0), status="done"))
        screen = io.StringIO()
        Console(file=screen, width=80, color_system=None).print(
            PhaseView(progress, "sandbox-data_layer")
        )
        assert "✓ copied 300/300 objects, 2.0 MiB in 20.0s (15.0 objects/s" in screen.getvalue()
    finally:
        progress.close()


def test_the_copy_library_s_progress_becomes_the_run_s_copy_events() -> None:
    from phasegate.copystep import reporter
    from phasegate.datacopy import Progress

    seen: list[Any] = []
    clock = _Clock()
    report = reporter(seen.append, "sandbox-data_layer", LAKE, clock)
    clock.now += 2.5
    report(Progress("copying", 10, 300, 1024, 2 * MIB, failed=1, listed=310))
    assert seen == [
        CopyEvent("sandbox-data_layer", LAKE, "copying", 10, 300, 1024, 2 * MIB, 1, 310, 2.5)
    ]
