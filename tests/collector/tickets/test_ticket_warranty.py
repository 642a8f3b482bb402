from __future__ import annotations

from datetime import date

from ticket_helpers import DAY, ms

from collector.tickets import ContractTerms
from collector.tickets.warranty import warranty_status

TERMS = ContractTerms(acceptance_date=date(2025, 1, 15))
NOW = ms("2027-06-01T00:00")


def test_no_acceptance_date_means_unknown() -> None:
    assert warranty_status(ContractTerms(), [], NOW) is None


def test_twelve_months_from_acceptance() -> None:
    w = warranty_status(TERMS, [], NOW)
    assert w is not None
    assert w.start_ms == ms("2025-01-15T00:00") and w.end_ms == ms("2026-01-15T00:00")
    assert w.covers(ms("2026-01-14T23:59")) and not w.covers(ms("2026-01-15T00:00"))
    two_years = ContractTerms(acceptance_date=date(2024, 2, 29), warranty_months=24)
    w2 = warranty_status(two_years, [], NOW)
    assert w2 is not None and w2.end_ms == ms("2026-02-28T00:00")


def test_product_downtime_extends_by_the_same_time() -> None:
    down = [
        (ms("2025-06-01T00:00"), ms("2025-06-04T00:00")),
        (ms("2025-08-01T00:00"), ms("2025-08-01T12:00")),
    ]
    w = warranty_status(TERMS, down, NOW)
    assert w is not None
    assert w.extension_ms == 3 * DAY + DAY // 2
    assert w.end_ms == ms("2026-01-18T12:00")
    assert w.restarts == 0


def test_downtime_after_the_end_or_not_yet_over_changes_nothing() -> None:
    down = [(ms("2026-02-01T00:00"), ms("2026-02-05T00:00"))]
    w = warranty_status(TERMS, down, NOW)
    assert w is not None and w.end_ms == ms("2026-01-15T00:00")
    # a downtime that ends after `now` is not known yet
    w_then = warranty_status(
        TERMS, [(ms("2025-06-01T00:00"), ms("2025-06-04T00:00"))], ms("2025-06-02T00:00")
    )
    assert w_then is not None and w_then.end_ms == ms("2026-01-15T00:00")


def test_cumulative_downtime_past_threshold_restarts_the_warranty() -> None:
    down = [
        (ms("2025-03-01T00:00"), ms("2025-03-21T00:00")),  # 20 days: extension
        (ms("2025-05-01T00:00"), ms("2025-05-16T00:00")),  # +15 = 35 > 30: restart
        (ms("2025-07-01T00:00"), ms("2025-07-03T00:00")),  # 2 days after the restart
    ]
    w = warranty_status(TERMS, down, NOW)
    assert w is not None
    assert w.restarts == 1
    assert w.start_ms == ms("2025-05-16T00:00")
    assert w.end_ms == ms("2026-05-18T00:00")  # 12 months from restart + 2 days
    assert w.downtime_ms == 2 * DAY


def test_threshold_is_a_contract_term() -> None:
    terms = ContractTerms(acceptance_date=date(2025, 1, 15), warranty_restart_downtime_days=2)
    w = warranty_status(terms, [(ms("2025-03-01T00:00"), ms("2025-03-04T00:00"))], NOW)
    assert w is not None and w.restarts == 1 and w.end_ms == ms("2026-03-04T00:00")
