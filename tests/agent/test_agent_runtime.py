"""The poll loop: fixed-interval polls, seq, stats, events, a driver that fails, restarts.

`ScriptedDriver` is a real `Driver` (the protocol is all the loop sees) whose readings and
failures a test chooses; the NovaStar driver + emulator run in test_agent_e2e.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from agent.drivers.base import LinkState, ScreenReading
from agent.outbox import Kind, MemoryOutbox, MemoryStore, SqliteOutbox
from agent.runtime import Agent, build_drivers, status_line
from agent.settings import AgentSettings, parse_settings
from ledwatch import contract
from ledwatch.errors import ConfigError


class ScriptedDriver:
    def __init__(self, fail_open: int = 0, fail_polls: set[int] | None = None) -> None:
        self.fail_open = fail_open
        self.fail_polls = fail_polls or set()
        self.opens = self.closes = self.polls = 0
        self.poll_times: list[float] = []
        self.lock = threading.Lock()

    def open(self) -> None:
        self.opens += 1
        if self.opens <= self.fail_open:
            raise OSError("port busy")

    def poll(self) -> ScreenReading:
        self.polls += 1
        self.poll_times.append(time.monotonic())
        if self.polls in self.fail_polls:
            raise RuntimeError(f"driver bug at poll {self.polls}")
        events = [{"event": "door_opened", "component": "p0c0"}] if self.polls == 2 else []
        return ScreenReading(
            controller={"online": True, "temp_c": 40.0},
            cards={
                "id": ["p0c0", "p0c1"],
                "online": [True, True],
                "temp_c": [30.0, 31.0],
                "voltage_v": [5.0, 5.0],
                "module_faults": [0, 0],
            },
            psus={"id": ["p0c0-psu1"], "ok": [True], "vout_v": [5.0]},
            env={},
            link=LinkState.UP,
            events=events,
        )

    def close(self) -> None:
        self.closes += 1


def settings_for(
    tmp_path: Path, screens: list[str], interval: float = 0.1, **mqtt: Any
) -> AgentSettings:
    return parse_settings(
        {
            "agent": {
                "id": "pc1",
                "site": "rt-site",
                "poll_interval_s": interval,
                "data_dir": str(tmp_path / "data"),
            },
            "mqtt": {"port": 1, **mqtt},
            "screens": [{"id": s, "controller": {"driver": "novastar"}} for s in screens],
        }
    )


def docs(box: Any, kind: str = Kind.TELEMETRY) -> list[dict[str, Any]]:
    return [orjson.loads(m.payload) for m in box.next_batch(10_000) if m.kind == kind]


def wait_until(pred: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_polls_on_a_fixed_grid_with_seq_stats_and_events(tmp_path: Path) -> None:
    box = MemoryOutbox()
    drivers = {"lobby": ScriptedDriver(), "hall": ScriptedDriver()}
    agent = Agent(
        settings_for(tmp_path, ["lobby", "hall"]), outbox=box, drivers=drivers, publish=False
    )
    agent.start()
    wait_until(lambda: drivers["lobby"].polls >= 6 and drivers["hall"].polls >= 6)
    agent.stop()
    assert drivers["lobby"].closes == 1 and drivers["hall"].closes == 1
    # No drift: poll k starts at start + k * interval, whatever each poll costs.
    times = drivers["lobby"].poll_times
    # A late tick is skipped, never shifts the grid: every poll sits near a grid point.
    ticks = [(t - times[0]) / 0.1 for t in times]
    assert all(abs(x - round(x)) < 0.3 for x in ticks), ticks
    assert [round(x) for x in ticks] == sorted({round(x) for x in ticks})
    tele = docs(box)
    for screen in ("lobby", "hall"):
        mine = [d for d in tele if d["screen"] == screen]
        assert [d["seq"] for d in mine] == list(range(1, len(mine) + 1))
        for d in mine:
            contract.validate_telemetry(d)
            assert set(d["stats"]) == {
                "poll_ms",
                "poll_errors",
                "queue_depth",
                "uptime_s",
                "dropped",
            }
    msgs = box.next_batch(10_000)
    assert msgs[0].topic == contract.telemetry_topic(
        "rt-site", msgs and orjson.loads(msgs[0].payload)["screen"]
    )
    events = docs(box, Kind.EVENT)
    assert {(e["screen"], e["event"]) for e in events} == {
        ("lobby", "door_opened"),
        ("hall", "door_opened"),
    }
    assert all(m.topic.endswith("/event") for m in msgs if m.kind == Kind.EVENT)


def test_failing_driver_is_counted_reported_and_reopened(tmp_path: Path) -> None:
    box = MemoryOutbox()
    driver = ScriptedDriver(fail_open=1, fail_polls={2})
    agent = Agent(
        settings_for(tmp_path, ["lobby"], 0.05),
        outbox=box,
        drivers={"lobby": driver},
        publish=False,
    )
    agent.start()
    wait_until(lambda: driver.polls >= 4)
    status = agent.status()
    agent.stop()
    tele = docs(box)
    # tick 1: open failed; tick 2: poll 1 ok; tick 3: poll 2 raised; tick 4: reopened, poll 3 ok
    links = [d["controller"]["link"] for d in tele[:4]]
    assert links == ["down", "up", "down", "up"]
    assert tele[0]["controller"]["online"] is False
    assert [d["stats"]["poll_errors"] for d in tele[:4]] == [1, 1, 2, 2]
    assert driver.opens == 3 and driver.closes == 2
    assert status["screens"]["lobby"]["poll_errors"] == 2
    assert "lobby: up 2/2 cards" in status_line(status)


def test_seq_continues_after_a_restart(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, ["lobby"], 0.05)
    store = MemoryStore()
    for _ in range(2):
        driver = ScriptedDriver()
        agent = Agent(
            settings, outbox=MemoryOutbox(store=store), drivers={"lobby": driver}, publish=False
        )
        agent.start()
        wait_until(lambda d=driver: d.polls >= 3)  # type: ignore[misc]
        agent.stop()
    seqs = [
        orjson.loads(m.payload)["seq"]
        for m in MemoryOutbox(store=store).next_batch(1000)
        if m.kind == Kind.TELEMETRY
    ]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 6


def test_agent_publishes_through_real_mosquitto(
    tmp_path: Path, mosquitto: Any, subscriber: Any
) -> None:
    settings = settings_for(tmp_path, ["lobby"], 0.1, host=mosquitto.host, port=mosquitto.port)
    sub = subscriber(mosquitto.host, mosquitto.port, ["ledwatch/v1/rt-site/#"])
    driver = ScriptedDriver()
    agent = Agent(settings, drivers={"lobby": driver})
    assert isinstance(agent.outbox, SqliteOutbox)
    agent.start()
    msgs = sub.wait_for(lambda m: sum(r.topic.endswith("/telemetry") for r in m) >= 5)
    agent.stop()
    tele = [r.doc() for r in msgs if r.topic.endswith("/telemetry")]
    for d in tele:
        contract.validate_telemetry(d)
    assert [d["seq"] for d in tele][:5] == [1, 2, 3, 4, 5]
    states = [
        r.doc()["state"]
        for r in sub.wait_for(
            lambda m: any(r.topic.endswith("/status") and r.doc()["state"] == "offline" for r in m)
        )
        if r.topic.endswith("/status")
    ]
    assert states[0] == "online" and states[-1] == "offline"
    reopened = SqliteOutbox(settings.outbox_path)
    try:
        assert reopened.depth() == 0  # everything acknowledged was deleted
    finally:
        reopened.close()


def test_driver_config_errors_name_the_screen() -> None:
    settings = parse_settings(
        {
            "agent": {"id": "pc1", "site": "rt-site"},
            "screens": [
                {"id": "lobby", "controller": {"driver": "novastar", "url": "tcp://h:5200",
                                               "cards_per_port": 2}},
                {"id": "hall", "controller": {"driver": "novastar", "url": "ftp://h",
                                              "cards_per_port": 2}},
            ],
        }
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"^screens\[1\]\.controller\.url: must start with tcp"):
        build_drivers(settings)
    with pytest.raises(ConfigError, match=r"^screens\[1\]\.controller\.url: "):
        Agent(settings)
