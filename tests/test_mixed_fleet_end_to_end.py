"""A mixed fleet through the whole chain on real parts (issue 10, point 8).

One screen per controller family, each read by its real driver from its emulator over
the family's own transport (NovaStar bytes over TCP, Colorlight's string protocol over
UDP, the COEX and Tessera HTTP APIs), all in one agent -> real Mosquitto -> the real
collector (shared subscription, schema validation, detection) -> real VictoriaMetrics
(InfluxDB v2 write API) and tickets in SQLite. One fault per emulator, each one the
family can see, each one a ticket:

| screen | family | fault | ticket |
| --- | --- | --- | --- |
| nova-wall | NovaStar | `door_open:p1c0` | card/p1c0 door_open |
| clt-wall | Colorlight | `module_fail:p0c1/2` | card/p0c1 module_fault |
| coex-wall | NovaStar COEX | `held@3` (VMP locks it) | controller controller_held |
| tessera-wall | Brompton Tessera | `over_temp:fpga` (85 C) | controller temp_high |

The COEX screen's is the only ticket it gets: a held link is never a controller_lost.

The `controller_held` rule's hold is shortened to 3 s here (30 min by default); every
other detection setting is the collector's default, so each fault must hold its 2-3
polls (the agent polls every 0.5 s) before its ticket opens.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_end_to_end import wait_for

from agent.runtime import Agent
from agent.settings import parse_settings
from collector.service import Collector
from collector.settings import settings_from_dict
from collector.tickets.core import TicketFilter
from collector.tickets.service import TicketService
from firmware_protocols.emulators.brompton_tessera import TesseraEmulator
from firmware_protocols.emulators.colorlight import ColorlightEmulator
from firmware_protocols.emulators.novastar import NovastarEmulator, parse_fault
from firmware_protocols.emulators.novastar_coex import CoexEmulator

SITE = "mixed-site"
HELD_HOLD_S = 3.0
# screen -> the (component, fault) of the one ticket its fault must open
EXPECTED = {
    "nova-wall": ("card/p1c0", "door_open"),
    "clt-wall": ("card/p0c1", "module_fault"),
    "coex-wall": ("controller", "controller_held"),
    "tessera-wall": ("controller", "temp_high"),
}

pytestmark = pytest.mark.services


@pytest.fixture
def fleet(mosquitto: Any, victoria: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    nova = NovastarEmulator(ports=2, cards=3, psus=2, modules=8,
                            faults=[parse_fault("door_open@0:p1c0")])  # fmt: skip
    clt = ColorlightEmulator(ports=2, cards=3, faults=[
        ColorlightEmulator.parse_fault("module_fail@0:p0c1/2")])  # fmt: skip
    coex = CoexEmulator(outputs=2, cabinets=2, faults=[CoexEmulator.parse_fault("held@3")])
    tessera = TesseraEmulator(tiles=12, faults=[TesseraEmulator.parse_fault("over_temp:fpga")])
    emulators: list[Any] = [nova, clt, coex, tessera]
    nova_host, nova_port = nova.serve_tcp()
    clt_host, clt_port = clt.serve_udp()
    coex_host, coex_port = coex.serve_http()
    tes_host, tes_port = tessera.serve_http()
    screens = [
        {"id": "nova-wall", "controller": {
            "driver": "novastar", "url": f"tcp://{nova_host}:{nova_port}", "ports": 2,
            "cards_per_port": 3, "psus_per_cabinet": 2}},
        {"id": "clt-wall", "controller": {
            "driver": "colorlight", "url": f"udp://{clt_host}:{clt_port}", "ports": 2,
            "cards_per_port": 3, "mfc_ports": [0]}},
        {"id": "coex-wall", "controller": {
            "driver": "novastar-coex", "url": f"http://{coex_host}:{coex_port}",
            "model": "MX40 Pro", "cabinets": 4, "request_gap_ms": 20}},
        {"id": "tessera-wall", "controller": {
            "driver": "brompton-tessera", "url": f"http://{tes_host}:{tes_port}",
            "tiles": 12, "max_brightness_nits": 1500, "min_interval_s": 1.0}},
    ]  # fmt: skip
    settings = settings_from_dict({
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port,
                 "client_id": f"mixed-collector-{nova_port}", "share_group": "mixed"},
        "influx": {"output": "v2", "url": victoria.url, "bucket": "ledwatch", "org": "",
                   "flush_interval_ms": 100},
        "database": {"url": f"sqlite:///{tmp_path / 'tickets.db'}"},
        "detect": {"rules": {"controller_held": {"hold_s": HELD_HOLD_S}}},
    })  # fmt: skip
    tickets = TicketService(settings.database.url, settings.contracts)
    collector = Collector(settings, tickets=tickets)
    agent: Agent | None = None
    try:
        collector.start()
        assert collector.wait_connected(10)
        agent = Agent(parse_settings({
            "agent": {"id": "pc-mixed", "site": SITE, "poll_interval_s": 0.5,
                      "data_dir": str(tmp_path / "agent")},
            "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
            "screens": screens,
        }))  # fmt: skip
        agent.start()
        yield {"tickets": tickets, "victoria": victoria, "agent": agent,
               "collector": collector, "coex": coex}  # fmt: skip
    finally:
        if agent is not None:
            agent.stop()
        collector.stop()
        tickets.close()
        for emu in emulators:
            emu.stop()


def screen_tickets(tickets: TicketService, screen: str) -> list[tuple[str, str]]:
    found, _ = tickets.list(TicketFilter(site=SITE, screen=screen), limit=100)
    return sorted((t.component, t.fault) for t in found)


def test_one_screen_per_family_reaches_storage_and_a_ticket(fleet: dict[str, Any]) -> None:
    tickets: TicketService = fleet["tickets"]
    for screen, expected in EXPECTED.items():
        wait_for(lambda s=screen, e=expected: e in screen_tickets(tickets, s), 30,
                 f"a {expected[1]} ticket for {expected[0]} on {screen}")  # fmt: skip
    # The held link was held long enough, never taken for a lost controller.
    coex = fleet["coex"]
    assert coex.faults.any("held")
    time.sleep(2)  # a few more polls: nothing else opens meanwhile
    for screen, expected in EXPECTED.items():
        assert screen_tickets(tickets, screen) == [expected], screen
    found, _ = tickets.list(TicketFilter(site=SITE, screen="coex-wall"), limit=10)
    (held,) = found
    assert held.state == "open" and held.priority == "P3"
    status = fleet["agent"].status()["screens"]
    assert status["coex-wall"]["link"] == "held"
    assert {status[s]["link"] for s in ("nova-wall", "clt-wall", "tessera-wall")} == {"up"}

    vm = fleet["victoria"]

    def stored(match: str) -> list[dict[str, Any]]:
        vm.flush()
        return list(vm.export(match))

    def series(name: str, screen: str, **labels: str) -> list[float]:
        sel = ",".join([f'site="{SITE}"', f'screen="{screen}"',
                        *(f'{k}="{v}"' for k, v in labels.items())])  # fmt: skip
        got = wait_for(lambda: stored(f"{name}{{{sel}}}"), 20, f"{name}{{{sel}}} stored")
        values: list[float] = got[0]["values"]
        return values

    # Each family's fault, and its healthy neighbours, as stored.
    assert max(series("card_door_open", "nova-wall", card="p1c0")) == 1
    assert min(series("psu_vout_v", "nova-wall", psu="p0c0-psu1")) > 4.5
    assert max(series("card_module_faults", "clt-wall", card="p0c1")) == 2
    assert max(series("card_module_faults", "clt-wall", card="p1c2")) == 0
    assert series("card_online", "clt-wall", card="p1c2")[-1] == 1
    coex_temps = series("card_temp_c", "coex-wall", card="p1c1")  # read before the lock
    assert all(30 < t < 50 for t in coex_temps)
    assert set(series("controller_online", "coex-wall")) == {1}  # held: null, not false
    assert max(series("controller_temp_c", "tessera-wall")) == 85
    assert series("controller_layout_ok", "tessera-wall")[-1] == 1  # 12 of 12 tiles
    for screen in EXPECTED:
        states = wait_for(lambda s=screen: stored(f'ticket_id{{site="{SITE}",screen="{s}"}}'),
                          20, f"ticket points of {screen}")  # fmt: skip
        assert {s["metric"]["state"] for s in states} >= {"open"}, screen
    polled = stored(f'agent_poll_ms{{site="{SITE}",agent="pc-mixed"}}')
    assert polled and len(polled[0]["values"]) >= 3
