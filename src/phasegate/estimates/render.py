"""Estimates as people read them, in a plan's text and its pull-request comment. Plain
strings: the text and markdown renderers escape them as they do every other text."""

from __future__ import annotations

from phasegate.estimates.model import (
    Delta,
    EnvironmentEstimate,
    EstimateItem,
    Figures,
    PhaseEstimateEntry,
    Span,
)

__all__ = ["delta_line", "environment_line", "figures_line", "item_line", "phase_lines", "usd"]


def _span(span: Span, fmt: str, signed: bool = False, unit: str = "") -> str:
    def one(value: float) -> str:
        text = format(abs(value), fmt)
        sign = "-" if value < 0 and text.strip("0.,") else ("+" if signed else "")
        return f"{sign}{unit}{text}"

    low, high = one(span.low), one(span.high)
    return low if low == high else f"{low} to {high}"


def usd(span: Span, signed: bool = False) -> str:
    """Dollars and cents; a figure under a cent with four decimals, so it shows."""
    small = any(0 < abs(v) < 0.005 for v in (span.low, span.high))
    return _span(span, ",.4f" if small else ",.2f", signed, "$")


def figures_line(figures: Figures) -> str:
    """``$1,234.56/month, 789.0 kWh, 299.1 kg CO2e`` (with what is left out as unknown)."""
    line = (
        f"{usd(figures.monthly_cost_usd)}/month, {_span(figures.energy_kwh, ',.1f')} kWh, "
        f"{_span(figures.kg_co2e, ',.1f')} kg CO2e"
    )
    if figures.unknown:
        line += f" (at least: unknown {'; '.join(figures.unknown)})"
    return line


def delta_line(delta: Delta) -> str:
    """``+$12.00/month, +3.4 kWh, +1.3 kg CO2e``."""
    line = (
        f"{usd(delta.monthly_cost_usd, True)}/month, "
        f"{_span(delta.energy_kwh, ',.1f', True)} kWh, {_span(delta.kg_co2e, ',.1f', True)} "
        "kg CO2e"
    )
    return line + (" (unknowns left out)" if delta.uncertain else "")


def item_line(item: EstimateItem) -> str:
    """One costed resource: what it is, its figures, and how they were made."""
    parts = []
    if item.monthly_cost_usd is not None:
        parts.append(f"{usd(item.monthly_cost_usd)}/month")
    if item.energy_kwh is not None:
        parts.append(f"{_span(item.energy_kwh, ',.1f')} kWh")
    if item.kg_co2e is not None:
        parts.append(f"{_span(item.kg_co2e, ',.1f')} kg CO2e")
    if item.unknown:
        parts.append(f"{'/'.join(item.unknown)} unknown")
    # A resource by its logical name; the rest (a copy, NAT traffic) as they are said.
    one = item.kind in ("gpu_pool", "nat_gateway")
    name = item.resource.rsplit(" ", 1)[-1] if one else item.resource
    return f"{name}: {item.what}: {', '.join(parts)} ({item.basis})"


def phase_lines(entry: PhaseEstimateEntry) -> list[str]:
    """The phase's figure and delta, then each item and note."""
    head = f"estimate: {figures_line(entry.planned.total)}; delta {delta_line(entry.delta)}"
    if not entry.planned.items:
        return [f"{head} (nothing it provisions is costed)"]
    return [
        head,
        *(f"  {item_line(i)}" for i in entry.planned.items),
        *(f"  note: {n}" for n in entry.planned.notes),
    ]


def environment_line(estimate: EnvironmentEstimate) -> str:
    return (
        f"{figures_line(estimate.planned)}; applied now {figures_line(estimate.applied)}; "
        f"delta {delta_line(estimate.delta)}"
    )
