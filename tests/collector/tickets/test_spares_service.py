"""The spares plan on a real ticket database (SQLite and PostgreSQL): installed base from
`components`, failures from tickets, per-contract minimum stock, regions, parts used.

The fleet (recorded 10 days before the 365-day window starts, so every part runs the
whole window: 8,760 h each):
  acme/main   region north, 3 %:  50 receiving cards A8s, 100 PSUs LRS-200-5
  bravo/x     region north, 5 %:  50 receiving cards A8s
  zulu/y      no region (its own), 3 %: 10 receiving cards A8s
Failures in the window: acme card_offline c1, bravo card_offline c3, zulu card_offline
c0, acme psu_failed p5 (1 LRS-200-5 fitted on the resolve), acme module_fault c4 (no
module rows recorded: model unknown); not counted: acme card_offline c2 resolved as
misuse (product_fault false), acme card_offline c9 before the window, a forecast
(psu_degrading) on p6.

Region north, receiving cards A8s, lead time 30 days, 95 %:
  installed 100; min stock = ceil(50 x 3 % + 50 x 5 %) = ceil(1.5 + 2.5) = 4
  failures 2; unit_hours = 100 x 8,760 = 876,000; MTBF = 438,000 h
  rate = 2 x 8,766 / 876,000 = 0.020014 per unit-year
  lambda = 2 / 876,000 x 100 x 720 = 0.164384; P(N <= 0) = e^-l = 0.848416 < 0.95,
  P(N <= 1) = 0.848416 x 1.164384 = 0.987882 -> Poisson 1; recommended max(4, 1) = 4
  with lead time 365 days and 99 %: lambda = 2 / 876,000 x 100 x 8,760 = 2.0,
  P(N <= 5) = 0.983436 < 0.99 <= P(N <= 6) = 0.995466 -> 6; recommended 6
Region north, PSUs LRS-200-5: installed 100, min ceil(3) = 3, failures 1, MTBF 876,000 h,
  lambda = 1 / 876,000 x 100 x 720 = 0.082192, P(N <= 0) = 0.921095, P(N <= 1) =
  0.996802 -> 1; recommended 3; parts used 1
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from ticket_helpers import DAY, Clock, ms

from collector.detect.findings import Fault, Finding
from collector.tickets import TicketService
from collector.tickets.errors import TicketInputError
from collector.tickets.inventory import ComponentRow
from collector.tickets.spares import SpareLine

CONTRACTS = {"sites": {"acme": {"region": "north"},
                       "bravo": {"region": "north", "spares_min_pct": 5.0},
                       "zulu": {}}}
NOW = "2026-03-01T00:00"


def cards(n: int) -> list[ComponentRow]:
    return [ComponentRow(f"card/c{i}", "receiving_card", "A8s") for i in range(n)]


def fail(svc: TicketService, site: str, screen: str, component: str, fault: Fault,
         when: str) -> int:
    svc.apply_findings([Finding(site, screen, component, fault, True, ms(when), "x")])
    tickets, _ = svc.list()
    return next(t.id for t in tickets if t.component == component and t.site == site)


@pytest.fixture
def fleet(make_service: Callable[..., TicketService], clock: Clock) -> TicketService:
    svc = make_service(CONTRACTS)
    clock.ms = ms("2025-03-01T00:00") - 10 * DAY
    psus = [ComponentRow(f"psu/p{i}", "psu", "LRS-200-5") for i in range(100)]
    svc.record_inventory("acme", "main", cards(50) + psus)
    svc.record_inventory("bravo", "x", cards(50))
    svc.record_inventory("zulu", "y", cards(10))
    fail(svc, "acme", "main", "card/c9", Fault.CARD_OFFLINE, "2025-02-20T00:00")  # before
    fail(svc, "acme", "main", "card/c1", Fault.CARD_OFFLINE, "2025-06-01T00:00")
    misuse = fail(svc, "acme", "main", "card/c2", Fault.CARD_OFFLINE, "2025-09-01T00:00")
    fail(svc, "bravo", "x", "card/c3", Fault.CARD_OFFLINE, "2026-01-10T00:00")
    fail(svc, "zulu", "y", "card/c0", Fault.CARD_OFFLINE, "2026-01-11T00:00")
    psu = fail(svc, "acme", "main", "psu/p5", Fault.PSU_FAILED, "2025-12-01T00:00")
    fail(svc, "acme", "main", "card/c4", Fault.MODULE_FAULT, "2025-12-02T00:00")
    fail(svc, "acme", "main", "psu/p6", Fault.PSU_DEGRADING, "2025-12-03T00:00")
    clock.set("2025-12-05T00:00")
    for ticket_id, misused in ((misuse, True), (psu, False)):
        svc.acknowledge(ticket_id, "desk")
        svc.resolve(ticket_id, "desk", product_fault=not misused,
                    parts=[] if misused else [{"model": "LRS-200-5", "quantity": 1}])
    clock.set(NOW)
    return svc


def by_key(lines: tuple[SpareLine, ...]) -> dict[tuple[str, str], SpareLine]:
    return {(line.kind, line.model): line for line in lines}


def test_a_region_by_hand(fleet: TicketService) -> None:
    plan = fleet.spares(region="north")
    assert (plan.start_ms, plan.end_ms) == (ms("2025-03-01T00:00"), ms(NOW))
    lines = by_key(plan.lines)
    assert set(lines) == {("receiving_card", "A8s"), ("psu", "LRS-200-5"),
                          ("module", "unknown")}
    c = lines[("receiving_card", "A8s")]
    assert (c.installed, c.min_stock, c.failures, c.unit_hours) == (100, 4, 2, 876_000)
    assert c.mtbf_h == 438_000
    assert c.failure_rate_per_unit_year == pytest.approx(0.020014, abs=1e-6)
    assert c.expected_failures == pytest.approx(0.164384, abs=1e-6)
    assert (c.poisson_stock, c.recommended) == (1, 4)
    p = lines[("psu", "LRS-200-5")]
    assert (p.installed, p.min_stock, p.failures, p.mtbf_h, p.parts_used) == (
        100, 3, 1, 876_000, 1)
    assert p.expected_failures == pytest.approx(0.082192, abs=1e-6)
    assert (p.poisson_stock, p.recommended) == (1, 3)
    m = lines[("module", "unknown")]
    assert (m.installed, m.failures, m.mtbf_h, m.recommended) == (0, 1, None, 0)


def test_a_long_lead_time_and_a_higher_confidence(fleet: TicketService) -> None:
    c = by_key(fleet.spares(region="north", lead_time_days=365, confidence=0.99).lines)[
        ("receiving_card", "A8s")]
    assert c.expected_failures == pytest.approx(2.0)
    assert (c.min_stock, c.poisson_stock, c.recommended) == (4, 6, 6)


def test_sites_regions_and_everything(fleet: TicketService) -> None:
    zulu = by_key(fleet.spares(region="zulu").lines)  # no region: the site is its own
    assert list(zulu) == [("receiving_card", "A8s")]
    z = zulu[("receiving_card", "A8s")]
    assert (z.installed, z.min_stock, z.failures, z.mtbf_h) == (10, 1, 1, 87_600)
    assert by_key(fleet.spares(site="zulu").lines) == zulu
    bravo = by_key(fleet.spares(site="bravo").lines)[("receiving_card", "A8s")]
    assert (bravo.installed, bravo.min_stock, bravo.failures) == (50, 3, 1)  # ceil(2.5)
    everything = by_key(fleet.spares().lines)[("receiving_card", "A8s")]
    assert (everything.installed, everything.failures) == (110, 3)
    assert everything.min_stock == 5  # ceil(1.5 + 2.5 + 0.3)
    assert fleet.spares(site="acme", region="zulu").lines == ()


def test_a_shorter_window_counts_fewer_hours_and_failures(fleet: TicketService) -> None:
    c = by_key(fleet.spares(region="north", window_days=90).lines)[("receiving_card", "A8s")]
    assert (c.failures, c.unit_hours) == (1, 100 * 90 * 24)  # only bravo's, in January


def test_bad_parameters_say_what_is_wrong(service: TicketService) -> None:
    for kwargs, says in (({"lead_time_days": -1}, "lead_time_days"),
                         ({"confidence": 1.0}, "confidence"),
                         ({"confidence": 0}, "confidence"),
                         ({"window_days": 0}, "window_days")):
        with pytest.raises(TicketInputError, match=says):
            service.spares(**kwargs)  # type: ignore[arg-type]
