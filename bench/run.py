"""Benchmarks of the `migrate` CLI on the sandbox engine (stdlib only).

    python bench/run.py [--repeat N] [--write]

Every measurement runs the real `migrate` in a subprocess, in a fresh temporary copy of
the project (migration.yaml, Pulumi.yaml, phases/, stacks/, policies/):

1. `migrate --help` wall time                       (median of N, default 10)
2. cold `migrate plan`: a fresh copy per run         (median of N, default 5)
3. no-op `migrate apply --yes` after a full apply, the cutover stepped to its end (median of N)
4. a full `migrate apply --yes` in a fresh copy: wall time and peak RSS of the child
5. rollbacks: a cutover step whose alarm fires, a compute change whose GPU check fails
   (from the failed check to the rollback checked, as the apply report gives it)

It prints a markdown table; --write also appends it, with the machine it ran on, to
bench/RESULTS.md. Benchmarks report, they do not gate: the exit code is always 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
PROJECT_FILES = ("migration.yaml", "Pulumi.yaml", "phases", "stacks", "policies")

# Targets on the 2-core reference machines.
TARGET_HELP_S = 0.4
TARGET_PLAN_S = 4.0
TARGET_NOOP_S = 3.0
TARGET_RSS_MB = 500.0
TARGET_ROLLBACK_S = 5.0

# Runs one command as its only child and reports that child's wall time and peak RSS.
# A separate process, so RUSAGE_CHILDREN holds nothing but this one child (and whatever
# it waited for itself, e.g. a `git rev-parse`).
_RSS_WRAPPER = r"""
import json, resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL,
                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": proc.returncode, "wall": wall, "maxrss_kb": usage.ru_maxrss,
                  "stderr": proc.stderr.decode(errors="replace")[-2000:]}))
"""


# -- helpers ---------------------------------------------------------------------------


def find_migrate(explicit: str | None) -> str:
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "migrate"  # not resolved: venv bin/ symlinks
    if beside.exists():
        return str(beside)
    found = shutil.which("migrate")
    if found:
        return found
    sys.exit("bench: cannot find `migrate` next to this python or on PATH (use --migrate)")


def fresh_copy(parent: Path, name: str) -> Path:
    target = parent / name
    target.mkdir()
    for entry in PROJECT_FILES:
        source = ROOT / entry
        if source.is_dir():
            shutil.copytree(source, target / entry, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / entry)
    return target


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PHASEGATE_DEBUG", None)
    env["NO_COLOR"] = "1"
    return env


@dataclass
class Run:
    seconds: float
    rc: int
    stderr: str = ""


def timed(argv: list[str], cwd: Path) -> Run:
    start = time.perf_counter()
    proc = subprocess.run(
        argv,
        cwd=cwd,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    seconds = time.perf_counter() - start
    return Run(seconds, proc.returncode, proc.stderr.decode(errors="replace")[-2000:])


@dataclass
class Measure:
    name: str
    unit: str
    target: float | None
    values: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    def fail(self, what: str, run: Run) -> None:
        last = run.stderr.strip().splitlines()[-1:] or ["(no stderr)"]
        self.errors.append(f"{what}: exit {run.rc}: {last[0]}")

    def row(self) -> list[str]:
        label = f"{self.name} (n={len(self.values)})"
        target = f"< {fmt(self.target, self.unit)}" if self.target is not None else "—"
        if not self.values:
            return [label, "error", "—", "—", target, "error"]
        median = statistics.median(self.values)
        if self.target is None:
            met = "—"
        else:
            met = "yes" if median < self.target else f"**no** (+{median / self.target - 1:.0%})"
        if self.errors:
            met += f" ({len(self.errors)} failed run(s))"
        return [
            label,
            fmt(median, self.unit),
            fmt(min(self.values), self.unit),
            fmt(max(self.values), self.unit),
            target,
            met,
        ]


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "s":
        return f"{value:.2f} s" if value >= 1 else f"{value * 1000:.0f} ms"
    return f"{value:.0f} {unit}"


def table(measures: list[Measure]) -> str:
    header = ["measure", "median", "min", "max", "target", "met?"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(m.row()) + " |" for m in measures]
    return "\n".join(lines)


# -- the benchmarks --------------------------------------------------------------------


def bench_help(migrate: str, work: Path, n: int) -> Measure:
    m = Measure("`migrate --help`", "s", TARGET_HELP_S)
    cwd = fresh_copy(work, "help")
    for _ in range(n):
        run = timed([migrate, "--help"], cwd)
        if run.rc == 0:
            m.add(run.seconds)
        else:
            m.fail("--help", run)
    return m


def bench_cold_plan(migrate: str, work: Path, n: int) -> Measure:
    m = Measure("cold `migrate plan` (4 phases, fresh copy)", "s", TARGET_PLAN_S)
    for i in range(n):
        cwd = fresh_copy(work, f"plan-{i}")
        run = timed([migrate, "plan"], cwd)
        if run.rc == 0:
            m.add(run.seconds)
        else:
            m.fail("plan", run)
    return m


def bench_full_apply(migrate: str, work: Path, n: int) -> tuple[Measure, Measure, Path | None]:
    """Full applies in fresh copies: wall time and peak RSS. Returns a fully applied copy."""
    wall = Measure("full `migrate apply --yes` (fresh copy)", "s", None)
    rss = Measure("peak RSS of a full `migrate apply --yes`", "MB", TARGET_RSS_MB)
    applied: Path | None = None
    for i in range(n):
        cwd = fresh_copy(work, f"apply-{i}")
        proc = subprocess.run(
            [sys.executable, "-c", _RSS_WRAPPER, migrate, "apply", "--yes"],
            cwd=cwd,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        try:
            report = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            run = Run(0.0, proc.returncode, proc.stderr)
            wall.fail("apply (wrapper)", run)
            rss.fail("apply (wrapper)", run)
            continue
        if report["rc"] != 0:
            run = Run(report["wall"], report["rc"], report["stderr"])
            wall.fail("apply", run)
            rss.fail("apply", run)
            continue
        wall.add(report["wall"])
        rss.add(report["maxrss_kb"] / 1024)  # Linux reports KiB
        applied = applied or cwd
    return wall, rss, applied


def _json_run(argv: list[str], cwd: Path) -> tuple[int, Any]:
    proc = subprocess.run(
        argv, cwd=cwd, env=child_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        return proc.returncode, {"stderr": proc.stderr[-2000:]}


def bench_rollbacks(migrate: str, applied: Path | None, work: Path, n: int) -> list[Measure]:
    """From a failed check to the rollback checked, as the apply report says: a cutover
    step whose alarm fires, and a compute change whose GPU check cannot pass."""
    cutover = Measure("rollback of a cutover step (alarm fired)", "s", TARGET_ROLLBACK_S)
    compute = Measure("rollback of compute (GPU check failed)", "s", TARGET_ROLLBACK_S)
    if applied is None:
        for m in (cutover, compute):
            m.errors.append("no applied copy to run in (the full apply failed)")
        return [cutover, compute]
    for i in range(n):
        for m, phase in ((cutover, "cutover"), (compute, "compute")):
            cwd = work / f"rollback-{phase}-{i}"
            shutil.copytree(applied, cwd, symlinks=True)
            if phase == "cutover":
                timed([migrate, "sandbox", "alarm", "sandbox-app-platform-5xx", "ALARM"], cwd)
            else:
                config = cwd / "stacks" / "Pulumi.sandbox-compute.yaml"
                text = config.read_text().replace("    desired_size: 1\n", "    desired_size: 0\n")
                config.write_text(text)
            rc, report = _json_run([migrate, "apply", "--yes", "--output", "json"], cwd)
            found = [p for p in report.get("phases", []) if p.get("phase") == phase]
            if rc == 3 and found and "rollback_seconds" in found[0]:
                m.add(found[0]["rollback_seconds"])
            else:
                m.fail(f"{phase} rollback", Run(0.0, rc, str(report.get("stderr", report))))
    return [cutover, compute]


def step_through(migrate: str, applied: Path) -> None:
    """Apply until the stepped cutover is at its last step (one step per apply)."""
    for _ in range(10):
        rc, status = _json_run([migrate, "status", "--output", "json"], applied)
        if rc != 0 or status.get("complete"):
            return
        timed([migrate, "apply", "--yes"], applied)


def bench_noop_apply(migrate: str, applied: Path | None, n: int) -> Measure:
    m = Measure("no-op `migrate apply --yes` (after a full apply)", "s", TARGET_NOOP_S)
    if applied is None:
        m.errors.append("no fully applied copy to run in (the full apply failed)")
        return m
    step_through(migrate, applied)
    for _ in range(n):
        run = timed([migrate, "apply", "--yes"], applied)
        if run.rc == 0:
            m.add(run.seconds)
        else:
            m.fail("no-op apply", run)
    return m


# -- the machine -----------------------------------------------------------------------


def _proc_field(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.split(":", 1)[0].strip() == key:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine(migrate: str) -> list[tuple[str, str]]:
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem = _proc_field("/proc/meminfo", "MemTotal")
    if mem and mem.endswith("kB"):
        mem = f"{int(mem.split()[0]) / 1024 / 1024:.1f} GiB"
    cpu = _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown"
    # The interpreter `migrate` runs on (its shebang), which may not be this one.
    python = platform.python_version()
    try:
        first = Path(migrate).read_text(errors="replace").splitlines()[0]
        if first.startswith("#!"):
            out = subprocess.run(
                [*first[2:].split(), "-c", "import platform; print(platform.python_version())"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            python = out.stdout.strip() or python
    except (OSError, IndexError, subprocess.SubprocessError):
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else ()
    commit = "unknown"
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src", "phases", "stacks"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
        if head:
            commit = head + (
                " (+ uncommitted changes in src/, phases/ or stacks/)" if dirty else ""
            )
    except (OSError, subprocess.SubprocessError):
        pass
    return [
        ("date (UTC)", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")),
        ("nproc", str(nproc)),
        ("memory", mem or "unknown"),
        ("CPU", cpu),
        ("python", python),
        ("os", f"{platform.system()} {platform.release()}"),
        # Other work on the machine skews wall times: record how busy it was.
        ("load average before the runs (1/5/15 min)", " / ".join(f"{x:.2f}" for x in load)),
        ("commit", commit),
    ]


# -- main ------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeat", type=int, metavar="N", help="runs per timing (default: --help 10, others 5)"
    )
    parser.add_argument(
        "--apply-repeat", type=int, default=1, metavar="N", help="full applies (default 1)"
    )
    parser.add_argument("--write", action="store_true", help="append the results to RESULTS.md")
    parser.add_argument("--migrate", help="the migrate executable (default: next to python)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies")
    args = parser.parse_args()

    migrate = find_migrate(args.migrate)
    n_help = args.repeat or 10
    n_runs = args.repeat or 5
    info = machine(migrate)  # before the runs: the date and load average they start at
    work = Path(tempfile.mkdtemp(prefix="phasegate-bench-"))
    print(f"bench: {migrate}; copies under {work}", file=sys.stderr)
    measures: list[Measure] = []
    try:
        print("bench: --help ...", file=sys.stderr)
        measures.append(bench_help(migrate, work, n_help))
        print("bench: cold plan ...", file=sys.stderr)
        measures.append(bench_cold_plan(migrate, work, n_runs))
        print("bench: full apply ...", file=sys.stderr)
        wall, rss, applied = bench_full_apply(migrate, work, max(1, args.apply_repeat))
        print("bench: rollbacks ...", file=sys.stderr)
        rollbacks = bench_rollbacks(migrate, applied, work, max(1, n_runs // 2 + 1))
        print("bench: no-op apply ...", file=sys.stderr)
        noop = bench_noop_apply(migrate, applied, n_runs)
        measures += [noop, rss, wall, *rollbacks]
    except Exception as exc:  # report what we have; benchmarks never gate
        print(f"bench: stopped early: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        if args.keep:
            print(f"bench: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    text = table(measures)
    errors = [f"- {m.name}: {e}" for m in measures for e in m.errors]
    print(text)
    for line in errors:
        print(line)

    if args.write:
        created = not RESULTS.exists()
        with RESULTS.open("a", encoding="utf-8") as out:
            if created:
                out.write(
                    "# Benchmark results\n\n"
                    "Appended by `python bench/run.py --write`; newest last. "
                    "See bench/README.md for what each measure is.\n"
                )
            out.write(f"\n## {info[0][1]} UTC\n\n")
            out.write("\n".join(f"- {k}: {v}" for k, v in info[1:]) + "\n\n")
            out.write(text + "\n")
            if errors:
                out.write("\nFailed runs:\n\n" + "\n".join(errors) + "\n")
        print(f"bench: appended to {RESULTS.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        main()
    except SystemExit as exc:  # e.g. migrate not found: say so, still exit 0
        if exc.code not in (None, 0):
            print(
                exc.code if isinstance(exc.code, str) else f"bench: exit {exc.code}",
                file=sys.stderr,
            )
    sys.exit(0)
