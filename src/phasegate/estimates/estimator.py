"""A phase's monthly cost, energy and carbon, from what its plan declares.

Pure: it reads the declared resources (``Plan.resources``, which both engines give), the
stack config and the bundled tables, and asks no cloud anything. Counted:

* GPU node pools (``aws:eks/nodeGroup:NodeGroup``): ``desiredSize`` nodes of the pool's
  instance type for 730 h, at the on-demand price or, for SPOT, the spot range. A pool
  of several instance types takes the range over its types (cheapest low end to dearest
  high end), since the capacity may come from any of them. Energy per node-hour:
  (GPU TDP x GPUs x utilisation + host W) / 1000 x PUE; carbon: kWh x grid intensity.
* NAT gateways: the hourly price for 730 h each. Data processed is counted only from
  ``phasegate:nat_gb_per_month`` in the stack config; otherwise a note says it is not.
* The lake's storage: the bytes the phase's data copy puts there, as the caller found
  them (:class:`StoredData`), at the storage class they land in.

An input only an apply can tell is "unknown", never zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from phasegate.engines.base import UNKNOWN, DeclaredResource
from phasegate.errors import InputError
from phasegate.estimates.model import HOURS_PER_MONTH, EstimateItem, PhaseEstimate, Span
from phasegate.estimates.tables import FILES, Tables

__all__ = ["NAT_GATEWAY", "NAT_GB_KEY", "NODE_GROUP", "StoredData", "estimate_phase"]

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
NAT_GATEWAY = "aws:ec2/natGateway:NatGateway"
NAT_GB_KEY = "phasegate:nat_gb_per_month"
"""Stack config: GB a month the stack's NAT gateways process, to count their data charge."""
PROVIDER = "aws"
GB = 1024**3
"""S3 bills per GB of 2^30 bytes."""


@dataclass(frozen=True)
class StoredData:
    """What a phase's data copy puts in the lake: its bytes (None: cannot be told) and
    where that figure comes from, said in the plan."""

    target: str
    bytes: int | None
    source: str
    storage_class: str = "STANDARD"


def estimate_phase(
    resources: Sequence[DeclaredResource],
    *,
    config: Mapping[str, Any],
    region: str,
    tables: Tables,
    gpus: Mapping[str, int] | None,
    stored: StoredData | None = None,
    config_file: str = "",
) -> PhaseEstimate:
    """The estimate of one phase. ``gpus``: GPUs per instance type (the project's
    catalog; None when it cannot be read: energy is then unknown)."""
    pue = tables.pue.get(PROVIDER)
    if pue is None:
        raise InputError(f"no row for provider {PROVIDER!r}", file=FILES["pue"])
    grid = tables.grid.get(region)
    ctx = _Context(region, tables, gpus, pue, grid)
    items: list[EstimateItem] = []
    notes: list[str] = []
    nats = [r for r in resources if r.type == NAT_GATEWAY]
    for resource in resources:
        if resource.type == NODE_GROUP:
            items.append(_pool(resource, ctx))
        elif resource.type == NAT_GATEWAY:
            items.append(_nat(resource, ctx))
    if nats:
        item, note = _nat_data(nats, config, ctx, config_file)
        items += [item] if item is not None else []
        notes += [note] if note is not None else []
    if stored is not None:
        items.append(_storage(stored, ctx))
    if grid is None and any(i.energy_kwh is not None for i in items):
        notes.append(f"no grid intensity for {region} in {FILES['grid']}: carbon unknown")
    notes.append(
        "not included: EKS control plane, load balancers, EBS volumes, requests and data "
        "transfer; energy and carbon are the GPU nodes' only"
    )
    return PhaseEstimate.of(region, items, notes)


@dataclass(frozen=True)
class _Context:
    region: str
    tables: Tables
    gpus: Mapping[str, int] | None
    pue: float
    grid: float | None  # gCO2e per kWh


def _get(props: Mapping[str, Any], *path: str) -> Any:
    value: Any = props
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or value is None or value == UNKNOWN:
        return None
    if isinstance(value, int | float) and value >= 0 and float(value).is_integer():
        return int(value)
    return None


def _label(resource: DeclaredResource) -> str:
    return f"{resource.type} {resource.name}"


def _pool(resource: DeclaredResource, ctx: _Context) -> EstimateItem:
    raw_types = resource.inputs.get("instanceTypes")
    types = (
        [t for t in raw_types if isinstance(t, str) and t != UNKNOWN]
        if isinstance(raw_types, list)
        else []
    )
    capacity = resource.inputs.get("capacityType") or "ON_DEMAND"  # the EKS default
    nodes = _count(_get(resource.inputs, "scalingConfig", "desiredSize"))
    label = _label(resource)
    if not types or (isinstance(raw_types, list) and len(types) != len(raw_types)):
        return EstimateItem(
            kind="gpu_pool",
            resource=label,
            what="instance types unknown until applied",
            unknown=["cost", "energy", "carbon"],
            basis="instanceTypes is computed: known only after apply",
        )
    what_types = "/".join(types)
    if nodes is None or capacity == UNKNOWN:
        return EstimateItem(
            kind="gpu_pool",
            resource=label,
            what=f"? x {what_types}",
            unknown=["cost", "energy", "carbon"],
            basis="scalingConfig.desiredSize or capacityType is computed: known only after apply",
        )
    what = f"{nodes} x {what_types} {capacity}"
    hours = nodes * HOURS_PER_MONTH
    unknown: list[Any] = []
    basis: list[str] = []
    price = _price_span(types, str(capacity), ctx, basis)
    cost = price.times(hours) if price is not None else None
    if cost is None:
        unknown.append("cost")
    kw = _power_span(types, ctx, basis)
    energy = kw.times(hours * ctx.pue) if kw is not None else None
    carbon = None
    if energy is None:
        unknown += ["energy", "carbon"]
    elif ctx.grid is None:
        unknown.append("carbon")
    else:
        carbon = energy.times(ctx.grid / 1000)
        basis.append(f"PUE {ctx.pue:g}, grid {ctx.grid:g} gCO2e/kWh")
    if len(types) > 1:
        basis.append(f"range over the {len(types)} types: capacity may come from any of them")
    basis.insert(0, f"{nodes} node(s) x {HOURS_PER_MONTH} h at desired size")
    return EstimateItem(
        kind="gpu_pool",
        resource=label,
        what=what,
        monthly_cost_usd=cost.rounded(4) if cost is not None else None,
        energy_kwh=energy.rounded(4) if energy is not None else None,
        kg_co2e=carbon.rounded(4) if carbon is not None else None,
        unknown=unknown,
        basis="; ".join(basis),
    )


def _price_span(types: list[str], capacity: str, ctx: _Context, basis: list[str]) -> Span | None:
    lows: list[float] = []
    highs: list[float] = []
    for name in types:
        price = ctx.tables.ec2.get((name, ctx.region))
        low, high = (
            (
                (price.spot_low, price.spot_high)
                if capacity == "SPOT"
                else (price.on_demand, price.on_demand)
            )
            if price is not None
            else (None, None)
        )
        if low is None or high is None:
            basis.append(f"no {capacity} price for {name} in {ctx.region} ({FILES['ec2']})")
            return None
        lows.append(low)
        highs.append(high)
    span = Span(low=min(lows), high=max(highs))
    per = f"${span.low:g}" if span.low == span.high else f"${span.low:g}-{span.high:g}"
    basis.append(f"{capacity} {per}/h")
    return span


def _power_span(types: list[str], ctx: _Context, basis: list[str]) -> Span | None:
    """kW per node (before PUE): the range over the types."""
    kws: list[float] = []
    for name in types:
        power = ctx.tables.power.get(name)
        count = ctx.gpus.get(name) if ctx.gpus is not None else None
        if power is None or count is None:
            where = FILES["power"] if power is None else "phases/catalog.py"
            basis.append(f"no power figure for {name} ({where})")
            return None
        kws.append((power.gpu_tdp_w * count * power.gpu_utilisation + power.host_w) / 1000)
        basis.append(
            f"{name}: {count} x {power.gpu_tdp_w:g} W x {power.gpu_utilisation:g} "
            f"+ {power.host_w:g} W host"
        )
    return Span(low=min(kws), high=max(kws))


def _nat(resource: DeclaredResource, ctx: _Context) -> EstimateItem:
    price = ctx.tables.nat.get(ctx.region)
    if price is None:
        return EstimateItem(
            kind="nat_gateway",
            resource=_label(resource),
            what="1 NAT gateway",
            unknown=["cost"],
            basis=f"no NAT gateway price for {ctx.region} ({FILES['nat']})",
        )
    return EstimateItem(
        kind="nat_gateway",
        resource=_label(resource),
        what="1 NAT gateway",
        monthly_cost_usd=Span.exact(round(price.per_hour * HOURS_PER_MONTH, 4)),
        basis=f"${price.per_hour:g}/h x {HOURS_PER_MONTH} h; energy not estimated "
        "(AWS publishes no power figure for it)",
    )


def _nat_data(
    nats: list[DeclaredResource], config: Mapping[str, Any], ctx: _Context, config_file: str
) -> tuple[EstimateItem | None, str | None]:
    price = ctx.tables.nat.get(ctx.region)
    raw = config.get(NAT_GB_KEY)
    per_gb = f"${price.per_gb:g}/GB" if price is not None else "its per-GB price"
    if raw is None:
        return None, (
            f"NAT data processing ({per_gb}) not included: set {NAT_GB_KEY} in the stack "
            "config to count it"
        )
    value = raw.strip() if isinstance(raw, str) else raw
    try:
        gb = float(value) if not isinstance(value, bool) else -1.0
    except (TypeError, ValueError):
        gb = -1.0
    if not 0 <= gb < float("inf"):
        raise InputError(
            f"must be a number of GB, 0 or more, got {raw!r}",
            file=config_file or None,
            field=NAT_GB_KEY,
        )
    resource = f"{NAT_GATEWAY} ({len(nats)} gateway(s))"
    if price is None:
        return EstimateItem(
            kind="nat_data",
            resource=resource,
            what=f"{gb:g} GB processed",
            unknown=["cost"],
            basis=f"no NAT gateway price for {ctx.region} ({FILES['nat']})",
        ), None
    return EstimateItem(
        kind="nat_data",
        resource=resource,
        what=f"{gb:g} GB processed",
        monthly_cost_usd=Span.exact(round(gb * price.per_gb, 4)),
        basis=f"{gb:g} GB ({NAT_GB_KEY}) x ${price.per_gb:g}/GB",
    ), None


def _storage(stored: StoredData, ctx: _Context) -> EstimateItem:
    resource = f"data copy into {stored.target}"
    if stored.bytes is None:
        return EstimateItem(
            kind="storage",
            resource=resource,
            what=f"? GB in {stored.storage_class}",
            unknown=["cost"],
            basis=stored.source,
        )
    gb = stored.bytes / GB
    price = ctx.tables.s3.get((ctx.region, stored.storage_class))
    what = f"{gb:.3f} GB in {stored.storage_class}"
    if price is None:
        return EstimateItem(
            kind="storage",
            resource=resource,
            what=what,
            unknown=["cost"],
            basis=f"no {stored.storage_class} price for {ctx.region} ({FILES['s3']})",
        )
    return EstimateItem(
        kind="storage",
        resource=resource,
        what=what,
        monthly_cost_usd=Span.exact(round(gb * price, 4)),
        basis=f"{stored.bytes} bytes {stored.source}; ${price:g}/GB-month "
        "(lifecycle transitions lower it later); energy not estimated",
    )
