"""What else to ask a NovaStar system, and what its answers mean. Pure: no I/O.

The base poll (driver.py) reads the model, the video signal, every receiving card's
monitoring block and one brightness. This module adds the rest of what the V1.9 spec
(and NovaStar's register map) lets a system report: every input's signal and the active
input (3.1.2, 3.18, 3.19), output port redundancy (3.10), the light sensor on the
sending card (3.8.4), a function card's sensors behind its RS-485 ports (3.7.3, 3.8.1-
3.8.3), each receiving card's model and firmware (3.9) and its smart modules.

Two calls, either side of the driver's exchange::

    frames = extended_requests(opts, counts)          # read (and 3.8.1 write) requests
    pairs = [(f, reply_or_none) for f in frames]      # the driver's I/O, in order
    values = extended_values(pairs, counts)           # {"controller", "cards", "env"}
    merge_extended(reading, values)                   # adds the keys to a ScreenReading

A reply that is missing, not ACK 0 or short leaves its keys None (never a sentinel).
The function card frames come last and must be exchanged one at a time, in order
(`request_batches` splits them off): its answer register is shared by every RS-485
device, so a query overtaking the previous read would answer for the wrong sensor.
The decoder tells the two sensor answers apart by content, so a crossed pair gives
None, not a wrong value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.drivers.base import ScreenReading
from firmware_protocols import novastar as ns
from firmware_protocols.novastar import Ack, DeviceType, Frame
from ledwatch.errors import ConfigError, UsageError

INPUT_KEYS: Final = ("dvi", "hdmi", "dp", "sdi")
# Inputs a model has, where NovaStar documents them; a model not listed keeps all four.
# MCTRL660 PRO: its protocol sheet (sarakusha/novastar doc/) switches SDI, HDMI and DVI.
INPUTS_BY_MODEL: Final[dict[str, frozenset[str]]] = {
    "MCTRL660 PRO": frozenset({"dvi", "hdmi", "sdi"}),
}
CARD_COLUMNS: Final = (
    "model", "firmware", "modules_connected", "modules_total", "module_temp_c_max",
    "module_voltage_v_min", "run_time_h", "module_cable_faults", "redundant_line",
)  # fmt: skip
SENDER: Final = (DeviceType.SENDING_CARD, 0, 0)


class FunctionCardOptions(BaseModel):
    """Where the function card (MFN300) sits and what is on its RS-485 ports (3.8.1)."""

    model_config = ConfigDict(extra="forbid")

    port: int = Field(default=0, ge=0, le=15)  # sending card output port it hangs on
    board: int = Field(default=0, ge=0, le=0xFFFE)  # its index on that port
    mth300_rs485: int | None = Field(default=0, ge=0, le=3)  # temperature/humidity sensor
    ns048c_rs485: int | None = Field(default=None, ge=0, le=3)  # light sensor


class ExtendedOptions(BaseModel):
    """The `[screens.controller.extended]` table: which extra reads a poll makes."""

    model_config = ConfigDict(extra="forbid")

    inputs: bool = True  # 3.7.2 model, 3.18, 3.1.2, 3.19: 4 small reads
    redundancy: bool = True  # 3.10.1; 3.10.2 rides on card_info
    light_sensor: bool = True  # 3.8.4: a sensor wired to the sending card
    card_info: bool = True  # 3.9 per card (6 bytes): model, firmware, redundant line
    # 3.9 describes hardware that changes only when a card is swapped, yet it doubles the
    # requests per card: read it on the first poll and every this many polls (1 = every
    # poll). In between, model/firmware repeat the last answer and `redundant_line`
    # follows the per-port redundancy state, which is read every poll.
    card_info_every: int = Field(default=12, ge=1, le=10_000)
    # Smart modules: 256 bytes more per card, at an address LEDwatch had to assume
    # (see firmware_protocols.novastar.SmartModule), so off unless asked for.
    smart_modules: bool = False
    function_card: FunctionCardOptions | None = None


def parse_extended_options(options: dict[str, Any] | None) -> ExtendedOptions:
    """Validate once; a bad value raises `ConfigError` naming `controller.extended.<key>`."""
    try:
        return ExtendedOptions.model_validate(options or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"controller.extended.{loc}: {err['msg']}") from None


class _Serials:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> int:
        self.n = (self.n + 1) & 0xFF
        return self.n


def _cards(ports_cards: Sequence[int]) -> list[tuple[int, int]]:
    """(port, index) of every card, in the order of the driver's `cards` columns."""
    return [(p, i) for p, n in enumerate(ports_cards) for i in range(n)]


def extended_requests(
    options: ExtendedOptions, ports_cards: Sequence[int], card_info_due: bool = True
) -> list[Frame]:
    """Every request of the extended plan; serials are 1, 2, ... (the driver may renumber).

    `ports_cards` holds the receiving card count of each output port. Sending card reads
    come first, then per card 3.9 and smart modules, then the function card's pairs
    (3.8.1 write, then the 7-byte read) which must not be pipelined (module docstring).
    """
    serial = _Serials()
    sd, rc, fc = DeviceType.SENDING_CARD, DeviceType.RECEIVING_CARD, DeviceType.FUNCTION_CARD
    out: list[Frame] = []

    def read(dev: int, port: int, board: int, addr: int, length: int) -> None:
        out.append(ns.read_request(serial(), dev, port, board, addr, length))

    if options.inputs:
        read(sd, 0, 0, ns.CONTROLLER_MODEL_ADDR, ns.CONTROLLER_MODEL_LEN)
        read(sd, 0, 0, ns.INPUT_SOURCE_STATUS_ADDR, ns.INPUT_SOURCE_STATUS_LEN)
        read(sd, 0, 0, ns.DVI_SIGNAL_ADDR, ns.DVI_SIGNAL_LEN)
        read(sd, 0, 0, ns.INPUT_MODE_ADDR, 2)  # 0x22 mode + 0x23 source (3.19)
    if options.redundancy:
        read(sd, 0, 0, ns.REDUNDANCY_ADDR, ns.REDUNDANCY_LEN)
    if options.light_sensor:
        read(sd, 0, 0, ns.LIGHT_SENSOR_ADDR, ns.LIGHT_SENSOR_LEN)
    for p, i in _cards(ports_cards):
        if card_info_due and (options.card_info or options.redundancy):
            read(rc, p, i, ns.RECEIVING_CARD_INFO_ADDR, ns.RECEIVING_CARD_INFO_LEN)
        if options.smart_modules:
            read(rc, p, i, ns.SMART_MODULE_ADDR, ns.SMART_MODULE_LEN)
    f = options.function_card
    if f is not None:
        read(fc, f.port, f.board, ns.FUNCTION_CARD_MODEL_ADDR, ns.FUNCTION_CARD_MODEL_LEN)
        for rs485, query in ((f.mth300_rs485, ns.MTH300_QUERY), (f.ns048c_rs485, ns.NS048C_QUERY)):
            if rs485 is None:
                continue
            data = ns.rs485_request(rs485, query)
            out.append(
                ns.write_request(serial(), fc, f.port, f.board, ns.FUNCTION_CARD_RS485_ADDR, data)
            )
            read(fc, f.port, f.board, ns.FUNCTION_CARD_RS485_ADDR, ns.FUNCTION_CARD_RS485_READ_LEN)
    return out


def request_batches(frames: Sequence[Frame]) -> list[list[Frame]]:
    """Split a plan into batches to exchange in order: everything before the first
    function card frame may be pipelined (one batch); each function card frame is a
    batch of its own (see the module docstring)."""
    cut = next(
        (k for k, f in enumerate(frames) if f.device_type == DeviceType.FUNCTION_CARD),
        len(frames),
    )
    head = [list(frames[:cut])] if cut else []
    return head + [[f] for f in frames[cut:]]


@dataclass(slots=True)
class _Card:
    answered: bool | None = None  # the 3.9 read: None = not asked
    info: ns.ReceivingCardInfo | None = None
    modules: tuple[ns.SmartModule, ...] | None = None


def _ok(reply: Frame | None) -> bool:
    return reply is not None and reply.ack == Ack.OK and len(reply.data) == reply.length


def _max(values: Sequence[float | int | None]) -> float | int | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _min(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def extended_values(
    replies: Sequence[tuple[Frame, Frame | None]], ports_cards: Sequence[int]
) -> dict[str, dict[str, Any]]:
    """Turn (request, reply or None) pairs into snapshot keys.

    Returns {"controller": {...}, "cards": {column: [one per card]}, "env": {...}};
    card columns follow the driver's card order (port by port, index by index).
    """
    model: str | None = None
    status: ns.InputStatus | None = None
    dvi: bool | None = None
    source: str | None = None
    manual: bool | None = None
    redundant: tuple[bool, ...] | None = None
    lux: float | None = None
    fc_model: str | None = None
    mth: ns.Mth300Reading | None = None
    fc_lux: float | None = None
    cards = {key: _Card() for key in _cards(ports_cards)}
    for req, reply in replies:
        if req.code != ns.CODE_READ:
            continue
        ok = _ok(reply)
        data = reply.data if ok and reply is not None else b""
        where = (req.device_type, req.port, req.board)
        if req.device_type == DeviceType.RECEIVING_CARD:
            card = cards.get((req.port, req.board))
            if card is None:
                continue
            if req.address == ns.RECEIVING_CARD_INFO_ADDR:
                card.answered = ok
                card.info = ns.decode_receiving_card_info(data) if ok else None
            elif req.address == ns.SMART_MODULE_ADDR:
                card.modules = ns.decode_smart_modules(data) if ok else None
            continue
        if not ok:
            continue
        if where == SENDER:
            if req.address == ns.CONTROLLER_MODEL_ADDR:
                model = ns.model_name(ns.decode_model_id(data))
            elif req.address == ns.INPUT_SOURCE_STATUS_ADDR:
                status = ns.decode_input_status(data)
            elif req.address == ns.DVI_SIGNAL_ADDR:
                dvi = ns.decode_dvi_signal(data)
            elif req.address == ns.INPUT_MODE_ADDR:
                manual = ns.decode_input_mode_manual(data)
                source = ns.decode_input_source(data[1:])
            elif req.address == ns.REDUNDANCY_ADDR:
                redundant = ns.decode_redundancy(data)
            elif req.address == ns.LIGHT_SENSOR_ADDR:
                lux = ns.decode_light_sensor(data)
        elif req.device_type == DeviceType.FUNCTION_CARD:
            if req.address == ns.FUNCTION_CARD_MODEL_ADDR:
                fc_model = ns.function_card_model_name(ns.decode_model_id(data))
            elif req.address == ns.FUNCTION_CARD_RS485_ADDR:
                got = ns.decode_function_card_reply(data)
                if isinstance(got, ns.Mth300Reading):
                    mth = got
                elif got is not None:
                    fc_lux = got

    inputs = ns.input_signals(status, dvi)
    fitted = INPUTS_BY_MODEL.get(model or "")
    if fitted is not None:
        inputs = {k: (v if k in fitted else None) for k, v in inputs.items()}
    ports: list[str | None] = [
        None if redundant is None or p >= len(redundant) else
        ("backup" if redundant[p] else "primary")
        for p in range(len(ports_cards))
    ]  # fmt: skip
    controller = {
        "inputs": {k: inputs[k] for k in INPUT_KEYS},
        "input_source": source,
        "input_manual": manual,
        "redundancy": ports,
        "light_lux": lux,
        "function_card": fc_model,
    }
    rows = [_card_row(key, c, ports) for key, c in cards.items()]
    env = {
        # The function card's NS048C (ambient, usually outside) wins over the sending
        # card's own sensor, which then also stands for the environment.
        "light_lux": fc_lux if fc_lux is not None else lux,
        "function_card_temp_c": mth.temp_c if mth else None,
        "function_card_humidity_pct": mth.humidity_pct if mth else None,
    }
    return {
        "controller": controller,
        "cards": {k: [r[k] for r in rows] for k in CARD_COLUMNS},
        "env": env,
    }


def _card_row(key: tuple[int, int], card: _Card, ports: Sequence[str | None]) -> dict[str, Any]:
    info, modules = card.info, card.modules
    live = [m for m in modules if m.connected] if modules is not None else []
    port_state = ports[key[0]] if key[0] < len(ports) else None
    redundant_line = None  # unknown: port state unread, or the card did not answer 3.9
    if port_state is not None and card.answered:
        # 3.10.2: a card answering through a redundant port runs on the redundant line.
        redundant_line = port_state == "backup"
    return {
        "model": info.model if info else None,
        "firmware": info.firmware if info else None,
        "modules_connected": len(live) if modules is not None else None,
        "modules_total": len(modules) if modules is not None else None,
        "module_temp_c_max": _max([m.temp_c for m in live]),
        "module_voltage_v_min": _min([m.voltage_v for m in live]),
        "run_time_h": _max([m.run_time_h for m in live]),
        "module_cable_faults": sum(m.cable_faults for m in live) if modules is not None else None,
        "redundant_line": redundant_line,
    }


def carry_card_info(
    reading: ScreenReading, cache: dict[str, tuple[str | None, str | None]]
) -> None:
    """Between 3.9 reads: fill model/firmware of answering cards from `cache` and derive
    `redundant_line` from the port's redundancy state; refresh `cache` from rows that
    carry a fresh answer. In place, on a reading `merge_extended` has completed."""
    cards = reading.cards
    ports = reading.controller.get("redundancy") or []
    for i, ident in enumerate(cards.get("id", [])):
        if cards["model"][i] is not None or cards["firmware"][i] is not None:
            cache[ident] = (cards["model"][i], cards["firmware"][i])
            continue
        if not cards["online"][i]:
            continue
        cards["model"][i], cards["firmware"][i] = cache.get(ident, (None, None))
        port = cards["port"][i]
        if cards["redundant_line"][i] is None and port < len(ports) and ports[port] is not None:
            cards["redundant_line"][i] = ports[port] == "backup"


def merge_extended(reading: ScreenReading, values: dict[str, dict[str, Any]]) -> None:
    """Add `values` to `reading` in place; card columns must match its card count."""
    n = len(reading.cards.get("id", []))
    for col, items in values["cards"].items():
        if len(items) != n:
            raise UsageError(f"extended column {col} has {len(items)} cards, the reading {n}")
    reading.controller.update(values["controller"])
    reading.cards.update(values["cards"])
    reading.env.update(values["env"])
