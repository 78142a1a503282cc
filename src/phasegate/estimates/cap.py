"""The ``cost-carbon-cap`` policy rule: a stack's monthly cost and carbon stay within the
caps its stack config sets::

    config:
      phasegate:max_monthly_cost_usd: 5000    # none: no cost cap
      phasegate:max_monthly_kg_co2e: 800      # none: no carbon cap
      phasegate:policy:
        cost-carbon-cap: advisory             # mandatory (default) | advisory | disabled

It is a core rule, not one of the policy pack's: the estimate it judges is made by
phasegate from the plan and the bundled price, power and grid tables, which a CrossGuard
pack running inside the Pulumi CLI has no access to. Run here, on the plan both engines
give, it judges the same figures on both, and its findings join the pack's in the same
policy gate (mandatory: the apply is refused, exit 5).

The high end of a range is judged (a spot pool may cost that much); figures that are
unknown are not counted, and the finding says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from phasegate.engines.base import Violation
from phasegate.errors import InputError
from phasegate.estimates.model import PhaseEstimate

__all__ = ["CARBON_CAP_KEY", "COST_CAP_KEY", "RULE", "STACK_TYPE", "cap_violations", "caps"]

RULE = "cost-carbon-cap"
COST_CAP_KEY = "phasegate:max_monthly_cost_usd"
CARBON_CAP_KEY = "phasegate:max_monthly_kg_co2e"
STACK_TYPE = "pulumi:pulumi:Stack"
"""Findings are on the stack as a whole, as the pack's gpu-count-cap reports its own."""


def caps(config: Mapping[str, Any], stack: str) -> tuple[float | None, float | None]:
    """The stack's (cost, carbon) caps; None where not set. InputError naming the stack
    file and key on a value that is not a number >= 0."""
    return _cap(config, stack, COST_CAP_KEY, "USD"), _cap(config, stack, CARBON_CAP_KEY, "kg")


def _cap(config: Mapping[str, Any], stack: str, key: str, unit: str) -> float | None:
    raw = config.get(key)
    if raw is None:
        return None
    value: Any = raw.strip() if isinstance(raw, str) else raw  # `pulumi config set` strings
    try:
        number = float(value) if not isinstance(value, bool) else -1.0
    except (TypeError, ValueError):
        number = -1.0
    if not number >= 0 or number == float("inf"):
        raise InputError(
            f"must be a number of {unit} a month, 0 or more, got {raw!r}",
            file=f"Pulumi.{stack}.yaml",
            field=key,
        )
    return number


def cap_violations(
    estimate: PhaseEstimate | None, *, stack: str, config: Mapping[str, Any], level: str
) -> list[Violation]:
    """The rule's findings on ``stack``'s estimate at enforcement ``level``."""
    cost_cap, carbon_cap = caps(config, stack)
    if level == "disabled" or estimate is None or (cost_cap is None and carbon_cap is None):
        return []
    total = estimate.total
    left_out = f" (not counting unknown: {', '.join(total.unknown)})" if total.unknown else ""
    found: list[str] = []
    cost = total.monthly_cost_usd
    if cost_cap is not None and cost.high > cost_cap:
        found.append(
            f"monthly cost {_usd(cost.low, cost.high)} is over the cap of ${cost_cap:,.2f} "
            f"({COST_CAP_KEY})"
        )
    carbon = total.kg_co2e
    if carbon_cap is not None and carbon.high > carbon_cap:
        found.append(
            f"monthly carbon {_kg(carbon.low, carbon.high)} is over the cap of "
            f"{carbon_cap:,.1f} kg CO2e ({CARBON_CAP_KEY})"
        )
    if not found:
        return []
    return [Violation(RULE, level, STACK_TYPE, stack, "; ".join(found) + left_out)]


def _usd(low: float, high: float) -> str:
    if round(low, 2) == round(high, 2):
        return f"${high:,.2f}"
    return f"${low:,.2f}-${high:,.2f} (the high end is judged)"


def _kg(low: float, high: float) -> str:
    if round(low, 1) == round(high, 1):
        return f"{high:,.1f} kg CO2e"
    return f"{low:,.1f}-{high:,.1f} kg CO2e (the high end is judged)"
