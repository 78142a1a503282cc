"""Where the time of `migrate plan` / `migrate apply --yes` goes (stdlib only).

    python bench/profile.py [plan|noop|apply ...]     (default: plan noop)

For each scenario, in a fresh temporary copy of the project:

* plan:  cold `migrate plan` (nothing applied)
* noop:  `migrate apply --yes` after one full apply (the full apply is not profiled)
* apply: a full `migrate apply --yes`

it runs the command once in a child of the `migrate` interpreter under ``-X importtime``
with wall-clock timers wrapped around the phasegate functions that matter (the code is
not changed, only wrapped in that child), and prints: timers (calls, total seconds, peak
RSS seen when the call returned), import self-time per top-level package, and the
slowest imports with everything under them. Timers nest: a parent includes its children.
The SDK hands registrations to the host on worker threads, several at a time: their wall
times overlap (and include waits for the host's lock), so read their CPU column. Import
times from `-X importtime` are wall times too, inflated where another thread held the GIL.
"""

from __future__ import annotations

import collections
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # bench/run.py: the project copy and finding migrate

SCENARIOS = ("plan", "noop", "apply")

# (module, attribute path, label). Labels are shown indented by their nesting.
TIMERS = [
    ("phasegate.project", "Project.load", "Project.load (migration.yaml, stack configs)"),
    ("phasegate.machine", "RunContext.detect", "RunContext.detect (git commit, CI vars)"),
    ("phasegate.environment", "Environment.read_all", "read state files"),
    ("phasegate.planning", "Planner.plan_phase", "plan one phase"),
    ("phasegate.project", "Project.target", "  Project.target (program snapshot + config)"),
    ("phasegate.planning", "Planner.upstream_outputs", "  upstream outputs"),
    ("phasegate.engines.sandbox", "run_program", "  run_program"),
    ("phasegate.engines.sandbox.runtime", "_sdk_setup", "    SDK import + mock setup"),
    ("runpy", "run_path", "    the phase program (incl. lazy pulumi_aws imports)"),
    (
        "phasegate.engines.sandbox.deployment",
        "_Deployment.register",
        "      host: one registration (plan: diff; up: + act)",
    ),
    ("phasegate.engines.sandbox.runtime", "_purge_modules", "    _purge_modules"),
    ("phasegate.engines.sandbox", "SandboxEngine.up", "apply one phase (engine up)"),
    (
        "phasegate.engines.sandbox.deployment",
        "_Deployment._act",
        "  act on one resource (incl. commit)",
    ),
    ("phasegate.engines.sandbox.store", "SandboxStore.cloud", "  start + load the emulator"),
    ("phasegate.engines.sandbox.emulator", "Emulator.start", "    Emulator.start (moto import)"),
    ("phasegate.engines.sandbox.emulator", "Emulator.load", "    Emulator.load"),
    ("phasegate.engines.sandbox.legacy", "create_estate", "    create the legacy estate"),
    ("phasegate.engines.sandbox.store", "SandboxStore.commit", "  SandboxStore.commit"),
    ("phasegate.engines.sandbox.emulator", "Emulator.dump", "    Emulator.dump (pickle moto)"),
    ("phasegate.state", "StateStore.write", "write a state file"),
    ("phasegate.render", "render_reports", "render the report"),
    ("phasegate.engines.sandbox.store", "SandboxStore.close", "stop the emulator"),
]

# Runs inside the child (the migrate interpreter, cwd = the project copy).
_INNER = r"""
import functools, importlib, inspect, json, resource, sys, time
T0 = time.perf_counter()  # process_time() then counts from the interpreter's start
TIMERS = json.loads(sys.argv[1]); OUT = sys.argv[2]; ARGS = sys.argv[3:]
stats = {}
def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def wrap(label, fn):
    @functools.wraps(fn)
    def timed(*a, **k):
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            return fn(*a, **k)
        finally:
            s = stats.setdefault(label, [0, 0.0, 0.0, 0.0])
            s[0] += 1; s[1] += time.perf_counter() - start; s[2] = max(s[2], rss_mb())
            s[3] += time.thread_time() - cpu
    return timed
t, c = time.perf_counter(), time.thread_time()
import phasegate.cli, phasegate.orchestrator, phasegate.engines.sandbox
label = "import phasegate (cli, orchestrator, engine; eager here)"
stats[label] = [1, time.perf_counter() - t, rss_mb(), time.thread_time() - c]
import phasegate.engines.sandbox.runtime as rt
for module, path, label in TIMERS:
    if path in ("_sdk_setup", "run_program"):
        continue  # done by hand below
    mod = importlib.import_module(module)
    owner_name, _, attr = path.rpartition(".")
    owner = getattr(mod, owner_name) if owner_name else mod
    raw = inspect.getattr_static(owner, attr)
    if isinstance(raw, classmethod):
        setattr(owner, attr, classmethod(wrap(label, raw.__func__)))
    elif isinstance(raw, staticmethod):
        setattr(owner, attr, staticmethod(wrap(label, raw.__func__)))
    else:
        setattr(owner, attr, wrap(label, raw))
# SDK imports + settings: time from run_program's start to the program's start.
sdk_label = [l for m, p, l in TIMERS if p == "_sdk_setup"][0]
import runpy
_timed_run_path = runpy.run_path
_marks = {}
_orig_run_program = rt.run_program
def _run_program(*a, **k):
    _marks["start"] = (time.perf_counter(), time.thread_time())
    return _orig_run_program(*a, **k)
def _run_path(*a, **k):
    s = stats.setdefault(sdk_label, [0, 0.0, 0.0, 0.0])
    start, cpu = _marks.pop("start", (time.perf_counter(), time.thread_time()))
    s[0] += 1; s[1] += time.perf_counter() - start; s[2] = max(s[2], rss_mb())
    s[3] += time.thread_time() - cpu
    return _timed_run_path(*a, **k)
runpy.run_path = _run_path
import phasegate.engines.sandbox as sb
sb.run_program = wrap([l for m, p, l in TIMERS if p == "run_program"][0], _run_program)
sys.argv = ["migrate", *ARGS]
code = 0
t, c = time.perf_counter(), time.thread_time()
try:
    phasegate.cli.main(ARGS)
except SystemExit as exc:
    code = exc.code or 0
cmd = [1, time.perf_counter() - t, rss_mb(), time.thread_time() - c]
stats["the command (after imports above)"] = cmd
whole = [1, time.perf_counter() - T0, rss_mb(), time.process_time()]
stats["whole child from its first line (CPU: all threads)"] = whole
json.dump({"rc": code, "stats": stats}, open(OUT, "w"))
"""

_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def interpreter(migrate: str) -> list[str]:
    first = Path(migrate).read_text(errors="replace").splitlines()[0]
    return first[2:].split() if first.startswith("#!") else [sys.executable]


def profile(python: list[str], cwd: Path, args: list[str], out: Path) -> tuple[dict, list]:
    start = time.perf_counter()
    proc = subprocess.run(
        [*python, "-X", "importtime", "-c", _INNER, json.dumps(TIMERS), str(out), *args],
        cwd=cwd,
        env=bench.child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wall = time.perf_counter() - start
    imports = []
    for line in proc.stderr.splitlines():
        m = _IMPORT_LINE.match(line)
        if m:
            imports.append((int(m[1]) / 1e6, int(m[2]) / 1e6, len(m[3]) // 2, m[4]))
    try:
        report = json.loads(out.read_text())
    except (OSError, ValueError):
        tail = "\n".join(proc.stderr.splitlines()[-15:])
        raise RuntimeError(f"profiled child failed (exit {proc.returncode}):\n{tail}") from None
    # What no timer inside can see: interpreter start-up and, mostly, its shutdown
    # (the final garbage collection over every object the run created).
    whole = report["stats"]["whole child from its first line (CPU: all threads)"]
    report["stats"]["python start-up + shutdown (child's wall minus the line above)"] = [
        1,
        wall - whole[1],
        whole[2],
        float("nan"),
    ]
    return report, imports


def summarize(title: str, report: dict, imports: list) -> str:
    lines = [f"### {title} (exit {report['rc']})", ""]
    lines += [
        "| timer | calls | wall | CPU of its thread | peak RSS at return |",
        "|---|---|---|---|---|",
    ]
    order = [label for _, _, label in TIMERS]
    stats = report["stats"]
    head = [k for k in stats if k not in order]
    for label in head + [label for label in order if label in stats]:
        calls, total, rss, cpu = stats[label]
        shown = label.replace("  ", "&nbsp;&nbsp;")
        cpu_text = "—" if cpu != cpu else f"{cpu:.3f} s"  # NaN: not measured
        lines.append(f"| {shown} | {calls} | {total:.3f} s | {cpu_text} | {rss:.0f} MB |")
    by_package: collections.Counter[str] = collections.Counter()
    for self_s, _, _, name in imports:
        parts = name.split(".")
        # pulumi_aws loads each service module lazily, on first attribute access: split it.
        by_package[".".join(parts[:2]) if parts[0] == "pulumi_aws" else parts[0]] += self_s
    total_imports = sum(by_package.values())
    lines += [
        "",
        f"Import self-time by package (all imports: {total_imports:.2f} s):",
        "",
    ]
    lines += ["| package | self time |", "|---|---|"]
    for name, seconds in by_package.most_common(15):
        lines.append(f"| {name} | {seconds:.3f} s |")
    lines += ["", "Slowest imports, everything under them included (`-X importtime`):", ""]
    lines += ["| import | cumulative |", "|---|---|"]
    seen: set[str] = set()
    for _, cumulative, _, name in sorted(imports, key=lambda r: -r[1]):
        # Skip an import inside a package already listed (its time is in the parent).
        if any(name.startswith(p + ".") for p in seen):
            continue
        seen.add(name)
        lines.append(f"| {name} | {cumulative:.3f} s |")
        if len(seen) >= 8:
            break
    return "\n".join(lines)


def main() -> int:
    unknown = [a for a in sys.argv[1:] if a not in SCENARIOS]
    if unknown:
        print(__doc__)
        return 0 if set(unknown) <= {"-h", "--help"} else 2
    wanted = sys.argv[1:] or ["plan", "noop"]
    migrate = bench.find_migrate(None)
    python = interpreter(migrate)
    work = Path(tempfile.mkdtemp(prefix="phasegate-profile-"))
    try:
        for i, scenario in enumerate(wanted):
            cwd = bench.fresh_copy(work, f"{scenario}-{i}")
            if scenario == "noop":
                setup = bench.timed([migrate, "apply", "--yes"], cwd)
                if setup.rc != 0:
                    print(f"noop: the full apply failed (exit {setup.rc}): {setup.stderr}")
                    continue
            args = ["plan"] if scenario == "plan" else ["apply", "--yes"]
            title = {
                "plan": "cold `migrate plan`",
                "noop": "no-op `migrate apply --yes`",
                "apply": "full `migrate apply --yes`",
            }[scenario]
            try:
                report, imports = profile(python, cwd, args, work / f"{scenario}-{i}.json")
            except RuntimeError as exc:
                print(f"{scenario}: {exc}")
                continue
            print(summarize(title, report, imports) + "\n")
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
