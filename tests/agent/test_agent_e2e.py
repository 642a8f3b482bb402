"""End to end: the real NovaStar emulator -> NovaStar driver -> agent -> real Mosquitto.

Covers the CLI too: `--check-config`, `--once`, and a real agent process stopped by
SIGTERM (offline status published) or SIGKILLed (the broker's will says offline).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agent_config import write_agent_config

from agent.cli import main
from agent.outbox import SqliteOutbox
from agent.runtime import Agent
from agent.settings import load_settings
from firmware_protocols.emulators.novastar import (
    Fault,
    FaultKind,
)
from ledwatch import contract

ROOT = Path(__file__).resolve().parents[2]


def write_config(
    tmp_path: Path,
    site: str,
    screens: dict[str, str],
    broker: Any = None,
    interval: float = 0.2,
) -> Path:
    """The shared test config, pointed at `broker` (or at nothing), with a rotating log."""
    return write_agent_config(
        tmp_path, site, screens,
        broker.host if broker else "127.0.0.1", broker.port if broker else 1, interval,
        log_file="logs/agent.log", status_interval_s=0.5,
    )  # fmt: skip


def closed_url(free_port: Callable[[], int]) -> str:
    return f"tcp://127.0.0.1:{free_port()}"  # nothing listens there


def test_check_config_polls_each_link_once(
    tmp_path: Path, emulator: Any, free_port: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = emulator()
    good = write_config(tmp_path, "e2e-check", {"lobby": url})
    assert main(["--config", str(good), "--check-config"]) == 0
    out = capsys.readouterr().out
    assert "screen lobby: OK link up, 6/6 cards answering" in out
    assert not (tmp_path / "data").exists()  # nothing queued, nothing published

    bad = write_config(tmp_path, "e2e-check", {"lobby": url, "dead": closed_url(free_port)})
    assert main(["--config", str(bad), "--check-config"]) == 1
    out = capsys.readouterr().out
    assert "screen lobby: OK" in out and "screen dead: FAIL link down" in out


def test_bad_config_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, "Bad Site", {"lobby": "tcp://127.0.0.1:1"})
    assert main(["--config", str(path), "--check-config"]) == 2
    assert "agent.site: 'Bad Site' is not a valid id" in capsys.readouterr().err


def test_once_publishes_one_valid_snapshot_per_screen(
    tmp_path: Path, emulator: Any, mosquitto: Any, subscriber: Any
) -> None:
    _, url_a = emulator()
    _, url_b = emulator(faults=[Fault(FaultKind.DOOR_OPEN, target="p1c2")])
    site = "e2e-once"
    sub = subscriber(mosquitto.host, mosquitto.port, [f"ledwatch/v1/{site}/screen/#"])
    path = write_config(tmp_path, site, {"lobby": url_a, "hall": url_b}, mosquitto)
    assert main(["--config", str(path), "--once"]) == 0
    msgs = sub.wait_for(lambda m: sum(r.topic.endswith("/telemetry") for r in m) >= 2)
    tele = {r.doc()["screen"]: r.doc() for r in msgs if r.topic.endswith("/telemetry")}
    assert set(tele) == {"lobby", "hall"}
    for doc in tele.values():
        contract.validate_telemetry(doc)
        assert doc["seq"] == 1 and doc["controller"]["online"] is True
        assert len(doc["cards"]["id"]) == 6 and all(doc["cards"]["online"])
    assert tele["hall"]["cards"]["door_open"][tele["hall"]["cards"]["id"].index("p1c2")] is True
    assert (tmp_path / "logs" / "agent.log").stat().st_size > 0  # rotating log file written


def test_once_without_any_subscriber_keeps_the_snapshots_and_says_why(
    tmp_path: Path, emulator: Any, fresh_mosquitto: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = emulator()
    broker = fresh_mosquitto()  # nobody subscribes: the broker would discard (PUBACK 0x10)
    path = write_config(tmp_path, "e2e-nosub", {"lobby": url}, broker)
    assert main(["--config", str(path), "--once", "--timeout", "2"]) == 1
    assert "no subscriber" in capsys.readouterr().err
    settings = load_settings(path)
    box = SqliteOutbox(settings.outbox_path, settings.outbox_quota_bytes)
    try:
        assert box.depth() == 1  # the snapshot is still on disk for the next run
    finally:
        box.close()


def test_link_drop_and_broker_outage_lose_nothing(
    tmp_path: Path, emulator: Any, fresh_mosquitto: Any, subscriber: Any
) -> None:
    emu, url = emulator()
    _, url_hall = emulator()
    broker = fresh_mosquitto()
    site = "e2e-outage"
    sub = subscriber(broker.host, broker.port, [f"ledwatch/v1/{site}/#"], persistent=True)
    config = write_config(tmp_path, site, {"lobby": url, "hall": url_hall}, broker, interval=0.1)
    agent = Agent(load_settings(config))
    agent.start()
    try:
        sub.wait_for(lambda m: sum(r.topic.endswith("/telemetry") for r in m) >= 6)
        emu.inject(Fault(FaultKind.LINK_DROP, duration_s=0.6))
        time.sleep(0.8)
        broker.stop()
        time.sleep(1.0)  # ten poll intervals
        assert agent.outbox.depth() >= 10  # queued while the broker is away
        broker.start()
        assert agent.publisher is not None
        assert agent.publisher.wait_idle(20)  # the backlog drained after the restart
        # The polls after that are sent too before the stop (a stop leaves what it did not
        # send in the outbox, durable but not delivered in this run): no poll may race it.
        for poller in agent.pollers:
            poller.stop()
        for poller in agent.pollers:
            poller.join(10)
        assert agent.publisher.wait_idle(20)
    finally:
        agent.stop()
    last = {p.screen: p.last_seq for p in agent.pollers}

    def arrived(msgs: list[Any]) -> bool:
        got = {(r.doc()["screen"], r.doc()["seq"]) for r in msgs if r.topic.endswith("/telemetry")}
        return got >= {(s, q) for s, n in last.items() for q in range(1, n + 1)}

    msgs = sub.wait_for(arrived, 20)
    tele = [r.doc() for r in msgs if r.topic.endswith("/telemetry")]
    for doc in tele:
        contract.validate_telemetry(doc)
    for screen, n in last.items():
        # De-duplicated by seq, every snapshot is stored exactly once and in outbox order:
        # a duplicate is the same bytes re-sent, and first arrivals come in seq order.
        first: dict[int, bytes] = {}
        for r in msgs:
            if r.topic == contract.telemetry_topic(site, screen):
                seq = r.doc()["seq"]
                assert first.setdefault(seq, r.payload) == r.payload, f"{screen} seq {seq} reused"
        assert list(first) == list(range(1, n + 1)), f"{screen}: gap or out of order"
    lobby = sorted((d for d in tele if d["screen"] == "lobby"), key=lambda d: d["seq"])
    links = [d["controller"]["link"] for d in lobby]
    assert "down" in links and links[-1] == "up"  # the drop was seen, and it recovered
    status = [r.doc()["state"] for r in msgs if r.topic.endswith("/status")]
    assert status[-1] == "offline"


def _start_agent_process(config: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "ledwatch.cli", "agent", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM semantics")
def test_agent_process_sigterm_and_sigkill(
    tmp_path: Path, emulator: Any, mosquitto: Any, subscriber: Any
) -> None:
    _, url = emulator()
    site = "e2e-proc"
    status_topic = contract.status_topic(site, "pc1")
    sub = subscriber(mosquitto.host, mosquitto.port, [f"ledwatch/v1/{site}/#"])
    config = write_config(tmp_path, site, {"lobby": url}, mosquitto)

    proc = _start_agent_process(config)
    try:
        # >= 6 polls at 0.2 s: past the first status line (status_interval_s = 0.5)
        sub.wait_for(lambda m: sum(r.topic.endswith("/telemetry") for r in m) >= 6, 20)
        proc.terminate()  # SIGTERM: clean stop
        out, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "mqtt up" in out  # the periodic one-line status
    msgs = sub.wait_for(
        lambda m: any(r.topic == status_topic and r.doc()["state"] == "offline" for r in m)
    )
    states = [r.doc()["state"] for r in msgs if r.topic == status_topic]
    assert states[0] == "online" and states[-1] == "offline"

    before = len(sub.snapshot())
    proc = _start_agent_process(config)
    try:
        sub.wait_for(
            lambda m: any(
                r.topic == status_topic and r.doc()["state"] == "online" for r in m[before:]
            ),
            20,
        )
        sub.wait_for(lambda m: any(r.topic.endswith("/telemetry") for r in m[before:]), 20)
        proc.kill()  # SIGKILL: no clean stop, the broker's will must say offline
        proc.communicate(timeout=20)
    finally:
        proc.kill()
    msgs = sub.wait_for(
        lambda m: any(
            r.topic == status_topic and r.doc()["state"] == "offline" for r in m[before:]
        ),
        20,
    )
    tele = [r.doc() for r in msgs if r.topic.endswith("/telemetry")]
    seqs = [d["seq"] for d in tele]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # seq continued across restarts
