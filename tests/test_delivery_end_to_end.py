"""Issue 4's first proof, on the whole chain: the broker goes away for several polls.

Real NovaStar emulators (2 screens) -> real agent -> real Mosquitto, stopped for several
poll intervals and started again -> real collector (persistent session, ack after
write) -> real VictoriaMetrics. Storage is the judge: every seq of every screen is
stored exactly once (one `controller` point per snapshot, carrying its seq), and in
order per screen (the agent's ts grows with seq, so seq sorted by ts is 1..N).

Two ways the restart meets the collector:
- `collector_stays`: the collector reconnects by itself, racing the agent;
- `collector_away`: the collector is down across the broker's restart and comes back
  only after the agent has reconnected. Mosquitto 2.0 does not restore shared
  subscriptions from its persistence file, so the agent's backlog reaches a broker with
  no subscriber (PUBACK 0x10): the agent must keep it until the collector subscribes.
  This is the deterministic form of a race that lost seqs 9..25 in a CI run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.runtime import Agent
from agent.settings import parse_settings
from collector.service import Collector
from collector.settings import settings_from_dict
from firmware_protocols.emulators.novastar import NovastarEmulator

pytestmark = pytest.mark.services

SITE = "e2e-outage"
SCREENS = ("hall", "foyer")
POLL_S = 0.25


def stored(vm: Any, screen: str) -> list[tuple[int, int]]:
    """(ts, seq) of every controller point of one screen, in time order."""
    vm.flush()
    series = vm.export(f'controller_seq{{site="{SITE}",screen="{screen}"}}')
    pairs = [(ts, int(v)) for s in series for ts, v in zip(s["timestamps"], s["values"],
                                                           strict=True)]
    return sorted(pairs)


@pytest.mark.parametrize("collector_away", [False, True], ids=["collector_stays", "collector_away"])
def test_broker_outage_every_seq_stored_exactly_once_in_order(
    fresh_mosquitto: Callable[..., Any],
    fresh_victoria: Callable[[], Any],
    tmp_path: Path,
    collector_away: bool,
) -> None:
    broker = fresh_mosquitto()
    vm = fresh_victoria()
    emulators = [NovastarEmulator(ports=1, cards=3, psus=1) for _ in SCREENS]
    screens = []
    for name, emu in zip(SCREENS, emulators, strict=True):
        host, port = emu.serve_tcp()
        screens.append({"id": name, "controller": {
            "driver": "novastar", "url": f"tcp://{host}:{port}", "ports": 1,
            "cards_per_port": 3, "psus_per_cabinet": 1}})
    collector_settings = settings_from_dict({
        "mqtt": {"host": broker.host, "port": broker.port, "client_id": "outage-collector",
                 "share_group": "outage", "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
        "influx": {"output": "v2", "url": vm.url, "bucket": "ledwatch", "org": "",
                   "flush_interval_ms": 100},
    })
    collector = Collector(collector_settings)
    agent = Agent(parse_settings({
        "agent": {"id": "pc-outage", "site": SITE, "poll_interval_s": POLL_S,
                  "data_dir": str(tmp_path / "agent")},
        "mqtt": {"host": broker.host, "port": broker.port, "keepalive_s": 5},
        "screens": screens,
    }))
    collector.start()
    assert collector.wait_connected(10)
    agent.start()
    try:
        time.sleep(8 * POLL_S)
        if collector_away:
            collector.stop()  # clean disconnect; its persistent session stays
        broker.stop()  # several poll intervals without a broker: the outbox holds them
        time.sleep(12 * POLL_S)
        assert agent.outbox.depth() >= 2 * 8, agent.status()  # both screens kept polling
        broker.start()  # same port, same persistence: the collector's session survives
        time.sleep(6 * POLL_S)
        if collector_away:
            publisher = agent.publisher
            assert publisher is not None
            deadline = time.monotonic() + 20  # the agent's reconnect backoff decides when
            while time.monotonic() < deadline and not publisher.stats().get("unrouted"):
                time.sleep(0.1)
            time.sleep(4 * POLL_S)  # several probes, all answered "no subscribers"
            stats = publisher.stats()
            assert stats["connected"] and stats.get("unrouted", 0) >= 1, stats
            assert agent.outbox.depth() >= 2 * 8, agent.status()  # kept, not discarded
            collector = Collector(collector_settings)  # same client id: same session
            collector.start()
            assert collector.wait_connected(10)
        for poller in agent.pollers:  # stop taking snapshots, let the backlog drain
            poller.stop()
        for poller in agent.pollers:
            poller.join(5)
        deadline = time.monotonic() + 30
        while agent.outbox.depth() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        agent.stop()
    expected = taken(agent)
    assert all(n >= 20 for n in expected.values()), expected
    try:
        # The clean stop above published what was left; storage catches up within seconds.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(
            len(stored(vm, s)) < n for s, n in expected.items()
        ):
            time.sleep(0.5)
        for screen, n in expected.items():
            pairs = stored(vm, screen)
            seqs = [seq for _, seq in pairs]
            assert seqs == list(range(1, n + 1)), (screen, seqs)  # once each, in order
            assert len({ts for ts, _ in pairs}) == n
        totals = collector.delivery.totals()
        assert totals.missing == 0
    finally:
        collector.stop()
        for emu in emulators:
            emu.stop()


def taken(agent: Agent) -> dict[str, int]:
    """Snapshots each screen took: the last seq its persisted counter handed out."""
    from agent.outbox.sqlite import SqliteOutbox

    box = SqliteOutbox(agent.settings.outbox_path, agent.settings.outbox_quota_bytes)
    try:
        assert box.depth() == 0, "the clean stop left unacknowledged snapshots"
        return {screen: box.last_seq(screen) for screen in SCREENS}
    finally:
        box.close()
