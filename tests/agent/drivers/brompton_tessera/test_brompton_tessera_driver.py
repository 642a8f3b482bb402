"""Tessera driver against the real emulator over HTTP on 127.0.0.1, with its pacing.

Emulator and driver share a `ManualClock`: the 30 s Brompton asks for between reads is
moved, not slept.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agent.drivers.base import LinkState
from agent.drivers.brompton_tessera.driver import TesseraDriver, TesseraOptions, create_driver
from agent.drivers.common.options import parse_options
from drivers.family_payload import validated
from firmware_protocols import brompton_tessera as bt
from firmware_protocols.emulators.brompton_tessera import TesseraEmulator, fault
from firmware_protocols.emulators.faults import PSU_LOW_S, PSU_SAG_S, ManualClock
from ledwatch.errors import ConfigError


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def emu(clock: ManualClock) -> Iterator[TesseraEmulator]:
    e = TesseraEmulator(tiles=12, clock=clock)
    yield e
    e.stop()


@pytest.fixture
def url(emu: TesseraEmulator) -> str:
    host, port = emu.serve_http()
    return f"http://{host}:{port}"


def make(url: str, clock: ManualClock, **extra: Any) -> TesseraDriver:
    opts = {"url": url, "tiles": 12, "max_brightness_nits": 1500, "timeout_s": 2} | extra
    d = TesseraDriver(parse_options(TesseraOptions, opts), clock=clock)
    d.open()
    return d


def test_healthy_processor(url: str, clock: ManualClock) -> None:
    r = make(url, clock).poll()
    validated(r)
    assert r.link is LinkState.UP and r.errors == 0
    c = r.controller
    assert (c["model"], c["firmware"], c["serial"]) == ("SX40", "3.5.2.15", "010127")
    assert c["ip_control"] is True
    assert c["signal_ok"] is True and c["input"] == "hdmi 1" and c["brightness_pct"] == 80.0
    assert c["temp_c"] == max(c["temps_c"].values()) and c["fans_ok"] is True
    assert (c["tiles_associated"], c["tiles_online"], c["tiles_error"]) == (12, 12, 0)
    assert c["layout_ok"] is True and c["age_s"] == 0.0
    # No per-tile telemetry in the API: no card rows, nothing invented.
    assert r.cards["id"] == [] and r.psus["id"] == [] and set(r.env.values()) == {None}


def test_reads_no_faster_than_min_interval(
    url: str, clock: ManualClock, emu: TesseraEmulator
) -> None:
    d = make(url, clock)
    first = d.poll()
    ages = []
    for step in (10, 10, 9.9):
        clock.advance(step)
        again = d.poll()
        ages.append(again.controller["age_s"])
        assert again.controller["temps_c"] == first.controller["temps_c"] and again.errors == 0
    assert ages == [10.0, 20.0, pytest.approx(29.9)]
    assert len(emu.server.log.paths()) == 1 and d.stats == {"polls": 4, "reads": 1, "errors": 0}
    clock.advance(0.1)
    d.poll()
    assert emu.server.log.paths() == [bt.PATH_API, bt.PATH_API]


def test_faults(url: str, clock: ManualClock, emu: TesseraEmulator) -> None:
    for f in (fault("over_temp", target="cpu"), fault("fan_stop", target="2"),
              fault("module_fail", target="3"), fault("psu_sag_then_die", target="2"),
              fault("signal_lost")):
        emu.inject(f)
    clock.advance(PSU_SAG_S + PSU_LOW_S)
    r = make(url, clock).poll()
    validated(r)
    c = r.controller
    assert c["temps_c"]["cpu"] == 85.0 and c["temp_c"] == 85.0
    assert c["fan_rpm"] == 0.0 and c["fans_ok"] is False and c["signal_ok"] is False
    assert (c["tiles_online"], c["tiles_error"], c["layout_ok"]) == (10, 3, False)


def test_ip_control_off_is_degraded(url: str, clock: ManualClock, emu: TesseraEmulator) -> None:
    emu.inject(fault("ip_control_off"))
    r = make(url, clock).poll()
    validated(r)
    assert r.link is LinkState.DEGRADED and r.controller["online"] is True
    assert r.controller["ip_control"] is False and r.controller["temp_c"] is None


def test_unreachable_then_back(url: str, clock: ManualClock, emu: TesseraEmulator) -> None:
    d = make(url, clock)
    d.poll()
    emu.inject(fault("link_drop", duration_s=60))
    clock.advance(30)
    r = d.poll()
    validated(r)
    assert r.link is LinkState.DOWN and r.controller["online"] is False
    clock.advance(30)
    for _ in range(4):
        r = d.poll()
        if r.link is LinkState.UP:
            break
        clock.advance(max(r.controller["retry_in_s"] or 0, 0.001))
    assert r.link is LinkState.UP


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "http://x", "min_interval_s": 0.1}, "controller.min_interval_s"),
        ({"url": "https://x"}, "controller.url: must start with http://"),
        ({"url": "http://x", "tiles": "many"}, "controller.tiles"),
        ({"url": "http://x", "poll_s": 1}, "controller.poll_s"),
    ],
)
def test_bad_options_name_the_key(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_driver(options)
