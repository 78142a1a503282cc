"""What the readiness audit's probes share: a finding, the inputs they judge, the way
they word a failed call.

Every probe only reads (Describe*, Get*, List*, Head*), through the clients the engine
hands out (``aws(service)``), so the same probes run on a real account and on the
sandbox. A call that fails is a finding of severity ``unknown`` saying why: an answer the
account does not give is never guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from phasegate.errors import aws_error_code

__all__ = [
    "AWS_ERRORS",
    "Area",
    "AuditInputs",
    "Aws",
    "Finding",
    "Pool",
    "Severity",
    "byte_size",
    "failed",
    "pages",
    "unreadable",
    "zone_list",
]

Aws = Callable[[str], Any]
Area = Literal["capacity", "quotas", "network", "data"]
Severity = Literal["ok", "info", "unknown", "warning", "critical"]

AWS_ERRORS = (BotoCoreError, ClientError)
"""What a call the account (or the emulator) does not answer raises: an AWS error, no
credentials, no endpoint. A probe's own mistake is not one of them: it is not hidden
behind an "unknown"."""


class Finding(BaseModel):
    """One thing the audit found, how much it matters, and what to do about it."""

    model_config = ConfigDict(extra="forbid")

    area: Area = Field(description="capacity, quotas, network or data")
    check: str = Field(description="what was looked at, e.g. 'offerings g5.xlarge'")
    severity: Severity = Field(
        description="ok; info (nothing to do); unknown (the account did not answer: "
        "never guessed); warning; critical (a phase cannot run as configured)"
    )
    found: str = Field(description="what the audit found")
    action: str | None = Field(None, description="what to do; null when nothing is")


@dataclass(frozen=True)
class Pool:
    """A GPU node pool of a stack config, as the audit counts it."""

    phase: str
    key: str
    instance_types: tuple[str, ...]
    capacity_type: str
    desired_size: int
    max_size: int

    @property
    def label(self) -> str:
        return f"{self.phase}.{self.key}"


@dataclass(frozen=True)
class AuditInputs:
    """What the stack configs and the stacks' outputs say the environment needs."""

    region: str
    pools: tuple[Pool, ...]
    vcpus: Mapping[str, int]
    """vCPUs per instance type (``phases/catalog.py``)."""
    zones: tuple[str, ...] = ()
    zones_key: str = ""
    """Where ``zones`` come from, as ``phase.key`` (empty: no stack config names zones)."""
    private_subnet_cidrs: tuple[str, ...] = ()
    nat_per_az: bool | None = None
    nat_key: str = ""
    legacy_bucket: str | None = None
    vpc_id: str | None = None
    """The target VPC, once a stack exports it (``vpc_id``)."""
    private_subnet_ids: tuple[str, ...] = ()

    @property
    def instance_types(self) -> list[str]:
        return list(dict.fromkeys(t for pool in self.pools for t in pool.instance_types))


def failed(exc: Exception) -> str:
    """A failed call in one short phrase: its AWS error code and message."""
    code = aws_error_code(exc)
    if code:
        message = str(getattr(exc, "response", {}).get("Error", {}).get("Message", ""))
    else:
        code, message = type(exc).__name__, str(exc)
    text = " ".join(message.split())[:200]
    return f"{code}: {text}" if text else code


def byte_size(n: int) -> str:
    """Bytes as a person reads them, and exactly: ``180.6 MiB (189338884 bytes)``."""
    value, unit = float(n), "bytes"
    for bigger in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{n} bytes" if unit == "bytes" else f"{value:.1f} {unit} ({n} bytes)"


def pages(client: Any, operation: str, key: str, **kwargs: Any) -> Iterable[Any]:
    for page in client.get_paginator(operation).paginate(**kwargs):
        yield from page.get(key, [])


def zone_list(names: Iterable[str]) -> str:
    listed = sorted(names)
    return ", ".join(listed) if listed else "none"


def unreadable(
    area: Area, check: str, what: str, permission: str, exc: Exception, done: str = "read"
) -> Finding:
    """The finding of a check whose facts AWS did not give: ``unknown``, never a guess,
    with the call that failed and the permission that lets it run."""
    return Finding(
        area=area,
        check=check,
        severity="unknown",
        found=f"{what} could not be {done} ({failed(exc)})",
        action=f"allow {permission} and run the audit again",
    )
