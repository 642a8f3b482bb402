"""The report's figures from an emulated quarter: real InfluxDB 1.x, real ticket database."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import emulated
import httpx
import pytest
from emulated import Run

from collector.reports import HistoryUnavailable, Quarter, UnknownScreen
from collector.reports.build import build_report
from collector.reports.errors import ReportInputError
from collector.reports.model import Status
from collector.reports.render import render_html, render_pdf
from collector.reports.source import ReportSource, V1Query
from collector.settings import settings_from_dict
from collector.tickets import TicketService

MEASURED_MIN = (emulated.NOW - Quarter(2026, 4).start_ms) / 60_000
DARK_MIN = 30 + 45  # the October signal loss and the November controller loss


def text_of(html: str) -> str:
    """The visible text (tags out, whitespace folded), so figures are looked for as read."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026-Q4", "2026-10-01", "2027-01-01"),
        ("2026-Q1", "2026-01-01", "2026-04-01"),
        (" 2027-Q2 ", "2027-04-01", "2027-07-01"),
    ],
)
def test_quarter_bounds(text: str, start: str, end: str) -> None:
    q = Quarter.parse(text)
    assert (q.start_ms, q.end_ms) == (emulated.ms(f"{start}T00:00"), emulated.ms(f"{end}T00:00"))


@pytest.mark.parametrize("bad", ["2026-Q5", "2026-Q0", "2026Q4", "26-Q4", "2026-q4", "", "0001-Q1"])
def test_quarter_refuses_what_is_not_yyyy_qn(bad: str) -> None:
    with pytest.raises(ReportInputError, match=r"quarter must be YYYY-Qn \(e\.g\. 2026-Q4\)"):
        Quarter.parse(bad)


def test_quarter_arithmetic() -> None:
    assert Quarter.previous(emulated.ms("2027-01-01T00:05")) == Quarter(2026, 4)
    assert Quarter.previous(emulated.ms("2026-12-31T23:59")) == Quarter(2026, 3)
    assert Quarter(2026, 1).shifted(-1) == Quarter(2025, 4)
    assert Quarter(2026, 4).months == ("2026-10", "2026-11", "2026-12")


def test_the_quarter_in_figures(run: Run) -> None:
    r = build_report(run.tickets, run.source, run.site, run.screen, "2026-Q4")

    assert r.availability_screen == pytest.approx(1 - DARK_MIN / MEASURED_MIN)
    # One screen at the site: the KPI's site figure is the screen's own.
    assert r.availability_site == pytest.approx(r.availability_screen)
    assert [m.screen_downtime_min for m in r.months] == [30, 45, 0]

    faults = [i.ticket.fault for i in r.incidents]
    assert faults == ["signal_lost", "running_hot", "module_fault", "psu_degrading",
                      "controller_lost"]
    by_fault = {i.ticket.fault: i for i in r.incidents}
    assert by_fault["signal_lost"].response.status is Status.BREACHED  # 25 min of 20
    assert by_fault["signal_lost"].ack_min == pytest.approx(25)
    assert by_fault["controller_lost"].response.status is Status.MET
    assert by_fault["controller_lost"].resolve.status is Status.MET
    assert by_fault["module_fault"].onsite.status is Status.BREACHED  # dispatched, never came
    assert by_fault["running_hot"].onsite.status is Status.NOT_APPLICABLE  # nobody was sent
    assert by_fault["psu_degrading"].response.status is Status.BREACHED  # never acknowledged
    assert (r.sla.response_met, r.sla.response_breached) == (3, 2)
    assert (r.sla.onsite_met, r.sla.onsite_breached) == (0, 1)

    cabinets = {c.card: c for c in r.cabinets}
    assert len(cabinets) == len(emulated.CARDS)
    hot = cabinets[emulated.HOT_CARD]
    assert hot.delta_c == pytest.approx(emulated.HOT_DELTA_C, abs=0.6)
    assert "hot" in hot.flags and hot.open_faults == ("running_hot",)
    assert cabinets[emulated.MODULE_CARD].module_faults_last == 2
    assert "fan" in cabinets[emulated.FAN_CARD].flags
    assert [c.card for c in r.cabinets if c.flags] == sorted(
        [emulated.FAN_CARD, emulated.HOT_CARD, emulated.MODULE_CARD])

    psus = {p.psu: p for p in r.psus}
    drifting = psus[emulated.DRIFTING_PSU]
    assert drifting.trend_mv_per_day == pytest.approx(emulated.DRIFT_V_PER_DAY * 1000, abs=3)
    assert drifting.forecast_current and drifting.forecast is not None
    assert drifting.forecast.predicted_failure_ms == emulated.PREDICTED_FAILURE
    assert all(abs(p.trend_mv_per_day or 0) < 3 for p in r.psus if p is not drifting)

    predicted = {p.component: p for p in r.predictions}
    assert predicted[f"psu/{emulated.DRIFTING_PSU}"].predicted_failure_ms == \
        emulated.PREDICTED_FAILURE
    assert predicted[f"psu/{emulated.DRIFTING_PSU}"].ticket_id == run.ids["psu_degrading"]
    assert f"card/{emulated.HOT_CARD}" in predicted

    w = r.warranty
    assert w is not None
    # Only the product-fault downtime extends it: both dark periods, 75 minutes.
    assert w.extension_ms == DARK_MIN * 60_000
    assert w.end_ms == emulated.ms("2027-01-15T01:15")
    assert w.covers_quarter_end and 44 < w.days_left < 46

    assert r.parts == () and r.tasks == () and r.inventory == ()  # none recorded in this run
    texts = [a.text for a in r.actions]
    assert texts[0] == (f"Replace PSU {emulated.DRIFTING_PSU}: predicted to fail by 2026-12-09 "
                        f"(ticket #{run.ids['psu_degrading']}).")
    assert "2 response deadlines breached: review the desk's staffing and on-call." in texts
    assert "1 on-site deadline breached: review dispatch and travel times." in texts
    assert "Replace 2 faulty modules in cabinet p1c4 (faulty on 3 days)." in texts
    assert "Replace the fan of cabinet p0c1: 0 rpm on the last day." in texts
    assert "Warranty ends in 45 days (2027-01-15): offer a service contract." in texts
    assert any(t.startswith("Check the cooling of cabinet p1c2") for t in texts)


def test_html_and_pdf_carry_the_figures(run: Run, tmp_path: Path) -> None:
    r = build_report(run.tickets, run.source, run.site, run.screen, "2026-Q4")
    html = render_html(r)
    text = text_of(html)
    avail = f"{100 * (1 - DARK_MIN / MEASURED_MIN):.2f} %"
    assert avail in text  # availability
    assert "Incidents 5 " in text  # ticket count
    assert f"{emulated.DRIFTING_PSU} 4.89 4.89 -30 mV/day" in text  # the PSU with its trend
    assert "2027-01-15" in text and "45 days left" in text  # warranty end
    assert html.count("<svg") == 2  # temperatures and PSU rails
    assert "None used in 2026-Q4." in text and "No installed base known" in text
    (tmp_path / "inspection.html").write_text(html, "utf-8")

    pdf = render_pdf(html)
    assert pdf.data.startswith(b"%PDF-") and pdf.pages >= 1
    (tmp_path / "inspection.pdf").write_bytes(pdf.data)


def test_other_outputs_get_a_report_without_history(run: Run) -> None:
    settings = settings_from_dict({"influx": {"output": "v2", "url": "http://127.0.0.1:1"}})
    source = ReportSource.from_settings(settings)
    assert source.query is None
    r = build_report(run.tickets, source, run.site, run.screen, "2026-Q4")
    assert r.history is None and r.psus == ()
    html = render_html(r)
    assert "<svg" not in html
    assert "only an InfluxDB 1.x output (v1) is queried for history, so this report has no " \
           "history charts" in text_of(html)
    # The ticket side is all there.
    assert len(r.incidents) == 5 and r.availability_screen is not None
    assert render_pdf(html).pages >= 1


def test_unknown_screen_future_quarter_and_servers_that_fail(run: Run, free_port: object
                                                             ) -> None:
    with pytest.raises(UnknownScreen, match="screen rpt/nosuch is unknown"):
        build_report(run.tickets, run.source, run.site, "nosuch", "2026-Q4")
    with pytest.raises(ReportInputError, match="quarter 2027-Q1 has not started yet"):
        build_report(run.tickets, run.source, run.site, run.screen, "2027-Q1")

    port = free_port()  # type: ignore[operator]
    down = ReportSource(V1Query(f"http://127.0.0.1:{port}", "ledwatch", "admin", "x", 2.0))
    with pytest.raises(HistoryUnavailable, match=f"InfluxDB at http://127.0.0.1:{port} is "
                                                 "unreachable"):
        build_report(run.tickets, down, run.site, run.screen, "2026-Q4")
    influx = run.influx
    wrong = ReportSource(V1Query(influx.url, "ledwatch", "admin", "wrong"))  # type: ignore[attr-defined]
    with pytest.raises(HistoryUnavailable, match="refused the credentials"):
        build_report(run.tickets, wrong, run.site, run.screen, "2026-Q4")


@dataclass(frozen=True)
class _Part:
    ticket_id: int
    site: str
    screen: str
    component: str
    model: str
    quantity: int
    ts_ms: int


@dataclass(frozen=True)
class _Task:
    id: int
    site: str
    screen: str
    kind: str
    due_ms: int
    done_ms: int | None
    done_by: str | None
    note: str


@dataclass(frozen=True)
class _Item:
    site: str
    screen: str
    kind: str
    model: str
    quantity: int
    seen_ms: int


class _WithParts(TicketService):
    """The ticket service as it will be once parts, tasks and inventory land (the lead's
    names), to hold the report's sections for them to their shape."""

    def parts_used(self, site: str | None = None, screen: str | None = None,
                   start_ms: int | None = None, end_ms: int | None = None) -> list[_Part]:
        return [_Part(3, "rpt", "wall", "card/p1c4", "NS-P3.9-M", 2,
                      emulated.ms("2026-11-28T10:00"))]

    def tasks(self, site: str | None = None, screen: str | None = None,
              kind: str | None = None, open_only: bool = False) -> list[_Task]:
        return [
            _Task(7, "rpt", "wall", "follow_up", emulated.ms("2026-11-15T00:00"), None, None, ""),
            _Task(8, "rpt", "wall", "inspection", emulated.ms("2026-10-15T00:00"),
                  emulated.ms("2026-10-16T09:00"), "desk", "remote check"),
        ]

    def inventory(self, site: str | None = None, screen: str | None = None
                  ) -> list[_Item]:
        return [_Item("rpt", "wall", "receiving_card", "A8s", 12, emulated.NOW)]


def test_parts_tasks_and_inventory_sections(run: Run) -> None:
    svc = _WithParts(run.db_url, emulated.contracts(run.site, run.screen), clock=run.clock,
                     auto_upgrade=False)
    try:
        r = build_report(svc, run.source, run.site, run.screen, "2026-Q4")
    finally:
        svc.close()
    assert r.parts is not None and r.parts[0].model == "NS-P3.9-M"
    assert r.tasks is not None and [t.id for t in r.tasks] == [8, 7]
    assert "The follow-up contact due 2026-11-15 is overdue." in [a.text for a in r.actions]
    text = text_of(render_html(r))
    assert "2026-11-28 #3 card/p1c4 NS-P3.9-M 2" in text
    assert "receiving_card A8s 12" in text
    assert "follow-up 2026-11-15 overdue" in text


def test_victoriametrics_serves_no_influxql(victoria: object) -> None:
    """Why output v2 gets no history: VictoriaMetrics 1.79 answers any /query statement with
    the same canned database list (for Influx clients' connection checks)."""
    url = victoria.url  # type: ignore[attr-defined]
    answer = httpx.get(f"{url}/query", params={"q": 'SELECT max("temp_c") FROM "card"',
                                               "db": "ledwatch"}, timeout=10).json()
    series = answer["results"][0]["series"]
    assert [s["name"] for s in series] == ["databases"]
