"""The tests' network guard: a process that installs it may only connect to loopback.

``install(log)`` patches :mod:`socket` so that connecting anywhere but loopback, or
resolving a name that is not this machine's, raises :class:`RealNetworkBlocked` and
appends a line to ``log``: the tests fail on any line there, even when the code under
test swallowed the error. ``tests/conftest.py`` installs it in the test process; the
``sitecustomize.py`` next to this file installs it in every Python process started with
this directory on its ``PYTHONPATH`` (every ``migrate`` a test runs).

A test that builds its own network out of network namespaces (``ip netns``), where no
packet can leave the machine, names the addresses it gave them in ``PHASEGATE_TEST_NET_ALLOW``
(comma-separated IP addresses) for the processes it runs there: those may connect to them.

Kept to the standard library: every such process imports it on start-up.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

LOG_VARIABLE = "PHASEGATE_TEST_NETLOG"
"""The environment variable that names the log a subprocess writes its attempts to."""
ALLOW_VARIABLE = "PHASEGATE_TEST_NET_ALLOW"
"""Addresses inside the test's own network namespaces that a process may connect to."""


class RealNetworkBlocked(RuntimeError):
    """A test tried to leave the machine."""


def _text(host: Any) -> str:
    return host.decode() if isinstance(host, bytes) else str(host)


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])  # without an IPv6 zone
    except ValueError:
        return None


def is_loopback(address: Any) -> bool:
    """Whether connecting to the socket address ``address`` stays on this machine."""
    if isinstance(address, str | bytes):  # an AF_UNIX path
        return True
    if not isinstance(address, tuple) or not address:
        return False
    host = _text(address[0])
    if host == "localhost":
        return True
    ip = _ip(host)  # None for a host name: resolving it is already going out
    return ip is not None and ip.is_loopback


def is_local_name(host: Any) -> bool:
    """Whether resolving ``host`` stays on this machine (an IP literal is checked on connect)."""
    if host is None:
        return True
    host = _text(host).rstrip(".").lower()
    local = ("", "localhost", socket.gethostname().lower())
    return host in local or host.endswith(".localhost") or _ip(host) is not None


def install(log: str | os.PathLike[str] | None) -> Callable[[], None]:
    """Guard :mod:`socket` in this process, logging refusals to ``log``; returns the undo."""

    def refuse(attempt: str) -> None:
        program = os.path.basename(getattr(sys, "argv", [""])[0]) or "python"
        message = f"{program} (pid {os.getpid()}) tried to {attempt}"
        if log is not None:
            with open(log, "a", encoding="utf-8") as handle:
                handle.write(message + "\n")
        raise RealNetworkBlocked(f"phasegate test guard: no network outside loopback: {message}")

    allowed = {
        ip
        for ip in (_ip(a.strip()) for a in os.environ.get(ALLOW_VARIABLE, "").split(","))
        if ip is not None
    }

    def check(address: Any) -> None:
        if isinstance(address, tuple) and address and _ip(_text(address[0])) in allowed:
            return
        if not is_loopback(address):
            refuse(f"connect to {address!r}")

    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_create_connection = socket.create_connection
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        check(address)
        return real_create_connection(address, *args, **kwargs)

    # Where DNS works a real endpoint is refused on connect; where it does not, the
    # attempt would fail quietly at resolution: refuse resolving remote names too.
    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_local_name(host):
            refuse(f"resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    patches = [
        (socket.socket, "connect", connect),
        (socket.socket, "connect_ex", connect_ex),
        (socket, "create_connection", create_connection),
        (socket, "getaddrinfo", getaddrinfo),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, patched in patches:
        setattr(owner, name, patched)

    def uninstall() -> None:
        for owner, name, original in originals:
            setattr(owner, name, original)

    return uninstall
