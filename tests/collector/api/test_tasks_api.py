"""Proactive-care tasks through the real server (SQLite and PostgreSQL): list with its
filters and paging, one task, the done step (roles, 404, 409), bad input as 422.

acme/main accepted 2025-11-20; tasks scheduled at 2026-01-01 and again at 2026-03-01:
follow-ups 2026-01-20, 03-20; inspections 2026-02-20, 05-20 (now = 2026-03-01).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from api_server import ENGINEER, NOW_MS, TOKENS, VIEWER, serve

from collector.api.app import ApiContext, create_app
from collector.state import ScreenDirectory
from collector.tickets import TicketService

DAY = 86_400_000
_DATABASES = iter(range(1, 1_000_000))


def day_ms(text: str) -> int:
    return int(datetime.fromisoformat(f"{text}T00:00+00:00").timestamp() * 1000)


JAN_20, FEB_20, MAR_20, MAY_20 = (day_ms(d) for d in ("2026-01-20", "2026-02-20",
                                                       "2026-03-20", "2026-05-20"))


@dataclass
class Api:
    client: httpx.Client
    tickets: TicketService
    clock: list[int]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Api]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('tasks') / 'tickets.db'}"
    else:
        url = request.getfixturevalue("postgresql").create_database(
            f"tasks{os.getpid()}_{next(_DATABASES)}")
    clock = [NOW_MS - 59 * DAY]  # 2026-01-01
    contracts = {"sites": {"acme": {"screens": {"main": {"acceptance_date": "2025-11-20"}}}}}
    svc = TicketService(url, contracts, clock=lambda: clock[0])
    svc.schedule_tasks()
    clock[0] = NOW_MS
    svc.schedule_tasks()
    ctx = ApiContext(tickets=svc, screens=ScreenDirectory(), health=dict,
                     metrics_text=str, tokens=TOKENS)
    with serve(create_app(ctx)) as base, httpx.Client(base_url=base, timeout=10) as client:
        yield Api(client, svc, clock)
    svc.close()


def _list(api: Api, **params: str | int) -> Any:
    r = api.client.get("/api/v1/tasks", params=params, headers=VIEWER)
    assert r.status_code == 200, r.text
    return r.json()


def test_listing_filters_and_pages(api: Api) -> None:
    assert api.client.get("/api/v1/tasks").status_code == 401
    everything = _list(api)
    rows = everything["data"]
    assert everything["count"] == 4
    assert [(t["kind"], t["due_ms"], t["state"]) for t in rows] == [
        ("follow_up", JAN_20, "overdue"), ("inspection", FEB_20, "overdue"),
        ("follow_up", MAR_20, "open"), ("inspection", MAY_20, "open")]
    assert rows[0]["on_time"] is None and rows[0]["done_by"] is None
    assert _list(api, kind="inspection")["count"] == 2
    assert [t["due_ms"] for t in _list(api, due_before="2026-03-01")["data"]] == [
        JAN_20, FEB_20]
    page = _list(api, limit=1, offset=2)
    assert page["count"] == 4 and [t["due_ms"] for t in page["data"]] == [MAR_20]
    assert _list(api, site="other")["count"] == 0
    assert _list(api, screen="main", open="true")["count"] == 4


def test_doing_a_task(api: Api) -> None:
    [first] = [t for t in _list(api, kind="follow_up")["data"]
               if t["due_ms"] == JAN_20]
    path = f"/api/v1/tasks/{first['id']}/done"
    assert api.client.post(path, headers=VIEWER).status_code == 403
    r = api.client.post(path, headers=ENGINEER, json={"by": "Ann", "note": "called Mr. Li"})
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["state"], done["done_ms"], done["done_by"], done["note"], done["on_time"]) == (
        "done", NOW_MS, "Ann (engineer)", "called Mr. Li", False)
    again = api.client.post(path, headers=ENGINEER)
    assert again.status_code == 409 and "already done by Ann (engineer)" in again.json()["detail"]
    got = api.client.get(f"/api/v1/tasks/{first['id']}", headers=VIEWER).json()
    assert got == done
    assert _list(api, open="true")["count"] == 3
    missing = api.client.post("/api/v1/tasks/999999/done", headers=ENGINEER)
    assert missing.status_code == 404 and missing.json()["detail"] == "task 999999 does not exist"
    assert api.client.get("/api/v1/tasks/999999", headers=VIEWER).status_code == 404


@pytest.mark.parametrize(("path", "params", "says"), [
    ("/api/v1/tasks", {"kind": "visit"}, "query.kind"),
    ("/api/v1/tasks", {"due_before": "2026-13-01"}, "query.due_before"),
    ("/api/v1/tasks", {"due_before": "soon"}, "query.due_before"),
    ("/api/v1/tasks", {"offset": str(2**64)}, "query.offset"),
    ("/api/v1/tasks", {"limit": 0}, "query.limit"),
    ("/api/v1/tasks", {"site": "Not An Id"}, "query.site"),
    ("/api/v1/tasks/0", {}, "path.task_id"),
    (f"/api/v1/tasks/{2**40}", {}, "path.task_id"),
])
def test_bad_input_gets_a_422_naming_it(
    api: Api, path: str, params: dict[str, str | int], says: str
) -> None:
    r = api.client.get(path, params=params, headers=VIEWER)
    assert r.status_code == 422 and says in r.json()["detail"], r.text


def test_done_bodies_are_checked(api: Api) -> None:
    task_id = _list(api, open="true")["data"][0]["id"]
    path = f"/api/v1/tasks/{task_id}/done"
    for body, says in (({"note": "x" * 4001}, "body.note"), ({"by": ""}, "body.by"),
                       ({"when": "now"}, "body.when"), ({"note": "a\x00b"}, "body.note")):
        r = api.client.post(path, headers=ENGINEER, json=body)
        assert r.status_code == 422 and says in r.json()["detail"], (body, r.text)
    assert api.tickets.get_task(task_id).done_ms is None
    spec = api.client.get("/openapi.json").json()
    assert {"/api/v1/tasks", "/api/v1/tasks/{task_id}", "/api/v1/tasks/{task_id}/done",
            "/api/v1/spares"} <= set(spec["paths"])
