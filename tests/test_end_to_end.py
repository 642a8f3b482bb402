"""The whole chain on real parts (issue 2's acceptance test).

NovaStar emulator (real bytes over TCP) -> agent (driver, durable outbox, paho) ->
real Mosquitto -> collector (shared subscription, schema validation, detection) ->
real VictoriaMetrics through the InfluxDB v2 write API, and tickets read back through
the real HTTP API. Faults are injected at once; the agent polls every 0.5 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.runtime import Agent
from agent.settings import parse_settings
from collector.api.app import ApiContext
from collector.service import Collector, serve_api
from collector.settings import settings_from_dict
from collector.tickets.service import TicketService
from firmware_protocols.emulators.novastar import NovastarEmulator, parse_fault

SITE = "e2e-site"
SCREEN = "main-wall"
TOKEN = "e2e-viewer-token-0123456789"

pytestmark = pytest.mark.services


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture
def chain(mosquitto: Any, victoria: Any, tmp_path: Path, free_port: Callable[[], int]
          ) -> Iterator[dict[str, Any]]:
    emu = NovastarEmulator(ports=2, cards=4, psus=2, modules=8, faults=[
        parse_fault("psu_sag_then_die@0:p0c1/1"),
        parse_fault("module_fail@0:p1c2"),
    ])
    host, port = emu.serve_tcp("127.0.0.1", 0)
    settings = settings_from_dict({
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port,
                 "client_id": f"e2e-collector-{port}", "share_group": "e2e"},
        "influx": {"output": "v2", "url": victoria.url, "bucket": "ledwatch", "org": "",
                   "flush_interval_ms": 100},
        "database": {"url": f"sqlite:///{tmp_path / 'tickets.db'}"},
    })
    tickets = TicketService(settings.database.url, settings.contracts)
    collector = Collector(settings, tickets=tickets)
    collector.start()
    assert collector.wait_connected(10)
    api = serve_api(ApiContext(tickets=tickets, screens=collector.screens,
                               health=collector.health, metrics_text=collector.metrics_text,
                               tokens={TOKEN: "viewer"}), "127.0.0.1", free_port())
    agent = Agent(parse_settings({
        "agent": {"id": "pc-e2e", "site": SITE, "poll_interval_s": 0.5,
                  "data_dir": str(tmp_path / "agent")},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "screens": [{"id": SCREEN, "controller": {
            "driver": "novastar", "url": f"tcp://{host}:{port}", "ports": 2,
            "cards_per_port": 4, "psus_per_cabinet": 2}}],
    }))
    agent.start()
    client = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=5)
    try:
        yield {"api": client, "victoria": victoria, "agent": agent, "collector": collector}
    finally:
        client.close()
        agent.stop()
        api.stop()
        collector.stop()
        tickets.close()
        emu.stop()


def open_ticket(api: httpx.Client, component: str, fault: str) -> dict[str, Any] | None:
    resp = api.get("/api/v1/tickets", params={"site": SITE, "screen": SCREEN})
    resp.raise_for_status()
    for ticket in resp.json()["data"]:
        if ticket["component"] == component and ticket["fault"] == fault:
            return dict(ticket)
    return None


def test_psu_and_module_failures_reach_influx_and_tickets(chain: dict[str, Any]) -> None:
    api: httpx.Client = chain["api"]
    # The emulator sags the rail (~8 s to collapse), then the cabinet goes dark: one
    # ticket for the PSU (voltage_low, escalated to psu_failed), the cabinet an effect.
    psu = wait_for(lambda: open_ticket(api, "psu/p0c1-psu1", "psu_failed"), 40,
                   "a psu_failed ticket for p0c1-psu1")
    module = wait_for(lambda: open_ticket(api, "card/p1c2", "module_fault"), 20,
                      "a module_fault ticket for p1c2")

    def effects() -> list[tuple[str, str]]:
        body = api.get(f"/api/v1/tickets/{psu['id']}").json()
        return [(e["component"], e["fault"]) for e in body["effects"]]

    assert ("card/p0c1", "card_offline") in wait_for(
        effects, 20, "the dark cabinet recorded as an effect of the PSU ticket")
    psu = open_ticket(api, "psu/p0c1-psu1", "psu_failed")
    assert psu is not None
    for ticket, priority in ((psu, "P2"), (module, "P3")):
        assert ticket["site"] == SITE and ticket["screen"] == SCREEN
        assert ticket["priority"] == priority
        assert ticket["state"] == "open"
        # DOMAIN.md defaults: a solution offered within 20 min, on site within 2 days.
        assert ticket["response_due_ms"] - ticket["opened_ms"] == 20 * 60 * 1000
        assert ticket["onsite_due_ms"] - ticket["opened_ms"] == 48 * 3600 * 1000
    # The sag was seen before the collapse: the ticket opened as voltage_low.
    steps = [h["step"] for h in api.get(f"/api/v1/tickets/{psu['id']}").json()["history"]]
    assert psu["key"].endswith("/voltage_low") and "escalate" in steps
    # No second ticket for the cabinet, nor for the PSU's other stages.
    components = [t["component"] for t in api.get(
        "/api/v1/tickets", params={"site": SITE, "limit": 500}).json()["data"]]
    assert components.count("psu/p0c1-psu1") == 1 and "card/p0c1" not in components

    # At most one ticket per fault key, however many snapshots repeat the fault.
    time.sleep(2)
    keys = [t["key"] for t in api.get("/api/v1/tickets",
                                      params={"site": SITE, "limit": 500}).json()["data"]]
    assert len(keys) == len(set(keys))

    screen = api.get(f"/api/v1/screens/{SITE}/{SCREEN}")
    assert screen.status_code == 200, screen.text

    vm = chain["victoria"]

    def stored(match: str) -> list[dict[str, Any]]:
        vm.flush()
        return list(vm.export(match))

    sel = f'site="{SITE}",screen="{SCREEN}"'
    faults = wait_for(lambda: stored(f'card_module_faults{{{sel},card="p1c2"}}'), 20,
                      "card p1c2 module_faults in VictoriaMetrics")
    assert max(faults[0]["values"]) > 0
    vout = wait_for(lambda: stored(f'psu_vout_v{{{sel},psu="p0c1-psu1"}}'), 20,
                    "psu p0c1-psu1 vout_v in VictoriaMetrics")
    assert min(vout[0]["values"]) < 3.5 < max(vout[0]["values"])  # healthy, then collapsed
    healthy = stored(f'psu_vout_v{{{sel},psu="p1c0-psu1"}}')
    assert healthy and min(healthy[0]["values"]) > 4.5
    online = stored(f'card_online{{{sel},card="p0c1"}}')
    assert online and online[0]["values"][-1] == 0  # the dark cabinet, stored as false
    tickets = wait_for(lambda: stored(f'ticket_id{{site="{SITE}",screen="{SCREEN}"}}'), 20,
                       "ticket points in VictoriaMetrics")
    assert {s["metric"]["state"] for s in tickets} >= {"open"}
    ctrl = stored(f'controller_online{{{sel}}}')
    assert ctrl and ctrl[0]["values"][-1] == 1
    agent_pts = stored(f'agent_poll_ms{{site="{SITE}",agent="pc-e2e"}}')
    assert agent_pts and len(agent_pts[0]["values"]) >= 3
