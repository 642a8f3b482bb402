"""Spare parts through the real server (SQLite and PostgreSQL): `parts` on resolve (API and
the desk's form), ticket detail's `parts_used`, GET /api/v1/spares with its defaults from
`[care]` and its query parameters, and the KPI fields of proactive care.

Region north = acme (the contract's region): 40 receiving cards A8s recorded 400 days
before now (the whole 365-day window: 8,760 h each), 2 card_offline tickets in it.
  min stock = ceil(40 x 3 / 100) = ceil(1.2) = 2; unit_hours = 350,400; MTBF = 175,200 h
  lead time 60 days ([care] default here): lambda = 2 / 350,400 x 40 x 1,440 = 0.328767
    P(N <= 0) = e^-l = 0.719824, P(N <= 1) = 0.719824 x 1.328767 = 0.956479 >= 0.95 -> 1
  lead time 365 days, 99 %: lambda = 2 / 350,400 x 40 x 8,760 = 2.0 -> 6 (P(N <= 5) =
    0.983436 < 0.99 <= 0.995466); recommended max(2, 6) = 6
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from api_server import ENGINEER, NOW_MS, TOKENS, VIEWER, serve

from collector.api.app import ApiContext, create_app
from collector.detect.findings import Fault, Finding
from collector.settings import CareSettings
from collector.state import ScreenDirectory
from collector.tickets import TicketService
from collector.tickets.inventory import ComponentRow

DAY = 86_400_000
_DATABASES = iter(range(1, 1_000_000))


@dataclass
class Api:
    client: httpx.Client
    tickets: TicketService
    clock: list[int]
    ids: dict[str, int]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Api]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('spares') / 'tickets.db'}"
    else:
        url = request.getfixturevalue("postgresql").create_database(
            f"spares{os.getpid()}_{next(_DATABASES)}")
    clock = [NOW_MS - 400 * DAY]
    svc = TicketService(url, {"sites": {"acme": {"region": "north"}}}, clock=lambda: clock[0])
    svc.record_inventory("acme", "main", [ComponentRow(f"card/c{i}", "receiving_card", "A8s")
                                          for i in range(40)])
    ids = {}
    for name, days_ago in (("c1", 100), ("c2", 50)):
        clock[0] = NOW_MS - days_ago * DAY
        svc.apply_findings([Finding("acme", "main", f"card/{name}", Fault.CARD_OFFLINE, True,
                                    clock[0], "gone")])
        ids[name] = svc.list()[0][0].id
    clock[0] = NOW_MS
    ctx = ApiContext(tickets=svc, screens=ScreenDirectory(), health=dict,
                     metrics_text=str, tokens=TOKENS,
                     care=CareSettings(spares_lead_time_days=60))
    with serve(create_app(ctx)) as base, httpx.Client(base_url=base, timeout=10) as client:
        yield Api(client, svc, clock, ids)
    svc.close()


def test_parts_on_resolve_are_recorded_with_it(api: Api) -> None:
    ticket_id = api.ids["c1"]
    step = f"/api/v1/tickets/{ticket_id}"
    # A refused resolve (still open: acknowledge first) records no part.
    refused = api.client.post(f"{step}/resolve", headers=ENGINEER,
                              json={"parts": [{"model": "A8s"}]})
    assert refused.status_code == 409
    assert api.client.get(step, headers=VIEWER).json()["parts_used"] == []
    for bad, says in (({"model": "A8s", "quantity": 0}, "body.parts.0.quantity"),
                      ({"model": "  "}, "body.parts.0.model"),
                      ({"model": "A8s", "colour": "red"}, "body.parts.0.colour"),
                      ({"model": "A8s", "component": "Card C1"}, "body.parts.0.component")):
        r = api.client.post(f"{step}/resolve", headers=ENGINEER, json={"parts": [bad]})
        assert r.status_code == 422 and says in r.json()["detail"], (bad, r.text)
    assert api.client.post(f"{step}/acknowledge", headers=ENGINEER).status_code == 200
    done = api.client.post(f"{step}/resolve", headers=ENGINEER, json={
        "root_cause": "receiving card dead", "parts": [
            {"model": "A8s", "quantity": 1},
            {"model": "flat cable 30 cm", "quantity": 2, "component": "link/c1"}]})
    assert done.status_code == 200, done.text
    parts = [(p["component"], p["model"], p["quantity"], p["ts_ms"])
             for p in done.json()["parts_used"]]
    assert parts == [("card/c1", "A8s", 1, NOW_MS), ("link/c1", "flat cable 30 cm", 2, NOW_MS)]
    assert api.client.get(step, headers=VIEWER).json()["parts_used"] == done.json()[
        "parts_used"]
    assert [(p.model, p.quantity) for p in api.tickets.parts_used(site="acme")] == [
        ("A8s", 1), ("flat cable 30 cm", 2)]


def test_the_spares_plan_with_its_defaults_and_parameters(api: Api) -> None:
    assert api.client.get("/api/v1/spares").status_code == 401
    r = api.client.get("/api/v1/spares", params={"region": "north"}, headers=VIEWER)
    assert r.status_code == 200, r.text
    plan = r.json()
    assert (plan["region"], plan["lead_time_days"], plan["confidence"]) == ("north", 60, 0.95)
    assert plan["end_ms"] - plan["start_ms"] == 365 * DAY
    [cards] = [line for line in plan["lines"] if line["kind"] == "receiving_card"]
    assert (cards["model"], cards["installed"], cards["min_stock"], cards["failures"]) == (
        "A8s", 40, 2, 2)
    assert (cards["unit_hours"], cards["mtbf_h"]) == (350_400, 175_200)
    assert cards["expected_failures"] == pytest.approx(0.328767, abs=1e-6)
    assert (cards["poisson_stock"], cards["recommended"]) == (1, 2)
    long = api.client.get("/api/v1/spares", headers=VIEWER, params={
        "region": "north", "lead_time_days": 365, "confidence": 0.99}).json()
    [cards] = [line for line in long["lines"] if line["kind"] == "receiving_card"]
    assert (cards["poisson_stock"], cards["recommended"]) == (6, 6)
    elsewhere = api.client.get("/api/v1/spares", params={"region": "south"}, headers=VIEWER)
    assert elsewhere.json()["lines"] == []
    # one failure only in the last 60 days
    recent = api.client.get("/api/v1/spares", headers=VIEWER,
                            params={"site": "acme", "window_days": 60}).json()
    assert [line["failures"] for line in recent["lines"]] == [1]


@pytest.mark.parametrize(("params", "says"), [
    ({"confidence": 1}, "query.confidence"),
    ({"confidence": 0}, "query.confidence"),
    ({"confidence": "nan"}, "query.confidence"),
    ({"lead_time_days": -1}, "query.lead_time_days"),
    ({"lead_time_days": "inf"}, "query.lead_time_days"),
    ({"window_days": 0.5}, "query.window_days"),
    ({"region": "North Region"}, "query.region"),
    ({"site": "a/b"}, "query.site"),
])
def test_bad_spares_parameters_get_a_422_naming_them(
    api: Api, params: dict[str, str | int | float], says: str
) -> None:
    r = api.client.get("/api/v1/spares", params=params, headers=VIEWER)
    assert r.status_code == 422 and says in r.json()["detail"], r.text


def test_kpis_carry_care_compliance_and_mtbf(api: Api) -> None:
    month = api.client.get("/api/v1/kpis", params={"month": "2025-12"}, headers=VIEWER)
    assert month.status_code == 200, month.text
    k = month.json()
    # c1 (100 days before 2026-03-01) opened on 2025-11-21; December saw no failure.
    assert k["mtbf_h_by_model"] == {"receiving_card": {"A8s": None}}
    assert (k["inspection_compliance_rate"], k["followup_compliance_rate"]) == (None, None)
    assert (k["inspections_due"], k["followups_due"]) == (0, 0)
    jan = api.client.get("/api/v1/kpis", params={"month": "2026-01"}, headers=VIEWER).json()
    assert jan["mtbf_h_by_model"] == {"receiving_card": {"A8s": 40 * 31 * 24}}  # c2: Jan 10


def test_the_desk_resolve_form_records_a_part(api: Api) -> None:
    ticket_id = api.ids["c2"]
    api.tickets.acknowledge(ticket_id, "desk")
    with httpx.Client(base_url=str(api.client.base_url), timeout=10) as browser:
        assert browser.post("/desk/login", data={"token": "engineer-token-01",
                                                 "name": "Dana"}).status_code == 303
        page = browser.get(f"/desk/tickets/{ticket_id}").text
        assert 'name="part_model"' in page and 'name="part_quantity"' in page
        match = re.search(r'name="csrf" value="([^"]+)"', page)
        assert match
        bad = browser.post(f"/desk/tickets/{ticket_id}/resolve", data={
            "csrf": match.group(1), "part_model": "A8s", "part_quantity": "two"})
        assert bad.status_code == 422 and "part quantity must be a whole number" in bad.text
        r = browser.post(f"/desk/tickets/{ticket_id}/resolve", data={
            "csrf": match.group(1), "product_fault": "yes", "part_model": "A8s",
            "part_quantity": "3"})
        assert r.status_code == 303, r.text
        shown = browser.get(f"/desk/tickets/{ticket_id}").text
        assert "Spare parts used" in shown and "<td>A8s</td><td>3</td>" in shown
    assert [(p.model, p.quantity) for p in api.tickets.get(ticket_id).parts_used] == [("A8s", 3)]
