"""The gate in front of ``sandbox serve``: once a stop begins no new request reaches the
emulator, those under way are waited for (boundedly), and a request that finishes after
that wait is not told it succeeded, since the snapshot written next may miss it."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterable
from typing import Any

from phasegate.engines.sandbox.server import _Gate


class _App:
    """A WSGI app that answers 200 once ``release`` is set, recording what it was sent."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.bodies: list[bytes] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.bodies.append(environ["wsgi.input"].read())
        self.entered.set()
        assert self.release.wait(30)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]


class _Call:
    """One request through the gate, in its own thread."""

    def __init__(self, gate: _Gate, body: bytes = b"payload") -> None:
        self.status = ""
        self.headers: list[tuple[str, str]] = []
        self.body = b""
        environ = {
            "REQUEST_METHOD": "PUT",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
        }
        self.thread = threading.Thread(target=self._run, args=(gate, environ), daemon=True)
        self.thread.start()

    def _run(self, gate: _Gate, environ: dict[str, Any]) -> None:
        def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
            self.status, self.headers = status, headers
            return lambda data: None

        self.body = b"".join(gate(environ, start_response))

    def done(self) -> _Call:
        self.thread.join(30)
        assert not self.thread.is_alive()
        return self


def test_an_open_gate_passes_requests_and_their_bodies_through() -> None:
    app = _App()
    app.release.set()
    call = _Call(_Gate(app), b"the object").done()
    assert (call.status, call.body) == ("200 OK", b"ok")
    assert app.bodies == [b"the object"]


def test_a_closed_gate_refuses_without_reaching_the_emulator() -> None:
    app = _App()
    gate = _Gate(app)
    gate.close()
    call = _Call(gate).done()
    assert call.status.startswith("503")
    assert ("Connection", "close") in call.headers
    assert b"ServiceUnavailable" in call.body
    assert app.bodies == []


def test_a_request_under_way_when_the_stop_begins_is_finished_and_answered() -> None:
    app = _App()
    gate = _Gate(app)
    call = _Call(gate)
    assert app.entered.wait(30)
    threading.Timer(0.2, app.release.set).start()

    still_running = gate.drain(timeout=30)

    assert still_running == 0
    assert call.done().status == "200 OK"


def test_a_request_that_outlasts_the_wait_is_not_told_it_succeeded() -> None:
    app = _App()
    gate = _Gate(app)
    call = _Call(gate)
    assert app.entered.wait(30)

    still_running = gate.drain(timeout=0.1)
    app.release.set()

    assert still_running == 1
    assert call.done().status.startswith("503")
