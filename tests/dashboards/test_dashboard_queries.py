"""Every InfluxQL query of every dashboard runs on a real InfluxDB 1.6 and finds its data.

Grafana itself cannot run here, so the test does what Grafana's InfluxDB datasource does
before sending a query: it expands `$timeFilter` (the dashboard's default range),
`$__interval`, `${__to}` and the template variables. The data is an emulated run
(conftest.py): a real collector fed over MQTT, with its ticket service and its own
`collector` / `kpi` / `open_ticket` series. Beyond "it runs and finds something", each
answer must hold the series the variables asked for, and the panels the monitoring
room acts on are checked against the source of truth (the ticket service, the desk's
cabinet colours), through the panel's own transformations (grafana_frames.py).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any

import pytest
from emulated_run import AGENT, COLLECTOR, SCREEN, SITE, Run
from grafana_files import (
    annotations,
    by_stem,
    dashboard_files,
    load,
    panel_targets,
    panel_titled,
)
from grafana_frames import mapped_text, table_frame, transform

from collector.api.desk.views import cabinet_grid, clocks

VARIABLES = {"site": SITE, "screen": SCREEN, "agent": AGENT, "collector": COLLECTOR,
             "window": "5m"}
TAG_VARIABLES = ("site", "screen", "agent", "collector")
# Grafana's regex format for a multi-value selection, and the `allValue` of "All".
MULTI = {**VARIABLES, **{k: f"({VARIABLES[k]}|other-{k})" for k in TAG_VARIABLES}}
ALL = {**VARIABLES, **dict.fromkeys(TAG_VARIABLES, ".*")}
DEFAULT_INTERVAL = "10s"  # the datasource's timeInterval (provisioning), Grafana's floor


def time_filter(doc: dict[str, Any]) -> str:
    """The dashboard's default range as Grafana writes it (`now-30d` -> `time > now() - 30d`)."""
    start = doc["time"]["from"]
    assert re.fullmatch(r"now-\d+[smhd]", start) and doc["time"]["to"] == "now", doc["time"]
    return f"time > now() - {start[4:]}"


def expand(query: str, doc: dict[str, Any], variables: dict[str, str],
           panel: dict[str, Any] | None = None) -> str:
    """What Grafana sends: macros, `${__to}` and `$var` replaced by one value, a group, `.*`."""
    query = query.replace("$timeFilter", time_filter(doc))
    interval = (panel or {}).get("interval") or DEFAULT_INTERVAL
    query = query.replace("$__interval", interval)
    query = query.replace("${__to}", str(int(time.time() * 1000)))
    query = re.sub(r"\$(\w+)", lambda m: variables[m.group(1)], query)
    assert not re.search(r"\$\w|\$\{", query), query
    return query


def cases() -> list[Any]:
    out = []
    for path in dashboard_files():
        doc = load(path)
        for var in doc["templating"]["list"]:
            if var["type"] == "query":
                out.append(pytest.param(path.stem, f"variable {var['name']}", var["query"], None,
                                        id=f"{path.stem}:variable {var['name']}"))
        for panel, target in panel_targets(doc):
            where = f"panel {panel['id']} {panel['title']!r} {target['refId']}"
            out.append(pytest.param(path.stem, where, target["query"], panel,
                                    id=f"{path.stem}:{where}"))
        for anno in annotations(doc):
            where = f"annotation {anno['name']!r}"
            out.append(pytest.param(path.stem, where, anno["target"]["query"], None,
                                    id=f"{path.stem}:{where}"))
    return out


CASES = cases()


def test_every_dashboard_has_queries() -> None:
    assert {p.values[0] for p in CASES} == {"fleet", "screen", "tickets", "agents", "sla",
                                            "health"}


@pytest.mark.parametrize(("stem", "where", "query", "panel"), CASES)
def test_query_runs_and_returns_the_series_asked_for(
    run: Run, stem: str, where: str, query: str, panel: dict[str, Any] | None
) -> None:
    doc = by_stem(stem)
    for variables in (VARIABLES, MULTI, ALL):
        sent = expand(query, doc, variables, panel)
        answer = run.db.query(sent)  # raises on a parse or execution error
        series = answer["results"][0].get("series")
        assert series, f"{stem} {where}: no series for {sent}"
        # Expected series: each carries only the site / screen / agent / collector the
        # variables chose (the run holds exactly one of each, so All finds those too).
        for s in series:
            for key, value in (s.get("tags") or {}).items():
                if key in TAG_VARIABLES:
                    assert value == VARIABLES[key], f"{stem} {where}: series {s['tags']}"
        if where.startswith("variable"):
            values = {v[1] for s in series for v in s["values"]}
            name = where.split()[1]
            assert VARIABLES.get(name, values and next(iter(values))) in values, values


# -- the panels the monitoring room acts on, against the source of truth -------------------


def run_panel(run: Run, stem: str, title: str) -> tuple[dict[str, Any], list[Any]]:
    doc = by_stem(stem)
    panel = panel_titled(doc, title)
    frames = [table_frame(run.db.query(expand(t["query"], doc, VARIABLES, panel)))
              for t in panel["targets"]]
    return panel, frames


def test_cabinet_grid_matches_the_desk(run: Run) -> None:
    """The grid is the desk's screen page without tickets: same cells, same colours.

    The desk colours the latest snapshot's cabinets (collector/api/desk/views.py, no
    tickets: the grid shows telemetry); c9 was reported only 10 minutes ago, before the
    5-minute window, so the grid greys it as not reporting."""
    panel, frames = run_panel(run, "screen", "Cabinets as they hang")
    (matrix,) = transform(panel, frames)
    shown = {(row[matrix.names[0]], int(col)): mapped_text(panel, row[col])
             for row in matrix.rows for col in matrix.names[1:]}
    desk = cabinet_grid(run.latest, [])
    want = {(c.row, c.col): c.state for c in desk.cabinets}
    want[(2, 0)] = "not reporting"  # c9
    for r in range(3):
        for c in range(4):
            want.setdefault((r, c), "")  # no cabinet there: an empty cell
    assert shown == want
    assert set(want.values()) >= {"ok", "warning", "fault", "dark", "unknown", "not reporting"}
    # Rows top to bottom, columns left to right, as the wall hangs.
    assert [r[matrix.names[0]] for r in matrix.rows] == [0, 1, 2]
    assert matrix.names[1:] == ["0", "1", "2", "3"]


def by_priority(tickets: list[Any]) -> dict[str, int]:
    return dict(Counter(t.priority for t in tickets))


@pytest.mark.parametrize("stem", ["fleet", "tickets", "sla"])
def test_open_tickets_by_priority_match_the_ticket_service(run: Run, stem: str) -> None:
    doc = by_stem(stem)
    panel = panel_titled(doc, "Open tickets by priority")
    (target,) = panel["targets"]
    rows = run.db.rows(expand(target["query"], doc, VARIABLES, panel))
    assert {r["priority"]: r["open"] for r in rows} == by_priority(run.open_tickets())


def test_open_tickets_table_counts_down_like_the_desk(run: Run) -> None:
    panel, frames = run_panel(run, "sla", "Open tickets")
    (table,) = transform(panel, frames)
    now = int(time.time() * 1000)
    rows = {int(r["ticket"]): r for r in table.rows}
    tickets = {t.id: t for t in run.open_tickets()}
    assert set(rows) == set(tickets)  # the phoned ticket was closed: gone at once
    for ticket_id, t in tickets.items():
        row = rows[ticket_id]
        assert (row["priority"], row["state"], row["fault"], row["component"]) == (
            t.priority, t.state, t.fault, t.component)
        for clock in clocks(t, now):
            key = {"response": "response_left_min", "on site": "onsite_left_min",
                   "resolve": "resolve_left_min"}.get(clock.name)
            if key is None:
                continue
            if clock.pending:  # written at most a refresh (1 s) ago
                assert row[key] == pytest.approx(clock.remaining_ms / 60_000, abs=0.1)
            else:
                assert row[key] is None, (ticket_id, key)
        left = [row[k] for k in ("response_left_min", "onsite_left_min", "resolve_left_min")
                if row[k] is not None]
        assert row["next deadline"] == min(left)
    acknowledged = [t for t in tickets.values() if t.acknowledged_ms is not None]
    assert acknowledged and all(rows[t.id]["response_left_min"] is None for t in acknowledged)
    assert any(rows[t]["response_breached"] for t in rows)


def test_the_months_kpis_are_the_ticket_services(run: Run) -> None:
    month = time.strftime("%Y-%m", time.gmtime())
    kpis = run.tickets.kpis(month)
    _, frames = run_panel(run, "sla", "Tickets this month")
    (row,) = frames[0].rows
    assert (row["Opened"], row["Closed"]) == (kpis.tickets_opened, kpis.tickets_closed)
    assert row["Response breaches"] == kpis.response_breaches
    panel, frames = run_panel(run, "sla", "Failures by component this month")
    (failures,) = transform(panel, frames)
    (counts,) = failures.rows
    assert {k: v for k, v in counts.items() if k != "Time"} == kpis.failures_by_component
    site = run.tickets.kpis(month, SITE)
    _, frames = run_panel(run, "sla", "KPIs per site this month")
    (row,) = frames[0].rows
    assert (row["site"], row["Opened"]) == (SITE, site.tickets_opened)


def test_health_shows_this_collectors_counters(run: Run) -> None:
    _, frames = run_panel(run, "health", "Collectors now")
    (row,) = frames[0].rows
    assert row["collector"] == COLLECTOR and row["broker"] is True
    assert row["writes failing"] is False and row["dead letters"] == 0
    doc = by_stem("health")
    latency = panel_titled(doc, "Write latency")
    rows = run.db.rows(expand(latency["targets"][0]["query"], doc, VARIABLES, latency))
    assert rows and all(0 < r["mean write"] < 5 for r in rows if r["mean write"] is not None)


def test_annotations_mark_ticket_changes_and_agent_events(run: Run) -> None:
    doc = by_stem("screen")
    found = {}
    for anno in annotations(doc):
        target = anno["target"]
        rows = run.db.rows(expand(target["query"], doc, VARIABLES))
        columns = {target["textColumn"], target["titleColumn"],
                   *target["tagsColumn"].split(",")}
        assert rows and all(columns <= set(r) for r in rows), anno["name"]
        found[anno["name"]] = rows
    states = {r["state"] for r in found["Tickets"]}
    assert {"open", "acknowledged", "resolved", "closed"} <= states
    (event,) = found["Agent events"]
    assert (event["event"], event["component"]) == ("door_opened", "card/c2")


def test_offline_cards_are_counted_per_interval(run: Run) -> None:
    doc = by_stem("fleet")
    panel = panel_titled(doc, "Receiving cards offline")
    rows = run.db.rows(expand(panel["targets"][0]["query"], doc, VARIABLES, panel))
    counts = {r["count"] for r in rows}
    assert counts <= {0, 1}
    assert 1 in counts
