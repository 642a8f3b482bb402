"""An emulated run for the dashboard queries: a real collector fills a real InfluxDB 1.6.

The agent is emulated by publishing valid `ledwatch.telemetry/1` snapshots (and one
`ledwatch.event/1`) to a real Mosquitto; a real `Collector` with the v1 writer, its
ticket service on SQLite and detection stores them, opens tickets for the faults in
them, and writes its own `collector`, `kpi` and `open_ticket` points (intervals made
short so they exist within seconds). The desk then takes steps (acknowledge one
ticket; a phone report acknowledged, resolved and closed), as people would. Everything
lands in a database of its own, so other tests' points cannot answer a query.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from collector.api.desk.views import clocks
from collector.service import Collector
from collector.settings import settings_from_dict
from collector.tickets import TicketService
from collector.tickets.core import TicketFilter
from ledwatch.contract import (
    SCHEMA_EVENT,
    SCHEMA_TELEMETRY,
    event_topic,
    telemetry_topic,
    validate_telemetry,
)

SITE = "dash-site"
SCREEN = "dash-screen"
AGENT = "dash-agent"
COLLECTOR = "dash-collector"
POLL_S = 10
SNAPSHOTS = 12
# c1 ok, c2 warm, c3 module faults, c4 dark, c5 online unknown, c6 humid, c7 slow fan,
# c8 ok with its door reported shut; c9 was there 10 minutes ago only (not reporting now).
CARDS = ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"]


class Database:
    """One database of the shared InfluxDB 1.6: query / rows answered from it alone."""

    def __init__(self, server: Any, name: str) -> None:
        self.server, self.name = server, name

    def query(self, influxql: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.server.query(influxql, database=self.name)
        return answer

    def rows(self, influxql: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for series in self.query(influxql)["results"][0].get("series", []):
            for values in series.get("values", []):
                row = dict(series.get("tags") or {})
                row.update(zip(series["columns"], values, strict=True))
                out.append(row)
        return out


def snapshot(seq: int, ts_ms: int, *, old: bool = False) -> dict[str, Any]:
    """One screen of 8 cabinets in 2 rows of 4 (9 in the old one), 2 PSUs."""
    n = len(CARDS) + (1 if old else 0)
    cards = {  # one value per card, c1..c9
        "online": [True, True, True, False, None, True, True, True, True],
        "temp_c": [45.0, 71.5 + seq / 10, 44.0, None, None, 40.0, 41.0, 42.0, 40.0],
        "voltage_v": [4.98, 5.01, 4.71, None, None, 5.0, 5.0, 5.0, 5.0],
        "module_faults": [0, 0, 2, None, None, 0, 0, 0, 0],
        "humidity_pct": [None, 55.0, None, None, None, 88.0, None, 40.0, None],
        "smoke": [None, False, None, None, None, None, None, False, None],
        "door_open": [None, seq == 3, None, None, None, None, None, False, None],
        "fan_rpm": [None, 1500.0, None, None, None, None, 400.0, 1400.0, None],
    }
    return validate_telemetry({
        "schema": SCHEMA_TELEMETRY, "site": SITE, "screen": SCREEN, "agent": AGENT,
        "seq": seq, "ts": ts_ms,
        "controller": {"online": True, "link": "up", "model": "emulated",
                       "signal_ok": seq % 2 == 0, "brightness_pct": 80.0, "temp_c": 41.5},
        "cards": {"id": [*CARDS, "c9"][:n], "row": [i // 4 for i in range(n)],
                  "col": [i % 4 for i in range(n)],
                  **{k: v[:n] for k, v in cards.items()}},
        "psus": {"id": ["p1", "p2"], "card": ["c1", "c3"], "ok": [True, False],
                 "vout_v": [5.02, 3.9], "iout_a": [20.5, 1.0], "temp_c": [39.0, 52.0],
                 "fan_rpm": [2400.0, 0.0]},
        "env": {"temp_c": 24.0, "humidity_pct": 48.0, "smoke": False, "door_open": False,
                "fan_rpm": 1200.0},
        "stats": {"queue_depth": seq, "poll_ms": 180.0 + seq, "poll_errors": seq // 4,
                  "uptime_s": 60.0 + seq * POLL_S, "dropped": seq // 6},
    })


class Webhook:
    """A real HTTP receiver for the collector's notifications (answers 200, counts POSTs)."""

    def __init__(self) -> None:
        self.posts = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def _ok(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                if self.command == "POST":
                    hook.posts += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_HEAD = do_GET = do_POST = _ok

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Run:
    db: Database
    tickets: TicketService
    collector: Collector
    docs: list[dict[str, Any]]
    event: dict[str, Any]
    webhook: Webhook = field(repr=False)

    @property
    def latest(self) -> dict[str, Any]:
        return self.docs[-1]

    def open_tickets(self) -> list[Any]:
        found, _ = self.tickets.list(TicketFilter(open_only=True), limit=1000)
        return found


def wait_for(what: str, check: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@contextmanager
def emulated_run(influxdb1: Any, mosquitto: Any, tmp: Path) -> Iterator[Run]:
    """Start the run, wait until every series the dashboards read is there, yield it."""
    name = f"dash_{uuid.uuid4().hex[:8]}"
    influxdb1.query(f'CREATE DATABASE "{name}"')
    db = Database(influxdb1, name)
    password = tmp / "influx-password"
    password.write_text(influxdb1.password)
    secret = tmp / "webhook-secret"
    secret.write_text("dashboards-webhook-secret")
    webhook = Webhook()
    settings = settings_from_dict({
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "client_id": COLLECTOR,
                 "share_group": f"g{name}"},
        "influx": {"output": "v1", "url": influxdb1.url, "database": name,
                   "username": influxdb1.username, "password_file": str(password),
                   "flush_interval_ms": 100, "ops_interval_s": 0.5, "kpi_interval_s": 1.0,
                   "open_ticket_interval_s": 1.0},
        "database": {"url": f"sqlite:///{tmp / 'tickets.db'}"},
        # 6 s to respond, 14 s to be on site: detection opens its tickets with the time of
        # the snapshot that showed the fault, so they are past both deadlines at once.
        "contracts": {"default": {"response_min": 0.1, "onsite_h": 0.004}},
        "care": {"enabled": False},
        # The emulated agent publishes once: it must not go "offline" while tests read.
        "detect": {"agent_silence_s": 3600},
        # A notification channel, so that the sender's counters reach the health dashboard.
        "notify": {"channels": {"hook": {"type": "webhook", "url": webhook.url,
                                         "secret_file": str(secret)}},
                   "routes": [{"levels": [["hook"]]}]},
    })
    tickets = TicketService(settings.database.url, settings.contracts)
    collector = Collector(settings, tickets=tickets)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{name}")
    try:
        collector.start()
        assert collector.wait_connected(10)
        pub.connect(mosquitto.host, mosquitto.port)
        pub.loop_start()
        now_ms = int(time.time() * 1000)
        docs = [snapshot(1, now_ms - 10 * 60_000, old=True)]
        docs += [snapshot(i + 2, now_ms - (SNAPSHOTS - i) * POLL_S * 1000)
                 for i in range(SNAPSHOTS)]
        event = {"schema": SCHEMA_EVENT, "site": SITE, "screen": SCREEN, "agent": AGENT,
                 "ts": now_ms - 65_000, "event": "door_opened", "component": "card/c2",
                 "detail": {"text": "cabinet door opened", "by": "contact"}}
        for doc in docs:
            pub.publish(telemetry_topic(SITE, SCREEN), orjson.dumps(doc), qos=1
                        ).wait_for_publish(10)
        pub.publish(event_topic(SITE, SCREEN), orjson.dumps(event), qos=1).wait_for_publish(10)

        def settled() -> bool:
            s = collector.metrics.snapshot()
            got = s["received"]
            assert isinstance(got, dict)
            return (got.get("telemetry", 0) >= len(docs) and got.get("event", 0) >= 1
                    and s["pending"] == 0)

        wait_for("the collector to store every message", settled)
        r = Run(db, tickets, collector, docs, event, webhook)
        wait_for("detection to open tickets", lambda: len(r.open_tickets()) >= 2)
        first = min(r.open_tickets(), key=lambda t: t.id)
        tickets.acknowledge(first.id, "desk")
        phoned, _ = tickets.create_manual(SITE, SCREEN, "controller", "flicker reported",
                                          "phone", priority="P4")
        tickets.acknowledge(phoned.id, "desk")
        # Closed only once the dashboards have seen it open: its last point must go.
        wait_for("the phoned ticket on the SLA dashboard",
                 lambda: str(phoned.id) in _latest_open(r))
        tickets.resolve(phoned.id, "desk")
        tickets.close_ticket(phoned.id, "desk")
        wait_for("the collector's own series", lambda: _ops_points_ready(r), 40)
        yield r
    finally:
        pub.loop_stop()
        pub.disconnect()
        collector.stop()
        tickets.close()
        webhook.stop()
        influxdb1.query(f'DROP DATABASE "{name}"')


def _ops_points_ready(r: Run) -> bool:
    """collector points in two 10 s intervals (rates need two), today's kpi points with
    this month's ticket count, and open_ticket saying what the ticket service says."""
    buckets = r.db.rows('SELECT count("received") FROM "collector" WHERE time > now() - 1h '
                        "GROUP BY time(10s) fill(none)")
    if len(buckets) < 2:
        return False
    month = time.strftime("%Y-%m", time.gmtime())
    opened = r.tickets.kpis(month).tickets_opened
    kpis = r.db.rows('SELECT last("tickets_opened") AS "n" FROM "kpi" WHERE time > now() - 1d '
                     'GROUP BY "scope", "site"')
    if {(k["scope"], k["site"], k["n"]) for k in kpis} != {("fleet", "", opened),
                                                         ("site", SITE, opened)}:
        return False
    now = int(time.time() * 1000)
    want = {(str(t.id), t.priority, t.state, clocks(t, now)[0].late, clocks(t, now)[1].late)
            for t in r.open_tickets()}
    got = {(p["ticket"], p["priority"], p["state"], p["response_breached"], p["onsite_breached"])
           for p in _latest_open(r).values()}
    return got == want and any(w[3] for w in want) and any(w[4] for w in want)


def _latest_open(r: Run) -> dict[str, dict[str, Any]]:
    """ticket id -> its newest open_ticket point, for the tickets that point says are open."""
    rows = r.db.rows(
        'SELECT "state", "response_breached", "onsite_breached" FROM (SELECT * FROM '
        '"open_ticket" WHERE time > now() - 3m GROUP BY "ticket", "priority" '
        'ORDER BY time DESC LIMIT 1) WHERE "open" = true GROUP BY "ticket", "priority" '
        'ORDER BY time DESC')
    return {row["ticket"]: row for row in rows}
