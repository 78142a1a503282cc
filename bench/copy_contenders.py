"""The contenders of bench/copy_bench.py: how each tool is run, with which settings.

Every tool gets the same endpoint, fake credentials, region us-east-1 and one concurrency
knob N. None reads the machine's own AWS or rclone settings. A tool that is not installed
stays in the table as "not installed" (bench/copy_tools.sh installs them).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from copy_phasegate import Location, PhasegateUnavailable, phasegate_copy
from copy_s3 import FAKE_CREDENTIALS, REGION

__all__ = ["CACHE", "TOOLS", "Outcome", "Tool", "contenders"]

CACHE = Path(os.environ.get("PHASEGATE_BENCH_CACHE", Path.home() / ".cache/phasegate/bench"))
TOOLS = ("phasegate", "aws", "rclone", "s5cmd-cp", "s5cmd-sync")


@dataclass
class Outcome:
    """One timed run of a tool."""

    seconds: float = 0.0
    error: str = ""
    proof_seconds: float | None = None  # phasegate's parity proof, inside ``seconds``
    server_cpu: float | None = None  # emulator CPU seconds during the run
    copied: int | None = None  # objects the tool says it copied, where it says


@dataclass
class Tool:
    """A command line tool: ``argv`` has {endpoint}, {source}, {target} ... placeholders."""

    name: str
    version: str
    settings: str
    argv: list[str]
    env: dict[str, str]
    timeout: float
    missing: str = ""  # why it cannot run (not installed); "" when it can

    def command(self, endpoint: str, source: Location, target: Location) -> list[str]:
        fields = {
            "endpoint": endpoint,
            "source": source.url(),
            "target": target.url(),
            "source_bucket": source.bucket,
            "source_prefix": source.prefix,
            "target_bucket": target.bucket,
            "target_prefix": target.prefix,
        }
        return [_fill(part, fields) for part in self.argv]

    def run(self, endpoint: str, source: Location, target: Location) -> Outcome:
        env = {key: _fill(value, {"endpoint": endpoint}) for key, value in self.env.items()}
        return _run(self.command(endpoint, source, target), env, self.timeout)


def _fill(text: str, fields: dict[str, str]) -> str:
    """``text`` with its {name} placeholders filled (not str.format: other braces stay)."""
    for name, value in fields.items():
        text = text.replace("{" + name + "}", value)
    return text


class Phasegate(Tool):
    """phasegate's own copy and its parity proof, in a child process (bench/copy_phasegate.py)."""

    workers: int = 32

    def run(self, endpoint: str, source: Location, target: Location) -> Outcome:
        start = time.perf_counter()
        try:
            timings = phasegate_copy(endpoint, source, target, self.workers, self.timeout)
        except PhasegateUnavailable:
            raise
        except Exception as exc:  # the row reports it; the other tools still race
            return Outcome(time.perf_counter() - start, f"{type(exc).__name__}: {exc}")
        seconds = time.perf_counter() - start
        return Outcome(seconds, proof_seconds=timings.proof_seconds, copied=timings.copied)


def _run(argv: list[str], env: dict[str, str], timeout: float) -> Outcome:
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,  # its own group, so a timeout kills its helpers too
        )
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
            return Outcome(time.perf_counter() - start, f"timed out after {timeout:.0f} s")
        except BaseException:  # stopped (Ctrl-C, SIGTERM): leave no tool running behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
            raise
        seconds = time.perf_counter() - start
        if rc == 0:
            return Outcome(seconds)
        err.seek(0)
        lines = err.read().decode(errors="replace").strip().splitlines()
        return Outcome(seconds, f"exit {rc}: {(lines or ['(no stderr)'])[-1][:200]}")


def _version(argv: list[str], env: dict[str, str]) -> str:
    try:
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


def _base_env(work: Path, concurrency: int) -> dict[str, str]:
    """The environment every tool runs in: fake credentials, no user settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env.update(FAKE_CREDENTIALS, AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION, NO_COLOR="1")
    (work / "no-credentials").write_text("")
    (work / "rclone.conf").write_text("")
    # awscli 1.x reads its transfer settings from the config file only.
    (work / "aws-config").write_text(
        f"[default]\nregion = {REGION}\ns3 =\n"
        f"    max_concurrent_requests = {concurrency}\n"
        "    max_queue_size = 10000\n"
        "    addressing_style = path\n"
    )
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(work / "no-credentials")
    env["AWS_CONFIG_FILE"] = str(work / "aws-config")
    env["RCLONE_CONFIG"] = str(work / "rclone.conf")
    return env


def _aws(env: dict[str, str], n: int, timeout: float) -> Tool:
    aws = CACHE / "awscli" / "bin" / "aws"
    settings = f"`aws s3 sync`, s3 max_concurrent_requests={n}, max_queue_size=10000"
    argv = [str(aws), "s3", "sync", "{source}", "{target}", "--endpoint-url", "{endpoint}"]
    argv += ["--only-show-errors", "--no-progress"]
    if not aws.exists():
        return Tool("aws", "—", settings, argv, env, timeout, f"not installed ({aws})")
    version = _version([str(aws), "--version"], env).split(" ")[0]
    return Tool("aws", version, settings, argv, env, timeout)


def _rclone(env: dict[str, str], n: int, timeout: float) -> Tool:
    # One remote for both buckets, so `rclone copy` copies server-side (CopyObject).
    # --checksum: size + MD5 (the listing's ETag) decide what is unchanged; without it
    # rclone compares modification times, which differ after a server-side copy, and would
    # then rewrite every object's metadata on the re-run.
    flags = [f"--transfers={n}", f"--checkers={2 * n}", "--s3-no-check-bucket"]
    flags += ["--checksum", "--fast-list"]
    settings = "`rclone copy`, server-side within one remote, " + " ".join(flags)
    rclone = shutil.which("rclone") or "rclone"
    remote = {
        "RCLONE_CONFIG_BENCH_TYPE": "s3",
        "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
        "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "RCLONE_CONFIG_BENCH_REGION": REGION,
        "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true",
        "RCLONE_CONFIG_BENCH_ENDPOINT": "{endpoint}",
    }
    argv = [rclone, "copy", "bench:{source_bucket}/{source_prefix}"]
    argv += ["bench:{target_bucket}/{target_prefix}", *flags]
    full_env = {**env, **remote}
    if not shutil.which("rclone"):
        return Tool("rclone", "—", settings, argv, full_env, timeout, "not installed (apt-get)")
    return Tool("rclone", _version([rclone, "version"], env), settings, argv, full_env, timeout)


def _s5cmd(name: str, env: dict[str, str], n: int, timeout: float) -> Tool:
    # cp copies what the target lacks or holds at another size (a HEAD per object);
    # sync lists both sides and compares sizes, as `aws s3 sync` and rclone do.
    verb = ["cp", "--if-size-differ"] if name == "s5cmd-cp" else ["sync", "--size-only"]
    s5cmd = CACHE / "bin" / "s5cmd"
    settings = f"`s5cmd --numworkers {n} {' '.join(verb)}`"
    argv = [str(s5cmd), "--endpoint-url", "{endpoint}", "--numworkers", str(n), *verb]
    argv += ["{source}*", "{target}"]
    if not s5cmd.exists():
        return Tool(name, "—", settings, argv, env, timeout, f"not installed ({s5cmd})")
    # Built from the module, not a release: `s5cmd version` says "-dev" where a release
    # names its commit, so the version copy_tools.sh built is read from its stamp.
    stamp = CACHE / "bin" / ".s5cmd-version"
    built = stamp.read_text().strip() if stamp.exists() else ""
    version = f"s5cmd {built}" if built else "s5cmd " + _version([str(s5cmd), "version"], env)
    return Tool(name, version, settings, argv, env, timeout)


def contenders(selected: list[str], concurrency: int, work: Path, timeout: float) -> list[Tool]:
    """The tools named in ``selected``, in that order, with their documented settings."""
    env = _base_env(work, concurrency)
    found: list[Tool] = []
    for name in selected:
        if name == "phasegate":
            tool = Phasegate(
                name, "this checkout", f"copy workers {concurrency}, proof readers "
                f"{min(concurrency, 128)}", [], {}, timeout,
            )  # fmt: skip
            tool.workers = concurrency
            found.append(tool)
        elif name == "aws":
            found.append(_aws(env, concurrency, timeout))
        elif name == "rclone":
            found.append(_rclone(env, concurrency, timeout))
        else:
            found.append(_s5cmd(name, env, concurrency, timeout))
    return found
