"""Maintenance windows through the real server: create, list, read with what they
suppressed, end early; roles and bad input; and root-cause tickets' new fields."""

from __future__ import annotations

from api_server import ENGINEER, NOW_MS, VIEWER, Live

from collector.detect.findings import Fault, Finding

MIN = 60_000


def test_a_window_suppresses_and_shows_what_it_held(api: Live) -> None:
    api.clock[0] = NOW_MS
    body = {"site": "acme", "screen": "side", "duration_min": 120, "who": "J. Smith",
            "why": "replacing a receiving card"}
    r = api.client.post("/api/v1/maintenance", json=body, headers=ENGINEER)
    assert r.status_code == 201, r.text
    window = r.json()
    assert (window["start_ms"], window["end_ms"]) == (NOW_MS, NOW_MS + 120 * MIN)
    assert window["created_by"].startswith("engineer") and window["suppressed"] == []
    api.tickets.apply_findings([Finding("acme", "side", "card/c4", Fault.CARD_OFFLINE, True,
                                        NOW_MS + 5 * MIN, "online false")])
    tickets = api.client.get("/api/v1/tickets", params={"screen": "side"}, headers=VIEWER)
    assert tickets.json()["count"] == 0
    got = api.client.get(f"/api/v1/maintenance/{window['id']}", headers=VIEWER).json()
    assert [(s["component"], s["fault"], s["ticket_id"]) for s in got["suppressed"]] == [
        ("card/c4", "card_offline", None)]
    active = api.client.get("/api/v1/maintenance", params={"active": "true"}, headers=VIEWER)
    assert [w["id"] for w in active.json()] == [window["id"]]
    # the engineer leaves early with the card still dark: it becomes a ticket now
    api.clock[0] = NOW_MS + 30 * MIN
    ended = api.client.delete(f"/api/v1/maintenance/{window['id']}", headers=ENGINEER)
    assert ended.status_code == 200 and ended.json()["ended_early_ms"] == NOW_MS + 30 * MIN
    [held] = ended.json()["suppressed"]
    assert held["ticket_id"] is not None
    t = api.client.get(f"/api/v1/tickets/{held['ticket_id']}", headers=VIEWER).json()
    assert (t["component"], t["opened_ms"]) == ("card/c4", NOW_MS + 30 * MIN)
    assert [h["step"] for h in t["history"]] == ["open", "unsuppress"]


def test_roles_and_bad_input(api: Live) -> None:
    good = {"site": "acme", "duration_min": 10, "who": "x", "why": "y"}
    assert api.client.post("/api/v1/maintenance", json=good).status_code == 401
    assert api.client.post("/api/v1/maintenance", json=good, headers=VIEWER).status_code == 403
    for bad, says in [
        ({**good, "site": "Not An Id"}, "site"),
        ({**good, "duration_min": None}, "give exactly one of end or duration_min"),
        ({**good, "end": "2026-03-01T01:00:00Z"}, "give exactly one of end or duration_min"),
        ({**good, "component": "card/c1"}, "a component needs its screen"),
        ({**good, "duration_min": 0}, "duration_min"),
        ({**good, "start": "2026-03-01T10:00:00"}, "start"),  # no time zone
        ({k: v for k, v in good.items() if k != "why"}, "why"),
    ]:
        r = api.client.post("/api/v1/maintenance", json=bad, headers=ENGINEER)
        assert r.status_code == 422 and says in r.json()["detail"], (bad, r.text)
    assert api.client.get("/api/v1/maintenance/999999", headers=VIEWER).status_code == 404
    assert api.client.delete("/api/v1/maintenance/999999", headers=ENGINEER).status_code == 404
    assert api.client.get("/api/v1/maintenance/0", headers=VIEWER).status_code == 422


def test_root_tickets_show_effects_evidence_and_prediction(api: Live) -> None:
    root = Finding("acme", "main", "psu/c9-psu1", Fault.PSU_DEGRADING, True, NOW_MS,
                   "vout 4.82 V", predicted_failure_ms=NOW_MS + 3_600_000,
                   evidence={"drop_v": 0.12})
    effect = Finding("acme", "main", "card/c9", Fault.CARD_OFFLINE, True, NOW_MS + MIN,
                     "online false", root="acme/main/psu/c9-psu1/psu_failed")
    api.tickets.apply_findings([root, Finding("acme", "main", "psu/c9-psu1", Fault.PSU_FAILED,
                                              True, NOW_MS + MIN, "dark"), effect])
    listed = api.client.get("/api/v1/tickets", params={"screen": "main"}, headers=VIEWER)
    [t] = [x for x in listed.json()["data"] if x["component"] == "psu/c9-psu1"]
    assert (t["fault"], t["priority"], t["flapping"]) == ("psu_failed", "P2", False)
    assert t["predicted_failure_ms"] == NOW_MS + 3_600_000
    detail = api.client.get(f"/api/v1/tickets/{t['id']}", headers=VIEWER).json()
    assert detail["evidence"] == {"drop_v": 0.12}
    assert [(e["component"], e["fault"], e["active"]) for e in detail["effects"]] == [
        ("card/c9", "card_offline", True)]
