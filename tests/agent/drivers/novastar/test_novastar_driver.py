"""NovaStar driver against the real emulator, over TCP and over real pty pairs.

The emulator's clock is a `ManualClock` shared with the test, so a fault's whole life
(a PSU sagging over seconds, a 20 s link drop) runs without sleeping.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agent.drivers.base import LinkState, ScreenReading
from agent.drivers.novastar.driver import NovastarDriver, create_driver
from drivers.novastar.payload import Finishing, validated_payload
from firmware_protocols import novastar as ns
from firmware_protocols.emulators.novastar import (
    PSU_DRIFT_S,
    PSU_LOW_S,
    PSU_SAG_S,
    Fault,
    FaultKind,
    ManualClock,
    NovastarEmulator,
    parse_fault,
)
from ledwatch.errors import ConfigError

PORTS, CARDS, PSUS = 2, 3, 2


def card(reading: ScreenReading, ident: str) -> dict[str, Any]:
    i = reading.cards["id"].index(ident)
    return {k: v[i] for k, v in reading.cards.items()}


def psu(reading: ScreenReading, ident: str) -> dict[str, Any]:
    i = reading.psus["id"].index(ident)
    return {k: v[i] for k, v in reading.psus.items()}


def events(reading: ScreenReading) -> set[tuple[str, str]]:
    return {(e["event"], e["component"]) for e in reading.events}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def emu(clock: ManualClock) -> Iterator[NovastarEmulator]:
    e = NovastarEmulator(ports=PORTS, cards=CARDS, psus=PSUS, modules=12, clock=clock)
    yield e
    e.stop()


@pytest.fixture
def tcp_driver(emu: NovastarEmulator) -> Iterator[NovastarDriver]:
    host, port = emu.serve_tcp()
    drv = create_driver(
        {"url": f"tcp://{host}:{port}", "ports": PORTS, "cards_per_port": CARDS,
         "timeout_ms": 200, "retries": 1}
    )  # fmt: skip
    drv.open()
    yield Finishing(drv)  # edge events as the agent finds them, on the finished reading
    drv.close()


def assert_healthy(r: ScreenReading) -> None:
    validated_payload(r)
    assert r.link is LinkState.UP and r.errors == 0
    c = r.controller
    assert c["online"] and c["link"] == "up" and c["model"] == "MCTRL660 PRO"
    assert c["signal_ok"] is True and c["brightness_pct"] == 75.3 and c["temp_c"] is None
    assert r.cards["id"] == [f"p{p}c{i}" for p in range(PORTS) for i in range(CARDS)]
    assert all(r.cards["online"]) and all(r.cards["monitor"])
    assert all(30 <= t <= 45 for t in r.cards["temp_c"])
    assert all(4.8 <= v <= 5.2 for v in r.cards["voltage_v"])
    assert r.cards["module_faults"] == [0] * PORTS * CARDS
    assert all(1300 <= f <= 1700 for f in r.cards["fan_rpm"])
    assert r.cards["smoke"] == [False] * 6 and r.cards["door_open"] == [False] * 6
    assert len(r.psus["id"]) == PORTS * CARDS * PSUS
    assert r.psus["id"][:2] == ["p0c0-psu1", "p0c0-psu2"]
    assert all(r.psus["ok"]) and all(4.8 <= v <= 5.2 for v in r.psus["vout_v"])
    assert set(r.psus["iout_a"]) == {None}
    env = r.env
    assert 28 <= env["temp_c"] <= 36 and 35 <= env["humidity_pct"] <= 45
    assert env["smoke"] is False and env["door_open"] is False and env["fan_rpm"] >= 1300


def test_healthy_screen_over_tcp(tcp_driver: NovastarDriver, clock: ManualClock) -> None:
    first = tcp_driver.poll()
    assert_healthy(first)
    assert first.events == []
    clock.advance(30)  # readings drift, nothing else changes
    second = tcp_driver.poll()
    assert_healthy(second)
    assert second.events == [] and second.cards["temp_c"] != first.cards["temp_c"]


def test_psu_sags_then_card_goes_offline(
    tcp_driver: NovastarDriver, emu: NovastarEmulator, clock: ManualClock
) -> None:
    tcp_driver.poll()
    emu.inject(Fault(FaultKind.PSU_SAG_THEN_DIE, target="p0c1/1"))
    seen = []
    for _ in range(int((PSU_SAG_S + PSU_LOW_S) / 0.5) + 2):
        r = tcp_driver.poll()
        validated_payload(r)
        seen.append((card(r, "p0c1")["online"], psu(r, "p0c1-psu1")["vout_v"], r))
        clock.advance(0.5)
    vouts = [v for online, v, _ in seen if online]
    assert vouts[0] >= 4.9 and any(4.3 <= v < 4.6 for v in vouts) and min(vouts) == 2.5
    assert vouts == sorted(vouts, reverse=True)  # falls, never recovers
    fail_poll = next(r for _, v, r in seen if v is not None and v < 4.5)
    assert ("psu_failed", "psu/p0c1-psu1") in events(fail_poll)
    assert psu(fail_poll, "p0c1-psu1")["ok"] is False and psu(fail_poll, "p0c1-psu2")["ok"] is True
    online, vout, last = seen[-1]
    assert not online and vout is None and card(last, "p0c1")["temp_c"] is None
    assert last.link is LinkState.UP and last.controller["online"]  # ACK 01 is data
    assert sum(last.cards["online"]) == PORTS * CARDS - 1
    offline_poll = next(r for on, _, r in seen if not on)
    assert ("card_offline", "card/p0c1") in events(offline_poll)


def test_psu_drifts_down_slowly_and_never_reaches_voltage_low(
    tcp_driver: NovastarDriver, emu: NovastarEmulator, clock: ManualClock
) -> None:
    """`psu_drift`: an ageing supply, ~0.25 V down over 90 s, then steady near 4.75 V;
    never `ok = false`, never below 4.6 V (voltage_low's level), no event."""
    tcp_driver.poll()
    emu.inject(parse_fault("psu_drift:p1c2/2"))
    seen = []
    for _ in range(int(PSU_DRIFT_S / 5) * 2 + 1):  # 180 s in 5 s steps
        r = tcp_driver.poll()
        validated_payload(r)
        seen.append((psu(r, "p1c2-psu2"), psu(r, "p1c2-psu1"), r))
        clock.advance(5)
    drift = [d["vout_v"] for d, _, _ in seen]
    assert all(4.6 < v <= 5.1 for v in drift) and drift[0] >= 4.9
    assert all(4.7 <= v <= 4.8 for v in drift[-18:])  # holds after 90 s (0.1 V steps)
    assert all(d["ok"] for d, _, _ in seen)
    assert min(o["vout_v"] for _, o, _ in seen) >= 4.9  # the cabinet's other rail is fine
    assert not any(("psu_failed", "psu/p1c2-psu2") in events(r) for _, _, r in seen)


@pytest.mark.parametrize(
    "fault,check",
    [
        (
            Fault(FaultKind.MODULE_FAIL, target="p1c0/3"),
            lambda r: (
                card(r, "p1c0")["module_faults"] == 3 and ("module_fault", "card/p1c0") in events(r)
            ),
        ),
        (
            Fault(FaultKind.OVER_TEMP, target="p0c2"),
            lambda r: card(r, "p0c2")["temp_c"] >= 80 and card(r, "p0c1")["temp_c"] < 50,
        ),
        (
            Fault(FaultKind.FAN_STOP, target="p1c1/2"),
            lambda r: card(r, "p1c1")["fan_rpm"] == 0 and r.env["fan_rpm"] == 0,
        ),
        (
            Fault(FaultKind.DOOR_OPEN, target="p0c0"),
            lambda r: (
                card(r, "p0c0")["door_open"] is True
                and r.env["door_open"] is True
                and ("door_opened", "card/p0c0") in events(r)
            ),
        ),
        (
            Fault(FaultKind.SMOKE, target="p1c2"),
            lambda r: (
                card(r, "p1c2")["smoke"] is True
                and r.env["smoke"] is True
                and ("smoke_detected", "card/p1c2") in events(r)
            ),
        ),
        (
            Fault(FaultKind.SIGNAL_LOST),
            lambda r: (
                r.controller["signal_ok"] is False and ("signal_lost", "controller") in events(r)
            ),
        ),
    ],
    ids=lambda v: v.kind.value if isinstance(v, Fault) else "",
)
def test_fault_shows_in_reading(
    tcp_driver: NovastarDriver, emu: NovastarEmulator, fault: Fault, check: Any
) -> None:
    assert_healthy(tcp_driver.poll())
    emu.inject(fault)
    r = tcp_driver.poll()
    validated_payload(r)
    assert check(r), (r.controller, r.cards, r.env, r.events)
    assert r.link is LinkState.UP


def test_link_drop_then_recovery(
    tcp_driver: NovastarDriver, emu: NovastarEmulator, clock: ManualClock
) -> None:
    assert_healthy(tcp_driver.poll())
    emu.inject(Fault(FaultKind.LINK_DROP, duration_s=20))
    down = tcp_driver.poll()
    validated_payload(down)
    assert down.link is LinkState.DOWN and down.controller["online"] is False
    assert down.controller["link"] == "down" and down.errors > 0
    assert not any(down.cards["online"]) and len(down.cards["id"]) == PORTS * CARDS
    assert len(down.psus["id"]) == PORTS * CARDS * PSUS and set(down.psus["ok"]) == {None}
    assert events(down) == {("controller_link_lost", "controller")}
    clock.advance(10)
    still = tcp_driver.poll()  # new connections are refused while the link is down
    assert still.link is LinkState.DOWN and still.events == []
    clock.advance(11)
    back = tcp_driver.poll()
    assert_healthy(back)
    assert events(back) == {("controller_link_restored", "controller")}


def test_scheduled_faults_follow_the_clock(clock: ManualClock) -> None:
    emu = NovastarEmulator(
        ports=1, cards=2, clock=clock,
        faults=[Fault(FaultKind.MODULE_FAIL, at_s=10, target="p0c1", duration_s=5)],
    )  # fmt: skip
    try:
        host, port = emu.serve_tcp()
        drv = create_driver({"url": f"tcp://{host}:{port}", "cards_per_port": 2})
        assert drv.poll().cards["module_faults"] == [0, 0]
        clock.advance(10)
        assert drv.poll().cards["module_faults"] == [0, 1]
        clock.advance(5)
        assert drv.poll().cards["module_faults"] == [0, 0]
        drv.close()
    finally:
        emu.stop()


def test_missing_cards_and_no_monitoring_card(clock: ManualClock) -> None:
    """Configured cards that do not exist answer ACK 01; without monitoring cards each
    card reports one PSU from its own supply voltage and no module test."""
    emu = NovastarEmulator(ports=2, cards=[2, 1], psus=2, clock=clock, monitor=False)
    try:
        host, port = emu.serve_tcp()
        drv = create_driver(
            {"url": f"tcp://{host}:{port}", "ports": 2, "cards_per_port": [2, 2],
             "psus_per_cabinet": 2}
        )  # fmt: skip
        r = drv.poll()
        validated_payload(r)
        assert r.cards["online"] == [True, True, True, False]
        assert r.cards["monitor"] == [False, False, False, True]  # p1c1: never seen
        assert r.cards["module_faults"] == [None, None, None, None]
        assert r.cards["fan_rpm"] == [None] * 4 and r.env["fan_rpm"] is None
        assert r.psus["id"] == ["p0c0-psu1", "p0c1-psu1", "p1c0-psu1", "p1c1-psu1", "p1c1-psu2"]
        assert r.psus["vout_v"][:3] == r.cards["voltage_v"][:3] and r.psus["ok"][:3] == [True] * 3
        assert r.link is LinkState.UP
        drv.close()
    finally:
        emu.stop()


class NoisyController:
    """A TCP front for the emulator that corrupts the line: garbage between replies, and
    the first reply to every other request with a broken checksum (then silence)."""

    def __init__(self, emu: NovastarEmulator) -> None:
        self.emu = emu
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.corrupted = 0
        self._stop = False
        self._th = threading.Thread(target=self._run, daemon=True)
        self._th.start()

    def _run(self) -> None:
        self.srv.settimeout(0.1)
        seen: set[tuple[int, int, int]] = set()
        while not self._stop:
            try:
                conn, _ = self.srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            dec = ns.StreamDecoder()
            conn.settimeout(0.1)
            with conn:
                while not self._stop:
                    try:
                        data = conn.recv(4096)
                    except TimeoutError:
                        continue
                    if not data:
                        break
                    out = bytearray()
                    for req in dec.feed(data):
                        reply = self.emu.handle(req)
                        assert reply is not None
                        raw = bytearray(ns.encode(reply))
                        key = (req.port, req.board, req.address)
                        out += b"\x55\xaa\x00\x13garbage\xaa"
                        if key not in seen and req.board % 2 == 1:
                            seen.add(key)
                            raw[-1] ^= 0xFF
                            self.corrupted += 1
                        out += raw
                    conn.sendall(bytes(out))

    def stop(self) -> None:
        self._stop = True
        self.srv.close()
        self._th.join(2)


def test_garbage_and_bad_checksums_are_retried(emu: NovastarEmulator) -> None:
    noisy = NoisyController(emu)
    try:
        drv = create_driver(
            {"url": f"tcp://127.0.0.1:{noisy.port}", "ports": PORTS, "cards_per_port": CARDS,
             "timeout_ms": 150, "retries": 2,
             # Only the monitoring blocks here: the per-card 3.9 reads would be corrupted too.
             "extended": {"card_info": False, "redundancy": False}}
        )  # fmt: skip
        r = drv.poll()
        validated_payload(r)
        assert noisy.corrupted == 2  # p0c1 and p1c1 blocks
        assert all(r.cards["online"]) and r.link is LinkState.DEGRADED and r.errors >= 2
        assert drv.stats["bad_checksums"] == 2 and drv.stats["noise_bytes"] > 0
        r2 = drv.poll()
        assert all(r2.cards["online"]) and r2.cards["module_faults"] == [0] * 6
        drv.close()
    finally:
        noisy.stop()


def test_silent_controller_is_link_down_not_an_exception(free_port: Any) -> None:
    srv = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        drv = create_driver(
            {"url": f"tcp://127.0.0.1:{srv.getsockname()[1]}", "cards_per_port": 2,
             "timeout_ms": 50, "retries": 1}
        )  # fmt: skip
        r = drv.poll()
        validated_payload(r)
        assert r.link is LinkState.DOWN and r.cards["online"] == [False, False]
    finally:
        srv.close()
    nobody = create_driver({"url": f"tcp://127.0.0.1:{free_port()}", "cards_per_port": 1})
    nobody.open()  # refused: not raised
    assert nobody.poll().controller["online"] is False
    unplugged = create_driver({"url": "serial:///dev/ttyNOVA-unplugged", "cards_per_port": 1})
    r = unplugged.poll()
    assert r.link is LinkState.DOWN and r.cards["online"] == [False] and r.errors == 1


def serial_driver(path: str, **extra: Any) -> NovastarDriver:
    return Finishing(create_driver(  # type: ignore[return-value]
        {"url": f"serial://{path}?baud=115200", "ports": PORTS, "cards_per_port": CARDS,
         "timeout_ms": 150, "retries": 1, **extra}
    ))  # fmt: skip


def test_over_emulator_pty(emu: NovastarEmulator, clock: ManualClock) -> None:
    drv = serial_driver(emu.serve_pty())
    drv.open()
    try:
        assert_healthy(drv.poll())
        emu.inject(Fault(FaultKind.PSU_SAG_THEN_DIE, target="p1c2/2"))
        clock.advance(PSU_SAG_S - 0.1)
        r = drv.poll()
        assert psu(r, "p1c2-psu2")["vout_v"] == 4.3 and psu(r, "p1c2-psu2")["ok"] is False
        clock.advance(PSU_LOW_S + 0.1)
        assert card(drv.poll(), "p1c2")["online"] is False
        emu.inject(Fault(FaultKind.LINK_DROP, duration_s=5))
        down = drv.poll()  # serial: silence, then timeouts
        assert down.link is LinkState.DOWN
        assert ("controller_link_lost", "controller") in events(down)
        clock.advance(6)
        back = drv.poll()
        validated_payload(back)
        assert back.link is LinkState.UP and back.controller["online"]
        assert ("controller_link_restored", "controller") in events(back)
    finally:
        drv.close()


def test_over_socat_pty_pair(emu: NovastarEmulator, pty_pair: Any) -> None:
    emu.serve_serial(pty_pair.b, baudrate=115200)
    drv = serial_driver(pty_pair.a)
    drv.open()
    try:
        assert_healthy(drv.poll())
        emu.inject(Fault(FaultKind.MODULE_FAIL, target="p0c2/2"))
        emu.inject(Fault(FaultKind.SIGNAL_LOST))
        r = drv.poll()
        validated_payload(r)
        assert card(r, "p0c2")["module_faults"] == 2 and r.controller["signal_ok"] is False
    finally:
        drv.close()


@pytest.mark.parametrize(
    "options,key",
    [
        ({"cards_per_port": 1}, "controller.url"),
        ({"url": "http://x", "cards_per_port": 1}, "controller.url"),
        ({"url": "tcp://:5200", "cards_per_port": 1}, "controller.url"),
        ({"url": "serial:///dev/ttyS0?baud=fast", "cards_per_port": 1}, "controller.url"),
        ({"url": "tcp://h", "cards_per_port": 1, "ports": 17}, "controller.ports"),
        ({"url": "tcp://h", "ports": 2, "cards_per_port": [1]}, "controller.cards_per_port"),
        ({"url": "tcp://h", "cards_per_port": -1}, "controller.cards_per_port"),
        (
            {"url": "tcp://h", "cards_per_port": 1, "psus_per_cabinet": 9},
            "controller.psus_per_cabinet",
        ),
        ({"url": "tcp://h", "cards_per_port": 1, "timeout_ms": "soon"}, "controller.timeout_ms"),
        ({"url": "tcp://h", "cards_per_port": 1, "retry": 2}, "controller.retry"),
    ],
)
def test_bad_options_name_the_key(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}: "):
        create_driver(options)


def test_registered_in_the_driver_registry() -> None:
    from agent.drivers import create_driver as registry_create

    drv = registry_create("novastar", {"url": "tcp://127.0.0.1:5200", "cards_per_port": 4})
    assert isinstance(drv, NovastarDriver)
