"""Every InfluxQL query of every dashboard runs on a real InfluxDB 1.6 and finds data.

Grafana itself cannot run here, so the test does what Grafana's InfluxDB datasource
does before sending a query: it expands `$timeFilter`, `$__interval` and the template
variables. The sample data is real collector output: valid telemetry snapshots encoded
by `collector.influx.lineproto`, plus ticket state changes from its `ticket_line`.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from grafana_files import dashboard_files, influxql_queries, load

from collector.influx.lineproto import snapshot_lines, ticket_line
from collector.tickets.models import TicketChange
from ledwatch.contract import SCHEMA_TELEMETRY, validate_telemetry

SITE = "dash-site"
SCREEN = "dash-screen"
AGENT = "dash-agent"
POLL_S = 10
SNAPSHOTS = 12

VARIABLES = {"site": SITE, "screen": SCREEN, "agent": AGENT}
# Grafana's regex format for a multi-value selection, and the `allValue` of "All".
MULTI = {k: f"({v}|other-{k})" for k, v in VARIABLES.items()}
ALL = dict.fromkeys(VARIABLES, ".*")
MACROS = {"$timeFilter": "time > now() - 1h", "$__interval": "10s"}


def snapshot(seq: int, ts_ms: int) -> dict[str, Any]:
    """One screen with 4 receiving cards (c4 offline, c2 with a monitoring card) and 2 PSUs."""
    return validate_telemetry(
        {
            "schema": SCHEMA_TELEMETRY,
            "site": SITE,
            "screen": SCREEN,
            "agent": AGENT,
            "seq": seq,
            "ts": ts_ms,
            "controller": {
                "online": True,
                "link": "up",
                "model": "emulated",
                "signal_ok": seq % 2 == 0,
                "brightness_pct": 80.0,
                "temp_c": 41.5,
            },
            "cards": {
                "id": ["c1", "c2", "c3", "c4"],
                "online": [True, True, True, False],
                "temp_c": [45.0, 46.5 + seq, 44.0, None],
                "voltage_v": [4.98, 5.01, 4.71, None],
                "module_faults": [0, 0, 2, None],
                "monitor": [False, True, False, False],
                "humidity_pct": [None, 55.0, None, None],
                "smoke": [None, False, None, None],
                "door_open": [None, seq == 3, None, None],
                "fan_rpm": [None, 1500.0, None, None],
            },
            "psus": {
                "id": ["p1", "p2"],
                "card": ["c1", "c3"],
                "ok": [True, False],
                "vout_v": [5.02, 3.9],
                "iout_a": [20.5, 1.0],
                "temp_c": [39.0, 52.0],
                "fan_rpm": [2400.0, 0.0],
            },
            "env": {
                "temp_c": 24.0,
                "humidity_pct": 48.0,
                "smoke": False,
                "door_open": False,
                "fan_rpm": 1200.0,
            },
            "stats": {
                "queue_depth": seq,
                "poll_ms": 180.0 + seq,
                "poll_errors": 1,
                "uptime_s": 60.0 + seq * POLL_S,
                "dropped": 0,
            },
        }
    )


def ticket_changes(now_ms: int) -> list[TicketChange]:
    start = now_ms - 30 * 60_000

    def change(
        ticket_id: int, state: str, minutes: int, priority: str, fault: str, component: str
    ) -> TicketChange:
        return TicketChange(
            ticket_id, SITE, SCREEN, component, fault, priority, state,
            start + minutes * 60_000, opened=state == "open",
        )

    return [
        change(1, "open", 0, "P2", "card_offline", "card/c4"),
        change(1, "acknowledged", 2, "P2", "card_offline", "card/c4"),
        change(1, "dispatched", 5, "P2", "card_offline", "card/c4"),
        change(2, "open", 1, "P3", "module_fault", "card/c3"),
        change(2, "verifying", 9, "P3", "module_fault", "card/c3"),
        change(2, "closed", 12, "P3", "module_fault", "card/c3"),
        change(3, "open", 3, "P1", "signal_lost", "controller"),
    ]


@pytest.fixture(scope="module")
def loaded(influxdb1: Any) -> Any:
    now_ms = int(time.time() * 1000)
    lines: list[str] = []
    for i in range(SNAPSHOTS):
        lines += snapshot_lines(snapshot(i, now_ms - (SNAPSHOTS - i) * POLL_S * 1000))
    lines += [ticket_line(c) for c in ticket_changes(now_ms)]
    measurements = {line.split(",", 1)[0] for line in lines}
    assert measurements == {"controller", "card", "psu", "env", "agent", "ticket"}
    influxdb1.write("\n".join(lines), precision="ms")
    return influxdb1


def expand(query: str, variables: dict[str, str] = VARIABLES) -> str:
    """What Grafana sends: macros and `$var` replaced by one value, a group or `.*`."""
    for macro, value in MACROS.items():
        query = query.replace(macro, value)
    query = re.sub(r"\$(\w+)", lambda m: variables[m.group(1)], query)
    assert not re.search(r"\$\w", query), query
    return query


CASES = [
    pytest.param(path, where, query, id=f"{path.stem}:{where}")
    for path in dashboard_files()
    for where, query in influxql_queries(load(path))
]


def test_every_dashboard_has_queries() -> None:
    assert {p.values[0].stem for p in CASES} == {"fleet", "screen", "tickets", "agents"}


@pytest.mark.parametrize(("path", "where", "query"), CASES)
def test_query_runs_and_returns_data(loaded: Any, path: Any, where: str, query: str) -> None:
    for variables in (VARIABLES, MULTI, ALL):
        sent = expand(query, variables)
        answer = loaded.query(sent)  # raises on a parse or execution error
        assert answer["results"][0].get("series"), f"{path.name} {where}: no series for {sent}"


def test_open_tickets_counts_tickets_not_closed(loaded: Any) -> None:
    """The open-ticket balance (fleet and tickets) matches the sample: P1 1, P2 1, P3 0."""
    doc = load(next(p for p in dashboard_files() if p.stem == "fleet"))
    query = next(q for where, q in influxql_queries(doc) if "Open tickets" in where)
    rows = loaded.rows(expand(query))
    assert {r["priority"]: r["open"] for r in rows} == {"P1": 1, "P2": 1, "P3": 0}


def test_offline_cards_are_counted_per_interval(loaded: Any) -> None:
    doc = load(next(p for p in dashboard_files() if p.stem == "fleet"))
    query = next(q for where, q in influxql_queries(doc) if "cards offline" in where)
    counts = {r["count"] for r in loaded.rows(expand(query))}
    assert counts <= {0, 1}
    assert 1 in counts
