"""A NovaStar sending card with its screen behind it, speaking the real bytes.

`NovastarEmulator` models one sending card (default MCTRL660 PRO) with N output ports,
each with a chain of receiving cards (one per cabinet), each with a monitoring card, M
modules on ribbon cables and P PSU rails (monitoring voltage channels 1..P). It answers
every register the LEDwatch driver reads (spec 3.1.1, 3.1.2, 3.3, 3.6, 3.7.2, 3.17,
3.18) and the extended ones (3.1.1 analog inputs, 3.7.3, 3.8.1-3.8.5 with an MFN300
function card carrying an MTH300 and an NS048C on its RS-485 ports, 3.9, 3.10.1, 3.19,
3.20, smart modules) through `firmware_protocols.novastar`, its answers keyed by the
codec's register table (no address of its own), so no test takes a shortcut around the
codec:

- over TCP like the controllers' LAN port 5200 (`serve_tcp`, several clients at once);
- over a real pty (`serve_pty`: the driver opens the returned slave path with pyserial),
  or on an existing device such as one end of a socat pair (`serve_serial`).

Readings drift slowly (sine waves, deterministic per card) so dashboards move. Faults
are data (`Fault`), scheduled at `at_s` seconds after start or injected at once, and
the clock is injectable so a test can move time forward instead of sleeping.
A card that does not exist or has gone dark is answered with ACK 01 (spec 2.2: the
card behind the sending card timed out), exactly what a real sending card does. A
`link_drop` refuses TCP connections (nothing listens; the port stays bound) and silences
serial; `held` accepts and resets every TCP client at once, as NovaLCT's server does.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import select
import socket
import struct
import threading
import time
import tomllib
import tty
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from firmware_protocols import novastar as ns
from firmware_protocols.novastar import Ack, DeviceType, Frame, MonitoringBlock, RibbonCable
from ledwatch.errors import ConfigError, UsageError

Clock = Callable[[], float]

DEFAULT_MODEL_ID = 0x1107  # MCTRL660 PRO (NSCardType register map)
DEFAULT_FIRMWARE = "4.3.0.0"  # spec 3.6 example
DEFAULT_BRIGHTNESS = 0xC0  # 75 %
# psu_sag_then_die timeline: the rail sags 5.0 -> 4.3 V over PSU_SAG_S, sits at ~2.5 V
# for PSU_LOW_S, then the cabinet goes dark and its card stops answering.
PSU_NOMINAL_V = 5.0
PSU_SAGGED_V = 4.3
PSU_LOW_V = 2.5
PSU_SAG_S = 4.0
PSU_LOW_S = 4.0
# psu_drift timeline: an ageing supply. The rail eases down by PSU_DRIFT_V over
# PSU_DRIFT_S (a half cosine: no step, no kink) and then holds there, ~4.75 V, so it
# never reaches voltage_low's 4.6 V: only a trend or a peer comparison can see it coming.
PSU_DRIFT_V = 0.25
PSU_DRIFT_S = 90.0
OVER_TEMP_C = 85.0
DEFAULT_FUNCTION_CARD = (0, 0)  # (sending card output port, index on that port)
FUNCTION_CARD_MODEL_ID = 0x8101  # MFN300, spec 3.7.3
DEFAULT_CARD_MODEL_ID = 0x4101  # spec 3.7.1: every receiving card
DEFAULT_CARD_FIRMWARE = "4.2.0.1"  # spec 3.9 example
DISCOVERY_QUERY = b"rqProMI:"  # LAN search, UDP 3800 (sarakusha/novastar packages/net)
DISCOVERY_REPLY = b"rpProMI:"
DISCOVERY_MAC = "02:4e:53:00:00:01"  # locally administered: no real vendor's
CARD_ID_RE = re.compile(r"^p(\d+)c(\d+)$")
TARGET_RE = re.compile(r"^(p\d+c\d+)(?:(?:/|-psu)(\d+))?$")


class FaultKind(StrEnum):
    """What can go wrong on an emulated screen (DOMAIN.md, "Faults that matter")."""

    MODULE_FAIL = "module_fail"  # card[/n modules]: ribbon test shows n broken groups
    PSU_SAG_THEN_DIE = "psu_sag_then_die"  # card[/rail]: sag, collapse, card dark (ACK 01)
    PSU_DRIFT = "psu_drift"  # card[/rail]: the rail eases 0.25 V down over 90 s, then holds
    OVER_TEMP = "over_temp"  # card: receiving card at ~85 C
    FAN_STOP = "fan_stop"  # card[/fan 1..4]: that fan reads 0 rpm
    DOOR_OPEN = "door_open"  # card[/door 1..2]
    SMOKE = "smoke"  # card
    SIGNAL_LOST = "signal_lost"  # controller: no video input
    LINK_DROP = "link_drop"  # TCP closed and refused, serial silent, for duration_s
    # Another client (NovaLCT, "Nova server") holds the link: TCP connections are accepted
    # and reset at once, the one open when it starts is reset too; serial is silent.
    HELD = "held"
    MODULE_DISCONNECTED = "module_disconnected"  # card[/module n]: smart module n gone
    SENSOR_FAIL = "sensor_fail"  # mth300 | ns048c | light: the sensor reads invalid
    REDUNDANCY_BACKUP = "redundancy_backup"  # pN: output port N runs as redundant (3.10)
    INPUT_LOST = "input_lost"  # dvi | hdmi | sdi | dp: that input's signal is gone
    INPUT_SWITCHED = "input_switched"  # dvi | hdmi | sdi | dp: now the active source


CARD_FAULTS = frozenset(
    {
        FaultKind.MODULE_FAIL,
        FaultKind.PSU_SAG_THEN_DIE,
        FaultKind.PSU_DRIFT,
        FaultKind.OVER_TEMP,
        FaultKind.FAN_STOP,
        FaultKind.DOOR_OPEN,
        FaultKind.SMOKE,
        FaultKind.MODULE_DISCONNECTED,
    }
)
SENSORS = ("mth300", "ns048c", "light")
INPUTS = ("dvi", "hdmi", "sdi", "dp")
PORT_RE = re.compile(r"^p(\d+)$")
# Faults whose target is a word, not a card: kind -> the words allowed.
NAMED_TARGETS: dict[FaultKind, tuple[str, ...]] = {
    FaultKind.SENSOR_FAIL: SENSORS,
    FaultKind.INPUT_LOST: INPUTS,
    FaultKind.INPUT_SWITCHED: INPUTS,
}


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault: `kind` starts `at_s` seconds after start and lasts `duration_s` (None =
    until the emulator stops). `target` is a card id (`p0c3`), optionally with a number
    after `/`: the PSU rail (also written `p0c3-psu1`), fan, door or module count.
    """

    kind: FaultKind
    at_s: float = 0.0
    target: str | None = None
    duration_s: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _fault_kind(self.kind))
        if self.at_s < 0 or (self.duration_s is not None and self.duration_s <= 0):
            raise UsageError(f"fault {self.kind}: at_s must be >= 0 and duration_s > 0")
        if self.kind in CARD_FAULTS:
            if self.target is None or not TARGET_RE.fullmatch(self.target):
                raise UsageError(
                    f"fault {self.kind}: target {self.target!r} is not a card id like "
                    "p0c3 or p0c3/1"
                )
        elif self.kind in NAMED_TARGETS:
            if self.target not in NAMED_TARGETS[self.kind]:
                known = " | ".join(NAMED_TARGETS[self.kind])
                raise UsageError(f"fault {self.kind}: target {self.target!r} is not {known}")
        elif self.kind is FaultKind.REDUNDANCY_BACKUP:
            if self.target is None or not PORT_RE.fullmatch(self.target):
                raise UsageError(
                    f"fault {self.kind}: target {self.target!r} is not an output port like p1"
                )
        elif self.target is not None:
            raise UsageError(f"fault {self.kind}: takes no target (got {self.target!r})")

    @property
    def card(self) -> str | None:
        if self.kind not in CARD_FAULTS:
            return None
        m = TARGET_RE.fullmatch(self.target or "")
        return m.group(1) if m else None

    @property
    def number(self) -> int | None:
        if self.kind is FaultKind.REDUNDANCY_BACKUP:
            pm = PORT_RE.fullmatch(self.target or "")
            return int(pm.group(1)) if pm else None
        m = TARGET_RE.fullmatch(self.target or "")
        return int(m.group(2)) if m and m.group(2) else None


def psu_drift_v(elapsed_s: float) -> float:
    """How far a `psu_drift` rail is below its normal level `elapsed_s` after the fault
    started: a half cosine from 0 to PSU_DRIFT_V over PSU_DRIFT_S, then PSU_DRIFT_V."""
    if elapsed_s >= PSU_DRIFT_S:
        return PSU_DRIFT_V
    return PSU_DRIFT_V * (1.0 - math.cos(math.pi * max(elapsed_s, 0.0) / PSU_DRIFT_S)) / 2.0


def _fault_kind(kind: object) -> FaultKind:
    try:
        return FaultKind(str(kind))
    except ValueError:
        known = ", ".join(k.value for k in FaultKind)
        raise UsageError(f"unknown fault kind {kind!r} (known: {known})") from None


FAULT_SPEC_RE = re.compile(
    r"^(?P<kind>[a-z_]+)(?:@(?P<at>\d+(?:\.\d+)?))?(?:\+(?P<dur>\d+(?:\.\d+)?))?"
    r"(?::(?P<target>\S+))?$"
)


def parse_fault(spec: str) -> Fault:
    """Parse the CLI form `kind[@at_s][+duration_s][:target]`.

    Examples: `psu_sag_then_die@30:p0c3/1`, `psu_drift@20:p2c1/1` (an ageing supply:
    ~0.25 V down over 90 s, then steady), `module_fail@10:p1c0`, `link_drop@60+20`,
    `held@30+60` (another client holds the link), `signal_lost` (at once, for good),
    `module_disconnected@5:p0c1/3`,
    `sensor_fail:mth300`, `redundancy_backup@20+30:p1`, `input_lost:dvi`,
    `input_switched:hdmi`.
    """
    m = FAULT_SPEC_RE.fullmatch(spec.strip())
    if not m:
        raise UsageError(
            f"fault {spec!r}: expected kind[@at_s][+duration_s][:target], "
            "e.g. psu_sag_then_die@30:p0c3/1 or link_drop@60+20"
        )
    return Fault(
        kind=_fault_kind(m["kind"]),
        at_s=float(m["at"] or 0),
        target=m["target"],
        duration_s=float(m["dur"]) if m["dur"] else None,
    )


class _FaultModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str
    at_s: float = Field(0.0, ge=0)
    target: str | None = None
    duration_s: float | None = Field(None, gt=0)


class _ScenarioModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ports: int = Field(2, ge=1, le=16)
    cards: int | list[int] = 8
    psus: int = Field(2, ge=0, le=8)
    modules: int = Field(12, ge=0, le=16)
    model_id: int = Field(DEFAULT_MODEL_ID, ge=0, le=0xFFFF)
    smart_modules: bool = True
    light_sensor: bool = True
    function_card: bool = True
    fault: list[_FaultModel] = []


@dataclass(frozen=True, slots=True)
class Scenario:
    """An emulated screen and its fault schedule, as loaded from TOML."""

    ports: int = 2
    cards: int | tuple[int, ...] = 8
    psus: int = 2
    modules: int = 12
    model_id: int = DEFAULT_MODEL_ID
    faults: tuple[Fault, ...] = ()
    smart_modules: bool = True
    light_sensor: bool = True
    function_card: bool = True


def load_scenario(path: str | Path) -> Scenario:
    """Load a scenario file; errors raise `ConfigError` naming the key.

    Layout: optional top-level `ports`, `cards`, `psus`, `modules`, `model_id`,
    `smart_modules`, `light_sensor`, `function_card` (booleans: fitted or not), then any
    number of `[[fault]]` tables with `kind`, `at_s`, `target`, `duration_s`.
    """
    try:
        raw = tomllib.loads(Path(path).read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read scenario: {exc}") from None
    try:
        model = _ScenarioModel.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{path}: {key}: {err['msg']}") from None
    faults = []
    for i, f in enumerate(model.fault):
        try:
            faults.append(Fault(_fault_kind(f.kind), f.at_s, f.target, f.duration_s))
        except UsageError as exc:
            raise ConfigError(f"{path}: fault.{i}: {exc}") from None
    cards = model.cards if isinstance(model.cards, int) else tuple(model.cards)
    return Scenario(
        model.ports,
        cards,
        model.psus,
        model.modules,
        model.model_id,
        tuple(faults),
        model.smart_modules,
        model.light_sensor,
        model.function_card,
    )


class ManualClock:
    """A clock tests move by hand: `clock.advance(5)` instead of `time.sleep(5)`."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

        self._hooks: list[Callable[[], None]] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for hook in list(self._hooks):
            hook()

    def subscribe(self, hook: Callable[[], None]) -> None:
        """Call `hook` after every `advance` (emulators re-check time-driven link state)."""
        self._hooks.append(hook)


@dataclass(slots=True)
class _Card:
    port: int
    index: int
    brightness: bytes

    @property
    def id(self) -> str:
        return f"p{self.port}c{self.index}"


class NovastarEmulator:
    """See the module docstring. Thread-safe: every transport thread calls `handle`."""

    def __init__(
        self,
        ports: int = 2,
        cards: int | Sequence[int] = 8,
        psus: int = 2,
        modules: int = 12,
        model_id: int = DEFAULT_MODEL_ID,
        faults: Iterable[Fault] = (),
        clock: Clock = time.monotonic,
        monitor: bool = True,
        firmware: str = DEFAULT_FIRMWARE,
        smart_modules: bool = True,
        light_sensor: bool = True,
        function_card: tuple[int, int] | None = DEFAULT_FUNCTION_CARD,
        mth300_rs485: int | None = 0,
        ns048c_rs485: int | None = 1,
        card_model_id: int = DEFAULT_CARD_MODEL_ID,
        card_firmware: str = DEFAULT_CARD_FIRMWARE,
    ) -> None:
        per_port = [cards] * ports if isinstance(cards, int) else list(cards)
        if not 1 <= ports <= 16 or len(per_port) != ports or any(n < 0 for n in per_port):
            raise UsageError("emulator: ports must be 1..16 and cards one count >= 0 per port")
        if not 0 <= psus <= 8 or not 0 <= modules <= ns.RIBBON_GROUPS:
            raise UsageError("emulator: psus must be 0..8 and modules 0..16")
        self.ports = ports
        self.cards_per_port = per_port
        self.psus = psus
        self.modules = modules
        self.model_id = model_id
        self.monitor = monitor
        self.firmware = ns.encode_firmware_version(firmware)
        self.smart_modules = smart_modules
        self.light_sensor = light_sensor
        self.function_card = function_card
        self.mth300_rs485 = mth300_rs485
        self.ns048c_rs485 = ns048c_rs485
        self.card_info = ns.encode_receiving_card_info(
            ns.ReceivingCardInfo(card_model_id, card_firmware)
        )
        self.input_source = "dvi"  # 3.19, changed by a write to 0x02000023
        self._rs485_query: tuple[int, bytes] | None = None  # last 3.8.1 write
        self.clock = clock
        self._t0 = clock()
        self._lock = threading.RLock()
        self._faults: list[tuple[float, Fault]] = []
        self._cards = {
            (p, i): _Card(p, i, bytes([DEFAULT_BRIGHTNESS] * ns.BRIGHTNESS.length))
            for p in range(ports)
            for i in range(per_port[p])
        }
        self.requests = 0
        self.replies = 0
        self.baud_mismatches = 0  # request bursts dropped for a wrong rate (serve_pty)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._servers: list[socket.socket] = []  # UDP (discovery)
        self._listeners: list[_Listener] = []  # TCP, closed while the link is dropped
        self._conns: set[socket.socket] = set()
        self.held_resets = 0  # connections reset because the link is held
        self._fds: list[int] = []
        self._links: list[Path] = []
        for fault in faults:
            self.schedule(fault)
        subscribe = getattr(clock, "subscribe", None)
        if subscribe is not None:
            subscribe(self._sync_link)

    @classmethod
    def from_scenario(cls, scenario: Scenario, clock: Clock = time.monotonic) -> NovastarEmulator:
        return cls(
            ports=scenario.ports,
            cards=scenario.cards,
            psus=scenario.psus,
            modules=scenario.modules,
            model_id=scenario.model_id,
            faults=scenario.faults,
            clock=clock,
            smart_modules=scenario.smart_modules,
            light_sensor=scenario.light_sensor,
            function_card=DEFAULT_FUNCTION_CARD if scenario.function_card else None,
        )

    # -- faults ------------------------------------------------------------------------
    def card_ids(self) -> list[str]:
        return [c.id for c in self._cards.values()]

    def elapsed(self) -> float:
        return self.clock() - self._t0

    def schedule(self, fault: Fault) -> None:
        """Start `fault` at `fault.at_s` seconds after the emulator's start."""
        self._add(self._t0 + fault.at_s, fault)

    def inject(self, fault: Fault) -> None:
        """Start `fault` `fault.at_s` seconds from now (0 = at once)."""
        self._add(self.clock() + fault.at_s, fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _add(self, start: float, fault: Fault) -> None:
        port = fault.number if fault.kind is FaultKind.REDUNDANCY_BACKUP else None
        if port is not None and not port < min(self.ports, ns.REDUNDANCY_PORTS):
            raise UsageError(
                f"fault {fault.kind}: no port p{port} (3.10.1 covers p0..p3 of {self.ports})"
            )
        card = fault.card
        if card is not None:
            m = CARD_ID_RE.fullmatch(card)
            assert m is not None
            if (int(m[1]), int(m[2])) not in self._cards:
                raise UsageError(f"fault {fault.kind}: no card {card} (cards: {self.card_ids()})")
        with self._lock:
            self._faults.append((start, fault))
        self._sync_link()

    def _active(self, now: float) -> list[tuple[float, Fault]]:
        """(seconds since the fault started, fault) for every fault active at `now`."""
        with self._lock:
            return [
                (now - start, f)
                for start, f in self._faults
                if start <= now and (f.duration_s is None or now < start + f.duration_s)
            ]

    def link_down(self) -> bool:
        return self._link_fault(FaultKind.LINK_DROP)

    def link_held(self) -> bool:
        return self._link_fault(FaultKind.HELD)

    def _link_fault(self, kind: FaultKind) -> bool:
        return any(f.kind is kind for _, f in self._active(self.clock()))

    # -- the device --------------------------------------------------------------------
    def handle(self, request: Frame) -> Frame | None:
        """The sending card's answer to one request; None = silence (link dropped, or a
        request for a sending card further down the serial chain that does not exist)."""
        now = self.clock()
        active = self._active(now)
        self.requests += 1
        if request.is_reply or request.dst != 0:
            return None
        if any(f.kind in (FaultKind.LINK_DROP, FaultKind.HELD) for _, f in active):
            return None
        reply = self._answer(request, now, active)
        self.replies += 1
        return reply

    def _answer(self, req: Frame, now: float, active: list[tuple[float, Fault]]) -> Frame:
        if req.device_type == DeviceType.SENDING_CARD:
            if req.code == ns.CODE_WRITE:
                self._write_sender(req)
                return ns.reply_to(req)
            segments = self._sender_segments(now, active)
            return ns.reply_to(req, _read(segments, req.address, req.length))
        if req.device_type == DeviceType.FUNCTION_CARD:
            return self._function_card(req, now, active)
        if req.device_type != DeviceType.RECEIVING_CARD:
            return ns.reply_to(req, ack=Ack.TIMEOUT)
        if req.code == ns.CODE_WRITE:
            return self._write_cards(req, now, active)
        card = self._cards.get((req.port, req.board))
        if card is None or self._dark(card, active):
            return ns.reply_to(req, ack=Ack.TIMEOUT)
        block = self._block(card, now, active)
        raw = ns.encode_monitoring_block(block)
        if block.monitor:
            raw = ns.encode_analog_inputs(raw, self._analog(card, now))
        modules = self._modules(card, now, active, block)
        segments = {
            ns.RECEIVING_CARD_INFO: self.card_info,
            ns.MONITORING_BLOCK: raw,
            ns.BRIGHTNESS: card.brightness,
            # 3.20.2: one flash per module; a smart module that is gone has none to check.
            ns.MODULE_FLASH_RESULT: ns.encode_module_flash_check(
                tuple(m.connected for m in modules) if modules else (True,) * self.modules
            ),
        }
        if modules:
            segments[ns.SMART_MODULES] = ns.encode_smart_modules(modules)
        return ns.reply_to(req, _read(segments, req.address, req.length))

    def _write_cards(self, req: Frame, now: float, active: list[tuple[float, Fault]]) -> Frame:
        targets = [
            c
            for (p, i), c in self._cards.items()
            if req.port in (p, ns.BROADCAST_PORT)
            and req.board in (i, ns.BROADCAST_BOARD)
            and not self._dark(c, active)
        ]
        broadcast = req.port == ns.BROADCAST_PORT or req.board == ns.BROADCAST_BOARD
        if not targets and not broadcast:
            return ns.reply_to(req, ack=Ack.TIMEOUT)
        lo, hi = ns.BRIGHTNESS.address, ns.BRIGHTNESS.address + ns.BRIGHTNESS.length
        with self._lock:
            for c in targets:  # spec 3.3: brightness is the one writable register modelled
                buf = bytearray(c.brightness)
                for k, b in enumerate(req.data):
                    if lo <= req.address + k < hi:
                        buf[req.address + k - lo] = b
                c.brightness = bytes(buf)
        return ns.reply_to(req)

    def _write_sender(self, req: Frame) -> None:
        """3.19: writing a known source code at 0x02000023 switches the input."""
        lo, hi = req.address, req.address + len(req.data)
        if lo <= ns.INPUT_SOURCE_ADDR < hi:
            source = ns.decode_input_source(req.data[ns.INPUT_SOURCE_ADDR - lo :])
            if source is not None:
                with self._lock:
                    self.input_source = source

    def _sender_segments(
        self, now: float, active: list[tuple[float, Fault]]
    ) -> dict[ns.Register, bytes]:
        source = self.input_source
        lost: set[str] = set()
        redundant = [False] * min(self.ports, ns.REDUNDANCY_PORTS)
        failed: set[str] = set()
        for _, f in active:
            if f.kind is FaultKind.INPUT_SWITCHED and f.target:
                source = f.target
            elif f.kind is FaultKind.INPUT_LOST and f.target:
                lost.add(f.target)
            elif f.kind is FaultKind.SIGNAL_LOST:
                lost.update(INPUTS)
            elif f.kind is FaultKind.REDUNDANCY_BACKUP and f.number is not None:
                redundant[f.number] = True
            elif f.kind is FaultKind.SENSOR_FAIL and f.target:
                failed.add(f.target)
        # The DVI source is always fed; a switched-to input carries a signal too.
        family = {"dual_dvi": "dvi", "hdmi1.4": "hdmi"}.get(source, source)
        present = ({"dvi", family} & set(INPUTS)) - lost
        segments = {
            ns.CONTROLLER_MODEL: ns.encode_model_id(self.model_id),
            ns.DVI_SIGNAL: ns.encode_dvi_signal("dvi" in present),
            ns.INPUT_SOURCE_STATUS: ns.encode_input_signals(present),
            ns.FIRMWARE_VERSION: self.firmware,
            ns.REDUNDANCY: ns.encode_redundancy(tuple(redundant)),
            ns.INPUT_SELECTION: bytes((ns.INPUT_MODE_MANUAL,)) + ns.encode_input_source(source),
        }
        if self.light_sensor:
            lux = None if "light" in failed else self._lux(now, 0.0)
            segments[ns.LIGHT_SENSOR] = ns.encode_light_sensor(lux)
            segments[ns.LIGHT_CONFIG] = ns.encode_light_config(
                ns.LightSensorConfig(
                    standalone=True, sensors=1, max_lux=10000, min_lux=50,
                    max_brightness_pct=100.0, min_brightness_pct=20.0, segments=8,
                    site=ns.LightSensorSite.SENDING_CARD,
                )
            )  # fmt: skip
        else:
            segments[ns.LIGHT_CONFIG] = ns.encode_light_config(ns.LightSensorConfig())
        return segments

    def _function_card(self, req: Frame, now: float, active: list[tuple[float, Fault]]) -> Frame:
        """An MFN300 (3.7.3) relaying 3.8.1 queries to the sensors on its RS-485 ports.

        A write at 0x06000000 picks the device and its query; a read there returns that
        device's answer (3.8.2 / 3.8.3). A query for a port with nothing on it, or a read
        before any query, reads zeros, which the codec refuses (None), as stale junk would.
        """
        if self.function_card != (req.port, req.board):
            return ns.reply_to(req, ack=Ack.TIMEOUT)
        if req.code == ns.CODE_WRITE:
            if req.address == ns.FUNCTION_CARD_RS485_ADDR and len(req.data) >= 4:
                with self._lock:
                    self._rs485_query = (req.data[0], bytes(req.data[4:]))
            return ns.reply_to(req)
        failed = {f.target for _, f in active if f.kind is FaultKind.SENSOR_FAIL}
        answer = b""
        query = self._rs485_query
        if query is not None:
            port, payload = query
            if port == self.mth300_rs485 and payload == ns.MTH300_QUERY:
                t = now - self._t0
                reading = ns.Mth300Reading(None, None)
                if "mth300" not in failed:
                    reading = ns.Mth300Reading(
                        temp_c=round(24.0 + 3.0 * math.sin(t / 150.0), 1),
                        humidity_pct=round(45 + 8 * math.sin(t / 200.0 + 1.0)),
                    )
                answer = ns.encode_mth300(reading)
            elif port == self.ns048c_rs485 and payload == ns.NS048C_QUERY:
                answer = ns.encode_ns048c(None if "ns048c" in failed else self._lux(now, 0.3))
        segments = {
            ns.FUNCTION_CARD_MODEL: ns.encode_model_id(FUNCTION_CARD_MODEL_ID),
            ns.FUNCTION_CARD_RS485: answer,
        }
        return ns.reply_to(req, _read(segments, req.address, req.length))

    def _lux(self, now: float, phase: float) -> float:
        """Ambient light drifting between ~100 and ~3000 lux over about ten minutes."""
        t = now - self._t0
        return round(1550.0 + 1450.0 * math.sin(t / 95.0 + phase))

    def _analog(self, card: _Card, now: float) -> tuple[int | None, ...]:
        """Monitoring card analog inputs: two wired (slow drift), the rest unused."""
        t = now - self._t0
        ph = card.port * 3.1 + card.index * 0.7
        wired = [round(60 + 20 * math.sin(t / 80.0 + ph + k)) for k in range(2)]
        return (*wired, *([None] * (ns.ANALOG_INPUTS - 2)))

    def _modules(
        self,
        card: _Card,
        now: float,
        active: list[tuple[float, Fault]],
        block: MonitoringBlock,
    ) -> tuple[ns.SmartModule, ...]:
        """Smart modules of one cabinet: temperature and voltage follow the cabinet (its
        rails, over-temperature), run time counts up, faults knock modules off."""
        if not self.smart_modules or not self.modules:
            return ()
        t = now - self._t0
        gone: set[int] = set()
        broken = 0
        hot = False
        for _, f in active:
            if f.card != card.id:
                continue
            if f.kind is FaultKind.MODULE_DISCONNECTED:
                gone.add((f.number or 1) - 1)
            elif f.kind is FaultKind.MODULE_FAIL:
                broken = max(broken, f.number or 1)
            elif f.kind is FaultKind.OVER_TEMP:
                hot = True
        rails: list[float] = []
        if block.monitor:
            rails = [v for v in block.voltages_v[1 : 1 + self.psus] if v is not None]
        base_h = 5000 + 137 * card.port + 61 * card.index
        out: list[ns.SmartModule] = []
        for m in range(self.modules):
            if m in gone:
                out.append(ns.SmartModule(connected=False))
                continue
            temp = 36.0 + 2.5 * math.sin(t / 70.0 + card.index + m * 0.4) + (30.0 if hot else 0.0)
            volt = rails[m % len(rails)] if rails else block.voltage_v
            out.append(
                ns.SmartModule(
                    connected=True,
                    temp_c=temp,
                    voltage_v=None if volt is None else volt - 0.1,  # the module's own drop
                    run_time_h=base_h + int(t // 3600),
                    cable_errors=0b1 if m < broken else 0,
                )
            )
        return tuple(out)

    @staticmethod
    def _dark(card: _Card, active: list[tuple[float, Fault]]) -> bool:
        dead_after_s = PSU_SAG_S + PSU_LOW_S
        return any(
            f.kind is FaultKind.PSU_SAG_THEN_DIE and f.card == card.id and e >= dead_after_s
            for e, f in active
        )

    def _block(self, card: _Card, now: float, active: list[tuple[float, Fault]]) -> MonitoringBlock:
        t = now - self._t0
        ph = card.port * 7.3 + card.index * 1.7

        def wave(base: float, amp: float, period_s: float, k: float = 0.0) -> float:
            return base + amp * math.sin(t / period_s + ph + k)

        temp_c = wave(38.0, 2.0, 60.0)
        monitor_temp_c = wave(32.0, 1.5, 90.0)
        # Healthy rails wander a little (within one 0.1 V step of the wire, so they read a
        # steady 5.0 V): prediction (a PSU sinking against its peers) must see only faults.
        rails = [wave(PSU_NOMINAL_V, 0.03, 45.0, k) for k in range(1, self.psus + 1)]
        card_v = wave(PSU_NOMINAL_V, 0.05, 17.0)
        fans = [wave(1500.0, 100.0, 30.0, k) for k in range(ns.FAN_COUNT)]
        doors = [False] * ns.DOOR_COUNT
        smoke = False
        broken = 0
        for e, f in active:
            if f.card != card.id:
                continue
            n = f.number
            if f.kind is FaultKind.PSU_SAG_THEN_DIE:
                v = (
                    PSU_NOMINAL_V - (PSU_NOMINAL_V - PSU_SAGGED_V) * e / PSU_SAG_S
                    if e < PSU_SAG_S
                    else PSU_LOW_V
                )
                rail = (n or 1) - 1
                if 0 <= rail < len(rails):
                    rails[rail] = v
                card_v = min(card_v, v)  # the card hangs on the same 5 V bus
            elif f.kind is FaultKind.PSU_DRIFT:
                rail = (n or 1) - 1
                if 0 <= rail < len(rails):
                    rails[rail] -= psu_drift_v(e)
            elif f.kind is FaultKind.MODULE_FAIL:
                broken = max(broken, n or 1)
            elif f.kind is FaultKind.OVER_TEMP:
                temp_c = OVER_TEMP_C + (temp_c - 38.0) / 4
                monitor_temp_c += 25.0
            elif f.kind is FaultKind.FAN_STOP:
                fans[max(0, min(ns.FAN_COUNT, n or 1) - 1)] = 0.0
            elif f.kind is FaultKind.DOOR_OPEN:
                doors[max(0, min(ns.DOOR_COUNT, n or 1) - 1)] = True
            elif f.kind is FaultKind.SMOKE:
                smoke = True
        groups = tuple(0b111 if g < min(broken, ns.RIBBON_GROUPS) else 0 for g in range(16))
        voltages: list[float | None] = [wave(PSU_NOMINAL_V, 0.03, 70.0), *rails]
        voltages += [None] * (ns.VOLTAGE_CHANNELS - len(voltages))
        return MonitoringBlock(
            temp_c=temp_c,
            voltage_v=card_v,
            monitor=self.monitor,
            monitor_model=0x0001,
            monitor_version=(4, 0, 0, 0),
            monitor_temp_c=monitor_temp_c,
            humidity_pct=round(wave(40.0, 3.0, 120.0)),
            smoke=smoke,
            fan_rpm=tuple(round(x) for x in fans),
            voltages_v=tuple(voltages),
            door_open=tuple(doors),
            # Control lines as in the spec 3.17 example (unconnected pins read 1).
            ribbon=RibbonCable(groups, (0xF8, 0xF0, 0xF0, 0xFF, 0xF0, 0xF0, 0xF0, 0xFF)),
        )

    def _answer_bytes(self, frames: list[Frame]) -> bytes:
        out = bytearray()
        for f in frames:
            reply = self.handle(f)
            if reply is not None:
                out += ns.encode(reply)
        return bytes(out)

    # -- transports ----------------------------------------------------------------------
    def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen like a controller's LAN port (5200); returns the bound (host, port)."""
        lst = _Listener(host, port)
        lst.listen()
        with self._lock:
            self._listeners.append(lst)
        self._sync_link()  # a link drop already under way: closed at once
        self._spawn(self._accept_loop, lst)
        return lst.host, lst.port

    def _sync_link(self) -> None:
        """Bring the TCP side in line with the link faults now: while the link is dropped
        every listener is closed (connections are refused, as from a controller that is
        off or rebooting) and open connections are reset; when it is back they listen
        again on the same port. While it is held, the open connections are reset (the
        other client took over) and new ones are reset at accept (`_accept_loop`).

        Called on every inject/schedule, on every `ManualClock.advance` (so a test that
        moves time sees the change at once) and by the accept loops for real clocks."""
        if self._stop.is_set():
            return
        down, held = self.link_down(), self.link_held()
        with self._lock:
            for lst in self._listeners:
                if down:
                    lst.refuse()
                elif lst.sock is None:
                    with contextlib.suppress(OSError):  # port taken meanwhile: next time
                        lst.listen()
            conns = list(self._conns) if down or held else []
        for conn in conns:
            _reset(conn)

    def _accept_loop(self, lst: _Listener) -> None:
        while not self._stop.is_set():
            self._sync_link()
            srv = lst.sock
            if srv is None:
                self._stop.wait(0.02)
                continue
            try:
                conn, _ = srv.accept()
            except (TimeoutError, OSError):
                continue  # OSError: closed by _sync_link (link dropped) or by stop()
            if self.link_held():  # reset right after the connect, as NovaLCT's server does
                self.held_resets += 1
                _reset(conn)
                continue
            if self.link_down():  # the drop began between the check and accept
                _reset(conn)
                continue
            with self._lock:
                self._conns.add(conn)
            self._spawn(self._serve_conn, conn)

    def _serve_conn(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        dec = ns.StreamDecoder()
        try:
            while not self._stop.is_set():
                if self.link_down() or self.link_held():
                    _reset(conn)
                    return
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    return
                out = self._answer_bytes(dec.feed(data))
                if out:
                    conn.sendall(out)
        except OSError:
            return
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def serve_pty(
        self, link: str | Path | None = None, baudrate: int | None = None, pace: bool = False
    ) -> str:
        """Open a pty pair and answer on its master; return the slave path for the driver.

        `link` (optional) is a symlink created to the slave path, as socat's `link=`.
        `baudrate` makes the emulated UART run at that rate: a pty carries no bits, but
        it keeps the rate the driver set on the slave (termios, read through the master),
        so requests sent at another rate are dropped (counted in `baud_mismatches`), as
        a real UART at the wrong rate reads only framing errors. `pace=True` also models
        the wire time at `baudrate` (see `_uart_loop`), for `ledwatch bench poll`.
        """
        if baudrate is not None or pace:
            if not baudrate or baudrate <= 0:
                raise UsageError("emulator: pace needs a positive baudrate")
            master, slave = os.openpty()
            tty.setraw(slave)
            path = os.ttyname(slave)
            self._fds += [master, slave]
            self._spawn(self._uart_loop, master, baudrate, pace)
            return path
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: bytes pass untouched
        path = os.ttyname(slave)
        self._fds += [master, slave]  # holding the slave open keeps the master readable
        if link is not None:
            lp = Path(link)
            with contextlib.suppress(FileNotFoundError):
                lp.unlink()
            lp.symlink_to(path)
            self._links.append(lp)
        self._spawn(self._pty_loop, master)
        return path

    def _pty_loop(self, master: int) -> None:
        dec = ns.StreamDecoder()
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([master], [], [], 0.1)
                if not ready:
                    continue
                data = os.read(master, 65536)
            except OSError:
                time.sleep(0.05)  # EIO while no one has the slave open
                continue
            out = self._answer_bytes(dec.feed(data))
            if out:
                with contextlib.suppress(OSError):
                    os.write(master, out)

    def _uart_loop(self, master: int, baudrate: int, pace: bool) -> None:
        """The pty side of a UART at `baudrate` (8N1, 10 bits a byte, full duplex).

        With `pace`, a request counts as received only when its bytes would have
        crossed the wire (a pty delivers a burst at once, so its wire time is added from
        the moment the bytes are seen, queued behind earlier ones), and every reply
        leaves when its last byte would have been sent, the transmit line carrying one
        reply after the other. The driver thus never gets a byte sooner than a real line
        would deliver it, and a perfectly pipelined poll takes the wire time.
        """
        dec = ns.StreamDecoder()
        byte_s = 10 / baudrate
        rx_free = tx_free = 0.0
        due: list[tuple[float, bytes]] = []  # (send at, reply bytes), in send order
        while not self._stop.is_set():
            now = time.monotonic()
            while due and due[0][0] <= now:
                with contextlib.suppress(OSError):
                    os.write(master, due.pop(0)[1])
            wait = min(0.1, due[0][0] - now) if due else 0.1
            try:
                ready, _, _ = select.select([master], [], [], max(0.0, wait))
                if not ready:
                    continue
                data = os.read(master, 65536)
            except OSError:
                time.sleep(0.05)  # EIO while no one has the slave open
                continue
            seen = time.monotonic()
            rate = _pty_baudrate(master)
            if rate is not None and rate != baudrate:
                self.baud_mismatches += 1
                dec.reset()
                continue
            frames = dec.feed(data)
            if not pace:
                out = self._answer_bytes(frames)
                if out:
                    with contextlib.suppress(OSError):
                        os.write(master, out)
                continue
            rx_free = max(rx_free, seen)
            for f in frames:
                rx_free += f.size * byte_s
                reply = self.handle(f)
                if reply is None:
                    continue
                raw = ns.encode(reply)
                tx_free = max(tx_free, rx_free) + len(raw) * byte_s
                due.append((tx_free, raw))

    def serve_discovery(
        self, host: str = "127.0.0.1", port: int = 0, mac: str = DISCOVERY_MAC
    ) -> tuple[str, int]:
        """Answer NovaStar's LAN search (UDP 3800 on a real controller) like a controller:
        a datagram starting `rqProMI:` gets `rpProMI:` back, sent to where it came from.

        What a real controller puts after `rpProMI:` is not documented (NovaStar's tools,
        as in sarakusha/novastar net.ts, only check the prefix and take the sender's
        address), so the emulator adds its model name and a MAC as plain text; the
        discovery client treats that part as optional. Returns the bound (host, port).
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((host, port))
        sock.settimeout(0.1)
        self._servers.append(sock)
        self._spawn(self._discovery_loop, sock, mac)
        bound = sock.getsockname()
        return bound[0], bound[1]

    def _discovery_loop(self, sock: socket.socket, mac: str) -> None:
        while not self._stop.is_set():
            try:
                data, peer = sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data.startswith(DISCOVERY_QUERY) or self.link_down():
                continue
            name = ns.model_name(self.model_id) or f"0x{self.model_id:04X}"
            with contextlib.suppress(OSError):
                sock.sendto(DISCOVERY_REPLY + f"{name};MAC={mac}".encode("ascii"), peer)

    def serve_serial(self, device: str, baudrate: int = 115200) -> str:
        """Answer on an existing serial device (e.g. one end of a socat pty pair)."""
        import serial  # pyserial; only this transport needs it

        port = serial.Serial(device, baudrate=baudrate, timeout=0.1)
        self._spawn(self._serial_loop, port)
        return device

    def _serial_loop(self, port: Any) -> None:
        dec = ns.StreamDecoder()
        try:
            while not self._stop.is_set():
                data = port.read(max(1, port.in_waiting))
                if data:
                    out = self._answer_bytes(dec.feed(data))
                    if out:
                        port.write(out)
        except OSError:
            return
        finally:
            port.close()

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        th = threading.Thread(target=target, args=args, daemon=True, name="novastar-emulator")
        th.start()
        self._threads.append(th)

    def stop(self) -> None:
        """Close every server, connection and pty; wait for the threads to end."""
        self._stop.set()
        for srv in self._servers:
            srv.close()
        with self._lock:
            for lst in self._listeners:
                lst.close()
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.close()
        for th in self._threads:
            th.join(timeout=2.0)
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        for lp in self._links:
            with contextlib.suppress(OSError):
                lp.unlink()
        self._servers.clear()
        self._listeners.clear()
        self._threads.clear()
        self._fds.clear()
        self._links.clear()

    def __enter__(self) -> NovastarEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _read(segments: dict[ns.Register, bytes], address: int, length: int) -> bytes:
    """Bytes [address, address+length) of the registers served (keyed by the codec's
    register table, so the emulator keeps no addresses of its own); unmapped bytes read 0."""
    out = bytearray(length)
    for reg, data in segments.items():
        base = reg.address
        lo = max(base, address)
        hi = min(base + len(data), address + length)
        if lo < hi:
            out[lo - address : hi - address] = data[lo - base : hi - base]
    return bytes(out)


_TCGETS2 = 0x802C542A  # Linux: struct termios2, whose speeds may be any rate (BOTHER)


def _pty_baudrate(master: int) -> int | None:
    """The rate the other side set on a pty's slave (termios ioctls on a Linux pty
    master act on its slave). None where it cannot be read."""
    import fcntl

    buf = bytearray(44)
    try:
        fcntl.ioctl(master, _TCGETS2, buf)
    except OSError:
        return None
    ispeed, ospeed = struct.unpack_from("<II", buf, 36)
    return ospeed or ispeed or None


class _Listener:
    """One TCP endpoint; its socket is None while the emulated link is dropped. The port
    stays bound then (a socket that does not listen), so connects are refused and no
    local client can be handed the free port as its own source (a TCP self-connect)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.sock: socket.socket | None = None
        self._hold: socket.socket | None = None

    def listen(self) -> None:
        self._release()
        srv = socket.create_server((self.host, self.port))  # SO_REUSEADDR on POSIX
        srv.settimeout(0.1)
        self.host, self.port = srv.getsockname()[:2]
        self.sock = srv

    def refuse(self) -> None:
        """Stop listening, keep the port."""
        if self.sock is None:
            return
        self._stop_listening()
        hold = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            hold.bind((self.host, self.port))
        except OSError:
            hold.close()  # taken meanwhile: refused all the same, just not reserved
            return
        self._hold = hold

    def close(self) -> None:
        self._stop_listening()
        self._release()

    def _stop_listening(self) -> None:
        # shutdown() first: close() alone leaves the socket listening until an accept
        # blocked on it in another thread times out, and connects would still succeed.
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
            self.sock = None

    def _release(self) -> None:
        if self._hold is not None:
            self._hold.close()
            self._hold = None


def _reset(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
