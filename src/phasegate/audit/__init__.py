"""``migrate audit``: how ready an environment's AWS account is for the migration, scored
0-100 with the reasons.

The audit reads the stack configs (node pools, zones, subnets, the legacy bucket) and
the stacks' outputs (the VPC once the pilot made it), then the account, read only,
through the engine's clients (the probes of :mod:`phasegate.audit.compute`,
:mod:`~phasegate.audit.network` and :mod:`~phasegate.audit.data`). Each finding has a
severity; the score is the one table below, :data:`WEIGHTS` and :data:`CREDIT`. Nothing
is written: no state file, no engine record, nothing in the cloud. The JSON form is
:class:`AuditReport`, whose schema ``migrate schema audit`` prints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from phasegate.audit.base import Area, AuditInputs, Finding, Pool, Severity
from phasegate.audit.compute import capacity, quotas
from phasegate.audit.data import data
from phasegate.audit.network import network
from phasegate.environment import Environment
from phasegate.project import CONFIG_NAMESPACE

__all__ = [
    "CREDIT",
    "WEIGHTS",
    "AreaScore",
    "AuditReport",
    "Finding",
    "audit_environment",
    "audit_inputs",
    "findings_of",
    "report",
    "score",
]

# The score, in one place (the README shows this table). Each area earns its weight
# times the mean credit of its findings; the score is the sum, rounded: 100 when every
# finding is ok or info.
WEIGHTS: dict[Area, int] = {
    "capacity": 35,  # the GPU types offered in the chosen zones
    "quotas": 25,  # the vCPU quotas of G/VT and P instances
    "network": 20,  # free addresses, S3 gateway endpoint, NAT per zone
    "data": 20,  # the legacy bucket: readable, encrypted, versioned, private
}
CREDIT: dict[Severity, float] = {
    "ok": 1.0,
    "info": 1.0,
    "unknown": 0.5,  # not known is not ready: half, never a guess either way
    "warning": 0.5,
    "critical": 0.0,
}

Aws = Callable[[str], Any]


class AreaScore(BaseModel):
    """What one area of the audit earned."""

    model_config = ConfigDict(extra="forbid")

    area: Area = Field(description="capacity, quotas, network or data")
    weight: int = Field(description="its share of the 100 points")
    earned: float = Field(description="weight x the mean credit of its findings, 2 decimals")
    worst: Severity = Field(description="its most severe finding")


class AuditReport(BaseModel):
    """What ``migrate audit --output json`` prints."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = Field(1, description="the version of this document's shape")
    environment: str = Field(description="the environment audited")
    region: str = Field(description="its AWS region")
    score: int = Field(ge=0, le=100, description="readiness, 0-100: the areas' earned, summed")
    areas: list[AreaScore] = Field(description="each area's weight and what it earned")
    critical: int = Field(ge=0, description="how many findings are critical")
    findings: list[Finding] = Field(description="every finding, by area, most severe first")

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


_ORDER: dict[Severity, int] = {"critical": 0, "warning": 1, "unknown": 2, "info": 3, "ok": 4}


def score(findings: list[Finding]) -> tuple[int, list[AreaScore]]:
    """The score of ``findings`` and each area's part of it, by :data:`WEIGHTS` and
    :data:`CREDIT`; an area with no finding earns its whole weight."""
    areas = []
    for area, weight in WEIGHTS.items():
        mine = [f for f in findings if f.area == area]
        credit = sum(CREDIT[f.severity] for f in mine) / len(mine) if mine else 1.0
        worst = min((f.severity for f in mine), key=_ORDER.__getitem__, default="ok")
        areas.append(
            AreaScore(area=area, weight=weight, earned=round(weight * credit, 2), worst=worst)
        )
    return round(sum(a.earned for a in areas)), areas


def findings_of(inputs: AuditInputs, aws: Aws) -> list[Finding]:
    """Every probe's findings, by area in :data:`WEIGHTS` order, most severe first."""
    found = [
        *capacity(inputs, aws),
        *quotas(inputs, aws),
        *network(inputs, aws),
        *data(inputs, aws),
    ]
    areas = list(WEIGHTS)
    return sorted(found, key=lambda f: (areas.index(f.area), _ORDER[f.severity]))


def report(environment: str, inputs: AuditInputs, findings: list[Finding]) -> AuditReport:
    """The audit's document: ``findings`` scored, the critical ones counted."""
    total, areas = score(findings)
    return AuditReport(
        environment=environment,
        region=inputs.region,
        score=total,
        areas=areas,
        critical=sum(f.severity == "critical" for f in findings),
        findings=findings,
    )


def audit_environment(environment: Environment) -> AuditReport:
    """Audit ``environment``'s account against its stack configs, read only."""
    project = environment.project
    inputs = audit_inputs(environment)
    # Any stack of the environment reaches its account: the first phase's will do.
    target = project.target(environment.spec, project.migration.phases[0])
    clients: dict[str, Any] = {}

    def aws(service: str) -> Any:
        if service not in clients:
            clients[service] = environment.engine.aws_client(target, service)
        return clients[service]

    return report(environment.name, inputs, findings_of(inputs, aws))


def audit_inputs(environment: Environment) -> AuditInputs:
    """What the environment's stack configs (validated, defaults filled in) and its
    stacks' outputs say: pools, zones, private subnets, NAT, legacy bucket, VPC."""
    from phasegate.checks.base import CheckError
    from phasegate.checks.compute import load_catalog_figure

    project, name = environment.project, environment.name
    pools: list[Pool] = []
    found: dict[str, tuple[str, Any]] = {}
    outputs: dict[str, Any] = {}
    for phase in project.migration.phases:
        config = project.validate_config(name, phase)
        for full, setting in config.items():
            if not full.startswith(f"{CONFIG_NAMESPACE}:"):
                continue
            key = full.split(":", 1)[1]
            pool = _pool(phase.name, key, setting)
            if pool is not None:
                pools.append(pool)
            elif key not in found:
                found[key] = (f"{phase.name}.{key}", setting)
        exported = environment.engine.outputs(f"{name}-{phase.name}")
        if exported is not None:
            for key, output in exported.values.items():
                outputs.setdefault(key, output)
    try:
        vcpus = load_catalog_figure(project.root, "vcpus") if pools else {}
    except CheckError:
        vcpus = {}  # each pool's quota need is then "unknown", and says why

    def value(key: str, default: Any = None) -> Any:
        return found[key][1] if key in found else default

    vpc = outputs.get("vpc_id")
    subnets = outputs.get("private_subnet_ids")
    return AuditInputs(
        region=environment.spec.region,
        pools=tuple(pools),
        vcpus=vcpus,
        zones=tuple(_strings(value("availability_zones", []))),
        zones_key=found["availability_zones"][0] if "availability_zones" in found else "",
        private_subnet_cidrs=tuple(_strings(value("private_subnet_cidrs", []))),
        nat_per_az=bool(value("nat_per_az")) if "nat_per_az" in found else None,
        nat_key=found["nat_per_az"][0] if "nat_per_az" in found else "",
        legacy_bucket=value("legacy_bucket") if isinstance(value("legacy_bucket"), str) else None,
        vpc_id=vpc if isinstance(vpc, str) and vpc else None,
        private_subnet_ids=tuple(_strings(subnets)) if isinstance(subnets, list) else (),
    )


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _pool(phase: str, key: str, value: Any) -> Pool | None:
    """A node pool of a stack config: a mapping with instance types and a max size."""
    if not isinstance(value, Mapping) or "max_size" not in value:
        return None
    types = value.get("instance_types")
    if types is None and isinstance(value.get("instance_type"), str):
        types = [value["instance_type"]]
    if not isinstance(types, list) or not types:
        return None
    return Pool(
        phase=phase,
        key=key,
        instance_types=tuple(str(t) for t in types),
        capacity_type=str(value.get("capacity_type", "ON_DEMAND")),
        desired_size=int(value.get("desired_size", 0)),
        max_size=int(value["max_size"]),
    )
