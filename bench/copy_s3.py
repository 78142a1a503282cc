"""What bench/copy_bench.py does to the served sandbox itself, with boto3: make and empty
buckets, check that a copy is whole, and measure the emulator alone (its ceiling)."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from copy_phasegate import Location

__all__ = [
    "Ceiling",
    "Listing",
    "Verdict",
    "ceiling",
    "client",
    "delete_bucket",
    "listing",
    "make_bucket",
    "verify",
]

REGION = "us-east-1"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


def client(endpoint: str, pool: int = 10) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=REGION,
        max_pool_connections=pool,
        retries={"max_attempts": 3, "mode": "standard"},
        s3={"addressing_style": "path"},
        connect_timeout=10,
        read_timeout=120,
    )
    return boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    ).client("s3", endpoint_url=endpoint, config=config)


def make_bucket(s3: Any, name: str) -> None:
    s3.create_bucket(Bucket=name)  # us-east-1: no location constraint


def delete_bucket(s3: Any, name: str) -> None:
    """Empty and delete ``name``, so the served sandbox does not carry every tool's copy
    into the next run (and into the write-back when it stops)."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
    s3.delete_bucket(Bucket=name)


@dataclass
class Listing:
    """Objects under a location, by key relative to its prefix: (size, etag)."""

    objects: dict[str, tuple[int, str]]

    @property
    def count(self) -> int:
        return len(self.objects)

    @property
    def bytes(self) -> int:
        return sum(size for size, _ in self.objects.values())

    @property
    def largest(self) -> int:
        return max((size for size, _ in self.objects.values()), default=0)


def listing(s3: Any, where: Location) -> Listing:
    found: dict[str, tuple[int, str]] = {}
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=where.bucket, Prefix=where.prefix)
    for page in pages:
        for obj in page.get("Contents", []):
            found[obj["Key"][len(where.prefix) :]] = (int(obj["Size"]), obj["ETag"])
    return Listing(found)


@dataclass
class Verdict:
    """Does the target hold what the source holds? Keys, sizes, and the md5 of the bodies
    of a sample (ETags differ after a multipart copy, so bodies are read)."""

    ok: bool
    seconds: float
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.ok:
            return "yes"
        return "**no**: " + "; ".join(self.problems[:3])


def _md5(s3: Any, bucket: str, key: str) -> str:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in iter(lambda: body.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def verify(s3: Any, source: Location, target: Location, sample: int, want: Listing) -> Verdict:
    """Compare the target with ``want`` (the source's listing): same keys, same sizes; then
    the bodies of ``sample`` keys drawn at random (seeded) plus the two largest."""
    start = time.perf_counter()
    have = listing(s3, target)
    problems: list[str] = []
    missing = sorted(set(want.objects) - set(have.objects))
    extra = sorted(set(have.objects) - set(want.objects))
    if missing:
        problems.append(f"{len(missing)} object(s) missing, e.g. {missing[0]}")
    if extra:
        problems.append(f"{len(extra)} unexpected object(s), e.g. {extra[0]}")
    sizes = [
        k for k in want.objects if k in have.objects and have.objects[k][0] != want.objects[k][0]
    ]
    if sizes:
        problems.append(f"{len(sizes)} size mismatch(es), e.g. {sorted(sizes)[0]}")
    common = sorted(set(want.objects) & set(have.objects))
    picked = set(random.Random(0).sample(common, min(sample, len(common))))
    picked |= set(sorted(common, key=lambda k: want.objects[k][0])[-2:])
    bad = [
        key
        for key in sorted(picked)
        if _md5(s3, source.bucket, source.prefix + key)
        != _md5(s3, target.bucket, target.prefix + key)
    ]
    if bad:
        problems.append(f"{len(bad)} of {len(picked)} sampled bodies differ, e.g. {bad[0]}")
    return Verdict(not problems, time.perf_counter() - start, problems)


@dataclass
class Ceiling:
    """Requests per second the emulator answered for one operation at one thread count."""

    operation: str
    threads: int
    requests: int
    seconds: float
    errors: int
    server_cpu: float | None  # emulator CPU seconds over ``seconds``, if measurable

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def capacity(self) -> float:
        """Requests per CPU-second of the emulator: its rate at a full core (it answers
        under one interpreter lock, so one core is all it can use); the client's own
        share of the cores taken away. The plain rate when its CPU was not measured."""
        return self.requests / self.server_cpu if self.server_cpu else self.rate

    def line(self) -> str:
        cpu = ""
        if self.server_cpu and self.seconds:
            cpu = (
                f", emulator CPU {self.server_cpu / self.seconds:.0%} of one core, "
                f"so at most ≈{self.capacity:,.0f}/s at a full core"
            )
        errors = f", {self.errors} error(s)" if self.errors else ""
        return (
            f"{self.operation}, {self.threads} thread(s): {self.rate:,.0f} requests/s "
            f"({self.requests:,} in {self.seconds:.1f} s{cpu}{errors})"
        )


def _loop(
    request: Callable[[int, int], None], threads: int, seconds: float, limit: int
) -> tuple[int, int, float]:
    """Run ``request(thread, i)`` in ``threads`` threads until ``seconds`` have passed or
    ``limit`` requests were made; returns (done, errors, wall seconds)."""
    lock = threading.Lock()
    counts = {"done": 0, "errors": 0, "issued": 0}
    deadline = time.perf_counter() + seconds

    def worker(n: int) -> None:
        i = 0
        while time.perf_counter() < deadline:
            with lock:
                if counts["issued"] >= limit:
                    return
                counts["issued"] += 1
            try:
                request(n, i)
                outcome = "done"
            except Exception:  # a refused request counts as an error, the loop goes on
                outcome = "errors"
            with lock:
                counts[outcome] += 1
            i += 1

    start = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(seconds + 60)  # a request has its own read timeout; this bounds the rest
    return counts["done"], counts["errors"], time.perf_counter() - start


def ceiling(
    endpoint: str,
    bucket: str,
    threads: list[int],
    seconds: float,
    limit: int,
    server_cpu: Callable[[], float | None],
) -> list[Ceiling]:
    """HeadObject and GetObject (body read) of one small object and CopyObject of it to
    new keys, in a tight loop from ``threads`` boto3 threads: the most requests/s the
    emulator answers, which bounds every tool (the client shares the machine's cores, as
    every tool does)."""
    s3 = client(endpoint, pool=max(threads) + 4)
    make_bucket(s3, bucket)
    try:
        s3.put_object(Bucket=bucket, Key="small", Body=b"x" * 1024)
        found: list[Ceiling] = []

        def head(_: int, __: int) -> None:
            s3.head_object(Bucket=bucket, Key="small")

        def get(_: int, __: int) -> None:
            s3.get_object(Bucket=bucket, Key="small")["Body"].read()

        def copy(n: int, i: int) -> None:
            s3.copy_object(
                Bucket=bucket, Key=f"copies/{n}/{i}", CopySource={"Bucket": bucket, "Key": "small"}
            )

        for operation, request in (("HeadObject", head), ("GetObject", get), ("CopyObject", copy)):
            for count in threads:
                before = server_cpu()
                done, errors, wall = _loop(request, count, seconds, limit)
                after = server_cpu()
                cpu = after - before if before is not None and after is not None else None
                found.append(Ceiling(operation, count, done, wall, errors, cpu))
        return found
    finally:
        delete_bucket(s3, bucket)
