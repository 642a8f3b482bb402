"""Desk test helpers: a small fleet with faults, served by the collector's real API server.

`seed` injects what detection would: findings into the ticket service and the matching
snapshots into the screen directory, so every cabinet colour appears on acme/lobby:

```
 row 0   p0c0 ok      p0c1 ok       p0c2 DARK (card_offline, P2)   p0c3 ok
 row 1   p1c0 warning p1c1 warning  p1c2 ok                         p1c3 DARK (effect of psu u7)
         (72.5 °C)    (psu u5 low,
                       P3 ticket)
 row 2   p2c0 unknown p2c1 FAULT    p2c2 ok                         p2c3 ok
         (online ?)   (3 module faults)
```
and beta/atrium lost its controller (P1) 25 minutes ago: its response deadline has
passed (breach recorded). The PSU sag is flapping and paused (waiting on the customer),
and the dark cabinet's ticket carries an agent event.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from collector.api.app import ApiContext
from collector.detect.findings import Fault, Finding
from collector.service import serve_api
from collector.state import ScreenDirectory, ScreenState
from collector.tickets import TicketService

TOKENS = {
    "viewer-token-0001": "viewer",
    "engineer-token-01": "engineer",
    "admin-token-00001": "admin",
}
VIEWER, ENGINEER = "viewer-token-0001", "engineer-token-01"
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Desk:
    url: str
    tickets: TicketService
    screens: ScreenDirectory
    ids: dict[str, int] = field(default_factory=dict)
    skew_ms: list[int] = field(default_factory=lambda: [0])  # the service clock's offset


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def lobby_snapshot(ts_ms: int) -> dict[str, Any]:
    cards = [f"p{r}c{c}" for r in range(3) for c in range(4)]
    online: list[bool | None] = [True] * 12
    online[2] = online[7] = False  # p0c2, p1c3
    online[8] = None  # p2c0: not known this poll
    temps: list[float | None] = [38.0 + i * 0.5 for i in range(12)]
    temps[2] = temps[7] = temps[8] = None
    temps[4] = 72.5  # p1c0: past the clearing level of card_temp_high (70)
    faults: list[int | None] = [0] * 12
    faults[9] = 3  # p2c1
    faults[2] = faults[7] = faults[8] = None
    vout: list[float | None] = [5.02] * 12
    vout[5] = 4.52  # u5 of p1c1 sags
    vout[7] = None  # u7 of p1c3 died
    return {
        "schema": "ledwatch.telemetry/1",
        "site": "acme",
        "screen": "lobby",
        "agent": "pc1",
        "seq": 42,
        "ts": ts_ms,
        "controller": {"online": True, "temp_c": 41.5, "signal_ok": True,
                       "brightness_pct": 80.0, "model": "MCTRL4K"},
        "cards": {
            "id": cards,
            "port": [r for r in range(3) for _ in range(4)],
            "index": [c for _ in range(3) for c in range(4)],
            "row": [r for r in range(3) for _ in range(4)],
            "col": [c for _ in range(3) for c in range(4)],
            "online": online,
            "temp_c": temps,
            "voltage_v": [None if o is not True else 5.0 for o in online],
            "module_faults": faults,
        },
        "psus": {
            "id": [f"u{i}" for i in range(12)],
            "card": cards,
            "ok": [i != 7 for i in range(12)],
            "vout_v": vout,
        },
        "env": {"temp_c": 24.0, "humidity_pct": 40.0, "door_open": False},
    }


def atrium_snapshot(ts_ms: int) -> dict[str, Any]:
    return {
        "schema": "ledwatch.telemetry/1",
        "site": "beta",
        "screen": "atrium",
        "agent": "pc7",
        "seq": 9,
        "ts": ts_ms,
        "controller": {"online": False},
        "cards": {"id": ["p0c0", "p0c1"], "port": [0, 0], "index": [0, 1],
                  "online": [None, None], "temp_c": [None, None], "voltage_v": [None, None],
                  "module_faults": [None, None]},
        "psus": {"id": [], "ok": [], "vout_v": []},
        "env": {},
    }


def seed(desk: Desk) -> None:
    """The faults above, as the collector would record them (the service clock is the
    wall clock plus `desk.skew_ms`, so the browser's countdowns agree with it)."""
    now = desk.tickets.now_ms()
    for snap in (lobby_snapshot(now), atrium_snapshot(now)):
        desk.screens.update(
            ScreenState(snap["site"], snap["screen"], snap["agent"], snap["seq"], now,
                        snap, now + 40)
        )
    desk.skew_ms[0] = -25 * 60_000
    desk.tickets.apply_findings([
        Finding("beta", "atrium", "controller", Fault.CONTROLLER_LOST, True, now - 25 * 60_000,
                detail="no answer for 2 polls", evidence={"last_seen_ms": now - 25 * 60_000}),
    ])
    desk.skew_ms[0] = 0
    sag = Finding("acme", "lobby", "psu/u5", Fault.VOLTAGE_LOW, True, now,
                  detail="vout_v 4.52 < 4.6", value=4.52,
                  evidence={"vout_v_median": 4.52, "threshold_v": 4.6, "peers_median_v": 5.02})
    psu_root = "acme/lobby/psu/u7/psu_failed"
    desk.tickets.apply_findings([
        Finding("acme", "lobby", "card/p0c2", Fault.CARD_OFFLINE, True, now,
                detail="online false in 2 of 5 polls", value=0.0,
                evidence={"online": [True, False, True, False, False], "port": 0, "index": 2}),
        sag,
        Finding("acme", "lobby", "psu/u7", Fault.PSU_FAILED, True, now,
                detail="vout_ok 0 < 3.5", value=0.0, evidence={"vout_v": None, "ok": False}),
        Finding("acme", "lobby", "card/p1c3", Fault.CARD_OFFLINE, True, now,
                detail="online false", root=psu_root),
    ])
    desk.tickets.apply_findings([replace(sag, flapping=True, ts_ms=now + 1)])
    desk.tickets.check_sla()
    for t in desk.tickets.list(limit=100)[0]:
        name = {"card/p0c2": "dark", "psu/u5": "sag", "psu/u7": "psu",
                "controller": "controller"}.get(t.component)
        if name:
            desk.ids[name] = t.id
    desk.tickets.record_event({"site": "acme", "screen": "lobby", "component": "card/p0c2",
                               "agent": "pc1", "event": "link_lost", "ts": now + 2,
                               "detail": "port 0 lost card 2"})
    desk.tickets.pause(desk.ids["sag"], "desk", "customer: site closed until Monday")


@contextmanager
def running_desk(db_url: str) -> Iterator[Desk]:
    """The real API server (collector.service.serve_api) on 127.0.0.1 with a fresh fleet."""
    skew = [0]
    svc = TicketService(db_url, {}, clock=lambda: wall_ms() + skew[0])
    screens = ScreenDirectory()
    ctx = ApiContext(
        tickets=svc,
        screens=screens,
        health=lambda: {"broker": {"ok": True}},
        metrics_text=lambda: "",
        tokens=TOKENS,
    )
    server = serve_api(ctx)
    try:
        desk = Desk(server.url, svc, screens, skew_ms=skew)
        seed(desk)
        yield desk
    finally:
        server.stop()
        svc.close()


def login(client: httpx.Client, token: str, name: str = "") -> str:
    """Log `client` in through the form; returns the session's CSRF token."""
    resp = client.post("/desk/login", data={"token": token, "name": name})
    assert resp.status_code == 303, resp.text
    page = client.get("/desk")
    assert page.status_code == 200, page.text
    match = CSRF_RE.search(page.text)
    assert match, "no CSRF token on the queue page"
    return match.group(1)
