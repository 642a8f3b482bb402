"""GET /api/v1/reports/inspection/{site}/{screen} on the real uvicorn, over the emulated run."""

from __future__ import annotations

from collections.abc import Iterator

import emulated
import httpx
import pytest
from api_server import TOKENS, VIEWER, serve, snapshot
from emulated import Run

from collector.api.app import ApiContext, create_app
from collector.reports.source import ReportSource, V1Query
from collector.state import ScreenDirectory, ScreenState

PATH = "/api/v1/reports/inspection"


@pytest.fixture(scope="module")
def api(run: Run) -> Iterator[tuple[httpx.Client, ApiContext]]:
    ctx = ApiContext(
        tickets=run.tickets,
        screens=ScreenDirectory(),
        health=lambda: {},
        metrics_text=lambda: "",
        tokens=TOKENS,
        reports=run.source,
    )
    with serve(create_app(ctx)) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client, ctx


def test_html_by_default_pdf_on_request(api: tuple[httpx.Client, ApiContext], run: Run
                                        ) -> None:
    client, _ = api
    resp = client.get(f"{PATH}/{run.site}/{run.screen}", params={"quarter": "2026-Q4"},
                      headers=VIEWER)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/html")
    assert emulated.DRIFTING_PSU in resp.text and "2027-01-15" in resp.text

    for extra, headers in (({"format": "pdf"}, VIEWER),
                           ({}, {**VIEWER, "Accept": "application/pdf"})):
        resp = client.get(f"{PATH}/{run.site}/{run.screen}",
                          params={"quarter": "2026-Q4", **extra}, headers=headers)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "application/pdf"
        assert resp.content.startswith(b"%PDF-")
        assert 'filename="inspection-rpt-wall-2026-Q4.pdf"' in resp.headers["content-disposition"]


@pytest.mark.parametrize(
    ("path", "params", "status", "detail"),
    [
        ("rpt/wall", {"quarter": "2026-Q5"}, 422, "quarter must be YYYY-Qn (e.g. 2026-Q4)"),
        ("rpt/wall", {"quarter": "2027-Q1"}, 422, "quarter 2027-Q1 has not started yet"),
        ("rpt/wall", {}, 422, "query.quarter: Field required"),
        ("rpt/wall", {"quarter": "2026-Q4", "format": "doc"}, 422, "query.format"),
        ("rpt/nosuch", {"quarter": "2026-Q4"}, 404, "screen rpt/nosuch is unknown"),
        ("rpt/Bad Id", {"quarter": "2026-Q4"}, 422, "path.screen"),
    ],
)
def test_bad_requests_say_what_is_wrong(api: tuple[httpx.Client, ApiContext], path: str,
                                        params: dict[str, str], status: int, detail: str
                                        ) -> None:
    client, _ = api
    resp = client.get(f"{PATH}/{path}", params=params, headers=VIEWER)
    assert resp.status_code == status, resp.text
    assert detail in resp.json()["detail"]


def test_needs_a_token(api: tuple[httpx.Client, ApiContext]) -> None:
    client, _ = api
    assert client.get(f"{PATH}/rpt/wall", params={"quarter": "2026-Q4"}).status_code == 401


def test_live_screen_is_known_and_influx_down_is_503(
    api: tuple[httpx.Client, ApiContext], run: Run, free_port: object
) -> None:
    client, ctx = api
    port = free_port()  # type: ignore[operator]
    ctx.reports = ReportSource(V1Query(f"http://127.0.0.1:{port}", "ledwatch", timeout_s=2))
    try:
        resp = client.get(f"{PATH}/{run.site}/{run.screen}", params={"quarter": "2026-Q4"},
                          headers=VIEWER)
        assert resp.status_code == 503
        assert f"InfluxDB at http://127.0.0.1:{port} is unreachable" in resp.json()["detail"]
    finally:
        ctx.reports = run.source
    ctx.reports = None  # no history source: a report without charts, still 200
    try:
        resp = client.get(f"{PATH}/{run.site}/{run.screen}", params={"quarter": "2026-Q4"},
                          headers=VIEWER)
        assert resp.status_code == 200 and "<svg" not in resp.text
        assert "no InfluxDB history source configured" in resp.text
        # A screen only the live directory knows (no ticket, no contract) has a report.
        ctx.screens.update(ScreenState("rpt", "side", "pc1", 1, emulated.NOW,
                                       snapshot("rpt", "side"), emulated.NOW))
        resp = client.get(f"{PATH}/rpt/side", params={"quarter": "2026-Q4"}, headers=VIEWER)
        assert resp.status_code == 200 and "No ticket was opened" in resp.text
    finally:
        ctx.reports = run.source
