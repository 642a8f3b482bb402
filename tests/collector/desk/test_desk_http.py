"""The desk over plain HTTP (httpx, no browser): auth, cookie, CSRF, roles, errors, XSS."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from desk_helpers import ENGINEER, VIEWER, Desk, login


@pytest.fixture
def client(desk: Desk) -> Iterator[httpx.Client]:
    """A fresh cookie jar per test: nobody is logged in."""
    with httpx.Client(base_url=desk.url, timeout=10, follow_redirects=False) as c:
        yield c


def _manual(desk: Desk, component: str, description: str = "reported by phone") -> int:
    """A phone report on a component the lobby snapshot does not have (its colours stay)."""
    ticket, _ = desk.tickets.create_manual(
        site="acme", screen="lobby", component=component, description=description,
        reporter="front desk",
    )
    return ticket.id


def test_root_redirects_to_the_desk(client: httpx.Client) -> None:
    resp = client.get("/")
    assert resp.status_code == 307
    assert resp.headers["location"] == "/desk"


def test_pages_need_a_session(client: httpx.Client, desk: Desk) -> None:
    resp = client.get(f"/desk/tickets/{desk.ids['dark']}?done=x")
    assert resp.status_code == 303
    assert resp.headers["location"] == (
        f"/desk/login?next=%2Fdesk%2Ftickets%2F{desk.ids['dark']}%3Fdone%3Dx"
    )
    form = client.get("/desk/login")
    assert form.status_code == 200
    assert 'name="token"' in form.text and 'action="/desk/login"' in form.text


def test_login_sets_an_httponly_samesite_cookie_without_the_token(
    client: httpx.Client,
) -> None:
    resp = client.post("/desk/login", data={"token": ENGINEER, "next": "/desk/screens"})
    assert resp.status_code == 303
    assert resp.headers["location"] == "/desk/screens"
    cookie = resp.headers["set-cookie"]
    attrs = {a.strip().split("=")[0].lower() for a in cookie.split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= attrs
    assert "samesite=lax" in cookie.lower() and "path=/desk" in cookie.lower()
    assert "secure" not in attrs  # plain HTTP here
    value = cookie.split(";")[0].split("=", 1)[1]
    assert ENGINEER not in value and len(value) >= 40
    assert client.get("/desk/screens").status_code == 200


def test_login_over_tls_sets_a_secure_cookie(client: httpx.Client) -> None:
    resp = client.post(
        "/desk/login", data={"token": VIEWER}, headers={"X-Forwarded-Proto": "https"}
    )
    assert resp.status_code == 303
    assert "secure" in {a.strip().lower() for a in resp.headers["set-cookie"].split(";")}


def test_a_wrong_token_shows_the_form_again_with_401(client: httpx.Client) -> None:
    resp = client.post("/desk/login", data={"token": "not-a-real-token"})
    assert resp.status_code == 401
    assert "unknown token" in resp.text and 'name="token"' in resp.text
    assert "set-cookie" not in resp.headers
    assert "not-a-real-token" not in resp.text
    empty = client.post("/desk/login", data={"token": ""})
    assert empty.status_code == 401 and "enter your API token" in empty.text


def test_login_refuses_another_origin_and_foreign_redirects(client: httpx.Client) -> None:
    resp = client.post(
        "/desk/login", data={"token": ENGINEER}, headers={"Origin": "https://evil.example"}
    )
    assert resp.status_code == 403 and "set-cookie" not in resp.headers
    for target in ("https://evil.example/desk", "//evil.example/desk", "/api/v1/tickets"):
        resp = client.post("/desk/login", data={"token": ENGINEER, "next": target})
        assert resp.headers["location"] == "/desk", target


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused(
    client: httpx.Client, desk: Desk
) -> None:
    ticket_id = _manual(desk, "card/m1")
    csrf = login(client, ENGINEER)
    for data in ({}, {"csrf": "forged"}, {"csrf": csrf[:-1]}):
        resp = client.post(f"/desk/tickets/{ticket_id}/acknowledge", data=data)
        assert resp.status_code == 403, data
        assert "CSRF" in resp.text
    assert desk.tickets.get(ticket_id).state == "open"
    logout = client.post("/desk/logout", data={})
    assert logout.status_code == 403  # logging someone out is a state change too


def test_a_viewer_sees_pages_but_cannot_take_a_step(client: httpx.Client, desk: Desk) -> None:
    ticket_id = _manual(desk, "card/m2")
    csrf = login(client, VIEWER)
    page = client.get(f"/desk/tickets/{ticket_id}")
    assert page.status_code == 200
    assert "steps need engineer" in page.text
    assert f'action="/desk/tickets/{ticket_id}/' not in page.text
    resp = client.post(f"/desk/tickets/{ticket_id}/acknowledge", data={"csrf": csrf})
    assert resp.status_code == 403
    assert "needs the engineer role; your token has viewer" in resp.text
    assert desk.tickets.get(ticket_id).state == "open"


def test_an_engineer_takes_steps_with_the_principal_as_actor(
    client: httpx.Client, desk: Desk
) -> None:
    ticket_id = _manual(desk, "card/m3")
    csrf = login(client, ENGINEER, name="Dana")
    base = f"/desk/tickets/{ticket_id}"
    resp = client.post(f"{base}/acknowledge", data={"csrf": csrf, "note": "on it"})
    assert resp.status_code == 303 and resp.headers["location"] == f"{base}?done=acknowledge"
    assert "Done: acknowledge" in client.get(resp.headers["location"]).text
    resp = client.post(f"{base}/resolve", data={
        "csrf": csrf, "root_cause": "loose data cable", "resolution": "remote",
    })  # product_fault unchecked: a browser then sends no field at all
    assert resp.status_code == 303
    resolved = desk.tickets.get(ticket_id)
    assert (resolved.state, resolved.resolution, resolved.product_fault) == (
        "resolved", "remote", False
    )
    steps = [
        ("survey", {"score": "5", "comment": "quick"}),
        ("close", {}),
        ("reopen", {"reason": "dark again"}),
        ("pause", {"reason": "no site access"}),
        ("resume", {}),
    ]
    for step, fields in steps:
        resp = client.post(f"{base}/{step}", data={"csrf": csrf, **fields})
        assert resp.status_code == 303, (step, resp.text)
    ticket = desk.tickets.get(ticket_id)
    assert ticket.state == "open" and ticket.reopen_count == 1
    assert ticket.root_cause == "loose data cable"
    assert ticket.survey is not None and ticket.survey.score == 5
    people = [e for e in ticket.history if e.actor == "Dana (engineer)"]
    assert [e.step for e in people] == [
        "acknowledge", "resolve", "survey", "close", "reopen", "pause", "resume",
    ]


def test_a_step_the_state_does_not_allow_is_explained(
    client: httpx.Client, desk: Desk
) -> None:
    ticket_id = _manual(desk, "card/m4")
    csrf = login(client, ENGINEER)
    resp = client.post(f"/desk/tickets/{ticket_id}/arrive", data={"csrf": csrf})
    assert resp.status_code == 409
    assert "cannot arrive a ticket in state &#39;open&#39;" in resp.text
    assert "allowed steps from &#39;open&#39;: acknowledge" in resp.text
    bad = client.post(f"/desk/tickets/{ticket_id}/survey", data={"csrf": csrf, "score": "x"})
    assert bad.status_code == 422 and "score must be an integer 1..5" in bad.text
    blank = client.post(f"/desk/tickets/{ticket_id}/pause", data={"csrf": csrf, "reason": " "})
    assert blank.status_code == 422 and "reason must say" in blank.text
    nope = client.post(f"/desk/tickets/{ticket_id}/explode", data={"csrf": csrf})
    assert nope.status_code == 404


def test_unknown_tickets_and_screens_get_a_404_page(client: httpx.Client) -> None:
    login(client, VIEWER)
    for path in ("/desk/tickets/999999", "/desk/tickets/abc", "/desk/tickets/0",
                 "/desk/screens/acme/nowhere", "/desk/screens/ACME/x", "/desk/static/x.js"):
        resp = client.get(path)
        assert resp.status_code == 404, path
        assert resp.headers["content-type"].startswith("text/html"), path
    assert "ticket 999999 does not exist" in client.get("/desk/tickets/999999").text


def test_ticket_text_is_escaped_and_scripts_are_forbidden(
    client: httpx.Client, desk: Desk
) -> None:
    ticket_id = _manual(desk, "card/m5", '<script>alert("desk")</script><img src=x onerror=1>')
    login(client, VIEWER)
    for path in (f"/desk/tickets/{ticket_id}", "/desk"):
        resp = client.get(path)
        assert resp.status_code == 200
        assert "<script>alert" not in resp.text and "<img src=x" not in resp.text
        assert "&lt;script&gt;alert(&#34;desk&#34;)&lt;/script&gt;" in resp.text
        csp = resp.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert resp.headers["x-frame-options"] == "DENY"
        assert resp.headers["cache-control"] == "no-store"


def test_logout_ends_the_session_on_the_server(client: httpx.Client) -> None:
    csrf = login(client, VIEWER)
    cookie = client.cookies.get("ledwatch_desk")
    resp = client.post("/desk/logout", data={"csrf": csrf})
    assert resp.status_code == 303 and resp.headers["location"] == "/desk/login"
    # Replaying the old cookie does not work: the session is gone, not just forgotten.
    client.cookies.set("ledwatch_desk", cookie or "", path="/desk")
    assert client.get("/desk").status_code == 303


def test_queue_filters_and_order(client: httpx.Client, desk: Desk) -> None:
    login(client, VIEWER)
    page = client.get("/desk").text
    ids = [int(i) for i in re.findall(r'<tr id="ticket-(\d+)"', page)]
    assert ids[0] == desk.ids["controller"]  # overdue: its response deadline has passed
    beta = client.get("/desk", params={"site": "beta"}).text
    assert re.findall(r'<tr id="ticket-(\d+)"', beta) == [str(desk.ids["controller"])]
    p3 = client.get("/desk", params={"priority": "P3", "site": "", "state": ""}).text
    assert f'id="ticket-{desk.ids["sag"]}"' in p3 and f'id="ticket-{desk.ids["dark"]}"' not in p3
    for params in ({"priority": "P9"}, {"state": "closed"}, {"site": "Not An Id"}):
        assert client.get("/desk", params=params).status_code == 422, params


def test_screen_page_colours_each_cabinet(client: httpx.Client, desk: Desk) -> None:
    login(client, VIEWER)
    page = client.get("/desk/screens/acme/lobby").text
    states = dict(re.findall(r'data-card="([^"]+)" data-state="([^"]+)"', page))
    assert states == {
        "p0c0": "ok", "p0c1": "ok", "p0c2": "dark", "p0c3": "ok",
        "p1c0": "warning", "p1c1": "warning", "p1c2": "ok", "p1c3": "dark",
        "p2c0": "unknown", "p2c1": "fault", "p2c2": "ok", "p2c3": "ok",
    }
    listing = client.get("/desk/screens").text
    assert 'href="/desk/screens/acme/lobby"' in listing
    assert 'href="/desk/screens/beta/atrium"' in listing


def test_kpi_page(client: httpx.Client, desk: Desk) -> None:
    login(client, VIEWER)
    page = client.get("/desk/kpis")
    assert page.status_code == 200
    assert 'data-kpi="response_breaches"><th>Response breaches</th><td>1</td>' in page.text
    assert 'data-kpi="onsite_breaches"' in page.text
    bad = client.get("/desk/kpis", params={"month": "2026-13"})
    assert bad.status_code == 422 and "month must be YYYY-MM" in bad.text


def test_static_files_and_odd_forms(client: httpx.Client, desk: Desk) -> None:
    css = client.get("/desk/static/desk.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert client.get("/desk/static/desk.js").headers["content-type"].startswith(
        "text/javascript"
    )
    csrf = login(client, ENGINEER)
    ticket = f"/desk/tickets/{desk.ids['sag']}/resume"
    as_json = client.post(ticket, json={"csrf": csrf})
    assert as_json.status_code == 415
    huge = client.post(ticket, data={"csrf": csrf, "note": "x" * 20_000})
    assert huge.status_code == 413
