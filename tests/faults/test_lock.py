"""One run per environment: a second one is blocked (exit 5) naming the holder, and the
lock of a killed holder is taken over with a warning."""

from __future__ import annotations

import signal
import socket
from pathlib import Path
from typing import Any


def test_a_second_run_is_blocked_naming_the_holder_until_it_is_killed(
    cli: Any, fresh_project: Path
) -> None:
    # `sandbox serve` holds the environment lock for as long as it serves.
    with cli.serve(fresh_project) as served:
        blocked = cli.run(fresh_project, "apply", "--yes")
        assert blocked.returncode == 5, blocked.stderr
        assert "Traceback" not in blocked.stderr
        lines = blocked.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), blocked.stderr
        assert "environment 'sandbox' is locked" in lines[0]
        assert f"pid {served.pid} on {socket.gethostname()}" in lines[0]
        assert "migrate sandbox serve" in lines[0]
        assert not (fresh_project / "state").exists(), "a blocked apply writes no state"

        # A holder killed outright never releases its lock file.
        served.stop(signal.SIGKILL)

    after = cli.run(fresh_project, "plan")
    assert after.returncode == 0, after.stderr
    assert "Plan (sandbox):" in after.stdout
    warning = [line for line in after.stderr.splitlines() if "took over the lock" in line]
    assert len(warning) == 1, after.stderr
    assert warning[0].startswith("warning: ")
    assert f"pid {served.pid}" in warning[0] and "no longer running" in warning[0]
