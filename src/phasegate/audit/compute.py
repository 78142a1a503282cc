"""The audit's GPU capacity (the zones that offer each configured instance type) and
quotas (the vCPU quotas of G/VT and P instances against the pools at max size)."""

from __future__ import annotations

from phasegate.audit.base import (
    AWS_ERRORS,
    AuditInputs,
    Aws,
    Finding,
    Pool,
    Severity,
    failed,
    unreadable,
    zone_list,
)
from phasegate.offerings import zones_offering

__all__ = ["QUOTAS", "capacity", "quotas"]

QUOTAS: dict[tuple[str, str], tuple[str, str]] = {
    ("G", "ON_DEMAND"): ("L-DB2E81BA", "Running On-Demand G and VT instances"),
    ("P", "ON_DEMAND"): ("L-417A185B", "Running On-Demand P instances"),
    ("G", "SPOT"): ("L-3819A6DF", "All G and VT Spot Instance Requests"),
    ("P", "SPOT"): ("L-7212CCBC", "All P Spot Instance Requests"),
}
"""The Service Quotas (service ``ec2``, in vCPUs) that govern GPU instances, by instance
class (G/VT or P) and capacity type."""


def capacity(inputs: AuditInputs, aws: Aws) -> list[Finding]:
    """For each instance type the configs name, the region's zones that offer it,
    against the zones chosen; a type offered in none of them is critical."""
    types = inputs.instance_types
    if not types:
        return [
            Finding(
                area="capacity",
                check="GPU pools",
                severity="info",
                found="no stack config names a GPU node pool: nothing to place",
            )
        ]
    try:
        offered = zones_offering(aws("ec2"), types)
    except AWS_ERRORS as exc:
        return [
            unreadable(
                "capacity",
                f"offerings {t}",
                f"the zones offering {t}",
                "ec2:DescribeInstanceTypeOfferings",
                exc,
            )
            for t in types
        ]
    return [_placed(t, offered[t], inputs) for t in types]


def _placed(instance_type: str, zones: set[str], inputs: AuditInputs) -> Finding:
    pools = ", ".join(p.label for p in inputs.pools if instance_type in p.instance_types)
    check = f"offerings {instance_type}"
    if not inputs.zones:
        severity: Severity = "ok" if zones else "critical"
        return Finding(
            area="capacity",
            check=check,
            severity=severity,
            found=f"{instance_type} ({pools}) is offered in {zone_list(zones)} of {inputs.region} "
            "(no stack config chooses zones)",
            action=None if zones else f"pick a type {inputs.region} offers for {pools}",
        )
    chosen = set(inputs.zones)
    inside = zones & chosen
    found = (
        f"{instance_type} ({pools}) is offered in {len(inside)} of the {len(chosen)} chosen "
        f"zones ({zone_list(inside) if inside else 'none'}; {inputs.zones_key}: "
        f"{', '.join(inputs.zones)}); {inputs.region} offers it in {zone_list(zones)}"
    )
    if inside == chosen:
        return Finding(area="capacity", check=check, severity="ok", found=found)
    if inside:
        return Finding(
            area="capacity",
            check=check,
            severity="warning",
            found=found,
            action=f"its pools run in {zone_list(inside)} only; to spread them, choose zones "
            f"that offer it in {inputs.zones_key}",
        )
    elsewhere = sorted(zones - chosen)
    return Finding(
        area="capacity",
        check=check,
        severity="critical",
        found=found,
        action=(
            f"choose zones that offer it in {inputs.zones_key} ({', '.join(elsewhere)}), "
            f"or another type for {pools}"
            if elsewhere
            else f"pick another instance type for {pools}: {inputs.region} offers "
            f"{instance_type} in no zone"
        ),
    )


# --- quotas ---------------------------------------------------------------------------


def _class(instance_type: str) -> str | None:
    family = instance_type.split(".", 1)[0]
    if family.startswith(("g", "vt")):
        return "G"
    return "P" if family.startswith("p") else None


def quotas(inputs: AuditInputs, aws: Aws) -> list[Finding]:
    """The vCPU quotas of GPU instances against the vCPUs the pools run at max size
    (every node on the pool's largest type), and at desired size."""
    need: dict[tuple[str, str], list[tuple[Pool, int, int]]] = {}
    findings = []
    for pool in inputs.pools:
        uncounted = [t for t in pool.instance_types if t not in inputs.vcpus]
        if uncounted:
            findings.append(
                Finding(
                    area="quotas",
                    check=f"vCPUs {pool.label}",
                    severity="unknown",
                    found=f"{pool.label}: the vCPUs of {', '.join(uncounted)} are not in "
                    "phases/catalog.py, so its quota need is unknown",
                    action="add the types to phases/catalog.py",
                )
            )
            continue
        largest = max(inputs.vcpus[t] for t in pool.instance_types)
        for cls in {_class(t) for t in pool.instance_types} - {None}:
            key = (str(cls), "SPOT" if pool.capacity_type == "SPOT" else "ON_DEMAND")
            need.setdefault(key, []).append(
                (pool, pool.max_size * largest, pool.desired_size * largest)
            )
    for key in sorted(need, key=lambda k: QUOTAS[k][0]):
        code, name = QUOTAS[key]
        pools = need[key]
        at_max = sum(m for _, m, _ in pools)
        at_desired = sum(d for _, _, d in pools)
        counted = "; ".join(f"{p.label} {m} at max size {p.max_size}" for p, m, _ in pools)
        check = f"quota {code}"
        try:
            value = aws("service-quotas").get_service_quota(ServiceCode="ec2", QuotaCode=code)
            quota = float(value["Quota"]["Value"])
        except AWS_ERRORS as exc:
            findings.append(
                Finding(
                    area="quotas",
                    check=check,
                    severity="unknown",
                    found=f"{name} ({code}): quota unknown, Service Quotas did not answer "
                    f"({failed(exc)}); the pools need {at_max} vCPUs at max size ({counted})",
                    action=f"check the quota {code} in the Service Quotas console of "
                    f"{inputs.region}: it must be at least {at_max}",
                )
            )
            continue
        found = (
            f"{name} ({code}): quota {quota:g} vCPUs; the pools need {at_max} at max size "
            f"({counted}), {at_desired} at desired size (running instances not counted)"
        )
        if at_max <= quota:
            findings.append(Finding(area="quotas", check=check, severity="ok", found=found))
            continue
        findings.append(
            Finding(
                area="quotas",
                check=check,
                severity="warning" if at_desired <= quota else "critical",
                found=found,
                action=f"request an increase of {code} in {inputs.region} to at least {at_max}",
            )
        )
    return findings
