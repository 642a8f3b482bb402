"""The spares arithmetic (collector/tickets/spares.py) against cases worked out by hand.

Poisson, lambda = 2 (e^-2 = 0.135335):
  P(N <= 3) = e^-2 (1 + 2 + 4/2 + 8/6)          = 0.135335 x 6.333333 = 0.857123
  P(N <= 4) = e^-2 (6.333333 + 16/24)           = 0.135335 x 7         = 0.947347
  P(N <= 5) = e^-2 (7 + 32/120)                 = 0.135335 x 7.266667  = 0.983436
  -> 95 %: k = 5 (0.947 < 0.95 <= 0.983); 90 %: k = 4; 94.7 %: k = 4.
Poisson, lambda = 0.5 (e^-0.5 = 0.606531):
  P(N <= 0) = 0.606531, P(N <= 1) = 0.606531 x 1.5 = 0.909796,
  P(N <= 2) = 0.606531 x 1.625 = 0.985612  -> 95 %: 2; 90 %: 1; 60 %: 0.

docs/spares.md's example, receiving cards: 50 installed for the whole 365-day window,
12 product-fault failures in it, lead time 90 days, confidence 95 %, 3 % minimum:
  unit_hours = 50 x 365 x 24                    = 438,000 h
  rate       = 12 / 438,000 x 8766              = 0.240164 per unit-year
  MTBF       = 438,000 / 12                     = 36,500 h
  lambda     = 12 / 438,000 x 50 x 90 x 24      = 2.958904
  Poisson terms e^-l l^k / k!: 0.051876, 0.153495, 0.227089, 0.223978, 0.165682,
  0.098048, 0.048352; cumulative ... P(N <= 5) = 0.920168, P(N <= 6) = 0.968521 -> 6
  min stock  = ceil(50 x 3 / 100) = ceil(1.5)   = 2
  recommended = max(2, 6)                        = 6
And PSUs: 400 installed, 6 failures, lead time 30 days:
  unit_hours = 3,504,000 h; rate = 6 x 8766 / 3,504,000 = 0.015010; MTBF = 584,000 h
  lambda = 6 / 3,504,000 x 400 x 720 = 0.493151; e^-l = 0.610699;
  P(N <= 1) = e^-l (1 + l) = 0.911866,
  P(N <= 2) = 0.911866 + 0.610699 x 0.493151^2 / 2 = 0.986126 -> 2
  min stock = ceil(400 x 3 / 100) = 12 -> recommended 12 (the contract's minimum wins)
"""

from __future__ import annotations

import math

import pytest

from collector.tickets.spares import (
    failure_kind,
    hours_between,
    min_stock,
    poisson_cdf,
    poisson_stock,
    spare_line,
)


def test_poisson_cdf_by_hand() -> None:
    assert poisson_cdf(0, 2) == pytest.approx(0.135335, abs=1e-6)
    assert poisson_cdf(3, 2) == pytest.approx(0.857123, abs=1e-6)
    assert poisson_cdf(4, 2) == pytest.approx(0.947347, abs=1e-6)
    assert poisson_cdf(5, 2) == pytest.approx(0.983436, abs=1e-6)
    assert poisson_cdf(2, 0.5) == pytest.approx(0.985612, abs=1e-6)
    assert poisson_cdf(-1, 2) == 0.0 and poisson_cdf(3, 0) == 1.0


@pytest.mark.parametrize(("lam", "confidence", "k"), [
    (2, 0.95, 5), (2, 0.90, 4), (2, 0.947, 4), (2, 0.948, 5),
    (0.5, 0.95, 2), (0.5, 0.90, 1), (0.5, 0.60, 0),
    (0, 0.95, 0),
])
def test_poisson_stock_by_hand(lam: float, confidence: float, k: int) -> None:
    assert poisson_stock(lam, confidence) == k


def test_poisson_stock_is_the_smallest_k_even_for_a_large_lambda() -> None:
    # 1000 expected failures: exp(-1000) underflows a float; the log-space sum does not.
    # Normal approximation: 1000 + 1.645 x sqrt(1000) = 1052.
    k = poisson_stock(1000, 0.95)
    assert k == 1052
    assert poisson_cdf(k - 1, 1000) < 0.95 <= poisson_cdf(k, 1000)


def test_poisson_stock_refuses_a_confidence_it_cannot_reach() -> None:
    for bad in (0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="confidence"):
            poisson_stock(2, bad)


def test_min_stock_is_exact() -> None:
    assert min_stock([(100, 3.0)]) == 3  # not 4 after a rounding
    assert min_stock([(101, 3.0)]) == 4  # 3.03 -> 4
    assert min_stock([(1500, 2.2)]) == 33  # a float gives 33.00000000000001 -> 34
    assert min_stock([(40, 3.0), (60, 5.0)]) == 5  # 1.2 + 3.0 = 4.2: per-contract shares
    assert min_stock([]) == 0 and min_stock([(7, 0.0)]) == 0


def test_the_documented_example() -> None:
    cards = spare_line("receiving_card", "A8s", installed=50, min_stock=min_stock([(50, 3.0)]),
                       failures=12, unit_hours=50 * 365 * 24, lead_time_days=90,
                       confidence=0.95)
    assert cards.unit_hours == 438_000
    assert cards.failure_rate_per_unit_year == pytest.approx(0.240164, abs=1e-6)
    assert cards.mtbf_h == 36_500
    assert cards.expected_failures == pytest.approx(2.958904, abs=1e-6)
    assert (cards.min_stock, cards.poisson_stock, cards.recommended) == (2, 6, 6)

    psus = spare_line("psu", "LRS-200-5", installed=400, min_stock=min_stock([(400, 3.0)]),
                      failures=6, unit_hours=400 * 8760, lead_time_days=30, confidence=0.95)
    assert psus.failure_rate_per_unit_year == pytest.approx(0.015010, abs=1e-6)
    assert psus.mtbf_h == 584_000
    assert psus.expected_failures == pytest.approx(0.493151, abs=1e-6)
    assert poisson_cdf(1, psus.expected_failures) == pytest.approx(0.911866, abs=1e-6)
    assert poisson_cdf(2, psus.expected_failures) == pytest.approx(0.986126, abs=1e-6)
    assert (psus.min_stock, psus.poisson_stock, psus.recommended) == (12, 2, 12)


def test_no_failures_no_hours() -> None:
    quiet = spare_line("controller", "MCTRL4K", installed=3, min_stock=1, failures=0,
                       unit_hours=26_280, lead_time_days=30, confidence=0.95)
    assert (quiet.failure_rate_per_unit_year, quiet.mtbf_h) == (0.0, None)
    assert (quiet.expected_failures, quiet.poisson_stock, quiet.recommended) == (0.0, 0, 1)
    # failures of a model with no recorded installed base: no rate can be stated
    unknown = spare_line("psu", "unknown", installed=0, min_stock=0, failures=2, unit_hours=0,
                         lead_time_days=30, confidence=0.95)
    assert (unknown.failure_rate_per_unit_year, unknown.mtbf_h, unknown.recommended) == (
        None, None, 0)
    with pytest.raises(ValueError, match="lead_time_days"):
        spare_line("psu", "x", installed=1, min_stock=0, failures=0, unit_hours=1,
                   lead_time_days=-1, confidence=0.95)


def test_which_tickets_are_failures_of_which_kind() -> None:
    assert failure_kind("psu/p0c3-psu1", "psu_failed") == "psu"
    assert failure_kind("psu/p0c3-psu1", "voltage_low") == "psu"
    assert failure_kind("psu/p0c3-psu1", "psu_degrading") is None  # a forecast, not yet
    assert failure_kind("card/p0c3", "card_offline") == "receiving_card"
    assert failure_kind("card/p0c3", "module_fault") == "module"
    assert failure_kind("card/p0c3", "temp_high") is None
    assert failure_kind("controller", "controller_lost") is None
    assert failure_kind("screen", "manual") is None


def test_hours_between() -> None:
    h = 3_600_000
    assert hours_between(0, 10 * h, 20 * h) == 10  # seen before the window: all of it
    assert hours_between(15 * h, 10 * h, 20 * h) == 5  # first seen inside it
    assert hours_between(25 * h, 10 * h, 20 * h) == 0  # after it
    assert math.isclose(hours_between(0, 0, 1), 1 / h)
