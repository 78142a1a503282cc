"""The emulated cloud as an AWS endpoint on loopback, for ordinary AWS tools to inspect.

``migrate sandbox serve`` runs :func:`serve` on the environment's emulator.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from phasegate.engines.sandbox.emulator import Emulator

__all__ = ["serve"]


def serve(
    emulator: Emulator,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ready: Callable[[str], None] | None = None,
    stop: threading.Event,
) -> None:
    """Serve the emulator's state as an AWS endpoint on loopback until ``stop`` is set.

    Port 0 picks a free port; ``ready`` gets the endpoint URL once the server listens.
    Starts the emulator if it is not running (and stops it again on the way out).
    """
    address = _loopback(host)
    from moto.server import ThreadedMotoServer

    class _Server(ThreadedMotoServer):
        # ThreadedMotoServer.start() waits forever if binding fails in its thread.
        error: BaseException | None = None

        def _server_entry(self) -> None:
            try:
                super()._server_entry()
            except BaseException as exc:
                self.error = exc
                self._server_ready_event.set()

    started_here = not emulator.running
    emulator.start()
    server = _Server(ip_address=address, port=port, verbose=False)
    try:
        server.start()
        if server.error is not None:
            # werkzeug reports a port in use by calling sys.exit(1).
            why = "port in use" if isinstance(server.error, SystemExit) else server.error
            raise OSError(f"cannot serve the emulator on {address}:{port}: {why}")
        bound_host, bound_port = server.get_host_and_port()
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        if ready is not None:
            ready(f"http://{shown}:{bound_port}")
        stop.wait()
    finally:
        server.stop()
        if started_here:
            emulator.stop()


def _loopback(host: str) -> str:
    """The address to bind for ``host``; ValueError unless it is a loopback address."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"the emulator serves on loopback only; {host!r} is not") from None
    if not address.is_loopback:
        raise ValueError(f"the emulator serves on loopback only; {host!r} is not")
    return str(address)
