"""Tickets the desk can trust, on real parts: snapshots published to a real Mosquitto, a
collector storing into VictoriaMetrics with its ticket service and API.

Detection follows the snapshots' `ts`, so an hour of 2-minute polls is published in a
second. Each test uses its own site; the screens' schedule is in the collector config.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.api.app import ApiContext
from collector.service import Collector, serve_api
from collector.settings import settings_from_dict
from collector.tickets.service import TicketService
from ledwatch.contract import SCHEMA_TELEMETRY, telemetry_topic

pytestmark = pytest.mark.services
TOKEN = "detect-e2e-token-0123456789"
POLL = 120_000
Doc = dict[str, Any]


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def snapshot(site: str, screen: str, seq: int, ts: int, n: int = 12) -> Doc:
    ids = [f"p{i // 6}c{i % 6}" for i in range(n)]
    return {
        "schema": SCHEMA_TELEMETRY, "site": site, "screen": screen, "agent": f"pc-{screen}",
        "seq": seq, "ts": ts,
        "controller": {"online": True, "link": "up", "signal_ok": True, "temp_c": 40.0},
        "cards": {"id": ids, "port": [i // 6 for i in range(n)],
                  "index": [i % 6 for i in range(n)], "online": [True] * n,
                  "temp_c": [40.0 + i % 3 for i in range(n)], "voltage_v": [5.0] * n,
                  "module_faults": [0] * n},
        "psus": {"id": [f"{c}-psu1" for c in ids], "card": ids, "ok": [True] * n,
                 "vout_v": [5.02] * n},
        "env": {},
    }


def dark(doc: Doc, cards: range | list[int]) -> Doc:
    for i in cards:
        doc["cards"]["online"][i] = False
        for key in ("temp_c", "voltage_v", "module_faults"):
            doc["cards"][key][i] = None
        doc["psus"]["vout_v"][i] = None
    return doc


@pytest.fixture
def desk(mosquitto: Any, victoria: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    tag = uuid.uuid4().hex[:8]
    site = f"det-{tag}"
    settings = settings_from_dict({
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port,
                 "client_id": f"det-{tag}", "share_group": f"g{tag}"},
        "influx": {"output": "v2", "url": victoria.url, "bucket": "ledwatch", "org": "",
                   "flush_interval_ms": 100},
        "database": {"url": f"sqlite:///{tmp_path / 'tickets.db'}"},
        "detect": {"sites": {site: {"timezone": "Europe/Berlin", "screens": {"night": {
            "schedule": [{"off": "02:00-07:00"}]}}}}},  # 01:00-06:00 UTC in winter
    })
    tickets = TicketService(settings.database.url, settings.contracts)
    collector = Collector(settings, tickets=tickets)
    collector.start()
    assert collector.wait_connected(10)
    api = serve_api(ApiContext(tickets=tickets, screens=collector.screens,
                               health=collector.health, metrics_text=collector.metrics_text,
                               tokens={TOKEN: "engineer"}), "127.0.0.1", 0)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{tag}")
    pub.connect(mosquitto.host, mosquitto.port)
    pub.loop_start()

    def publish(docs: list[Doc]) -> None:
        for doc in docs:
            pub.publish(telemetry_topic(doc["site"], doc["screen"]), orjson.dumps(doc),
                        qos=1).wait_for_publish(10)

    client = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=5)
    try:
        yield {"site": site, "publish": publish, "api": client, "collector": collector}
    finally:
        client.close()
        pub.loop_stop()
        pub.disconnect()
        api.stop()
        collector.stop()
        tickets.close()


def settle(desk: dict[str, Any], count: int, timeout_s: float = 20) -> None:
    """Wait until the collector has judged `count` snapshots of this test."""
    deadline = time.monotonic() + timeout_s
    coll: Collector = desk["collector"]
    while True:
        received = coll.metrics.snapshot()["received"]
        assert isinstance(received, dict)
        if received.get("telemetry", 0) >= count and coll.metrics.snapshot()["pending"] == 0:
            return
        assert time.monotonic() < deadline, f"collector saw {received}, expected {count}"
        time.sleep(0.1)


def tickets(desk: dict[str, Any], screen: str) -> list[dict[str, Any]]:
    r = desk["api"].get("/api/v1/tickets", params={"site": desk["site"], "screen": screen})
    r.raise_for_status()
    return [desk["api"].get(f"/api/v1/tickets/{t['id']}").json() for t in r.json()["data"]]


def run(site: str, screen: str, start: str, polls: int,
        mutate: Callable[[int, Doc], Doc | None]) -> list[Doc]:
    out = []
    for k in range(polls):
        doc = mutate(k, snapshot(site, screen, k + 1, utc(start) + k * POLL))
        if doc is not None:
            out.append(doc)
    return out


def test_switched_off_on_schedule_opens_nothing_but_dark_outside_it_opens_one(
    desk: dict[str, Any]
) -> None:
    site = desk["site"]
    # powered down 01:04 .. 05:56 UTC (02:04 .. 06:56 in Berlin): within its schedule
    night = run(site, "night", "2026-01-12T00:30", 210,
                lambda k, d: dark(d, range(12)) if 17 <= k < 163 else d)
    # the same screen dark at noon for 40 minutes, outside its schedule
    noon = run(site, "night", "2026-01-12T12:00", 40,
               lambda k, d: dark(d, range(12)) if 5 <= k < 25 else d)
    for k, d in enumerate(noon):
        d["seq"] = 1000 + k
    desk["publish"](night + noon)
    settle(desk, len(night) + len(noon))
    got = tickets(desk, "night")
    assert [(t["component"], t["fault"], t["priority"]) for t in got] == [
        ("screen", "screen_dark", "P1")]
    assert got[0]["opened_ms"] >= utc("2026-01-12T12:10")
    assert len(got[0]["effects"]) == 12


def test_a_single_poll_glitch_of_any_kind_opens_nothing(desk: dict[str, Any]) -> None:
    site = desk["site"]

    def glitch(k: int, d: Doc) -> Doc | None:
        if k == 5:
            d["cards"]["temp_c"][2] = 120.0
        if k == 9:
            dark(d, [4])  # one missed reply
        if k == 13:
            d["psus"]["vout_v"][7] = 0.0
        if k == 17:
            d["controller"]["online"] = False
        if k == 21:
            d["cards"]["module_faults"][1] = 3
        return d

    docs = run(site, "glitchy", "2026-01-12T09:00", 30, glitch)
    desk["publish"](docs)
    settle(desk, len(docs))
    assert tickets(desk, "glitchy") == []


def test_a_flapping_cabinet_keeps_one_ticket(desk: dict[str, Any]) -> None:
    site = desk["site"]
    cycle = [True, True, False, False, False]  # gone 2 polls, back 3, over and over
    docs = run(site, "flaky", "2026-01-12T09:00", 60,
               lambda k, d: dark(d, [3]) if 5 <= k < 50 and cycle[k % 5] else d)
    desk["publish"](docs)
    settle(desk, len(docs))
    [ticket] = tickets(desk, "flaky")
    assert (ticket["component"], ticket["fault"], ticket["flapping"]) == (
        "card/p0c3", "card_offline", True)
    steps = [h["step"] for h in ticket["history"]]
    assert steps.count("open") == 1 and steps.count("flapping") == 1


def test_a_maintenance_window_suppresses_records_and_lets_go(desk: dict[str, Any]) -> None:
    site, api = desk["site"], desk["api"]
    start = utc("2026-01-12T09:00")
    window = api.post("/api/v1/maintenance", json={
        "site": site, "screen": "lobby", "start": "2026-01-12T08:50:00Z",
        "end": "2026-01-12T09:50:00Z", "who": "J. Smith", "why": "swapping a receiving card",
    })
    assert window.status_code == 201, window.text
    wid = window.json()["id"]
    faulty = run(site, "lobby", "2026-01-12T09:00", 20,
                 lambda k, d: (d["cards"]["module_faults"].__setitem__(2, 4) or d)
                 if k >= 5 else d)
    desk["publish"](faulty)
    settle(desk, len(faulty))
    assert tickets(desk, "lobby") == []
    held = api.get(f"/api/v1/maintenance/{wid}").json()["suppressed"]
    assert [(s["component"], s["fault"], s["cleared_ms"]) for s in held] == [
        ("card/p0c2", "module_fault", None)]
    assert held[0]["first_ms"] >= start + 5 * POLL
    # The window's end has passed (its times lie in the past): the collector's next
    # tick opens the ticket for the fault that is still there.
    deadline = time.monotonic() + 10
    while not (got := tickets(desk, "lobby")):
        assert time.monotonic() < deadline, "no ticket after the window ended"
        time.sleep(0.2)
    assert got[0]["opened_ms"] == utc("2026-01-12T09:50")
    # (its deadlines lie in the past too: the SLA tick records them as breached next)
    assert [h["step"] for h in got[0]["history"]][:2] == ["open", "unsuppress"]
    again = copy.deepcopy(api.get(f"/api/v1/maintenance/{wid}").json())
    assert again["suppressed"][0]["ticket_id"] == got[0]["id"]
