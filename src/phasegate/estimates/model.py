"""What an estimate says, as pydantic models: kept on a phase's state file once applied,
and printed in a plan's JSON (whose schema ``migrate schema plan`` prints) and markdown.

Every figure is a :class:`Span` (low == high when exact; a spot price gives a range). A
figure that cannot be told (an input only an apply can tell, a price the data files do
not have) is never counted as zero: the item says so, and the totals name it under
``unknown``, so a total reads "at least".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "HOURS_PER_MONTH",
    "Delta",
    "EnvironmentEstimate",
    "EstimateItem",
    "Figures",
    "PhaseEstimate",
    "PhaseEstimateEntry",
    "Span",
]

HOURS_PER_MONTH = 730
"""A month as AWS's pricing pages count it."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Span(_Model):
    """A figure, or a range of it: ``low`` and ``high`` (equal when exact)."""

    low: float = Field(description="the low end (the figure itself when exact)")
    high: float = Field(description="the high end (the figure itself when exact)")

    @classmethod
    def exact(cls, value: float) -> Span:
        return cls(low=value, high=value)

    def __add__(self, other: Span) -> Span:
        return Span(low=self.low + other.low, high=self.high + other.high)

    def __sub__(self, other: Span) -> Span:
        return Span(low=self.low - other.low, high=self.high - other.high)

    def times(self, factor: float) -> Span:
        return Span(low=self.low * factor, high=self.high * factor)

    def rounded(self, digits: int) -> Span:
        return Span(low=round(self.low, digits), high=round(self.high, digits))


ZERO = Span(low=0.0, high=0.0)

Kind = Literal["gpu_pool", "nat_gateway", "nat_data", "storage"]


class EstimateItem(_Model):
    """One thing the phase provisions that costs money (and, for servers, energy)."""

    kind: Kind = Field(description="gpu_pool, nat_gateway, nat_data (processed GB) or storage")
    resource: str = Field(description="'<type> <name>' of the resource it comes from")
    what: str = Field(description="what is counted, e.g. '2 x p5.48xlarge ON_DEMAND'")
    monthly_cost_usd: Span | None = Field(
        None, description="USD per month (730 h); null when unknown (see unknown)"
    )
    energy_kwh: Span | None = Field(
        None,
        description="kWh per month, PUE included; null when unknown or, for what is not "
        "a server (NAT, storage), not estimated",
    )
    kg_co2e: Span | None = Field(None, description="kg CO2e per month; null as energy_kwh")
    unknown: list[Literal["cost", "energy", "carbon"]] = Field(
        default_factory=list, description="figures that cannot be told before an apply"
    )
    basis: str = Field(description="how the figures were made, or why they are unknown")


class Figures(_Model):
    """Monthly totals, and what they leave out because it is unknown."""

    monthly_cost_usd: Span = Field(description="USD per month, of the items whose cost is known")
    energy_kwh: Span = Field(description="kWh per month, of the servers whose energy is known")
    kg_co2e: Span = Field(description="kg CO2e per month, as energy_kwh")
    unknown: list[str] = Field(
        default_factory=list,
        description="'<resource>: cost|energy|carbon' not in the totals because unknown",
    )

    @classmethod
    def total(cls, parts: Iterable[Figures]) -> Figures:
        cost, energy, carbon, unknown = ZERO, ZERO, ZERO, []
        for p in parts:
            cost, energy, carbon = (
                cost + p.monthly_cost_usd,
                energy + p.energy_kwh,
                carbon + p.kg_co2e,
            )
            unknown += p.unknown
        return cls(monthly_cost_usd=cost, energy_kwh=energy, kg_co2e=carbon, unknown=unknown)

    def minus(self, other: Figures | None) -> Delta:
        """The change from ``other`` (what is applied; None: nothing) to these figures."""
        base = other or Figures.total([])
        return Delta(
            monthly_cost_usd=(self.monthly_cost_usd - base.monthly_cost_usd).rounded(4),
            energy_kwh=(self.energy_kwh - base.energy_kwh).rounded(4),
            kg_co2e=(self.kg_co2e - base.kg_co2e).rounded(4),
            uncertain=bool(self.unknown or base.unknown),
        )


class Delta(_Model):
    """The change an apply would make to the monthly figures: planned minus applied, end
    by end (low minus low, high minus high)."""

    monthly_cost_usd: Span
    energy_kwh: Span
    kg_co2e: Span
    uncertain: bool = Field(False, description="true when either side leaves an unknown figure out")


class PhaseEstimate(_Model):
    """What a phase's resources cost per month, the energy they draw and its carbon."""

    region: str = Field(description="the region whose prices and grid were used")
    hours: int = Field(HOURS_PER_MONTH, description="hours in the month estimated")
    items: list[EstimateItem] = Field(default_factory=list, description="each costed resource")
    total: Figures = Field(description="the items summed")
    notes: list[str] = Field(default_factory=list, description="what is not included, and why")

    @classmethod
    def of(cls, region: str, items: list[EstimateItem], notes: list[str]) -> PhaseEstimate:
        def part(item: EstimateItem) -> Figures:
            return Figures(
                monthly_cost_usd=item.monthly_cost_usd or ZERO,
                energy_kwh=item.energy_kwh or ZERO,
                kg_co2e=item.kg_co2e or ZERO,
                unknown=[f"{item.resource}: {what}" for what in item.unknown],
            )

        total = _rounded(Figures.total(part(i) for i in items))
        return cls(region=region, items=items, total=total, notes=notes)


class PhaseEstimateEntry(_Model):
    """A plan's estimate of one phase, beside what is applied."""

    planned: PhaseEstimate = Field(description="the phase as planned")
    applied: Figures | None = Field(
        None, description="the totals of its last verified apply; null: nothing applied yet"
    )
    delta: Delta = Field(description="what the apply would change: planned minus applied")

    @classmethod
    def of(
        cls, planned: PhaseEstimate, applied: PhaseEstimate | None, *, applied_unknown: bool = False
    ) -> PhaseEstimateEntry:
        """``applied_unknown``: something is applied but no estimate of it is on record
        (applied by a phasegate without estimates): the delta says it is uncertain."""
        before = applied.total if applied is not None else None
        delta = planned.total.minus(before)
        if applied_unknown and applied is None:
            delta = delta.model_copy(update={"uncertain": True})
        return cls(planned=planned, applied=before, delta=delta)


class EnvironmentEstimate(_Model):
    """The environment's monthly totals over the phases of the plan."""

    planned: Figures = Field(description="every phase of the plan as planned")
    applied: Figures = Field(description="the same phases as applied now")
    delta: Delta = Field(description="planned minus applied")

    @classmethod
    def of(cls, entries: Iterable[PhaseEstimateEntry]) -> EnvironmentEstimate | None:
        found = list(entries)
        if not found:
            return None
        planned = Figures.total(e.planned.total for e in found)
        applied = Figures.total(e.applied for e in found if e.applied is not None)
        return cls(
            planned=_rounded(planned), applied=_rounded(applied), delta=planned.minus(applied)
        )


def _rounded(figures: Figures) -> Figures:
    return figures.model_copy(
        update={
            "monthly_cost_usd": figures.monthly_cost_usd.rounded(4),
            "energy_kwh": figures.energy_kwh.rounded(4),
            "kg_co2e": figures.kg_co2e.rounded(4),
        }
    )
