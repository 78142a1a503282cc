"""phasegate's side of the copy race in bench/copy_bench.py: its copy and its parity proof.

:func:`phasegate_copy` runs them in a child process (this file as a script), as the
other tools run: each run pays its own start-up and imports. The child copies with
:func:`phasegate.datacopy.copy_prefix` (server side, the journal in a temporary directory
that lives as long as the race, so the re-run is incremental as an apply's is) and then
proves the copy with the ``s3_parity`` check kind, as the data layer's verification does,
and prints its timings as one JSON line. The harness times the whole call (wall) and
checks the target on its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Location", "PhasegateTimings", "PhasegateUnavailable", "phasegate_copy"]

_STACK = "bench-data"
"""The stack name the proof's checksum files are kept under."""
_WORK = Path(tempfile.mkdtemp(prefix="phasegate-bench-copy-"))
"""The journal and the proof's checksum cache, kept between the full copy and the re-run
(an apply keeps them under .phasegate/)."""


@dataclass(frozen=True)
class Location:
    """A bucket and a key prefix ("" for the whole bucket; else ending in "/")."""

    bucket: str
    prefix: str = ""

    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class PhasegateTimings:
    """What phasegate's copy says about one run; the harness's wall time covers both."""

    copy_seconds: float
    """Listing, comparing and copying, up to the last object written."""
    proof_seconds: float
    """The parity proof (object count, bytes and checksums match the source)."""
    copied: int | None = None
    """Objects phasegate says it copied in this run (0 on a no-change re-run), if it says."""


class PhasegateUnavailable(Exception):
    """phasegate's copy cannot run here; the message says why (shown in the table)."""


def phasegate_copy(
    endpoint: str, source: Location, target: Location, workers: int = 32, timeout: float = 1800
) -> PhasegateTimings:
    """Copy ``source`` to ``target`` on the S3 endpoint ``endpoint`` (the served sandbox,
    region us-east-1, any credentials) with ``workers`` objects at once, then prove it.
    Raises RuntimeError, with the child's last line, when the copy or the proof fails."""
    try:
        import phasegate.datacopy  # noqa: F401
    except ImportError:
        raise PhasegateUnavailable("phasegate.datacopy is not in this checkout") from None
    argv = [sys.executable, __file__, endpoint, source.bucket, source.prefix]
    argv += [target.bucket, target.prefix, str(workers), str(_WORK)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        raise RuntimeError(f"exit {done.returncode}: {last[:200]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return PhasegateTimings(found["copy_seconds"], found["proof_seconds"], found["copied"])


def _main(argv: list[str]) -> int:
    import boto3
    import botocore.session
    from botocore.config import Config

    from phasegate import datacopy
    from phasegate.aws_sessions import quick_timestamps
    from phasegate.checks.base import CheckContext
    from phasegate.checks.parity import S3Parity, S3ParityParams
    from phasegate.copystep import copy_for_proof

    endpoint, source_bucket, source_prefix, target_bucket, target_prefix, workers, work = argv
    # The client the pulumi engine gives the copy step, on the served sandbox's endpoint.
    config = datacopy.client_config(int(workers)).merge(Config(s3={"addressing_style": "path"}))
    session = boto3.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        botocore_session=quick_timestamps(botocore.session.Session()),
    )

    def client(service: str) -> object:
        return session.client(service, endpoint_url=endpoint, config=config)

    s3 = client("s3")
    source = datacopy.Location(source_bucket, source_prefix)
    target = datacopy.Location(target_bucket, target_prefix)
    start = time.perf_counter()
    result, listings = copy_for_proof(  # as the data layer's copy step runs it
        s3,
        source,
        target,
        Path(work) / "copy",
        datacopy.CopyOptions(workers=int(workers)),
        work_dir=Path(work),
        stack=_STACK,
    )
    copied = time.perf_counter()
    if not result.ok:
        print(f"copy failed: {result.failures[:1]}", file=sys.stderr)
        return 1
    params = S3ParityParams.model_validate(
        {
            "source": {"bucket": source_bucket, "prefix": source_prefix},
            "target": {"bucket": target_bucket, "prefix": target_prefix},
            "concurrency": min(int(workers), 128),
        }
    )
    ctx = CheckContext("bench", _STACK, {}, aws=client, work_dir=Path(work), listings=listings)
    proof = S3Parity().probe(params, ctx)
    proved = time.perf_counter()
    if not proof.passed:
        print(f"proof failed: {proof.message}", file=sys.stderr)
        return 1
    timings = {
        "copy_seconds": round(copied - start, 3),
        "proof_seconds": round(proved - copied, 3),
        "copied": result.copied_objects,
    }
    print(json.dumps(timings))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
