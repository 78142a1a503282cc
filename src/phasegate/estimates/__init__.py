"""Cost, energy and carbon estimates of what each phase provisions, from its plan and the
bundled tables under ``data/`` (prices, power, PUE, grid intensity): see
:mod:`~phasegate.estimates.estimator` for how, :mod:`~phasegate.estimates.tables` for the
files, :mod:`~phasegate.estimates.cap` for the ``cost-carbon-cap`` rule."""

from __future__ import annotations

from phasegate.estimates.cap import RULE, cap_violations, caps
from phasegate.estimates.estimator import StoredData, estimate_phase
from phasegate.estimates.model import (
    HOURS_PER_MONTH,
    Delta,
    EstimateItem,
    Figures,
    PhaseEstimate,
    Span,
)
from phasegate.estimates.tables import DATA_DIR, Tables, load_tables

__all__ = [
    "DATA_DIR",
    "HOURS_PER_MONTH",
    "RULE",
    "Delta",
    "EstimateItem",
    "Figures",
    "PhaseEstimate",
    "Span",
    "StoredData",
    "Tables",
    "cap_violations",
    "caps",
    "estimate_phase",
    "load_tables",
]
