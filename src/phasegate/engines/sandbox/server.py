"""The emulated cloud as an AWS endpoint, for ordinary AWS tools to inspect.

It listens on loopback unless told an address (``--host``): another network namespace
or machine that must reach it, a CI runner's lock table for one. The endpoint has no
authentication, as the emulator accepts any credentials.

``migrate sandbox serve`` runs :func:`serve` on the environment's emulator, then writes
the cloud back. A stop must not lose a write a client was told succeeded, and must come
within seconds however busy the endpoint is, so every request passes a :class:`_Gate`:

* a request's body is read before it may touch the emulator, so a slow upload never
  holds up a stop (it is refused instead);
* on stop the gate closes (new requests get 503 and ``Connection: close``), the server
  stops accepting and closes its socket, and the requests already at the emulator are
  waited for, for at most ``drain`` seconds;
* a request that finishes after that wait is answered 503, whatever moto did: the
  snapshot written next may not hold its change, so no client is told it succeeded.

Every request that got a 2xx had its change in memory before :func:`serve` returned,
which is before the caller dumps the cloud.
"""

from __future__ import annotations

import io
import ipaddress
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from phasegate.engines.sandbox.emulator import Emulator

__all__ = ["serve"]

_DRAIN_SECONDS = 3.0
"""How long a stop waits for requests already at the emulator (each takes milliseconds)."""
_POLL_SECONDS = 0.1
"""How often the accept loop and the waiting thread look for a stop."""

_StartResponse = Callable[..., Any]


def serve(
    emulator: Emulator,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ready: Callable[[str], None] | None = None,
    stop: threading.Event,
    drain: float = _DRAIN_SECONDS,
) -> None:
    """Serve the emulator's state as an AWS endpoint on ``host`` (an IP address, or
    ``localhost``) until ``stop`` is set.

    Port 0 picks a free port; ``ready`` gets the endpoint URL once the server listens.
    Starts the emulator if it is not running (and stops it again on the way out). On
    return no request is changing the emulator, and none will be answered with success.
    """
    address = _address(host)
    from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    started_here = not emulator.running
    emulator.start()
    gate = _Gate(DomainDispatcherApplication(create_backend_app))
    try:
        try:
            server = make_server(
                address, port, gate, threaded=True, request_handler=_quiet(MotoRequestHandler)
            )
        except SystemExit:
            # werkzeug reports a port in use (having printed why) by calling sys.exit(1).
            raise OSError(f"cannot serve the emulator on {address}:{port}: port in use") from None
        accepting = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _POLL_SECONDS},
            name="sandbox-serve",
            daemon=True,
        )
        accepting.start()
        try:
            bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            if ready is not None:
                ready(f"http://{shown}:{bound_port}")
            # Polled, not stop.wait(): a signal handler that sets ``stop`` runs in this
            # thread, and had it come while this thread held the event's lock inside
            # wait() (as it may, waiting for the interpreter lock amid busy request
            # threads) it would block on that lock for good.
            while not stop.is_set():
                time.sleep(_POLL_SECONDS)
        finally:
            gate.close()
            server.shutdown()
            server.server_close()  # connections still queued are refused, not left waiting
            accepting.join()
            gate.drain(drain)
    finally:
        if started_here:
            emulator.stop()


def _quiet(handler: type[Any]) -> type[Any]:
    """``handler`` without werkzeug's line per request on stderr: the terminal that serves
    is the user's, and ``serve`` says what it does itself (errors are still logged)."""

    class QuietRequestHandler(handler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            return None

    return QuietRequestHandler


class _Gate:
    """WSGI middleware that decides which requests reach the emulator and which answers
    may say they succeeded (see the module doc)."""

    def __init__(self, app: Callable[[dict[str, Any], _StartResponse], Iterable[bytes]]) -> None:
        self._app = app
        self._changed = threading.Condition()
        self._running = 0
        self._closed = False
        self._frozen = False

    def __call__(self, environ: dict[str, Any], start_response: _StartResponse) -> Iterable[bytes]:
        if self._closed:
            return _unavailable(start_response)
        _buffer_body(environ)
        with self._changed:
            if self._closed:
                return _unavailable(start_response)
            self._running += 1
        answer: list[Any] = []
        written: list[bytes] = []

        def hold(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer[:] = [status, headers, exc_info]
            return written.append

        try:
            body = self._app(environ, hold)
            if not answer:  # an application that starts its response as it iterates
                body = [b"".join(body)]
        finally:
            with self._changed:
                self._running -= 1
                late = self._frozen
                self._changed.notify_all()
        if late:
            _close(body)
            return _unavailable(start_response)
        write = start_response(*answer)
        for chunk in written:
            write(chunk)
        return body

    def close(self) -> None:
        """Refuse every request from now on."""
        with self._changed:
            self._closed = True

    def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for the requests at the emulator; from then on none is
        answered with success. Returns how many were still running."""
        with self._changed:
            self._closed = True
            self._changed.wait_for(lambda: self._running == 0, timeout)
            self._frozen = True
            return self._running


def _buffer_body(environ: dict[str, Any]) -> None:
    """Read the whole request body now (as the application would), so the time a slow
    client takes to send it is spent before the request counts as running."""
    from werkzeug.wsgi import get_input_stream

    environ["wsgi.input"] = io.BytesIO(get_input_stream(environ, safe_fallback=True).read())


def _unavailable(start_response: _StartResponse) -> list[bytes]:
    body = (
        b"<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>ServiceUnavailable</Code>"
        b"<Message>the sandbox endpoint is stopping</Message></Error>"
    )
    start_response(
        "503 Service Unavailable",
        [
            ("Content-Type", "application/xml"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ],
    )
    return [body]


def _close(body: Iterable[bytes]) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()


def _address(host: str) -> str:
    """The address to bind for ``host``; ValueError unless it is an IP address (a name
    could resolve to anything, and what the endpoint is reachable from must be plain)."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(
            f"the emulator serves on an IP address (127.0.0.1, 10.0.0.5, ::1); {host!r} is not"
        ) from None
