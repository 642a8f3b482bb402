"""COEX driver against the real emulator over HTTP on 127.0.0.1, including the vendor lock.

Emulator and driver share a `ManualClock`, so back-offs of seconds and a PSU's sag run
without sleeping (requests still cross a real socket).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent.drivers.base import LinkState
from agent.drivers.common.options import parse_options
from agent.drivers.novastar_coex.driver import CoexDriver, CoexOptions, create_driver
from drivers.family_payload import card, validated
from firmware_protocols import novastar_coex as coex
from firmware_protocols.emulators.faults import PSU_LOW_S, PSU_SAG_S, ManualClock
from firmware_protocols.emulators.novastar_coex import CoexEmulator, fault
from ledwatch.errors import ConfigError


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def emu(clock: ManualClock) -> Iterator[CoexEmulator]:
    e = CoexEmulator(outputs=2, cabinets=[2, 2], clock=clock)
    yield e
    e.stop()


@pytest.fixture
def url(emu: CoexEmulator) -> str:
    host, port = emu.serve_http()
    return f"http://{host}:{port}"


def make(url: str, clock: ManualClock, **extra: Any) -> CoexDriver:
    opts = {"url": url, "cabinets": 4, "model": "MX40 Pro", "request_gap_ms": 0,
            "timeout_s": 2} | extra  # fmt: skip
    d = CoexDriver(parse_options(CoexOptions, opts), clock=clock)
    d.open()
    return d


def test_healthy_wall(url: str, clock: ManualClock, emu: CoexEmulator) -> None:
    d = make(url, clock)
    r = d.poll()
    validated(r)
    assert r.link is LinkState.UP and r.errors == 0
    c = r.controller
    assert c["online"] and c["model"] == "MX40 Pro" and c["name"] == "MX40 Pro_0001"
    assert c["signal_ok"] is True and c["brightness_pct"] == 50.0 and 30 <= c["temp_c"] <= 34
    assert c["fans_ok"] is True and c["fan_rpm"] > 3000 and c["layout_ok"] is True
    assert r.cards["id"] == ["p0c0", "p0c1", "p1c0", "p1c1"] and all(r.cards["online"])
    assert all(38 <= t <= 43 for t in r.cards["temp_c"])
    assert all(4.2 <= v <= 4.4 for v in r.cards["voltage_v"])
    assert set(r.cards["model"]) == {"A5sPlus"} and r.cards["module_faults"] == [None] * 4
    assert r.psus["id"] == [] and r.env["door_open"] is None and r.env["fan_rpm"] is None
    # First poll: count, monitor, the cabinet list and the sources; then count + monitor.
    assert emu.server.log.paths() == [coex.PATH_CABINET_COUNT, coex.PATH_MONITOR,
                                      coex.PATH_CABINETS, coex.PATH_SOURCES]  # fmt: skip
    emu.server.log.clear()
    d.poll()
    assert emu.server.log.paths() == [coex.PATH_CABINET_COUNT, coex.PATH_MONITOR]


def test_a_dying_cabinet_is_seen_by_the_count_not_by_monitor_info(
    url: str, clock: ManualClock, emu: CoexEmulator
) -> None:
    d = make(url, clock)
    d.poll()
    emu.inject(fault("psu_sag_then_die", target="p1c0"))
    clock.advance(2)
    sag = card(d.poll(), "p1c0")
    assert sag["online"] and sag["voltage_v"] < 4.3
    clock.advance(PSU_SAG_S + PSU_LOW_S)
    emu.server.log.clear()
    r = d.poll()
    validated(r)
    assert coex.PATH_CABINETS in emu.server.log.paths()  # count changed: the list re-read
    dark = card(r, "p1c0")
    assert dark["online"] is False and dark["temp_c"] is None and dark["voltage_v"] is None
    assert r.controller["cabinets_found"] == 3 and r.controller["layout_ok"] is False
    assert card(r, "p1c1")["online"] is True


def test_sensors(url: str, clock: ManualClock, emu: CoexEmulator) -> None:
    for f in (fault("over_temp", target="p0c1"), fault("smoke", target="p1c1"),
              fault("fan_stop", target="1"), fault("signal_lost")):
        emu.inject(f)
    r = make(url, clock).poll()
    validated(r)
    assert card(r, "p0c1")["temp_c"] == 85.0 and card(r, "p1c1")["smoke"] is True
    assert r.env["smoke"] is True and r.controller["fan_rpm"] == 0
    assert r.controller["fans_ok"] is False
    assert r.controller["signal_ok"] is False


def test_vmp_lock_is_held_backs_off_and_recovers(url: str, clock: ManualClock,
                                                 emu: CoexEmulator) -> None:  # fmt: skip
    d = make(url, clock, busy_backoff_s=5, held_backoff_max_s=20)
    d.poll()
    emu.inject(fault("held"))
    emu.server.log.clear()
    r = d.poll()
    validated(r)
    assert r.link == LinkState.HELD and str(r.link) == "held" and r.controller["link"] == "held"
    assert r.controller["online"] is None and r.controller["held_reason"] == "locked"
    assert r.controller["held_s"] == 0.0 and r.controller["retry_in_s"] == 5.0
    assert r.cards["online"] == [None] * 4 and r.cards["id"] == ["p0c0", "p0c1", "p1c0", "p1c1"]
    assert emu.server.log.paths() == [coex.PATH_CABINET_COUNT]  # stopped at the first lock
    clock.advance(3)
    r = d.poll()  # inside the back-off: nothing is sent
    assert r.link == LinkState.HELD and r.controller["held_s"] == 3.0
    assert len(emu.server.log.paths()) == 1
    clock.advance(2)
    r = d.poll()  # tries again, still locked: the back-off doubles
    assert r.link == LinkState.HELD and r.controller["retry_in_s"] == 10.0
    assert len(emu.server.log.paths()) == 2
    emu.faults.clear()
    clock.advance(10)
    r = d.poll()
    assert r.link is LinkState.UP and r.controller["held_s"] is None and all(r.cards["online"])


def test_partial_lock_reports_what_answered(
    url: str, clock: ManualClock, emu: CoexEmulator
) -> None:
    d = make(url, clock)
    d.poll()
    emu.inject(fault("held", target="monitor"))
    r = d.poll()
    validated(r)
    assert r.link == LinkState.HELD and r.controller["online"] is True  # the count answered
    assert r.controller["cabinets_found"] == 4 and all(r.cards["online"])
    assert r.cards["temp_c"] == [None] * 4 and r.controller["temp_c"] is None


def test_busy_answer_backs_off_five_seconds(
    url: str, clock: ManualClock, emu: CoexEmulator
) -> None:
    d = make(url, clock)
    emu.inject(fault("busy", duration_s=4))
    r = d.poll()
    assert r.link == LinkState.HELD and r.controller["held_reason"] == "busy"
    assert r.controller["retry_in_s"] == 5.0
    clock.advance(5)
    assert d.poll().link is LinkState.UP


def test_unreachable_is_down_then_recovers(url: str, clock: ManualClock, emu: CoexEmulator) -> None:
    d = make(url, clock)
    d.poll()
    emu.inject(fault("link_drop", duration_s=30))
    r = d.poll()
    validated(r)
    assert r.link is LinkState.DOWN and r.controller["online"] is False
    assert r.cards["online"] == [False] * 4 and r.controller["temp_c"] is None
    clock.advance(30)
    for _ in range(3):  # the backoff's free retries, then a wait it has to sit out
        r = d.poll()
        if r.link is LinkState.UP:
            break
        clock.advance(r.controller["retry_in_s"] or 0)
    assert r.link is LinkState.UP


def test_nothing_listening_is_down(clock: ManualClock) -> None:
    d = make("http://127.0.0.1:9", clock, timeout_s=0.5)
    r = d.poll()
    validated(r)
    assert r.link is LinkState.DOWN and r.cards["id"] == []


def test_requests_are_paced(url: str, emu: CoexEmulator) -> None:
    d = create_driver({"url": url, "request_gap_ms": 100})
    d.open()
    d.poll()
    times = emu.server.log.times()
    assert len(times) == 4 and all(b - a >= 0.09 for a, b in itertools.pairwise(times))


def test_an_absent_endpoint_degrades_not_fails(url: str, clock: ManualClock,
                                               emu: CoexEmulator) -> None:  # fmt: skip
    real = emu.app
    emu.server.app = lambda req: (real(req) if req.path != coex.PATH_MONITOR
                                  else real(type(req)("GET", "/missing", {})))  # fmt: skip
    emu.stop()
    host, port = emu.serve_http()
    d = make(f"http://{host}:{port}", clock)
    r = d.poll()
    validated(r)
    assert r.link is LinkState.DEGRADED and r.errors == 1
    assert all(r.cards["online"]) and r.cards["temp_c"] == [None] * 4


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "controller.url: Field required"),
        ({"url": "tcp://x:8001"}, "controller.url: must start with http://"),
        ({"url": "http://x", "busy_backoff_s": 30, "held_backoff_max_s": 10}, "held_backoff_max_s"),
        ({"url": "http://x", "cabinets": -1}, "controller.cabinets"),
        ({"url": "http://x", "vmp": True}, "controller.vmp"),
    ],
)
def test_bad_options_name_the_key(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_driver(options)


def test_timing_of_one_real_poll(url: str) -> None:
    d = create_driver({"url": url})
    d.open()
    t = time.monotonic()
    d.poll()
    assert time.monotonic() - t >= 0.6  # four requests, 200 ms apart by default


def test_cabinets_of_a_replaced_project_are_forgotten(url: str, clock: ManualClock,
                                                      emu: CoexEmulator) -> None:  # fmt: skip
    d = make(url, clock)
    assert len(d.poll().cards["id"]) == 4
    emu.per_output[:] = emu.layout[:] = [1, 0]  # the project now has one cabinet
    clock.advance(1)
    d.poll()  # the count (1) disagrees with the cached list (4): the list is re-read
    r = d.poll()
    assert r.cards["id"] == ["p0c0"] and r.cards["online"] == [True]
