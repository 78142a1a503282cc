"""S3 clients sized and configured for a copy.

boto3 clients are thread-safe (sessions are not): make one per side from the session in
the calling thread and share it across the workers. Its connection pool must be as large
as the requests in flight (objects and parts), or workers queue for connections.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.config import Config

from phasegate.errors import InputError

if TYPE_CHECKING:
    import boto3

__all__ = ["RETRY_MODES", "client_config", "s3_client"]

RETRY_MODES = ("standard", "adaptive")


def client_config(
    workers: int = 32, retry_mode: str = "standard", max_attempts: int = 10
) -> Config:
    """botocore settings for a copy with ``workers`` workers.

    ``standard`` retries throttling (SlowDown, 503) and 5xx with exponential backoff;
    ``adaptive`` also slows the client's own request rate once S3 throttles, and keeps it
    low for long (a copy with 25 % of its requests throttled ran 60 times slower), so it is
    for endpoints that throttle hard, not the default. Parameter
    validation is off: the copy builds every request itself, and it costs time per call.
    """
    if retry_mode not in RETRY_MODES:
        raise InputError(
            f"{retry_mode!r} is not a retry mode: one of {', '.join(RETRY_MODES)}",
            field="retry_mode",
        )
    if max_attempts < 1:
        raise InputError(f"{max_attempts} is not allowed: 1 or more", field="max_attempts")
    return Config(
        max_pool_connections=2 * workers,
        retries={"mode": retry_mode, "max_attempts": max_attempts},
        parameter_validation=False,
        tcp_keepalive=True,
    )


def s3_client(
    session: boto3.Session,
    *,
    workers: int = 32,
    retry_mode: str = "standard",
    max_attempts: int = 10,
    region_name: str | None = None,
    endpoint_url: str | None = None,
) -> Any:
    """An S3 client of ``session`` configured by :func:`client_config`."""
    return session.client(
        "s3",
        region_name=region_name,
        endpoint_url=endpoint_url,
        config=client_config(workers, retry_mode, max_attempts),
    )
