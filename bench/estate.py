"""What the sandbox's legacy estate costs: its first open and a commit with it present.

    python bench/estate.py [--repeat N]

1. first open: a fresh sandbox directory, the emulator started, the estate created and
   committed (what the first `migrate plan` or `apply` of a sandbox pays once)
2. one commit with the estate present, the cloud loaded (what every resource operation
   of an apply pays), and how many bytes it wrote under the sandbox directory
3. a load: the checkpoint read and its cloud loaded in a new store (every later command)

Medians of N runs (default 3), in this process; prints a markdown table. Like run.py,
it reports and does not gate: the exit code is always 0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from phasegate.engines.sandbox.store import SandboxStore  # noqa: E402

ENV, REGION = "sandbox", "us-east-1"


def _written(directory: Path) -> tuple[int, int]:
    """Files and bytes under ``directory`` (what a commit left there)."""
    files = size = 0
    for path in directory.rglob("*"):
        if path.is_file():
            files, size = files + 1, size + path.stat().st_size
    return files, size


def _wchar() -> int:
    """Bytes this process has handed to write() so far (Linux; 0 elsewhere)."""
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return 0
    return int(text.split("wchar:", 1)[1].split()[0])


def once(parent: Path, key: Path) -> dict[str, float]:
    directory = parent / "sandbox" / ENV
    store = SandboxStore(directory, ENV, REGION, key_file=key)
    start = time.perf_counter()
    checkpoint = store.load()
    store.cloud(checkpoint)
    store.commit(checkpoint)
    first_open = time.perf_counter() - start
    before = _wchar()
    start = time.perf_counter()
    store.commit(checkpoint)
    commit = time.perf_counter() - start
    commit_mb = (_wchar() - before) / 2**20
    store.close()
    later = SandboxStore(directory, ENV, REGION, key_file=key)
    start = time.perf_counter()
    later.cloud(later.load())
    load = time.perf_counter() - start
    later.close()
    files, after = _written(directory)
    return {
        "first_open_s": first_open,
        "commit_s": commit,
        "load_s": load,
        "files": files,
        "disk_mb": after / 2**20,
        "objects": float(checkpoint.legacy.get("objects", 0)),
        "estate_mb": checkpoint.legacy.get("bytes", 0) / 2**20,
        "commit_mb": commit_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="phasegate-estate-") as tmp:
        key = Path(tmp) / "sandbox.key"
        for n in range(args.repeat):
            parent = Path(tmp) / f"run{n}"
            parent.mkdir()
            runs.append(once(parent, key))
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    load = os.getloadavg()[0]
    print(f"| measure (median of {args.repeat}, load {load:.1f}) | value |")
    print("|---|---|")
    print(f"| legacy estate | {median['objects']:.0f} objects, {median['estate_mb']:.1f} MiB |")
    print(f"| first open (estate made, first commit) | {median['first_open_s']:.2f} s |")
    print(
        f"| one commit, estate present | {median['commit_s']:.3f} s, "
        f"{median['commit_mb']:.1f} MiB written |"
    )
    print(f"| load in a new store | {median['load_s']:.2f} s |")
    print(f"| on disk after | {median['files']:.0f} files, {median['disk_mb']:.1f} MiB |")


if __name__ == "__main__":
    main()
