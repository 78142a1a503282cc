"""The legacy -> lake copy, side by side: phasegate's copy against `aws s3 sync`,
`rclone copy` and `s5cmd` (cp and sync), on one emulated endpoint.

    .venv/bin/python bench/copy_bench.py [--tools LIST] [--concurrency N] [--write]

It serves a fresh copy of the shipped project's sandbox (`migrate sandbox serve --port 0`),
and against that one endpoint, tool by tool: makes an empty target bucket, copies the
legacy bucket into it (timed, wall), checks the target (keys, sizes, md5 of a sample of
bodies), re-runs the copy with nothing changed (timed), checks again, and deletes the
target. Then it measures the emulator alone: requests/s of HeadObject, GetObject and
CopyObject from boto3 threads, the ceiling no tool can pass. Run bench/copy_tools.sh
first to install the other tools. (Not named copy.py: run as a script, that name would shadow the
standard library's `copy` module for everything the script imports.)

It prints a markdown table; --write also appends it, with the machine it ran on, to
bench/RESULTS.md. Benchmarks report, they do not gate: the exit code is 0 unless the
arguments are wrong (2) or it is stopped (130 Ctrl-C, 143 SIGTERM).
"""

from __future__ import annotations

import argparse
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import copy_s3
from copy_contenders import TOOLS, Outcome, Tool, contenders
from copy_phasegate import Location, PhasegateUnavailable
from run import RESULTS, ROOT, child_env, find_migrate, fresh_copy, machine

LEGACY_BUCKET = "phasegate-legacy-sandbox"
MIB = 1024 * 1024
SERVE_TIMEOUT_S = 180.0  # a first serve builds the legacy estate (moto's EC2 import alone ~1 s)
STOP_TIMEOUT_S = 120.0  # the write-back of the cloud when the served sandbox stops


# -- the served sandbox ----------------------------------------------------------------


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def cpu_seconds(self) -> float | None:
        """User + system CPU the emulator process has used so far (Linux /proc)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None


def serve(migrate: str, project: Path, log: Path) -> Served:
    """Start `migrate sandbox serve --port 0` in ``project``; return once it printed its URL."""
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [migrate, "sandbox", "serve", "--port", "0"],
            cwd=project,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,  # a Ctrl-C at the terminal reaches us, not the server
        )
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    deadline = time.monotonic() + SERVE_TIMEOUT_S
    buffer = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer:
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                stop(Served(proc, "", log))
                why = "timed out" if left <= 0 else f"exited {proc.returncode}"
                tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no stderr)"]
                raise RuntimeError(f"`migrate sandbox serve` {why} before its URL: {tail[0]}")
            if sel.select(min(left, 1.0)):
                buffer += proc.stdout.read() or b""
    url = buffer.decode().splitlines()[0].strip()
    if not url.startswith("http"):
        stop(Served(proc, "", log))
        raise RuntimeError(f"`migrate sandbox serve` printed {url!r}, not a URL")
    return Served(proc, url, log)


def stop(served: Served) -> float:
    """SIGTERM, then wait (bounded) while it writes the cloud back; returns the seconds."""
    start = time.perf_counter()
    if served.proc.poll() is None:
        served.proc.send_signal(signal.SIGTERM)
        try:
            served.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            served.proc.kill()
            served.proc.wait(30)
    if served.proc.stdout is not None:
        served.proc.stdout.close()
    return time.perf_counter() - start


# -- one tool's race -------------------------------------------------------------------


@dataclass
class Row:
    tool: Tool
    full: Outcome | None = None
    rerun: Outcome | None = None
    checks: list[copy_s3.Verdict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def race(
    tool: Tool,
    served: Served,
    source: Location,
    prefix: str,
    want: copy_s3.Listing,
    sample: int,
    keep: bool,
) -> Row:
    row = Row(tool)
    if tool.missing:
        row.notes.append(tool.missing + "; run bench/copy_tools.sh")
        return row
    s3 = copy_s3.client(served.url)
    target = Location(f"bench-{tool.name}-{uuid.uuid4().hex[:8]}", prefix)
    try:
        copy_s3.make_bucket(s3, target.bucket)
    except Exception as exc:  # the emulator refused: this row says so, the next tool runs
        row.notes.append(f"could not make the target bucket: {type(exc).__name__}: {exc}")
        return row
    try:
        for attempt in ("full", "rerun"):
            before = served.cpu_seconds()
            try:
                outcome = tool.run(served.url, source, target)
            except PhasegateUnavailable as exc:
                row.notes.append(str(exc))
                return row
            after = served.cpu_seconds()
            if before is not None and after is not None:
                outcome.server_cpu = after - before
            setattr(row, attempt, outcome)
            if outcome.error:
                row.notes.append(f"{attempt}: {outcome.error}")
                return row
            row.checks.append(copy_s3.verify(s3, source, target, sample, want))
    except Exception as exc:  # a check that could not read the target; the next tool runs
        row.notes.append(f"could not check the target: {type(exc).__name__}: {exc}")
    finally:
        if keep and row.full is not None:
            row.notes.append(f"target kept: s3://{target.bucket}/")
        else:
            try:
                copy_s3.delete_bucket(s3, target.bucket)
            except Exception as exc:
                row.notes.append(f"target not deleted: {type(exc).__name__}: {exc}")
    return row


# -- the report ------------------------------------------------------------------------


def _rate(count: float, outcome: Outcome | None, unit: float = 1.0) -> str:
    if outcome is None or outcome.error or not outcome.seconds:
        return "—"
    rate = count / unit / outcome.seconds
    return f"{rate:,.1f}" if rate >= 10 else f"{rate:.3f}"


def _secs(outcome: Outcome | None) -> str:
    if outcome is None:
        return "—"
    return f"{outcome.seconds:.2f}" + (" (failed)" if outcome.error else "")


def _cpu(outcome: Outcome | None) -> str:
    if outcome is None or outcome.server_cpu is None or not outcome.seconds:
        return "?"
    return f"{outcome.server_cpu / outcome.seconds:.0%}"


def table(rows: list[Row], want: copy_s3.Listing, best_copy_rate: float | None) -> str:
    header = [
        "tool",
        "full copy s",
        "objects/s",
        "MB/s",
        "re-run s",
        "re-run objects/s",
        "parity proof s",
        "target matches?",
        "notes",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        proof = "—"
        if row.full and row.full.proof_seconds is not None:
            proof = f"{row.full.proof_seconds:.2f} (in full copy s)"
        elif row.checks:
            proof = f"none (harness check: {row.checks[0].seconds:.2f})"
        checked = " / ".join(v.summary() for v in row.checks) or "—"
        notes = list(row.notes)
        said = [(w, o.copied) for w, o in (("full", row.full), ("re-run", row.rerun)) if o]
        if any(n is not None for _, n in said):
            notes.append("says it copied " + ", ".join(f"{n} ({w})" for w, n in said))
        if row.full and not row.full.error:
            notes.append(f"emulator CPU {_cpu(row.full)} full, {_cpu(row.rerun)} re-run")
            if best_copy_rate:
                rate = want.count / row.full.seconds
                notes.append(f"{rate / best_copy_rate:.0%} of the CopyObject ceiling")
        cells = [
            f"{row.tool.name} ({row.tool.version})",
            _secs(row.full),
            _rate(want.count, row.full),
            _rate(want.bytes, row.full, MIB),
            _secs(row.rerun),
            _rate(want.count, row.rerun),
            proof,
            checked,
            "; ".join(notes) or "—",
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def report(
    rows: list[Row],
    want: copy_s3.Listing,
    ceilings: list[copy_s3.Ceiling],
    source: Location,
    concurrency: int,
    stop_seconds: float | None,
) -> str:
    copies = [c.capacity for c in ceilings if c.operation == "CopyObject"]
    out = [
        f"Estate: {want.count:,} objects, {want.bytes / MIB:,.2f} MB (MiB) in {source.url()} "
        f"(largest {want.largest / MIB:,.2f} MB). Concurrency setting: {concurrency}. "
        "Times are wall seconds from start to exit; a re-run changes nothing.",
        "",
        table(rows, want, max(copies) if copies else None),
        "",
        "Settings:",
        "",
        *[f"- {r.tool.name} ({r.tool.version}): {r.tool.settings}" for r in rows],
        "",
        "Emulator CPU is the served sandbox's CPU time over the run's wall time: it is one "
        "Python process, so near 100 % of one core the emulator, not the tool, is the limit. "
        "The CopyObject ceiling is the most CopyObject requests per second the emulator "
        "answers at a full core (below); every copied object costs at least one, so no "
        "tool's full copy can pass it (a re-run that lists both sides needs few requests).",
        "",
        "The emulator alone (boto3 threads in this process, which share the cores with it):",
        "",
        *[f"- {c.line()}" for c in ceilings],
    ]
    if stop_seconds is not None:
        out += ["", f"Stopping the served sandbox (write-back) took {stop_seconds:.1f} s."]
    return "\n".join(out)


# -- main ------------------------------------------------------------------------------


def say(text: str) -> None:
    print(f"copy_bench: {text}", file=sys.stderr)


def _terminated(*_: object) -> None:
    raise SystemExit(143)  # unwinds through main's finally, which stops the served sandbox


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be 1 or more")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: must be 0 or more")
    return value


def _tool_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    wrong = [n for n in names if n not in TOOLS]
    if wrong or not names:
        raise argparse.ArgumentTypeError(
            f"unknown tool {', '.join(wrong) or '(none)'}; allowed: {', '.join(TOOLS)}"
        )
    return names


def _prefix(text: str) -> str:
    return text if not text or text.endswith("/") else text + "/"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tools",
        type=_tool_list,
        default=list(TOOLS),
        help=f"comma-separated, in run order (default: {','.join(TOOLS)})",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive,
        default=32,
        metavar="N",
        help="parallel requests per tool: aws max_concurrent_requests, rclone "
        "--transfers (and 2N --checkers), s5cmd --numworkers (default 32)",
    )
    parser.add_argument("--source-prefix", type=_prefix, default="", metavar="PREFIX")
    parser.add_argument("--target-prefix", type=_prefix, default="", metavar="PREFIX")
    parser.add_argument(
        "--sample",
        type=_count,
        default=20,
        metavar="N",
        help="bodies whose md5 is compared, plus the two largest (default 20)",
    )
    parser.add_argument(
        "--timeout", type=_positive, default=1800, metavar="S", help="per tool run (default 1800)"
    )
    parser.add_argument(
        "--ceiling-threads",
        default="1,16",
        metavar="LIST",
        help="thread counts of the emulator-alone loops (default 1,16)",
    )
    parser.add_argument("--ceiling-seconds", type=_positive, default=5, metavar="S")
    parser.add_argument("--write", action="store_true", help="append the results to RESULTS.md")
    parser.add_argument("--migrate", help="the migrate executable (default: next to python)")
    parser.add_argument("--keep", action="store_true", help="keep the project copy and targets")
    args = parser.parse_args()
    try:
        threads = [_positive(t) for t in args.ceiling_threads.split(",")]
    except (ValueError, argparse.ArgumentTypeError):
        parser.error(f"--ceiling-threads: {args.ceiling_threads!r}: want e.g. 1,16")
    try:
        import boto3  # noqa: F401
    except ImportError:
        sys.exit("copy_bench: needs boto3: run it with the project's venv python")

    signal.signal(signal.SIGTERM, _terminated)
    migrate = find_migrate(args.migrate)
    info = machine(migrate)  # before the runs: the date and load average they start at
    work = Path(tempfile.mkdtemp(prefix="phasegate-copy-bench-"))
    source = Location(LEGACY_BUCKET, args.source_prefix)
    text = ""
    served: Served | None = None
    stop_seconds: float | None = None
    try:
        say(f"serving a fresh copy of the project under {work} ...")
        served = serve(migrate, fresh_copy(work, "project"), work / "serve.log")
        say(f"endpoint {served.url}")
        want = copy_s3.listing(copy_s3.client(served.url), source)
        if not want.count:
            raise RuntimeError(f"{source.url()} is empty: nothing to copy")
        rows = []
        for tool in contenders(args.tools, args.concurrency, work, args.timeout):
            say(f"{tool.name} ...")
            rows.append(
                race(tool, served, source, args.target_prefix, want, args.sample, args.keep)
            )
        say("the emulator alone ...")
        bucket = f"bench-ceiling-{uuid.uuid4().hex[:8]}"
        ceilings = copy_s3.ceiling(
            served.url, bucket, threads, args.ceiling_seconds, 200_000, served.cpu_seconds
        )
        say("stopping the served sandbox ...")
        stop_seconds = stop(served)
        text = report(rows, want, ceilings, source, args.concurrency, stop_seconds)
    except Exception as exc:  # report what happened; benchmarks never gate
        say(f"stopped early: {type(exc).__name__}: {exc}")
    finally:
        if served is not None and served.proc.poll() is None:
            stop(served)
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if not text:
        return 0
    facts = "\n".join(f"- {k}: {v}" for k, v in info[1:])
    print(f"{facts}\n\n{text}")
    if args.write:
        with RESULTS.open("a", encoding="utf-8") as out:
            out.write(f"\n## {info[0][1]} UTC: legacy -> lake copy (bench/copy_bench.py)\n\n")
            out.write(f"{facts}\n\n{text}\n")
        say(f"appended to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    try:
        main()
    except SystemExit as exc:  # e.g. migrate not found: say so; bad arguments keep exit 2
        if exc.code in (2, 143):  # bad arguments; stopped by SIGTERM
            raise
        if exc.code not in (None, 0):
            print(
                exc.code if isinstance(exc.code, str) else f"copy_bench: exit {exc.code}",
                file=sys.stderr,
            )
    except KeyboardInterrupt:
        print("copy_bench: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(0)
