"""COEX emulator: a real HTTP server on 127.0.0.1 read with httpx and the real codec."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from firmware_protocols import novastar_coex as coex
from firmware_protocols.emulators.family_cli import scenario_faults
from firmware_protocols.emulators.faults import PSU_LOW_S, PSU_SAG_S, ManualClock
from firmware_protocols.emulators.novastar_coex import (
    FAMILY,
    RULES,
    UNSUPPORTED,
    CoexEmulator,
    fault,
)
from firmware_protocols.novastar_coex import Kind
from ledwatch.errors import ConfigError, UsageError


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def emu(clock: ManualClock) -> Iterator[CoexEmulator]:
    e = CoexEmulator(outputs=2, cabinets=[2, 1], clock=clock)
    yield e
    e.stop()


@pytest.fixture
def http(emu: CoexEmulator) -> Iterator[httpx.Client]:
    host, port = emu.serve_http()
    with httpx.Client(base_url=f"http://{host}:{port}", timeout=2, trust_env=False) as c:
        yield c


def get(http: httpx.Client, path: str) -> coex.Answer:
    r = http.get(path)
    return coex.decode_answer(r.status_code, r.content, r.headers.get("content-type"))


def test_endpoints_answer_in_the_envelope(http: httpx.Client) -> None:
    m = coex.decode_monitor_info(get(http, coex.PATH_MONITOR).data)
    assert m is not None and len(m.cabinets) == 3 and len(m.fans) == 3
    assert {(c.port, c.index) for c in m.cabinets} == {(0, 0), (0, 1), (1, 0)}
    assert coex.decode_cabinet_count(get(http, coex.PATH_CABINET_COUNT).data) == 3
    listing = coex.decode_cabinet_list(get(http, coex.PATH_CABINETS).data)
    assert listing is not None and len(listing) == 3
    sources = coex.decode_sources(get(http, coex.PATH_SOURCES).data)
    assert sources is not None and coex.signal_present(m, sources) is True
    assert get(http, coex.PATH_DEVICE).kind is Kind.ABSENT  # 404, as an MX40 Pro
    assert get(http, "/api/v1/nope").kind is Kind.ABSENT


def test_dead_cabinet_leaves_the_list_but_not_monitor_info(
    emu: CoexEmulator, http: httpx.Client, clock: ManualClock
) -> None:
    emu.inject(fault("psu_sag_then_die", target="p0c1"))
    clock.advance(1.0)
    m = coex.decode_monitor_info(get(http, coex.PATH_MONITOR).data)
    assert m is not None
    sagging = next(c for c in m.cabinets if (c.port, c.index) == (0, 1))
    assert sagging.voltage_v is not None and sagging.voltage_v < 5.0
    clock.advance(PSU_SAG_S + PSU_LOW_S)
    assert coex.decode_cabinet_count(get(http, coex.PATH_CABINET_COUNT).data) == 2
    listing = coex.decode_cabinet_list(get(http, coex.PATH_CABINETS).data)
    assert listing is not None and {(c.port, c.index) for c in listing} == {(0, 0), (1, 0)}
    m = coex.decode_monitor_info(get(http, coex.PATH_MONITOR).data)
    assert m is not None and len(m.cabinets) == 3  # still listed, as OBSERVED on an MX30


def test_held_busy_and_their_scopes(emu: CoexEmulator, http: httpx.Client) -> None:
    emu.inject(fault("held", target="monitor", duration_s=5))
    assert get(http, coex.PATH_MONITOR).kind is Kind.LOCKED
    assert get(http, coex.PATH_CABINET_COUNT).kind is Kind.OK
    emu.faults.clear()
    emu.inject(fault("held"))
    assert get(http, coex.PATH_CABINET_COUNT).kind is Kind.LOCKED
    emu.faults.clear()
    emu.inject(fault("busy"))
    answer = get(http, coex.PATH_MONITOR)
    assert answer.kind is Kind.BUSY and answer.code == 5


def test_sensor_faults(emu: CoexEmulator, http: httpx.Client) -> None:
    for f in (fault("over_temp", target="p1c0"), fault("over_temp"), fault("smoke", target="p0c0"),
              fault("fan_stop", target="2"), fault("signal_lost")):
        emu.inject(f)
    m = coex.decode_monitor_info(get(http, coex.PATH_MONITOR).data)
    assert m is not None
    cab = {(c.port, c.index): c for c in m.cabinets}
    assert cab[(1, 0)].temp_c == 85.0 and cab[(0, 0)].smoke is True and m.temp_c == 85.0
    assert [f.ok for f in m.fans] == [True, False, True] and m.fans[1].rpm == 0
    assert coex.signal_present(m, None) is False


def test_link_drop_resets_connections(
    emu: CoexEmulator, http: httpx.Client, clock: ManualClock
) -> None:
    emu.inject(fault("link_drop", duration_s=3))
    with pytest.raises(httpx.TransportError):
        http.get(coex.PATH_MONITOR)
    clock.advance(3)
    assert get(http, coex.PATH_MONITOR).kind is Kind.OK


def test_several_clients_at_once(emu: CoexEmulator, http: httpx.Client) -> None:
    kinds: list[Kind] = []

    def client() -> None:
        kinds.append(get(http, coex.PATH_MONITOR).kind)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert kinds == [Kind.OK] * 4 and len(emu.server.log.paths()) == 4


def test_faults_it_cannot_show_and_bad_targets() -> None:
    for kind, why in (("module_fail", "no published meaning"), ("door_open", "no door")):
        with pytest.raises(UsageError, match=why):
            fault(kind, target="p0c0")
    with pytest.raises(UsageError, match=r"all \| monitor"):
        fault("held", target="everything")
    with pytest.raises(UsageError, match="no cabinet"):
        CoexEmulator(outputs=1, cabinets=1).inject(fault("smoke", target="p0c5"))
    with pytest.raises(UsageError, match="fans are"):
        CoexEmulator().inject(fault("fan_stop", target="9"))


def test_cli_serves_and_prints_its_url() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ledwatch.cli", "emulate", "novastar-coex", "--tcp",
         "127.0.0.1:0", "--outputs", "1", "--cabinets", "2", "--fault", "held@5+10",
         "--duration", "0.5"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("tcp 127.0.0.1:") and lines[1].startswith("url http://127.0.0.1:")
    assert "cards p0c0 p0c1" in lines and "fault held at 5s target=None duration=10.0" in lines


def test_scenario_file(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[[fault]]\nkind = "held"\nat_s = 20\nduration_s = 30\n'
                    '[[fault]]\nkind = "smoke"\ntarget = "p0c1"\n')  # fmt: skip
    found = scenario_faults(good, FAMILY, RULES, UNSUPPORTED)
    assert [(f.kind, f.at_s, f.target, f.duration_s) for f in found] == [
        ("held", 20.0, None, 30.0), ("smoke", 0.0, "p0c1", None)]
    bad = tmp_path / "bad.toml"
    bad.write_text('[[fault]]\nkind = "held"\nwhen = 3\n')
    with pytest.raises(ConfigError, match=r"fault\.0: needs kind; unknown keys \['when'\]"):
        scenario_faults(bad, FAMILY, RULES, UNSUPPORTED)
