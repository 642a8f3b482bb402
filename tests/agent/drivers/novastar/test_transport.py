"""Transports: auto-baud over real pty pairs, reconnect backoff, wire pacing, TCP reads.

A pty carries no bits, but it keeps the rate the driver set on its slave side; the
emulator's `serve_pty(baudrate=...)` reads that rate through the master and drops
requests sent at another rate, as a real UART at the wrong rate would hear only noise.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agent.drivers.base import LinkState
from agent.drivers.novastar.driver import NovastarDriver, create_driver, parse_options
from agent.drivers.novastar.transport import (
    AUTO_BAUDS,
    BAUD_300,
    BAUD_600,
    Backoff,
    SerialTransport,
    TcpTransport,
    serial_baud,
    wire_time_s,
)
from firmware_protocols.emulators.novastar import Fault, FaultKind, ManualClock, NovastarEmulator
from ledwatch.errors import ConfigError


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def emu(clock: ManualClock) -> Iterator[NovastarEmulator]:
    e = NovastarEmulator(ports=1, cards=2, psus=2, clock=clock)
    yield e
    e.stop()


def serial_driver(path: str, query: str = "", **extra: Any) -> NovastarDriver:
    return create_driver(
        {"url": f"serial://{path}{query}", "cards_per_port": 2, "timeout_ms": 100,
         "retries": 1, **extra}
    )  # fmt: skip


@pytest.mark.parametrize("rate", [BAUD_300, BAUD_600])
@pytest.mark.parametrize("query", ["", "?baud=auto"])
def test_auto_baud_finds_the_rate_the_controller_answers_at(
    emu: NovastarEmulator, rate: int, query: str
) -> None:
    drv = serial_driver(emu.serve_pty(baudrate=rate), query)
    drv.open()
    try:
        r = drv.poll()
    finally:
        drv.close()
    assert r.link is LinkState.UP and r.errors == 0 and all(r.cards["online"])
    assert r.controller["baud"] == rate and r.controller["model"] == "MCTRL660 PRO"
    # 1048576 is tried first: a 115200 controller sees (and drops) exactly one probe.
    assert emu.baud_mismatches == (1 if rate == BAUD_300 else 0)


def test_fixed_wrong_baud_is_link_down(emu: NovastarEmulator) -> None:
    drv = serial_driver(emu.serve_pty(baudrate=BAUD_300), f"?baud={BAUD_600}")
    r = drv.poll()
    drv.close()
    assert r.link is LinkState.DOWN and r.controller["baud"] == BAUD_600
    assert emu.baud_mismatches >= 1


def test_detected_rate_is_remembered_for_reconnects(
    emu: NovastarEmulator, clock: ManualClock
) -> None:
    drv = serial_driver(emu.serve_pty(baudrate=BAUD_300))
    drv.open()
    try:
        assert drv.poll().controller["baud"] == BAUD_300
        assert emu.baud_mismatches == 1
        emu.inject(Fault(FaultKind.LINK_DROP, duration_s=5))
        down = drv.poll()
        assert down.link is LinkState.DOWN and down.controller["reconnect_in_s"] == 0.0
        clock.advance(6)
        back = drv.poll()  # reopened at the remembered 115200: no probe at 1048576
        assert back.link is LinkState.UP and back.controller["baud"] == BAUD_300
        assert emu.baud_mismatches == 1
    finally:
        drv.close()


def test_no_rate_answers_then_the_controller_appears(emu: NovastarEmulator) -> None:
    """A controller at neither rate (here 9600) is down, not an exception; the auto
    probe tries every rate each time the backoff lets it."""
    path = emu.serve_pty(baudrate=9600)
    drv = serial_driver(path)
    r = drv.poll()
    assert r.link is LinkState.DOWN and r.controller["online"] is False and r.errors == 1
    assert r.controller["baud"] is None and emu.baud_mismatches == len(AUTO_BAUDS)
    drv.close()


def test_serial_url_baud_values() -> None:
    assert serial_baud("serial:///dev/ttyUSB0") is None
    assert serial_baud("serial:///dev/ttyUSB0?baud=auto") is None
    assert serial_baud("serial://COM3?baud=115200") == 115200
    assert SerialTransport("/dev/x", None).candidates() == [BAUD_600, BAUD_300]
    t = SerialTransport("/dev/x", None)
    t.use(BAUD_300)
    assert t.candidates() == [BAUD_300, BAUD_600]
    assert SerialTransport("/dev/x", 57600).candidates() == [57600]
    with pytest.raises(ConfigError, match=r"^controller\.url: .*baud must be"):
        parse_options({"url": "serial:///dev/ttyUSB0?baud=fast", "cards_per_port": 1})
    with pytest.raises(ConfigError, match=r"^controller\.reconnect_max_s: "):
        parse_options({"url": "tcp://h", "cards_per_port": 1, "reconnect_min_s": 10,
                       "reconnect_max_s": 5})  # fmt: skip
    with pytest.raises(ConfigError, match=r"^controller\.reconnect_min_s: "):
        parse_options({"url": "tcp://h", "cards_per_port": 1, "reconnect_min_s": 0})


def test_backoff_doubles_with_jitter_up_to_the_ceiling() -> None:
    now = [100.0]
    rand = iter([1.0] * 8 + [0.0] * 8)
    b = Backoff(min_s=1.0, max_s=10.0, clock=lambda: now[0], rand=lambda: next(rand))
    waits = [b.failed() for _ in range(8)]
    assert waits == [0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert not b.ready() and b.remaining_s() == 10.0
    now[0] += 10.0
    assert b.ready()
    assert [b.failed() for _ in range(2)] == [5.0, 5.0]  # jitter: half at the least
    b.succeeded()
    assert b.ready() and b.failed() == 0.0


class Flaky:
    """A TCP port that accepts and at once drops every connection (a controller whose
    network stack is up but whose protocol side is dead); counts the attempts."""

    def __init__(self) -> None:
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.srv.settimeout(0.05)
        self.port = self.srv.getsockname()[1]
        self.accepts = 0
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._run, daemon=True)
        self._th.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepts += 1
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self.srv.close()
        self._th.join(2)


def wait_until(pred: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def wait_accepts(flaky: Flaky, n: int) -> None:
    wait_until(lambda: flaky.accepts == n)


def test_dead_controller_is_not_hammered() -> None:
    flaky = Flaky()
    try:
        drv = create_driver(
            {"url": f"tcp://127.0.0.1:{flaky.port}", "cards_per_port": 2, "timeout_ms": 50,
             "retries": 0, "reconnect_min_s": 0.6, "reconnect_max_s": 1.0}
        )  # fmt: skip
        for n in (1, 2, 3):  # two free attempts, then the first wait
            r = drv.poll()
            assert r.link is LinkState.DOWN
            wait_accepts(flaky, n)
        assert 0.2 <= r.controller["reconnect_in_s"] <= 0.6  # 0.6 s x jitter [0.5, 1]
        for _ in range(5):  # polls inside the wait do not touch the controller
            skipped = drv.poll()
            assert skipped.link is LinkState.DOWN and skipped.errors == 1
        time.sleep(0.1)
        assert flaky.accepts == 3
        # + 20 ms: poll safely after the attempt is due, not on the same millisecond
        time.sleep(skipped.controller["reconnect_in_s"] + 0.02)
        r = drv.poll()
        wait_accepts(flaky, 4)
        assert 0.4 <= r.controller["reconnect_in_s"] <= 1.0  # doubled, capped at 1.0
        time.sleep(r.controller["reconnect_in_s"] + 0.02)
        r = drv.poll()
        wait_accepts(flaky, 5)
        assert r.controller["reconnect_in_s"] <= 1.0  # the ceiling holds
    finally:
        flaky.stop()


def test_controller_back_after_backoff(clock: ManualClock) -> None:
    emu = NovastarEmulator(ports=1, cards=2, clock=clock)
    try:
        host, port = emu.serve_tcp()
        drv = create_driver(
            {"url": f"tcp://{host}:{port}", "cards_per_port": 2, "timeout_ms": 100,
             "reconnect_min_s": 0.2, "reconnect_max_s": 0.2}
        )  # fmt: skip
        assert drv.poll().link is LinkState.UP
        emu.inject(Fault(FaultKind.LINK_DROP, duration_s=10))
        links = [drv.poll().link for _ in range(3)]
        assert links == [LinkState.DOWN] * 3 and drv.poll().controller["reconnect_in_s"] > 0
        clock.advance(11)
        assert drv.poll().link is LinkState.DOWN  # still waiting: not tried
        time.sleep(0.25)
        back = drv.poll()
        assert back.link is LinkState.UP and back.controller["reconnect_in_s"] is None
        assert drv.link_state is LinkState.UP
        drv.close()
    finally:
        emu.stop()


def test_paced_pty_takes_at_least_the_wire_time(emu: NovastarEmulator) -> None:
    path = emu.serve_pty(baudrate=BAUD_300, pace=True)
    t = SerialTransport(path, BAUD_300)
    drv = NovastarDriver(parse_options({"url": f"serial://{path}?baud=115200",
                                        "cards_per_port": 2}), t)  # fmt: skip
    drv.open()
    try:
        t0 = time.perf_counter()
        r = drv.poll()
        elapsed = time.perf_counter() - t0
    finally:
        drv.close()
    assert r.link is LinkState.UP
    # At least two 276-byte monitoring blocks had to cross the wire one after the other.
    assert elapsed >= wire_time_s(2 * 276, BAUD_300)


def test_tcp_transport_timeout_and_close() -> None:
    srv = socket.create_server(("127.0.0.1", 0))
    t = TcpTransport("127.0.0.1", srv.getsockname()[1], 1.0)
    try:
        t.open()
        conn, _ = srv.accept()
        assert t.read(0.05) == b""  # silence is not an error
        conn.sendall(b"\xaa\x55")
        assert t.read(1.0) == b"\xaa\x55"
        conn.close()
        with pytest.raises(ConnectionError):
            t.read(1.0)
    finally:
        t.close()
        srv.close()
    with pytest.raises(ConnectionError):
        t.write(b"x")
