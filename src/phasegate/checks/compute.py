"""GPU compute checks: ``eks_nodegroup`` (a node group as declared, its GPU total) and
``launch_template`` (IMDSv2 only, encrypted volumes); and the GPU catalog they count with."""

from __future__ import annotations

import hashlib
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from phasegate.checks.base import (
    CheckContext,
    CheckError,
    CheckKind,
    Params,
    Probe,
    aws_client,
    error_code,
)

__all__ = [
    "EksNodegroup",
    "EksNodegroupParams",
    "LaunchTemplate",
    "LaunchTemplateParams",
    "Taint",
    "load_catalog_figure",
    "load_gpu_catalog",
]

CATALOG_FILE = Path("phases") / "catalog.py"
"""The project's GPU catalog, relative to the project root."""

_EFFECTS = {
    "NoSchedule": "NO_SCHEDULE",
    "NoExecute": "NO_EXECUTE",
    "PreferNoSchedule": "PREFER_NO_SCHEDULE",
}
"""Kubernetes taint effects in their EKS API spelling."""


_CATALOGS: dict[tuple[Path, str, str], dict[str, int]] = {}
"""Catalog figures loaded in this process, by path, content and figure: each probe asks
again."""


def load_gpu_catalog(root: Path) -> dict[str, int]:
    """GPUs per instance by instance type, from ``phases/catalog.py`` under ``root``.

    Loaded by path, as the policy pack does, and compiled here so no bytecode is left in
    the project; once per content. CheckError when the file is missing or holds no
    ``CATALOG``.
    """
    return load_catalog_figure(root, "gpus")


def load_catalog_figure(root: Path, figure: str) -> dict[str, int]:
    """One whole-number figure of every instance type of ``phases/catalog.py`` under
    ``root`` (``gpus``, ``vcpus``), by instance type; loaded as :func:`load_gpu_catalog`
    loads it. CheckError when the file is missing, holds no ``CATALOG``, or a type lacks
    the figure."""
    path = root / CATALOG_FILE
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CheckError(f"cannot read the GPU catalog {path}: {exc.strerror}") from None
    key = (path, source, figure)
    if key not in _CATALOGS:
        _CATALOGS[key] = _exec_catalog(path, source, figure)
    return dict(_CATALOGS[key])


def _exec_catalog(path: Path, source: str, figure: str) -> dict[str, int]:
    name = "_phasegate_gpu_catalog_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # dataclasses look their module up while being built
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)
    except Exception as exc:
        raise CheckError(f"cannot load the GPU catalog {path}: {exc}") from None
    finally:
        sys.modules.pop(name, None)
    catalog: Any = getattr(module, "CATALOG", None)
    if not isinstance(catalog, Mapping):
        raise CheckError(f"the GPU catalog {path} defines no CATALOG mapping")
    figures: dict[str, int] = {}
    for instance_type, entry in catalog.items():
        # A bare number is the GPU count (a catalog of GPUs per type and nothing else).
        count: Any = getattr(entry, figure, entry if figure == "gpus" else None)
        if not isinstance(count, int):
            what = "GPU count" if figure == "gpus" else figure
            raise CheckError(f"the GPU catalog {path}: {instance_type} has no {what}")
        figures[str(instance_type)] = count
    return figures


class Taint(Params):
    """A taint the node group must carry; ``key[=value]:Effect`` is the short form."""

    key: str = Field(min_length=1, description="taint key, e.g. nvidia.com/gpu")
    value: str | None = Field(None, description="taint value; any when not given")
    effect: Literal["NO_SCHEDULE", "NO_EXECUTE", "PREFER_NO_SCHEDULE"] = Field(
        description="EKS form; the Kubernetes form (NoSchedule, ...) is accepted too"
    )

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if isinstance(data, str) and ":" in data:
            head, effect = data.rsplit(":", 1)
            key, _, value = head.partition("=")
            return {"key": key, "value": value or None, "effect": effect}
        return data

    @field_validator("effect", mode="before")
    @classmethod
    def _kubernetes_effect(cls, effect: Any) -> Any:
        return _EFFECTS.get(effect, effect)

    def __str__(self) -> str:
        return f"{self.key}{'=' + self.value if self.value is not None else ''}:{self.effect}"


class EksNodegroupParams(Params):
    """A managed node group that must be ACTIVE; every other parameter, when given, must hold."""

    nodegroup: str = Field(min_length=1, description="the node group name")
    cluster: str | None = Field(
        None, description="its cluster; when not given, the one cluster that has the group"
    )
    instance_types: list[str] | None = Field(
        None, min_length=1, description="exactly these instance types (any order)"
    )
    capacity_type: Literal["ON_DEMAND", "SPOT", "CAPACITY_BLOCK"] | None = Field(
        None, description="ON_DEMAND, SPOT or CAPACITY_BLOCK"
    )
    min_size: int | None = Field(None, ge=0, description="scaling minimum")
    desired_size: int | None = Field(None, ge=0, description="scaling desired size")
    max_size: int | None = Field(None, ge=0, description="scaling maximum")
    labels: dict[str, str] | None = Field(
        None, description="Kubernetes labels the group must have (others may be there too)"
    )
    taints: list[Taint] | None = Field(
        None, description="taints the group must have (others may be there too)"
    )
    min_gpus: int | None = Field(
        None,
        ge=0,
        description="at least this many GPUs: desired size x GPUs per node of the type with "
        "the fewest, since EKS may launch any listed type",
    )


def _find_cluster(eks: Any, nodegroup: str) -> str:
    """The one cluster that has ``nodegroup``."""
    clusters = [
        c for page in eks.get_paginator("list_clusters").paginate() for c in page["clusters"]
    ]
    having = [
        cluster
        for cluster in clusters
        for page in eks.get_paginator("list_nodegroups").paginate(clusterName=cluster)
        if nodegroup in page["nodegroups"]
    ]
    if not having:
        raise CheckError(
            f"{nodegroup}: no cluster has this node group (clusters: "
            f"{', '.join(clusters) or 'none'})"
        )
    if len(having) > 1:
        raise CheckError(f"{nodegroup}: clusters {', '.join(having)} all have it; give cluster")
    return having[0]


def _template_instance_type(ctx: CheckContext, template: Mapping[str, Any]) -> list[str]:
    """The instance type a node group's launch template sets, when the group names none."""
    ec2 = aws_client(ctx, "ec2")
    ident = (
        {"LaunchTemplateId": template["id"]}
        if template.get("id")
        else {"LaunchTemplateName": template["name"]}
    )
    versions = ec2.describe_launch_template_versions(
        **ident, Versions=[str(template.get("version") or "$Default")]
    )["LaunchTemplateVersions"]
    found = versions[0]["LaunchTemplateData"].get("InstanceType") if versions else None
    return [found] if found else []


class EksNodegroup(CheckKind):
    name = "eks_nodegroup"
    params = EksNodegroupParams

    def probe(self, params: EksNodegroupParams, ctx: CheckContext) -> Probe:
        eks = aws_client(ctx, "eks")
        cluster = params.cluster or _find_cluster(eks, params.nodegroup)
        try:
            group = eks.describe_nodegroup(clusterName=cluster, nodegroupName=params.nodegroup)
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                said = getattr(exc, "response", {}).get("Error", {}).get("Message", "")
                return Probe(False, f"{params.nodegroup}: not found in cluster {cluster} ({said})")
            raise
        group = group["nodegroup"]
        types = list(group.get("instanceTypes") or [])
        if not types and group.get("launchTemplate"):
            types = _template_instance_type(ctx, group["launchTemplate"])
        problems, held = self._compare(params, group, types)
        if params.min_gpus is not None:
            gpus, text = _gpu_total(ctx, group, types)
            held.append(text)
            if gpus < params.min_gpus:
                problems.append(f"{text}, expected at least {params.min_gpus}")
        if problems:
            return Probe(False, f"{params.nodegroup}: {'; '.join(problems)}")
        return Probe(True, f"{params.nodegroup}: {', '.join(held)}")

    @staticmethod
    def _compare(
        p: EksNodegroupParams, group: Mapping[str, Any], types: list[str]
    ) -> tuple[list[str], list[str]]:
        problems: list[str] = []
        status = group.get("status", "unknown")
        if status != "ACTIVE":
            issues = [i.get("code", "?") for i in group.get("health", {}).get("issues", [])]
            problems.append(
                f"status {status}, expected ACTIVE"
                + (f" (issues: {', '.join(issues)})" if issues else "")
            )
        if p.instance_types is not None and sorted(set(types)) != sorted(set(p.instance_types)):
            found, wanted = ", ".join(types) or "none", ", ".join(p.instance_types)
            problems.append(f"instance types {found}, expected {wanted}")
        capacity = group.get("capacityType", "ON_DEMAND")
        if p.capacity_type is not None and capacity != p.capacity_type:
            problems.append(f"capacity type {capacity}, expected {p.capacity_type}")
        scaling = group.get("scalingConfig", {})
        for name, key in (("min", "minSize"), ("desired", "desiredSize"), ("max", "maxSize")):
            wanted = getattr(p, f"{name}_size")
            if wanted is not None and scaling.get(key) != wanted:
                problems.append(f"{name} size {scaling.get(key)}, expected {wanted}")
        labels = group.get("labels") or {}
        wrong = [
            f"{k}={labels[k]!s}" if k in labels else f"{k} missing"
            for k, v in (p.labels or {}).items()
            if labels.get(k) != v
        ]
        if wrong:
            expected = ", ".join(f"{k}={v}" for k, v in (p.labels or {}).items())
            problems.append(f"labels {', '.join(wrong)}, expected {expected}")
        have = group.get("taints") or []
        missing = [
            str(t)
            for t in p.taints or []
            if not any(
                h.get("key") == t.key
                and h.get("effect") == t.effect
                and (t.value is None or h.get("value") == t.value)
                for h in have
            )
        ]
        if missing:
            found = (
                ", ".join(f"{h.get('key')}={h.get('value')}:{h.get('effect')}" for h in have)
                or "none"
            )
            problems.append(f"taints lack {', '.join(missing)} (found: {found})")
        lo, want, hi = (scaling.get(k, "?") for k in ("minSize", "desiredSize", "maxSize"))
        held = [
            status,
            f"{'/'.join(types) or 'no instance type'} {capacity}",
            f"scaling {lo}/{want}/{hi}",
        ]
        return problems, held


def _gpu_total(ctx: CheckContext, group: Mapping[str, Any], types: list[str]) -> tuple[int, str]:
    """The GPUs the group is sure to have, and how counted: desired size x GPUs per node of
    the listed type with the fewest. EKS may launch any listed type for any node, so only
    the smallest is guaranteed; counting the largest would pass a 1-GPU node as 4."""
    catalog = ctx.gpu_catalog
    if catalog is None:
        if ctx.project_root is None:
            raise CheckError("min_gpus needs the GPU catalog, and the check was given none")
        catalog = load_gpu_catalog(ctx.project_root)
    unknown = [t for t in types if t not in catalog]
    if unknown or not types:
        raise CheckError(
            f"{group.get('nodegroupName')}: cannot count GPUs: instance type(s) "
            f"{', '.join(unknown) or 'none'} not in the GPU catalog"
        )
    fewest = min(types, key=lambda t: catalog[t])
    desired = int(group.get("scalingConfig", {}).get("desiredSize", 0))
    total = desired * catalog[fewest]
    among = f", the fewest-GPU type of {'/'.join(types)}" if len(types) > 1 else ""
    # A real multiplication sign, as people write a GPU count (desired 2 x 8 p5.48xlarge).
    return total, f"{total} GPUs (desired {desired} × {catalog[fewest]} {fewest}{among})"  # noqa: RUF001


class LaunchTemplateParams(Params):
    """A launch template whose version requires IMDSv2 (and, if asked, encrypts every volume)."""

    template: str = Field(min_length=1, description="template id (lt-...) or name")
    version: int | Literal["$Default", "$Latest"] = Field(
        "$Default", description="the version to check: a number, $Default or $Latest"
    )
    encrypted_volumes: bool = Field(
        False, description="every EBS volume the version declares must be encrypted"
    )


class LaunchTemplate(CheckKind):
    name = "launch_template"
    params = LaunchTemplateParams

    def probe(self, params: LaunchTemplateParams, ctx: CheckContext) -> Probe:
        ec2 = aws_client(ctx, "ec2")
        is_id = params.template.startswith("lt-")
        ident = {"LaunchTemplateId" if is_id else "LaunchTemplateName": params.template}
        try:
            versions = ec2.describe_launch_template_versions(
                **ident, Versions=[str(params.version)]
            )["LaunchTemplateVersions"]
        except Exception as exc:
            if "NotFound" in error_code(exc) or "Malformed" in error_code(exc):
                return Probe(False, f"launch template {params.template} does not exist")
            raise
        if not versions:
            return Probe(
                False, f"launch template {params.template} has no version {params.version}"
            )
        version = versions[0]
        data = version.get("LaunchTemplateData", {})
        where = f"launch template {params.template} version {version.get('VersionNumber')}"
        problems = []
        tokens = data.get("MetadataOptions", {}).get("HttpTokens")
        if tokens != "required":
            problems.append(
                f"allows IMDSv1 (HttpTokens {tokens or 'not set, so optional'}), expected required"
            )
        held = ["IMDSv2 required"]
        if params.encrypted_volumes:
            volumes = [m for m in data.get("BlockDeviceMappings", []) if "Ebs" in m]
            plain = [m.get("DeviceName", "?") for m in volumes if not m["Ebs"].get("Encrypted")]
            if not volumes:
                problems.append("declares no EBS volume, so nothing says they are encrypted")
            elif plain:
                problems.append(f"EBS volume(s) {', '.join(plain)} not encrypted")
            else:
                held.append(f"{len(volumes)} EBS volume(s) encrypted")
        if problems:
            return Probe(False, f"{where}: {'; '.join(problems)}")
        return Probe(True, f"{where}: {', '.join(held)}")
