"""Spare-parts arithmetic (pure): installed base and failures in, recommended stock out.

The contract promises a local stock of at least `spares_min_pct` (3 %) of the installed
quantity; a desk also wants enough parts to cover the failures it expects while a
reorder is on its way. Per (kind, model), over a window of the last `window_days`:

```
unit_hours  = sum over installed parts of quantity x hours in the window since first seen
rate        = failures / unit_hours x 8766              (per unit-year; None: no hours)
mtbf_h      = unit_hours / failures                     (None: no failure)
lambda      = failures / unit_hours x installed x lead_time_days x 24
poisson     = smallest k with P(N <= k) >= confidence, N ~ Poisson(lambda)
min_stock   = ceil(sum of quantity x spares_min_pct / 100)   (exact fractions)
recommended = max(min_stock, poisson)
```
docs/spares.md works one example through by hand; the tests check these functions
against it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

HOURS_PER_YEAR: Final = 8766.0  # 365.25 days
MS_PER_H: Final = 3_600_000
MAX_CONFIDENCE: Final = 0.9999

# (component kind, fault) -> the installed kind the ticket is a failure of. A forecast
# (psu_degrading, running_hot) is not a failure until it becomes one of these stages;
# controller_lost / signal_lost are mostly links and sources, not controller hardware.
FAILURE_KIND: Final[dict[tuple[str, str], str]] = {
    ("card", "card_offline"): "receiving_card",
    ("card", "module_fault"): "module",
    ("psu", "psu_failed"): "psu",
    ("psu", "voltage_low"): "psu",
}


@dataclass(frozen=True, slots=True)
class InstalledComponent:
    """One row of the installed base (`components`): a part seen in telemetry."""

    site: str
    screen: str
    component: str
    kind: str
    model: str
    quantity: int
    first_ms: int  # first recorded: its operating hours count from here
    seen_ms: int  # last recorded


def failure_kind(component: str, fault: str) -> str | None:
    """The installed kind a ticket on `component` with `fault` is a failure of, or None."""
    return FAILURE_KIND.get((component.split("/", 1)[0], fault))


def hours_between(first_ms: int, start_ms: int, end_ms: int) -> float:
    """Operating hours of a part first seen at `first_ms` inside [start_ms, end_ms)."""
    return max(0, end_ms - max(first_ms, start_ms)) / MS_PER_H


def poisson_cdf(k: int, lam: float) -> float:
    """P(N <= k) for N ~ Poisson(lam), summed exactly term by term (log space, so a
    large lambda does not underflow exp(-lam))."""
    if k < 0:
        return 0.0
    if lam <= 0:
        return 1.0
    log_lam = math.log(lam)
    return min(1.0, math.fsum(math.exp(j * log_lam - lam - math.lgamma(j + 1))
                              for j in range(k + 1)))


def poisson_stock(lam: float, confidence: float) -> int:
    """The smallest k with P(N <= k) >= confidence: enough parts for `lam` expected
    failures with that confidence (0 when nothing is expected)."""
    if not 0 < confidence <= MAX_CONFIDENCE:
        raise ValueError(f"confidence must be in (0, {MAX_CONFIDENCE}], got {confidence}")
    if lam <= 0:
        return 0
    log_lam, k = math.log(lam), 0
    cdf = math.exp(-lam)
    while cdf < confidence:
        k += 1
        cdf += math.exp(k * log_lam - lam - math.lgamma(k + 1))
    return k


def min_stock(quantities: Iterable[tuple[int, float]]) -> int:
    """ceil(sum of quantity x pct / 100) over (quantity, spares_min_pct) pairs, exactly
    (3 % of 100 is 3, not 4 after a float rounding)."""
    total = sum((Fraction(q) * Fraction(str(pct)) / 100 for q, pct in quantities), Fraction(0))
    return math.ceil(total)


@dataclass(frozen=True, slots=True)
class SpareLine:
    """One (kind, model) of the spares plan (GET /api/v1/spares)."""

    kind: str
    model: str
    installed: int
    min_stock: int
    failures: int
    unit_hours: float
    failure_rate_per_unit_year: float | None
    mtbf_h: float | None
    lead_time_days: float
    confidence: float
    expected_failures: float | None  # lambda: failures expected over the lead time
    poisson_stock: int
    recommended: int
    parts_used: int = 0  # quantity recorded on resolved tickets in the window, same model


def spare_line(
    kind: str,
    model: str,
    *,
    installed: int,
    min_stock: int,
    failures: int,
    unit_hours: float,
    lead_time_days: float,
    confidence: float,
    parts_used: int = 0,
) -> SpareLine:
    """The figures of one (kind, model); see the module docstring for the formulas."""
    if lead_time_days < 0:
        raise ValueError(f"lead_time_days must be >= 0, got {lead_time_days}")
    per_hour = failures / unit_hours if unit_hours > 0 else None
    lam = None if per_hour is None else per_hour * installed * lead_time_days * 24
    stock = poisson_stock(lam, confidence) if lam is not None else 0
    return SpareLine(
        kind=kind,
        model=model,
        installed=installed,
        min_stock=min_stock,
        failures=failures,
        unit_hours=unit_hours,
        failure_rate_per_unit_year=None if per_hour is None else per_hour * HOURS_PER_YEAR,
        mtbf_h=unit_hours / failures if failures and unit_hours > 0 else None,
        lead_time_days=lead_time_days,
        confidence=confidence,
        expected_failures=lam,
        poisson_stock=stock,
        recommended=max(min_stock, stock),
        parts_used=parts_used,
    )
