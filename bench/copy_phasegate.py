"""phasegate's side of the copy race in bench/copy_bench.py: the one place to plug it in.

>>> PLUG-IN POINT <<<  phasegate's own copy (src/phasegate/datacopy/) is written apart
from this harness. Until :func:`phasegate_copy` calls it, the phasegate row of the
results says "not plugged in" and the other tools still race. To plug it in, make
:func:`phasegate_copy` run one copy *and its parity proof* against ``endpoint`` and return
their timings; the harness times the whole call itself (wall), counts and verifies the
target on its own, and calls it twice: a first full copy into an empty target, then a
no-change re-run. Called in this process, it is spared the process start-up (and
imports) every other tool pays on each run; for a like-for-like time, run phasegate's
copy as a `migrate` subprocess here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Location", "PhasegateTimings", "PhasegateUnavailable", "phasegate_copy"]


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


def phasegate_copy(endpoint: str, source: Location, target: Location) -> PhasegateTimings:
    """Copy ``source`` to ``target`` on the S3 endpoint ``endpoint`` (the served sandbox,
    region us-east-1, any credentials) with phasegate's copy, then run its parity proof.

    Raise :class:`PhasegateUnavailable` when it cannot run; raise anything else when the
    copy or the proof fails (the harness reports the error on phasegate's row).
    """
    try:
        import phasegate.datacopy  # noqa: F401  (src/phasegate/datacopy/, being written)
    except ImportError:
        raise PhasegateUnavailable(
            "not plugged in: phasegate.datacopy is not in this checkout"
        ) from None
    # >>> PLUG-IN POINT: call phasegate's copy and its parity proof here, timing each, e.g.
    #     start = time.perf_counter(); result = <copy>(endpoint, source, target)
    #     copied = time.perf_counter(); <proof>(endpoint, source, target)
    #     return PhasegateTimings(copied - start, time.perf_counter() - copied, result.copied)
    raise PhasegateUnavailable(
        "not plugged in: phasegate.datacopy exists, but bench/copy_phasegate.py does not call it"
    )
