"""Tessera emulator: a real HTTP server on 127.0.0.1 read with httpx and the real codec."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from firmware_protocols import brompton_tessera as bt
from firmware_protocols.brompton_tessera import Kind
from firmware_protocols.emulators.brompton_tessera import TesseraEmulator, fault
from firmware_protocols.emulators.faults import PSU_LOW_S, PSU_SAG_S, ManualClock
from ledwatch.errors import UsageError


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def emu(clock: ManualClock) -> Iterator[TesseraEmulator]:
    e = TesseraEmulator(tiles=12, clock=clock)
    yield e
    e.stop()


@pytest.fixture
def http(emu: TesseraEmulator) -> Iterator[httpx.Client]:
    host, port = emu.serve_http()
    with httpx.Client(base_url=f"http://{host}:{port}", timeout=2, trust_env=False) as c:
        yield c


def status(http: httpx.Client) -> bt.TesseraStatus:
    r = http.get(bt.PATH_API)
    return bt.decode_status(bt.require_tree(bt.decode_answer(r.status_code, r.content)))


def test_tree_and_sub_trees(http: httpx.Client) -> None:
    s = status(http)
    assert s.processor_type == "sx40"
    assert (s.tiles_associated, s.tiles_online, s.tiles_error) == (12, 12, 0)
    assert s.signal_ok is True and s.input_port == "hdmi 1" and len(s.fans) == 3
    r = http.get("/api/system/temperature")
    sub = bt.decode_answer(r.status_code, r.content, "/api/system/temperature")
    assert sub.kind is Kind.OK and "fpga" in sub.tree
    assert http.get("/api/nope").status_code == 404 and http.get("/other").status_code == 404


def test_faults(emu: TesseraEmulator, http: httpx.Client, clock: ManualClock) -> None:
    for f in (fault("over_temp", target="gpu"), fault("fan_stop", target="3"),
              fault("module_fail", target="2"), fault("psu_sag_then_die", target="4"),
              fault("signal_lost")):
        emu.inject(f)
    s = status(http)
    assert s.temps_c["gpu"] == 85.0 and s.fans[2].rpm == 0 and s.fans[2].ok is False
    assert s.tiles_error == 2 and s.tiles_online == 12 and s.signal_ok is False
    clock.advance(PSU_SAG_S + PSU_LOW_S)
    assert status(http).tiles_online == 8


def test_ip_control_off_and_link_drop(
    emu: TesseraEmulator, http: httpx.Client, clock: ManualClock
) -> None:
    emu.inject(fault("ip_control_off", duration_s=2))
    r = http.get(bt.PATH_API)
    assert bt.decode_answer(r.status_code, r.content).kind is Kind.IP_CONTROL_DISABLED
    clock.advance(2)
    emu.inject(fault("link_drop", duration_s=2))
    with pytest.raises(httpx.TransportError):
        http.get(bt.PATH_API)
    clock.advance(2)
    assert status(http).tiles_online == 12


def test_faults_it_cannot_show() -> None:
    for kind in ("door_open", "smoke", "held", "busy"):
        with pytest.raises(UsageError, match="brompton-tessera cannot show it"):
            fault(kind)
    with pytest.raises(UsageError, match="needs one of"):
        fault("over_temp", target="toaster")


def test_cli() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ledwatch.cli", "emulate", "brompton-tessera", "--tcp",
         "127.0.0.1:0", "--tiles", "6", "--fault", "fan_stop@3:1", "--duration", "0.5"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("tcp 127.0.0.1:") and "tiles 6" in lines
