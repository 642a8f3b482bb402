"""What schemathesis found, pinned on SQLite and PostgreSQL: numbers past what SQL takes,
text a database cannot store, dates past the calendar, and phone reports for places
nobody has named. Each gets a 4xx that says what is wrong, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_server import ENGINEER, NOW_MS, TOKENS, VIEWER, Live, serve, snapshot

from collector.api.app import ApiContext, create_app
from collector.state import ScreenDirectory, ScreenState
from collector.tickets import TicketService

INT64 = 2**63 - 1
REPORT = {"site": "acme", "screen": "main", "component": "card/c1", "description": "dark",
          "reporter": "Ann"}


def _detail(r: httpx.Response, status: int = 422) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    detail = r.json()["detail"]
    assert isinstance(detail, str)
    return detail


# -- numbers ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/api/v1/tickets", "/api/v1/maintenance"])
def test_offsets_up_to_int64_page_and_beyond_are_422(api: Live, path: str) -> None:
    r = api.client.get(path, params={"offset": INT64}, headers=VIEWER)
    assert r.status_code == 200, r.text
    page = r.json()
    assert (page["data"] if isinstance(page, dict) else page) == []
    for huge in (INT64 + 1, 18715198114515410353244864512):
        detail = _detail(api.client.get(path, params={"offset": huge}, headers=VIEWER))
        assert detail == f"query.offset: Input should be less than or equal to {INT64}"
    assert "query.limit" in _detail(api.client.get(path, params={"limit": 10**30},
                                                   headers=VIEWER))


@pytest.mark.parametrize("path", [
    "/api/v1/tickets/{}", "/api/v1/tickets/{}/acknowledge", "/api/v1/maintenance/{}",
])
def test_ids_past_the_integer_column_are_422(api: Live, path: str) -> None:
    method = "POST" if path.endswith("acknowledge") else "GET"
    for huge in (2**31, 2**63, 10**40):
        r = api.client.request(method, path.format(huge), headers=ENGINEER)
        assert "less than or equal to 2147483647" in _detail(r)
    r = api.client.request(method, path.format(2**31 - 1), headers=ENGINEER)
    assert r.status_code == 404, r.text


# -- months ----------------------------------------------------------------------------
@pytest.mark.parametrize("month", ["9999-12", "0001-01", "2024-02"])
def test_kpis_for_any_calendar_month(api: Live, month: str) -> None:
    r = api.client.get("/api/v1/kpis", params={"month": month}, headers=VIEWER)
    assert r.status_code == 200, r.text
    assert r.json()["month"] == month


@pytest.mark.parametrize("month", ["0000-01", "2026-00", "10000-01", "２０２６-03", "2026-03\n",
                                   "2026-03\x00", "x" * 65])
def test_kpis_refuse_what_is_no_month(api: Live, month: str) -> None:
    detail = _detail(api.client.get("/api/v1/kpis", params={"month": month}, headers=VIEWER))
    assert "month" in detail


# -- text ------------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/v1/tickets", {**REPORT, "description": "dark\x00block"}, "body.description"),
    ("/api/v1/tickets", {**REPORT, "reporter": "Ann\x00"}, "body.reporter"),
    ("/api/v1/tickets/1/acknowledge", {"note": "\x00"}, "body.note"),
    ("/api/v1/tickets/1/reopen", {"reason": "again\x00"}, "body.reason"),
    ("/api/v1/maintenance", {"site": "acme", "duration_min": 5, "who": "x", "why": "a\x00"},
     "body.why"),
])
def test_nul_in_text_is_422_on_every_database(
    api: Live, path: str, body: dict[str, Any], field: str
) -> None:
    detail = _detail(api.client.post(path, json=body, headers=ENGINEER))
    assert detail == f"{field}: Value error, must not contain NUL (\\u0000) characters"


def test_lone_surrogates_and_non_utf8_bodies_are_422(api: Live) -> None:
    raw = b'{"site": "acme", "screen": "main", "component": "env", "description": "\\ud800",' \
          b' "reporter": "Ann"}'
    json_headers = ENGINEER | {"content-type": "application/json"}
    r = api.client.post("/api/v1/tickets", content=raw, headers=json_headers)
    assert _detail(r) == ("body.description: Input should be a valid string, unable to parse "
                          "raw data as a unicode string")
    r = api.client.post("/api/v1/tickets/1/acknowledge", content=b'{"note": "\xff\xfe"}',
                        headers=json_headers)
    assert _detail(r) == "body: invalid JSON (not UTF-8: byte 10 is 0xff)"


def test_odd_unicode_that_is_valid_is_stored_as_sent(api: Live) -> None:
    text = "Zoë 🔥 \u202e mirrored \u200b zero-width, 中文, \t tab"
    r = api.client.post("/api/v1/tickets", json={**REPORT, "component": "card/uni",
                                                  "description": text}, headers=ENGINEER)
    assert r.status_code == 201, r.text
    assert api.client.get(f"/api/v1/tickets/{r.json()['id']}", headers=VIEWER
                          ).json()["detail"] == text


# -- dates -----------------------------------------------------------------------------
@pytest.mark.parametrize(("start", "end"), [
    ("9999-12-31T23:00:00+00:00", "9999-12-31T23:59:59-05:00"),
    ("0001-01-01T00:00:00+05:00", "0001-01-01T03:00:00+05:00"),
    ("2026-03-01T00:00:00Z", "2027-03-01T00:00:00Z"),
])
def test_maintenance_dates_far_off_are_4xx(api: Live, start: str, end: str) -> None:
    body = {"site": "acme", "start": start, "end": end, "who": "J", "why": "test"}
    r = api.client.post("/api/v1/maintenance", json=body, headers=ENGINEER)
    assert r.status_code in (201, 422), r.text
    if r.status_code == 422:
        assert isinstance(r.json()["detail"], str)


# -- phone reports for places nobody named ---------------------------------------------
@pytest.fixture
def desk(ticket_db_url: str, tmp_path: Path) -> Iterator[tuple[httpx.Client, TicketService]]:
    """A collector that knows site `acme` from a contract naming screen `lobby` only, and
    site `beta` from an agent's status and screen `beta/hall` from its telemetry."""
    contracts = {"sites": {"acme": {"screens": {"lobby": {}}}}}
    svc = TicketService(ticket_db_url, contracts, clock=lambda: NOW_MS)
    screens = ScreenDirectory()
    screens.set_agent_status("beta", "pc9", {"state": "online"})
    screens.update(ScreenState("beta", "hall", "pc9", 1, NOW_MS, snapshot("beta", "hall"),
                               NOW_MS))
    ctx = ApiContext(svc, screens, dict, str, TOKENS)
    with serve(create_app(ctx)) as url, httpx.Client(base_url=url, headers=ENGINEER) as c:
        yield c, svc
    svc.close()


def _report(client: httpx.Client, site: str, screen: str, **extra: Any) -> httpx.Response:
    return client.post("/api/v1/tickets", json={**REPORT, "site": site, "screen": screen,
                                                **extra})


def test_report_for_an_unknown_site_is_refused_unless_new(
    desk: tuple[httpx.Client, TicketService]
) -> None:
    client, svc = desk
    assert _detail(_report(client, "lg-kfvyc", "main")) == (
        "unknown site 'lg-kfvyc': no contract and no agent names it; send "
        '"new_site": true to report a fault on a site not yet known')
    assert svc.list()[1] == 0  # nothing was written
    r = _report(client, "lg-kfvyc", "main", new_site=True)
    assert r.status_code == 201, r.text
    # Once it has a ticket, the place is known: the next report needs no flag.
    assert _report(client, "lg-kfvyc", "main", component="env").status_code == 201
    assert "new_site" not in r.json()  # a request field only


def test_report_for_an_unknown_screen_on_a_known_site(
    desk: tuple[httpx.Client, TicketService]
) -> None:
    client, _ = desk
    assert _report(client, "acme", "lobby").status_code == 201  # named by its contract
    assert _report(client, "beta", "hall").status_code == 201  # sent telemetry
    detail = _detail(_report(client, "acme", "lobb"))
    assert detail == (
        "unknown screen 'lobb' on site 'acme': no contract, agent or ticket names it "
        '(known: lobby); send "new_site": true to report a fault on a screen not yet known')
    # An agent's status names its site, not its screens.
    assert "unknown screen 'foyer' on site 'beta'" in _detail(_report(client, "beta", "foyer"))
    assert _report(client, "beta", "foyer", new_site=True).status_code == 201
    assert _detail(_report(client, "acme", "lobby", new_site="yes please")).startswith(
        "body.new_site: Input should be a valid boolean")


# -- the schema says what is sent ------------------------------------------------------
def test_openapi_documents_the_error_bodies_and_the_links(api: Live) -> None:
    spec = api.client.get("/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    create = spec["paths"]["/api/v1/tickets"]["post"]["responses"]
    for code in ("401", "403", "404", "422"):
        ref = create[code]["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/ErrorPublic", code
    assert set(create["201"]["links"]) == {"getTicket", "acknowledge", "pause"}
    ack = spec["paths"]["/api/v1/tickets/{ticket_id}/acknowledge"]["post"]["responses"]
    assert ack["409"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ConflictPublic")
    assert set(ack["200"]["links"]) == {"getTicket", "dispatch", "resolve", "pause"}
    offset = next(p for p in spec["paths"]["/api/v1/tickets"]["get"]["parameters"]
                  if p["name"] == "offset")
    assert offset["schema"]["maximum"] == INT64
    # What a 422 body looks like is what the schema says it is.
    r = api.client.get("/api/v1/tickets", params={"offset": -1}, headers=VIEWER)
    assert set(r.json()) == set(spec["components"]["schemas"]["ErrorPublic"]["properties"])
