"""The NovaStar poll plan and the one converter, against the real emulator over TCP.

The plan's stages go over their own TCP connection in order (function card requests
one at a time), and `convert` builds the whole reading from the (request, reply) pairs:
it must validate as a full `ledwatch.telemetry/1` payload (after a JSON round trip).
The real driver runs the same plan in test_driver_extended.py.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from agent.drivers.base import LinkState, ScreenReading
from agent.drivers.novastar.driver import NovastarDriver, parse_options
from agent.drivers.novastar.options import (
    ExtendedOptions,
    FunctionCardOptions,
    parse_extended_options,
)
from agent.drivers.novastar.plan import PollPlan, Read
from agent.drivers.novastar.uplink_converter import CARD_COLUMNS, Carried, LinkFacts, convert
from drivers.novastar.payload import validated_payload
from firmware_protocols import novastar as ns
from firmware_protocols.emulators.novastar import (
    PSU_LOW_S,
    PSU_SAG_S,
    Fault,
    FaultKind,
    ManualClock,
    NovastarEmulator,
)
from firmware_protocols.novastar import DeviceType, Frame
from ledwatch.errors import ConfigError

COUNTS = [3, 2]
FULL = ExtendedOptions(
    smart_modules=True, function_card=FunctionCardOptions(mth300_rs485=0, ns048c_rs485=1)
)


def options(extended: ExtendedOptions = FULL, counts: list[int] = COUNTS) -> Any:
    return parse_options({"url": "tcp://127.0.0.1", "ports": len(counts),
                          "cards_per_port": counts, "extended": extended.model_dump()})  # fmt: skip


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def emu(clock: ManualClock) -> Iterator[NovastarEmulator]:
    e = NovastarEmulator(ports=2, cards=COUNTS, psus=2, modules=12, clock=clock)
    yield e
    e.stop()


@pytest.fixture
def addr(emu: NovastarEmulator) -> tuple[str, int]:
    return emu.serve_tcp()


def tcp_exchange(addr: tuple[str, int], plan: PollPlan) -> dict[Read, Frame | None]:
    """Every stage of `plan` in order, each batch sent at once, replies collected by
    serial; a missing reply stays None."""
    replies: dict[Read, Frame | None] = {}
    decoder = ns.StreamDecoder()
    serial = 0
    with socket.create_connection(addr, timeout=2.0) as sock:

        def batch(reads: Sequence[Read]) -> None:
            nonlocal serial
            frames = []
            for r in reads:
                serial += 1
                frames.append(r.frame(serial))
            sock.sendall(b"".join(ns.encode(f) for f in frames))
            got: dict[int, Frame] = {}
            deadline = time.monotonic() + 2.0
            while {f.serial for f in frames} - got.keys() and time.monotonic() < deadline:
                for reply in decoder.feed(sock.recv(65536)):
                    got[reply.serial] = reply
            replies.update((r, got.get(f.serial)) for r, f in zip(reads, frames, strict=True))

        batch(plan.controller)
        batch(plan.screen)
        while more := plan.follow_up(replies):
            batch(more)
        for read in plan.function_card:
            batch([read])
    return replies


def reading_of(replies: dict[Read, Frame | None], extended: ExtendedOptions = FULL,
               counts: list[int] = COUNTS) -> ScreenReading:  # fmt: skip
    reading, _ = convert(options(extended, counts), replies, LinkFacts(LinkState.UP), Carried())
    return reading


def card(reading: ScreenReading, i: int) -> dict[str, Any]:
    return {k: v[i] for k, v in reading.cards.items()}


def test_plan_order_and_batches() -> None:
    plan = PollPlan(options(), card_info_due=True)
    sd, rc, fc = DeviceType.SENDING_CARD, DeviceType.RECEIVING_CARD, DeviceType.FUNCTION_CARD

    def kinds(reads: Sequence[Read]) -> list[tuple[int, int, int]]:
        return [(r.register.device_type, 0 if r.data is None else 1, r.register.address)
                for r in reads]  # fmt: skip

    assert kinds(plan.controller) == [
        (sd, 0, ns.CONTROLLER_MODEL_ADDR), (sd, 0, ns.INPUT_SOURCE_STATUS_ADDR),
        (sd, 0, ns.DVI_SIGNAL_ADDR),
    ]  # fmt: skip
    screen = kinds(plan.screen)
    assert screen[:3] == [(sd, 0, ns.INPUT_MODE_ADDR), (sd, 0, ns.REDUNDANCY_ADDR),
                          (sd, 0, ns.LIGHT_SENSOR_ADDR)]  # fmt: skip
    # Per card: the 3.1.1 block, 3.9 and smart modules.
    assert sum(1 for k in screen if k[0] == rc) == 3 * sum(COUNTS)
    assert kinds(plan.function_card) == [
        (fc, 0, ns.FUNCTION_CARD_MODEL_ADDR), (fc, 1, ns.FUNCTION_CARD_RS485_ADDR),
        (fc, 0, ns.FUNCTION_CARD_RS485_ADDR), (fc, 1, ns.FUNCTION_CARD_RS485_ADDR),
        (fc, 0, ns.FUNCTION_CARD_RS485_ADDR),
    ]  # fmt: skip
    assert plan.function_card[1].data == ns.rs485_request(0, ns.MTH300_QUERY)
    everything = plan.controller + plan.screen + plan.function_card
    assert len(set(everything)) == len(everything)  # each request once
    # Defaults: no smart modules, no function card; 3.9 only when due.
    plain = PollPlan(options(ExtendedOptions()), card_info_due=False)
    assert len(plain.controller) + len(plain.screen) == 6 + sum(COUNTS)
    assert plain.function_card == []


def test_emulator_values_in_one_valid_reading(addr: tuple[str, int]) -> None:
    plan = PollPlan(options(), card_info_due=True)
    r = reading_of(tcp_exchange(addr, plan))
    ctrl, env = r.controller, r.env
    # MCTRL660 PRO has no DP input: null, not "no signal".
    assert ctrl["inputs"] == {"dvi": True, "hdmi": False, "dp": None, "sdi": False}
    assert ctrl["input_source"] == "dvi" and ctrl["input_manual"] is True
    assert ctrl["redundancy"] == ["primary", "primary"] and ctrl["function_card"] == "MFN300"
    assert ctrl["model"] == "MCTRL660 PRO" and ctrl["signal_ok"] is True
    assert ctrl["brightness_pct"] == 75.3  # 3.3 of the first card that answered
    assert 90 <= ctrl["light_lux"] <= 3010
    assert 90 <= env["light_lux"] <= 3010 and env["light_lux"] != ctrl["light_lux"]
    assert 20 < env["function_card_temp_c"] < 28 and 30 < env["function_card_humidity_pct"] < 60
    assert set(CARD_COLUMNS) <= set(r.cards)
    first = card(r, 0)
    assert first["model"] == "0x4101" and first["firmware"] == "4.2.0.1"
    assert first["modules_connected"] == first["modules_total"] == 12
    assert 30 < first["module_temp_c_max"] < 45 and 4.5 < first["module_voltage_v_min"] < 5.2
    assert first["run_time_h"] >= 5000 and first["module_cable_faults"] == 0
    assert first["redundant_line"] is False
    doc = validated_payload(r)
    assert doc["controller"]["inputs"]["dvi"] is True and doc["cards"]["model"][4] == "0x4101"
    assert doc["env"]["function_card_temp_c"] == env["function_card_temp_c"]


def test_faults_reach_the_snapshot_keys(
    emu: NovastarEmulator, clock: ManualClock, addr: tuple[str, int]
) -> None:
    for kind, target in [
        (FaultKind.MODULE_DISCONNECTED, "p0c1/2"),
        (FaultKind.MODULE_DISCONNECTED, "p0c1/5"),
        (FaultKind.MODULE_FAIL, "p0c2/3"),
        (FaultKind.OVER_TEMP, "p0c0"),
        (FaultKind.SENSOR_FAIL, "mth300"),
        (FaultKind.SENSOR_FAIL, "ns048c"),
        (FaultKind.REDUNDANCY_BACKUP, "p1"),
        (FaultKind.INPUT_LOST, "dvi"),
        (FaultKind.INPUT_SWITCHED, "hdmi"),
        (FaultKind.PSU_SAG_THEN_DIE, "p1c0/1"),
    ]:
        emu.inject(Fault(kind, target=target))
    clock.advance(PSU_SAG_S + PSU_LOW_S + 1)
    r = reading_of(tcp_exchange(addr, PollPlan(options(), card_info_due=True)))
    ctrl, env = r.controller, r.env
    assert ctrl["inputs"]["dvi"] is False and ctrl["inputs"]["hdmi"] is True
    assert ctrl["input_source"] == "hdmi" and ctrl["redundancy"] == ["primary", "backup"]
    assert env["function_card_temp_c"] is None and env["function_card_humidity_pct"] is None
    assert env["light_lux"] == ctrl["light_lux"]  # NS048C invalid: the sending card's sensor
    assert card(r, 0)["module_temp_c_max"] > 60
    p0c1 = card(r, 1)
    assert p0c1["modules_connected"] == 10 and p0c1["modules_total"] == 12
    assert card(r, 2)["module_cable_faults"] == 3
    dark, p1c1 = card(r, 3), card(r, 4)
    assert all(dark[k] is None for k in CARD_COLUMNS)  # ACK 01: cabinet dark
    assert dark["online"] is False
    assert p1c1["redundant_line"] is True and card(r, 0)["redundant_line"] is False
    validated_payload(r)


def test_sensor_missing_or_link_silent_gives_nulls() -> None:
    plan = PollPlan(options(), card_info_due=True)
    silent = {r: None for r in plan.controller + plan.screen + plan.function_card}
    r = reading_of(silent)
    assert r.controller["inputs"] == dict.fromkeys(("dvi", "hdmi", "dp", "sdi"))
    assert r.controller["redundancy"] == [None, None]
    assert r.env["light_lux"] is None and r.env["function_card_temp_c"] is None
    assert r.env["function_card_humidity_pct"] is None
    assert all(r.cards[k] == [None] * 5 for k in CARD_COLUMNS)
    validated_payload(r)
    emu_less = NovastarEmulator(ports=1, cards=1, light_sensor=False, function_card=None)
    solo = PollPlan(options(counts=[1]), card_info_due=True)
    reads = solo.controller + solo.screen + solo.function_card
    replies: dict[Read, Frame | None] = {r: emu_less.handle(r.frame(1)) for r in reads}
    got = reading_of(replies, counts=[1])
    assert got.controller["light_lux"] is None and got.controller["function_card"] is None
    assert got.env["light_lux"] is None and got.cards["modules_total"] == [12]
    validated_payload(got)


def test_options_are_validated_naming_the_key() -> None:
    assert parse_extended_options(None) == ExtendedOptions()
    opts = parse_extended_options({"smart_modules": True, "function_card": {"port": 1}})
    assert opts.function_card is not None and opts.function_card.mth300_rs485 == 0
    with pytest.raises(ConfigError, match=r"controller\.extended\.function_card\.mth300_rs485"):
        parse_extended_options({"function_card": {"mth300_rs485": 4}})
    with pytest.raises(ConfigError, match=r"controller\.extended\.smart_module"):
        parse_extended_options({"smart_module": True})


class Recording(NovastarEmulator):
    """The emulator, remembering every request it was asked."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.seen: list[Frame] = []

    def handle(self, request: Frame) -> Frame | None:
        self.seen.append(request)
        return super().handle(request)


def test_one_poll_asks_each_register_of_each_card_once() -> None:
    """The driver's poll, all extended reads on and a chain count due: no register of a
    card is asked twice (the RS-485 answer register is read once per sensor, after its
    own query), and the one reading holds every key."""
    emu = Recording(ports=2, cards=COUNTS, psus=2, modules=12)
    try:
        host, port = emu.serve_tcp()
        drv = NovastarDriver(parse_options({
            "url": f"tcp://{host}:{port}", "ports": 2, "cards_per_port": COUNTS,
            "extended": FULL.model_dump(),
        }))  # fmt: skip
        drv.open()
        try:
            r = drv.poll()
        finally:
            drv.close()
    finally:
        emu.stop()
    keys = [(f.device_type, f.port, f.board, f.address, f.code, f.length, f.data)
            for f in emu.seen if f.device_type != DeviceType.FUNCTION_CARD]  # fmt: skip
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)
    rs485_reads = [f for f in emu.seen if f.device_type == DeviceType.FUNCTION_CARD
                   and f.address == ns.FUNCTION_CARD_RS485_ADDR and f.code == ns.CODE_READ]
    assert len(rs485_reads) == 2  # fmt: skip
    assert r.link is LinkState.UP and r.errors == 0
    assert {len(col) for col in r.cards.values()} == {sum(COUNTS)}
    assert set(CARD_COLUMNS) <= set(r.cards) and r.controller["function_card"] == "MFN300"
