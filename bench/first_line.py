"""How long `migrate` keeps a person waiting for its first line (stdlib only).

    python bench/first_line.py [--repeat N] [--write]

Times, from the start of the child process to the first line on its stderr, each of:
a cold `migrate plan` and a first `migrate apply --yes` in a fresh copy of the project
(median of N, default 5), with stderr a pipe (the plain lines of CI) and with stderr a
pseudo-terminal (the live view). The run's first line is its headline ("Applying
sandbox: pilot → …"); before it, only the project is loaded and the state files read:
no engine, no Pulumi SDK, no emulator. Target: under a second.

It prints a markdown table; --write appends it, dated and with the machine it ran on,
to bench/RESULTS.md. It reports, it does not gate: the exit code is always 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import pty
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import RESULTS, Measure, find_migrate, fresh_copy, machine, table

TARGET_FIRST_LINE_S = 1.0


def first_line(argv: list[str], cwd: Path, *, terminal: bool) -> tuple[float | None, str]:
    """Seconds to the first stderr line and that line (None if none came); the child
    runs to its end either way, so the next run starts on a quiet machine."""
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "PHASEGATE_DEBUG")}
    env["TERM"] = "xterm-256color" if terminal else "dumb"
    leader = follower = -1
    if terminal:
        leader, follower = pty.openpty()
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=follower if terminal else subprocess.PIPE,
    )
    if terminal:
        os.close(follower)
        fd = leader
    else:
        assert proc.stderr is not None
        fd = proc.stderr.fileno()
    seen, at = b"", None
    while True:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # a pty's leader reads EIO once the child is gone
            break
        if not chunk:
            break
        seen += chunk
        if at is None and b"\n" in seen:
            at = time.perf_counter() - start
    proc.wait()
    if terminal:
        os.close(leader)
    elif proc.stderr is not None:
        proc.stderr.close()
    line = seen.split(b"\n", 1)[0].decode(errors="replace")
    return at, line.replace("\x1b", "^[")[:100]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="append to bench/RESULTS.md")
    parser.add_argument("--migrate", help="the migrate executable (default: beside python)")
    args = parser.parse_args()
    migrate = find_migrate(args.migrate)
    measures: list[Measure] = []
    lines: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="phasegate-first-line-") as tmp:
        env_home = Path(tmp) / "config"
        os.environ.setdefault("XDG_CONFIG_HOME", str(env_home))  # the sandbox key: not yours
        for command in (["plan"], ["apply", "--yes"]):
            for terminal in (False, True):
                where = "a terminal" if terminal else "a pipe"
                measure = Measure(
                    f"first stderr line of `migrate {' '.join(command)}`, stderr {where} "
                    "(fresh copy)",
                    "s",
                    TARGET_FIRST_LINE_S,
                )
                for i in range(args.repeat):
                    name = f"{command[0]}-{'tty' if terminal else 'pipe'}-{i}"
                    project = fresh_copy(Path(tmp), name)
                    seconds, line = first_line([migrate, *command], project, terminal=terminal)
                    if seconds is None:
                        measure.errors.append(f"{name}: no line on stderr")
                    else:
                        measure.add(seconds)
                        lines.add(line)
                measures.append(measure)
                print(f"  {measure.name}: done", file=sys.stderr)
    text = table(measures)
    text += "\nFirst lines seen: " + "; ".join(f"`{line}`" for line in sorted(lines)) + "\n"
    print(text)
    if args.write:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        facts = "\n".join(f"- {k}: {v}" for k, v in machine(migrate))
        with RESULTS.open("a") as out:
            out.write(f"\n## {now} — first line on stderr\n\n{facts}\n\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
