"""The REST API through the real uvicorn server and httpx (auth, validation, lifecycle)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_server import ADMIN, ENGINEER, NOW_MS, TOKENS, VIEWER, Live, serve

from collector.api.app import ApiContext, create_app
from collector.detect.findings import Fault, Finding
from collector.state import ScreenDirectory
from collector.tickets import TicketService
from ledwatch.errors import ConfigError

MIN = 60_000


def report(api: Live, component: str, **extra: Any) -> httpx.Response:
    body = {
        "site": "acme",
        "screen": "main",
        "component": component,
        "description": "customer sees a dark block",
        "reporter": "Ann (hotel reception)",
        **extra,
    }
    return api.client.post("/api/v1/tickets", json=body, headers=ENGINEER)


# -- docs and health -------------------------------------------------------------------
def test_openapi_served(api: Live) -> None:
    docs = api.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = api.client.get("/openapi.json").json()
    for path in (
        "/api/v1/health",
        "/api/v1/screens",
        "/api/v1/screens/{site}/{screen}",
        "/api/v1/tickets",
        "/api/v1/tickets/{ticket_id}",
        "/api/v1/tickets/{ticket_id}/acknowledge",
        "/api/v1/tickets/{ticket_id}/dispatch",
        "/api/v1/tickets/{ticket_id}/arrive",
        "/api/v1/tickets/{ticket_id}/resolve",
        "/api/v1/tickets/{ticket_id}/close",
        "/api/v1/tickets/{ticket_id}/reopen",
        "/api/v1/tickets/{ticket_id}/survey",
        "/api/v1/kpis",
    ):
        assert path in spec["paths"], path
    assert "TicketCreate" in spec["components"]["schemas"]


def test_health_ok_then_503_naming_the_part(api: Live) -> None:
    r = api.client.get("/api/v1/health")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok" and body["failed"] == []
    assert body["parts"]["database"] == {"ok": True} and body["parts"]["uptime_s"] == 12
    api.parts["influx"] = {"ok": False, "error": "connection refused"}
    try:
        r = api.client.get("/api/v1/health")
        assert r.status_code == 503
        assert r.json()["failed"] == ["influx"]
        assert r.json()["parts"]["influx"]["error"] == "connection refused"
    finally:
        api.parts["influx"] = {"ok": True}


def test_health_503_when_the_database_is_gone(tmp_path: Path) -> None:
    db = tmp_path / "tickets.db"
    svc = TicketService(f"sqlite:///{db}")
    ctx = ApiContext(svc, ScreenDirectory(), lambda: {"broker": True}, lambda: "", TOKENS)
    with serve(create_app(ctx)) as url:
        assert httpx.get(f"{url}/api/v1/health").status_code == 200
        svc.close()
        for leftover in tmp_path.iterdir():
            leftover.unlink()
        os.mkdir(db)  # a directory where the database file was: nothing can open it
        r = httpx.get(f"{url}/api/v1/health")
        assert r.status_code == 503
        assert r.json()["failed"] == ["database"]
        assert "unable to open database" in r.json()["parts"]["database"]["error"]


def test_health_503_when_the_probe_itself_fails(tmp_path: Path) -> None:
    def probe() -> dict[str, Any]:
        raise RuntimeError("probe bug")

    svc = TicketService(f"sqlite:///{tmp_path / 't.db'}")
    ctx = ApiContext(svc, ScreenDirectory(), probe, lambda: "", TOKENS)
    with serve(create_app(ctx)) as url:
        r = httpx.get(f"{url}/api/v1/health")
    svc.close()
    assert r.status_code == 503 and r.json()["failed"] == ["collector"]


def test_metrics_are_prometheus_text_without_auth(api: Live) -> None:
    r = api.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "ledwatch_up 1" in r.text


def test_bad_token_roles_refused_at_start(tmp_path: Path) -> None:
    svc = TicketService(f"sqlite:///{tmp_path / 't.db'}")
    ctx = ApiContext(svc, ScreenDirectory(), dict, str, {"some-long-token": "root"})
    with pytest.raises(ConfigError, match=r"api.tokens\[0\]: role 'root'"):
        create_app(ctx)
    svc.close()


# -- auth ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-token-xyz"}, 401),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
        ({"Authorization": "Bearer"}, 401),
        (VIEWER, 200),
        (ENGINEER, 200),
        (ADMIN, 200),
    ],
)
def test_reads_need_a_known_token(api: Live, headers: dict[str, str], status: int) -> None:
    for path in ("/api/v1/tickets", "/api/v1/screens", "/api/v1/kpis?month=2026-03"):
        r = api.client.get(path, headers=headers)
        assert r.status_code == status, (path, r.text)
        if status == 401:
            assert r.headers["www-authenticate"] == "Bearer"
            assert r.json()["detail"] in {
                "unknown token",
                "missing bearer token: send 'Authorization: Bearer <token>'",
            }


def test_viewer_cannot_change_tickets(api: Live) -> None:
    tid = report(api, "card/auth").json()["id"]
    r = api.client.post(f"/api/v1/tickets/{tid}/acknowledge", headers=VIEWER)
    assert r.status_code == 403
    assert r.json() == {"detail": "this needs the engineer role; your token has viewer"}
    body = {
        "site": "acme",
        "screen": "main",
        "component": "env",
        "description": "x",
        "reporter": "y",
    }
    assert api.client.post("/api/v1/tickets", json=body, headers=VIEWER).status_code == 403
    assert api.client.post(f"/api/v1/tickets/{tid}/acknowledge", headers=ADMIN).status_code == 200


# -- validation and 404 ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "body", "needle"),
    [
        ("GET", "/api/v1/tickets?state=broken", None, "query.state: Input should be 'open'"),
        ("GET", "/api/v1/tickets?priority=P9", None, "query.priority"),
        ("GET", "/api/v1/tickets?site=ACME!", None, "query.site: String should match pattern"),
        ("GET", "/api/v1/tickets?limit=0", None, "query.limit: Input should be greater than"),
        ("GET", "/api/v1/tickets?offset=-1", None, "query.offset"),
        ("GET", "/api/v1/tickets/abc", None, "path.ticket_id: Input should be a valid integer"),
        ("GET", "/api/v1/kpis?month=2026-13", None, "month must be YYYY-MM (e.g. 2026-03)"),
        ("GET", "/api/v1/kpis?month=March", None, "month must be YYYY-MM"),
        ("GET", "/api/v1/kpis", None, "query.month: Field required"),
        ("GET", "/api/v1/screens/acme/Main%20Hall", None, "path.screen: String should match"),
        ("POST", "/api/v1/tickets", {"site": "acme"}, "body.screen: Field required"),
        (
            "POST",
            "/api/v1/tickets",
            {
                "site": "a/b",
                "screen": "main",
                "component": "env",
                "description": "x",
                "reporter": "y",
            },
            "body.site: String should match pattern",
        ),
        (
            "POST",
            "/api/v1/tickets",
            {
                "site": "acme",
                "screen": "main",
                "component": "env",
                "description": "x",
                "reporter": "y",
                "colour": "red",
            },
            "body.colour: Extra inputs are not permitted",
        ),
        ("POST", "/api/v1/tickets/1/dispatch", {}, "body.engineer: Field required"),
        ("POST", "/api/v1/tickets/1/dispatch", {"engineer": "  "}, "body.engineer"),
        ("POST", "/api/v1/tickets/1/survey", {"score": 9}, "body.score: Input should be less"),
        ("POST", "/api/v1/tickets/1/survey", {"score": "great"}, "body.score"),
        ("POST", "/api/v1/tickets/1/reopen", {}, "body.reason: Field required"),
        ("POST", "/api/v1/tickets/1/resolve", {"resolution": "magic"}, "body.resolution"),
        ("POST", "/api/v1/tickets/1/dispatch", b"{not json", "body: invalid JSON"),
    ],
)
def test_bad_input_gets_422_saying_what_is_wrong(
    api: Live, method: str, path: str, body: Any, needle: str
) -> None:
    if isinstance(body, bytes):
        r = api.client.request(
            method, path, content=body, headers=ENGINEER | {"content-type": "application/json"}
        )
    else:
        r = api.client.request(method, path, json=body, headers=ENGINEER)
    assert r.status_code == 422, r.text
    assert isinstance(r.json()["detail"], str)
    assert needle in r.json()["detail"]


def test_unknowns_are_404(api: Live) -> None:
    r = api.client.get("/api/v1/tickets/999999", headers=VIEWER)
    assert r.status_code == 404 and r.json() == {"detail": "ticket 999999 does not exist"}
    r = api.client.post("/api/v1/tickets/999999/acknowledge", headers=ENGINEER)
    assert r.status_code == 404
    r = api.client.get("/api/v1/screens/acme/nowhere", headers=VIEWER)
    assert r.status_code == 404
    assert "acme/nowhere is unknown" in r.json()["detail"]
    assert api.client.get("/api/v1/nothing", headers=VIEWER).status_code == 404


def test_no_bad_input_gives_a_500(api: Live) -> None:
    junk = ["", "0", "-1", "9" * 30, "%00", "null", "'; drop table tickets;--"]
    for value in junk:
        for path in (
            f"/api/v1/tickets/{value}",
            f"/api/v1/tickets/{value}/close",
            f"/api/v1/kpis?month={value}",
            f"/api/v1/tickets?state={value}&limit={value}",
        ):
            method = "POST" if path.endswith("/close") else "GET"
            r = api.client.request(method, path, headers=ENGINEER, json={"note": value})
            assert r.status_code < 500, (path, r.status_code, r.text)


# -- the lifecycle over HTTP -----------------------------------------------------------
def test_phone_report_through_every_step(api: Live) -> None:
    r = report(api, "card/c7", priority="P2")
    assert r.status_code == 201, r.text
    t = r.json()
    tid = t["id"]
    assert r.headers["location"] == f"/api/v1/tickets/{tid}"
    assert (t["state"], t["source"], t["priority"], t["fault"]) == (
        "open",
        "manual",
        "P2",
        "manual",
    )
    assert t["in_warranty"] is True  # accepted 2026-01-10, 12 months
    assert t["allowed_steps"] == ["acknowledge", "pause"]
    dup = report(api, "card/c7")
    assert dup.status_code == 200 and dup.json()["id"] == tid

    r = api.client.post(f"/api/v1/tickets/{tid}/arrive", headers=ENGINEER)
    assert r.status_code == 409
    assert r.json()["detail"] == (
        "cannot arrive a ticket in state 'open'; allowed steps from 'open': acknowledge, pause"
    )
    assert r.json()["allowed_steps"] == ["acknowledge", "pause"]

    def step(name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        resp = api.client.post(f"/api/v1/tickets/{tid}/{name}", json=body, headers=ENGINEER)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    assert step("acknowledge", {"by": "Dana", "note": "called back"})["state"] == "acknowledged"
    assert step("dispatch", {"engineer": "Eve"})["engineer"] == "Eve"
    api.clock[0] += 90 * MIN
    assert step("arrive")["state"] == "on_site"
    t = step("resolve", {"root_cause": "ribbon cable", "by": "Eve"})
    assert (t["state"], t["resolution"], t["root_cause"]) == ("resolved", "onsite", "ribbon cable")
    assert step("close")["state"] == "closed"
    t = step("survey", {"score": 4, "comment": "good"})
    assert t["survey"]["satisfied"] is True and t["state"] == "closed"
    r = api.client.post(f"/api/v1/tickets/{tid}/close", headers=ENGINEER)
    assert r.status_code == 409 and r.json()["allowed_steps"] == ["reopen", "survey"]
    t = step("reopen", {"reason": "dark block is back"})
    assert t["state"] == "open" and t["reopen_count"] == 1

    t = api.client.get(f"/api/v1/tickets/{tid}", headers=VIEWER).json()
    steps = [(e["step"], e["to_state"]) for e in t["history"]]
    assert steps == [
        ("open", "open"),
        ("note", "open"),
        ("acknowledge", "acknowledged"),
        ("dispatch", "dispatched"),
        ("arrive", "on_site"),
        ("resolve", "resolved"),
        ("close", "closed"),
        ("survey", "closed"),
        ("reopen", "open"),
    ]
    assert t["history"][2]["actor"] == "Dana (engineer)"
    assert t["history"][3]["actor"].startswith("engineer:")  # token id, not the token
    assert "engineer-token" not in str(t)


def test_remote_fix_and_verifying_from_findings(api: Live) -> None:
    ts = api.clock[0]
    lost = Finding("acme", "side", "controller", Fault.CONTROLLER_LOST, True, ts)
    tid = api.tickets.apply_findings([lost])[0].ticket_id
    r = api.client.get("/api/v1/tickets?site=acme&screen=side&priority=P1", headers=VIEWER)
    assert r.status_code == 200
    assert [t["id"] for t in r.json()["data"]] == [tid] and r.json()["count"] == 1
    cleared = Finding("acme", "side", "controller", Fault.CONTROLLER_LOST, False, ts + MIN)
    api.tickets.apply_findings([cleared])
    r = api.client.get("/api/v1/tickets?state=verifying", headers=VIEWER).json()
    assert tid in [t["id"] for t in r["data"]]
    r = api.client.post(f"/api/v1/tickets/{tid}/resolve", json={}, headers=ENGINEER)
    assert r.status_code == 200 and r.json()["resolution"] == "remote"


def test_listing_pages(api: Live) -> None:
    for n in range(3):
        report(api, f"psu/page{n}")
    first = api.client.get("/api/v1/tickets?limit=2", headers=VIEWER).json()
    second = api.client.get("/api/v1/tickets?limit=2&offset=2", headers=VIEWER).json()
    assert len(first["data"]) == 2 and first["count"] == second["count"] >= 3
    assert {t["id"] for t in first["data"]}.isdisjoint({t["id"] for t in second["data"]})


# -- screens and KPIs ------------------------------------------------------------------
def test_screens_with_open_tickets_and_warranty(api: Live) -> None:
    report(api, "env", description="door left open")
    screens = api.client.get("/api/v1/screens", headers=VIEWER).json()
    assert [(s["site"], s["screen"]) for s in screens] == [("acme", "main"), ("acme", "side")]
    main = next(s for s in screens if s["screen"] == "main")
    r = api.client.get("/api/v1/screens/acme/main", headers=VIEWER)
    assert r.status_code == 200
    detail = r.json()
    assert detail["open_tickets"] == main["open_tickets"] == len(detail["tickets"]) >= 1
    assert all(t["state"] != "closed" for t in detail["tickets"])
    assert detail["snapshot"]["controller"]["temp_c"] == 41.5
    assert detail["warranty"]["in_warranty"] is True
    assert api.client.get("/api/v1/screens/acme/side", headers=VIEWER).json()["warranty"] is None


def test_kpis_endpoint(api: Live) -> None:
    r = api.client.get("/api/v1/kpis?month=2026-03", headers=VIEWER)
    assert r.status_code == 200, r.text
    k = r.json()
    assert k["month"] == "2026-03" and k["screens"] >= 2
    assert k["tickets_opened"] >= 1
    empty = api.client.get("/api/v1/kpis?month=2025-01&site=acme", headers=VIEWER).json()
    assert empty["satisfaction_rate"] is None and empty["mtta_min"] is None
    assert empty["cycle_compliance_rate"] is None and empty["repeat_service_rate"] is None
    assert NOW_MS > 0
