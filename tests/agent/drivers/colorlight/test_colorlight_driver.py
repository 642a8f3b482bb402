"""Colorlight driver against the real emulator over UDP and TCP on 127.0.0.1.

The emulator's clock is a `ManualClock`, so a PSU's whole sag-then-die runs without
sleeping; the driver's own timeouts are real (short) ones.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agent.drivers.base import LinkState, ScreenReading
from agent.drivers.colorlight.driver import ColorlightDriver, create_driver
from drivers.family_payload import card, validated
from firmware_protocols import colorlight as cl
from firmware_protocols.emulators.colorlight import ColorlightEmulator, fault
from firmware_protocols.emulators.faults import PSU_LOW_S, PSU_SAG_S, ManualClock
from ledwatch.errors import ConfigError

PORTS, CARDS = 2, 3


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def emu(clock: ManualClock) -> Iterator[ColorlightEmulator]:
    e = ColorlightEmulator(ports=PORTS, cards=CARDS, modules=8, mfc_ports=[0], clock=clock)
    yield e
    e.stop()


def make(url: str, **extra: Any) -> ColorlightDriver:
    opts = {"url": url, "ports": PORTS, "cards_per_port": CARDS, "mfc_ports": [0],
            "timeout_ms": 150, "retries": 1} | extra  # fmt: skip
    drv = create_driver(opts)
    drv.open()
    return drv


@pytest.fixture(params=["udp", "tcp"])
def drv(request: pytest.FixtureRequest, emu: ColorlightEmulator) -> Iterator[ColorlightDriver]:
    host, port = emu.serve_udp() if request.param == "udp" else emu.serve_tcp()
    d = make(f"{request.param}://{host}:{port}")
    yield d
    d.close()


def assert_healthy(r: ScreenReading) -> None:
    validated(r)
    assert r.link is LinkState.UP and r.errors == 0
    c = r.controller
    assert c["online"] and c["model"] == "X100 Pro-4U" and c["firmware"] == "2.3.0"
    assert c["signal_ok"] is True and c["brightness_pct"] == 75.0 and 38 <= c["temp_c"] <= 46
    assert c["eth_linked"] == [True, True] and c["layout_ok"] is True
    assert r.cards["id"] == [f"p{p}c{i}" for p in range(PORTS) for i in range(CARDS)]
    assert all(r.cards["online"]) and r.cards["module_faults"] == [0] * 6
    assert r.cards["modules_total"] == [8] * 6 and set(r.cards["model"]) == {"5A-75E"}
    # What the string protocol does not report is null, never a made-up number.
    assert r.cards["temp_c"] == [None] * 6 and r.cards["voltage_v"] == [None] * 6
    assert r.env["humidity_pct"] is None and r.env["smoke"] is None and r.env["fan_rpm"] is None
    assert 29 <= r.env["temp_c"] <= 33  # the multifunction card on port 0
    assert r.psus == {"id": [], "card": [], "ok": [], "vout_v": []}


def test_healthy_screen(drv: ColorlightDriver) -> None:
    assert_healthy(drv.poll())
    assert_healthy(drv.poll())


def test_each_fault_is_visible(drv: ColorlightDriver, emu: ColorlightEmulator,
                               clock: ManualClock) -> None:  # fmt: skip
    emu.inject(fault("module_fail", target="p1c2/4"))
    emu.inject(fault("over_temp", target="p0c1"))
    emu.inject(fault("signal_lost"))
    emu.inject(fault("psu_sag_then_die", target="p0c2"))
    r = drv.poll()
    validated(r)
    assert card(r, "p1c2")["module_faults"] == 4 and r.env["temp_c"] == 85.0
    assert r.controller["signal_ok"] is False and card(r, "p0c2")["online"] is True
    clock.advance(PSU_SAG_S + PSU_LOW_S)
    r = drv.poll()
    dark = card(r, "p0c2")
    assert dark["online"] is False and dark["module_faults"] is None and dark["firmware"] is None
    # A dark last cabinet shortens its chain: a layout change as well as a card fault.
    assert r.controller["ports_found"] == [2, 3] and r.controller["layout_ok"] is False


def test_more_cards_than_configured(emu: ColorlightEmulator) -> None:
    host, port = emu.serve_udp()
    d = make(f"udp://{host}:{port}", cards_per_port=[2, 3])
    try:
        r = d.poll()
        assert r.controller["ports_found"] == [3, 3] and r.controller["layout_ok"] is False
    finally:
        d.close()


def test_link_drop_then_recovery(emu: ColorlightEmulator, clock: ManualClock) -> None:
    host, port = emu.serve_udp()
    d = make(f"udp://{host}:{port}")
    try:
        assert d.poll().link is LinkState.UP
        emu.inject(fault("link_drop", duration_s=20))
        r = d.poll()
        validated(r)
        assert r.link is LinkState.DOWN and r.controller["online"] is False
        assert not any(r.cards["online"]) and r.controller["signal_ok"] is None and r.errors > 0
        clock.advance(20)
        assert_healthy(d.poll())
    finally:
        d.close()


def test_silent_controller_is_down_not_an_exception() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))  # bound, never answers
    try:
        d = make(f"udp://127.0.0.1:{sock.getsockname()[1]}", retries=0)
        r = d.poll()
        assert r.link is LinkState.DOWN and r.controller["online"] is False
        assert d.stats["polls"] == 1 and d.stats["errors"] >= 1
        d.close()
        d.close()  # safe twice
    finally:
        sock.close()


def test_tcp_refused_is_down() -> None:
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    srv.close()
    d = make(f"tcp://127.0.0.1:{port}")
    assert d.poll().link is LinkState.DOWN


def test_garbage_and_stale_replies_are_counted_and_survived(emu: ColorlightEmulator) -> None:
    """A proxy between driver and emulator adds garbage, a bad frame and a stale reply
    before every answer: the driver skips them, counts them and still reads it all."""
    up = emu.serve_udp()
    proxy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    proxy.bind(("127.0.0.1", 0))
    proxy.settimeout(0.1)
    stop = threading.Event()

    def relay() -> None:
        client = None
        upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        upstream.settimeout(0.05)
        while not stop.is_set():
            try:
                data, client = proxy.recvfrom(65536)
                upstream.sendto(data, up)
            except TimeoutError:
                pass
            try:
                reply = upstream.recv(65536)
            except TimeoutError:
                continue
            stale = cl.encode([cl.Response(999999, "sndinfo", 1, cl.Op.GET, 0, {})])
            if client is not None:
                proxy.sendto(b"\x00junk<[oops]>" + stale + reply, client)
        upstream.close()

    t = threading.Thread(target=relay, daemon=True)
    t.start()
    try:
        d = make(f"udp://127.0.0.1:{proxy.getsockname()[1]}", timeout_ms=300)
        r = d.poll()
        assert r.controller["online"] and all(r.cards["online"])
        assert r.link is LinkState.DEGRADED and r.errors > 0
        assert d.stats["bad_frames"] > 0 and d.stats["noise_bytes"] > 0
        d.close()
    finally:
        stop.set()
        t.join(timeout=2)
        proxy.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cards_per_port": 2}, "controller.url: Field required"),
        ({"url": "http://x", "cards_per_port": 2}, "controller.url: must start with udp://"),
        ({"url": "udp://x/path", "cards_per_port": 2}, "controller.url: takes no path"),
        ({"url": "udp://x", "cards_per_port": [1, 2]}, "cards_per_port: 2 counts for 1 ports"),
        ({"url": "udp://x", "cards_per_port": 2, "mfc_ports": [3]}, "mfc_ports: [3]"),
        ({"url": "udp://x", "cards_per_port": 2, "heartbeat_s": 60}, "controller.heartbeat_s"),
        ({"url": "udp://x", "cards_per_port": 2, "speed": 1}, "controller.speed"),
    ],
)
def test_bad_options_name_the_key(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        create_driver(options)
