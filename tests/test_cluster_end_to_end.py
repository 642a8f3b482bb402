"""Three collectors, one fleet: the tickets are those of one collector (docs/scaling.md).

Real parts: a private Mosquitto per run, the collectors (in-process, each with its own
ticket service) on one PostgreSQL database, snapshots published as a real agent would.
The faults need every poll of a screen, in order:

* screens 0, 3, 6, 9: a cabinet over temperature for exactly 3 polls, where the rule
  holds for 3 polls in a row (a ticket);
* screens 1, 4, 7: the same for 2 polls (a glitch: no ticket);
* screens 2, 5, 8: a PSU rail low for 4 polls, judged on a rolling median of 4 (a ticket
  only if the 4 low polls are seen together).

One collector gives the reference. Three in a cluster (`[cluster] members`) must give the
same tickets; three in a plain share group, which Mosquitto serves round-robin, must
not (each sees every third poll of a screen): the negative control shows the test can
fail.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import create_engine, select

from collector.service import Collector
from collector.settings import settings_from_dict
from collector.tickets import db
from collector.tickets.service import TicketService
from ledwatch.contract import SCHEMA_TELEMETRY, telemetry_topic

pytestmark = pytest.mark.services
SCREENS, POLLS, POLL_MS = 10, 14, 10_000  # 10 screens: not a multiple of 3 collectors
RULES = {"card_temp_high": {"hold_polls": 3, "smooth_polls": 1}}
Ticket = tuple[str, str, str]


def snapshot(site: str, s: int, seq: int, ts: int) -> dict[str, Any]:
    ids = ["c0", "c1", "c2", "c3"]
    temp = [40.0, 41.0, 42.0, 43.0]
    vout = [5.02] * 4
    if s % 3 == 0 and 4 <= seq < 7:
        temp[1] = 90.0
    if s % 3 == 1 and 4 <= seq < 6:
        temp[1] = 90.0
    if s % 3 == 2 and 6 <= seq < 10:
        vout[1] = 4.3
    return {
        "schema": SCHEMA_TELEMETRY, "site": site, "screen": f"s{s}", "agent": f"pc{s}",
        "seq": seq, "ts": ts,
        "controller": {"online": True, "link": "up", "signal_ok": True, "temp_c": 40.0},
        "cards": {"id": ids, "port": [0] * 4, "index": [0, 1, 2, 3], "online": [True] * 4,
                  "temp_c": temp, "voltage_v": [5.0] * 4, "module_faults": [0] * 4},
        "psus": {"id": [f"{c}-psu1" for c in ids], "card": ids, "ok": [True] * 4,
                 "vout_v": vout},
        "env": {},
    }


EXPECTED = {(f"s{s}", "card/c1", "temp_high") for s in range(SCREENS) if s % 3 == 0} | {
    (f"s{s}", "psu/c1-psu1", "voltage_low") for s in range(SCREENS) if s % 3 == 2}


def run_fleet(broker: Any, url: str, members: list[str], cluster: bool) -> set[Ticket]:
    """Start the collectors, publish the fleet, wait until all is stored, read tickets."""
    site = f"cl-{uuid.uuid4().hex[:6]}"
    services, collectors = [], []
    try:
        for name in members:
            settings = settings_from_dict({
                "mqtt": {"host": broker.host, "port": broker.port, "client_id": name,
                         "share_group": "e2e"},
                "influx": {"output": "none", "flush_interval_ms": 20},
                "database": {"url": url},
                "api": {"enabled": False},
                "care": {"enabled": False},
                "detect": {"rules": RULES},
                "cluster": {"members": members if cluster else []},
            })
            svc = TicketService(url, settings.contracts)
            services.append(svc)
            coll = Collector(settings, tickets=svc)
            coll.start()
            assert coll.wait_connected(10)
            collectors.append(coll)
        time.sleep(0.5)  # every subscription in place before the first message
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{site}")
        pub.connect(broker.host, broker.port)
        pub.loop_start()
        t0 = int(time.time() * 1000) - POLLS * POLL_MS
        infos = [pub.publish(telemetry_topic(site, f"s{s}"),
                             orjson.dumps(snapshot(site, s, seq, t0 + seq * POLL_MS)), qos=1)
                 for seq in range(1, POLLS + 1) for s in range(SCREENS)]
        for info in infos:
            info.wait_for_publish(10)
        pub.loop_stop()
        pub.disconnect()
        deadline = time.monotonic() + 30
        total = SCREENS * POLLS
        while True:
            snaps = [c.metrics.snapshot() for c in collectors]
            received = sum(sum(s["received"].values()) for s in snaps)  # type: ignore[union-attr]
            if received >= total and all(s["pending"] == 0 for s in snaps):
                break
            assert time.monotonic() < deadline, (received, [s["pending"] for s in snaps])
            time.sleep(0.05)
        if cluster:  # each message kept by exactly one member, the others skipped it
            assert received == total
            assert sum(c.consumer.skipped for c in collectors) == total * (len(members) - 1)
    finally:
        for coll in collectors:
            coll.stop()
        for svc in services:
            svc.close()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(db.tickets).where(db.tickets.c.site == site)).all()
    finally:
        engine.dispose()
    found = [(r.screen, r.component, r.fault) for r in rows]
    assert len(found) == len(set(found)), f"a fault with two tickets: {sorted(found)}"
    return set(found)


@pytest.fixture
def database(postgresql: Any) -> Iterator[Callable[[], str]]:
    names = iter(range(1, 100))
    yield lambda: postgresql.create_database(f"cluster_{uuid.uuid4().hex[:8]}_{next(names)}")


def test_three_collectors_detect_like_one(
    fresh_mosquitto: Callable[..., Any], database: Callable[[], str]
) -> None:
    reference = run_fleet(fresh_mosquitto(), database(), ["solo"], cluster=False)
    assert reference == EXPECTED  # the scenario itself: 4 + 3 tickets, no glitch ticket
    clustered = run_fleet(fresh_mosquitto(), database(), ["c1", "c2", "c3"], cluster=True)
    assert clustered == reference
    naive = run_fleet(fresh_mosquitto(), database(), ["n1", "n2", "n3"], cluster=False)
    assert naive != reference, "round-robin should have split the screens' polls"
    assert naive < reference  # it misses faults; it never invents one here


@pytest.mark.parametrize("n", [2, 4])
def test_two_and_four_collectors_detect_like_one(
    n: int, fresh_mosquitto: Callable[..., Any], database: Callable[[], str]
) -> None:
    members = [f"m{i}" for i in range(n)]
    assert run_fleet(fresh_mosquitto(), database(), members, cluster=True) == EXPECTED
