"""An emulated quarter of one screen: telemetry into the real InfluxDB, tickets into a
real ticket service (not a test module).

Four days at 10-minute polls of a 12-cabinet screen, with the faults an inspection must
find: PSU p0c3-psu1 drifting down ~30 mV/day (detection's forecasts written as it
does), cabinet p1c2 running ~9 °C above its peers, two dead modules in p1c4, the fan of
p0c1 stopped on the last day. Tickets: an October signal loss acknowledged late, the
forecasts, the module fault with an engineer dispatched who never arrived, and a screen
that went dark for 45 minutes in November.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

from datapath_helpers import make_snapshot
from ticket_helpers import Clock, ms

from collector.detect.engine import Forecast
from collector.detect.findings import Fault, Finding
from collector.influx.lineproto import forecast_line, snapshot_lines
from collector.reports.source import ReportSource
from collector.tickets import TicketService
from ledwatch.contract import validate_telemetry

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
POLL_MS = 10 * MIN
CARDS = [f"p{port}c{i}" for port in (0, 1) for i in range(6)]
DRIFTING_PSU = "p0c3-psu1"
HOT_CARD = "p1c2"
MODULE_CARD = "p1c4"
FAN_CARD = "p0c1"
HOT_DELTA_C = 9.0
DRIFT_V_PER_DAY = -0.03
WEATHER_C = (0.0, 2.5, -1.5, 1.0)  # day-to-day change of the ambient temperature


RUN_START = ms("2026-11-24T00:00")
RUN_END = ms("2026-11-28T00:00")
NOW = ms("2026-12-01T06:00")
PREDICTED_FAILURE = ms("2026-12-09T18:00")
ACCEPTANCE = "2026-01-15"


def contracts(site: str, screen: str) -> dict[str, Any]:
    return {"sites": {site: {"screens": {screen: {"acceptance_date": ACCEPTANCE}}}}}


def snapshots(site: str, screen: str) -> list[dict[str, Any]]:
    base = make_snapshot(site=site, screen=screen, agent="pc1", n_cards=len(CARDS))
    base["cards"]["id"] = list(CARDS)
    base["psus"]["id"] = [f"{c}-psu1" for c in CARDS]
    base["psus"]["card"] = list(CARDS)
    docs = []
    for k, ts in enumerate(range(RUN_START, RUN_END, POLL_MS)):
        doc = copy.deepcopy(base)
        doc["seq"], doc["ts"] = k + 1, ts
        days = (ts - RUN_START) / DAY
        daily = math.sin(2 * math.pi * ((ts % DAY) / DAY - 0.25))  # warm afternoons
        weather = WEATHER_C[int(days) % len(WEATHER_C)]
        cards, psus = doc["cards"], doc["psus"]
        for i, card in enumerate(CARDS):
            temp = 38.0 + weather + 5.0 * daily + 0.4 * (i % 3)
            cards["temp_c"][i] = round(temp + (HOT_DELTA_C if card == HOT_CARD else 0.0), 1)
            if card == MODULE_CARD and days >= 1.5:
                cards["module_faults"][i] = 2
            if card == FAN_CARD and days >= 3.5:
                cards["fan_rpm"][i] = 0.0
            vout = 5.05 - 0.01 * (i % 4) + 0.01 * daily
            if psus["id"][i] == DRIFTING_PSU:
                vout += DRIFT_V_PER_DAY * days
            psus["vout_v"][i] = round(vout, 3)
        docs.append(validate_telemetry(doc))
    return docs


def telemetry_lines(site: str, screen: str) -> list[str]:
    """Every snapshot's points, then detection's hourly forecasts of the drifting PSU."""
    lines = [line for doc in snapshots(site, screen) for line in snapshot_lines(doc)]
    for ts in range(ms("2026-11-26T10:00"), RUN_END, HOUR):
        lines.append(forecast_line(Forecast(site, screen, DRIFTING_PSU, ts, PREDICTED_FAILURE,
                                            DRIFT_V_PER_DAY / 24, None)))
    return lines


def write_telemetry(influx: Any, site: str, screen: str) -> int:
    lines = telemetry_lines(site, screen)
    for i in range(0, len(lines), 5000):
        influx.write("\n".join(lines[i : i + 5000]), precision="ms")
    return len(lines)


def _finding(site: str, screen: str, component: str, fault: Fault, active: bool, ts: int,
             **kw: Any) -> Finding:
    return Finding(site, screen, component, fault, active, ts, **kw)


def open_tickets(svc: TicketService, clock: Clock, site: str, screen: str) -> dict[str, int]:
    """The quarter's tickets, driven through findings and desk steps at their times."""
    ids: dict[str, int] = {}

    def apply(component: str, fault: Fault, active: bool, at: str, **kw: Any) -> None:
        ts = clock.set(at)
        for change in svc.apply_findings([_finding(site, screen, component, fault, active, ts,
                                                   **kw)]):
            if change.opened:
                ids[fault.value] = change.ticket_id

    def dark(fault: Fault, times: tuple[str, str, str, str, str], root_cause: str) -> None:
        """A screen-dark episode: opened, acknowledged, cleared, resolved, closed."""
        opened, acked, cleared, resolved, closed = times
        apply("controller", fault, True, opened)
        clock.set(acked)
        svc.acknowledge(ids[fault.value], "desk")
        apply("controller", fault, False, cleared)
        clock.set(resolved)
        svc.resolve(ids[fault.value], "desk", root_cause=root_cause)
        clock.set(closed)
        svc.close_ticket(ids[fault.value], "desk")

    # October: the signal drops for 30 minutes, acknowledged after 25 (response: 20).
    dark(Fault.SIGNAL_LOST, ("2026-10-15T14:00", "2026-10-15T14:25", "2026-10-15T14:30",
                             "2026-10-15T14:45", "2026-10-15T15:00"),
         "HDMI cable unplugged by the venue")

    # November: the hot cabinet, acknowledged in time, still open.
    apply(f"card/{HOT_CARD}", Fault.RUNNING_HOT, True, "2026-11-25T08:00",
          detail=f"{HOT_DELTA_C:.0f} °C above the screen's median")
    clock.set("2026-11-25T08:10")
    svc.acknowledge(ids["running_hot"], "desk")

    # The dead modules: acknowledged, an engineer dispatched who has not arrived.
    apply(f"card/{MODULE_CARD}", Fault.MODULE_FAULT, True, "2026-11-25T12:00", value=2.0)
    clock.set("2026-11-25T12:15")
    svc.acknowledge(ids["module_fault"], "desk")
    clock.set("2026-11-26T09:00")
    svc.dispatch(ids["module_fault"], "desk", "J. Weber")

    # The drifting PSU: forecast, nobody acknowledged it.
    apply(f"psu/{DRIFTING_PSU}", Fault.PSU_DEGRADING, True, "2026-11-26T10:00",
          predicted_failure_ms=PREDICTED_FAILURE, detail="trend -0.030 V/day")

    # The screen dark for 45 minutes (a switch rebooted), fixed remotely.
    dark(Fault.CONTROLLER_LOST, ("2026-11-26T20:00", "2026-11-26T20:05", "2026-11-26T20:45",
                                 "2026-11-26T21:00", "2026-11-26T21:10"),
         "network switch rebooted")

    clock.ms = NOW
    svc.check_sla(NOW)
    return ids


@dataclass
class Run:
    """The emulated quarter as the tests see it."""

    site: str
    screen: str
    tickets: TicketService
    clock: Clock
    source: ReportSource
    ids: dict[str, int]
    db_url: str
    influx: object
