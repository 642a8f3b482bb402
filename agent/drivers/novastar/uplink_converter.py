"""NovaStar (request, reply) pairs + the previous poll's state -> the finished
`ScreenReading` (the `ledwatch.telemetry/1` shapes). Pure: no I/O, no clock.

"Uplink" = device towards the service centre (thingsboard-gateway's naming). The driver
hands over every request of the poll plan with its reply (or None), what the link layer
saw (`LinkFacts`) and what the last poll left (`Carried`); `convert` decodes the replies
with the codec's register table, reshapes, aggregates, and returns the reading complete
(base and extended keys together) with the state for the next poll. Nothing adds to the
reading afterwards; edge events are the agent's (`agent/reading.py`), computed on the
finished reading.

A reply that is missing, not ACK 0 or short leaves its keys None (never a sentinel). A
card answered with ACK 01 is offline: data, not a link error. While the link is down
every card is offline; while it is held (another client has it) every card is unknown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from agent.drivers.base import LinkState, ScreenReading
from agent.drivers.common.readings import any_known, max_known, min_known
from agent.drivers.novastar.layout import MAX_CARDS_PER_PORT, card_id
from agent.drivers.novastar.options import NovastarOptions
from agent.drivers.novastar.plan import (
    RS485_QUERIES,
    Read,
    Replies,
    block_read,
    cards,
    controller_read,
    ok,
    probe_read,
)
from agent.reading import edge_events as edge_events  # moved to agent/reading.py; old import
from firmware_protocols import novastar as ns
from firmware_protocols.novastar import MonitoringBlock

INPUT_KEYS: Final = ("dvi", "hdmi", "dp", "sdi")
# Inputs a model has, where NovaStar documents them; a model not listed keeps all four.
# MCTRL660 PRO: its protocol sheet (sarakusha/novastar doc/) switches SDI, HDMI and DVI.
INPUTS_BY_MODEL: Final[dict[str, frozenset[str]]] = {
    "MCTRL660 PRO": frozenset({"dvi", "hdmi", "sdi"}),
}
CARD_KEYS: Final = (
    "id", "port", "index", "row", "col", "online", "temp_c", "voltage_v", "module_faults",
    "monitor", "humidity_pct", "smoke", "door_open", "fan_rpm", "analog_raw",
)  # fmt: skip
_CARD_READINGS: Final = ("temp_c", "voltage_v", "module_faults", "humidity_pct", "smoke",
                         "door_open", "fan_rpm", "analog_raw")  # fmt: skip
CARD_COLUMNS: Final = (
    "model", "firmware", "modules_connected", "modules_total", "module_temp_c_max",
    "module_voltage_v_min", "run_time_h", "module_cable_faults", "redundant_line",
)  # fmt: skip
PSU_KEYS: Final = ("id", "card", "ok", "vout_v", "iout_a", "temp_c", "fan_rpm")


@dataclass(frozen=True, slots=True)
class LinkFacts:
    """What the link layer saw this poll, besides the replies."""

    link: LinkState
    errors: int = 0
    baud: int | None = None  # the serial rate in use; None over TCP
    reconnect_in_s: float | None = None  # while not reachable: until the next attempt
    held_s: float | None = None  # while held: since the first held-looking attempt

    @property
    def reachable(self) -> bool:
        return self.link in (LinkState.UP, LinkState.DEGRADED)


@dataclass(frozen=True, slots=True)
class Carried:
    """What one poll leaves for the next: last known monitoring card per card (decides
    how many PSU rows a dark card keeps), card presence (ACK 00 yes, ACK 01 no; a lost
    reply changes nothing), cards answering past each chain's end at the last probe, and
    the last 3.9 answer per card (read only every `card_info_every` polls)."""

    monitor: Mapping[tuple[int, int], bool] = field(default_factory=dict)
    present: Mapping[tuple[int, int], bool] = field(default_factory=dict)
    beyond: tuple[int, ...] = ()
    card_info: Mapping[str, tuple[str | None, str | None]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ControllerValues:
    """What the sending card said this poll (None = not read or not reported).

    `online` is None while the link is held: the controller is not known to be lost.
    """

    online: bool | None
    link: LinkState
    model: str | None = None
    signal_ok: bool | None = None
    brightness_pct: float | None = None
    temp_c: float | None = None  # NovaStar sending cards report none (spec ch. 3)
    ports_expected: tuple[int, ...] | None = None  # cards per port in the config
    ports_found: tuple[int, ...] | None = None  # cards answering per port (None = offline)
    baud: int | None = None
    reconnect_in_s: float | None = None
    held_s: float | None = None

    @property
    def layout_ok(self) -> bool | None:
        """Every port has exactly the configured number of cards (None = not counted)."""
        if self.ports_found is None or self.ports_expected is None:
            return None
        return self.ports_found == self.ports_expected


@dataclass(frozen=True, slots=True)
class CardValues:
    """One receiving card: its monitoring block if it answered, else `online=False`
    (None while the link is held). `monitor` is the last known presence of a monitoring
    card; it decides how many PSU rows an offline card gets, so PSU ids stay stable
    while a cabinet is dark. The rest are the extended reads (3.9, smart modules)."""

    port: int
    index: int
    online: bool | None
    block: MonitoringBlock | None = None
    monitor: bool = True
    analog: tuple[int | None, ...] | None = None  # monitoring card inputs 1..8, raw 7-bit
    model: str | None = None
    firmware: str | None = None
    modules: tuple[ns.SmartModule, ...] | None = None
    redundant_line: bool | None = None

    @property
    def id(self) -> str:
        return card_id(self.port, self.index)


@dataclass(frozen=True, slots=True)
class ExtendedValues:
    """The sending card's and function card's extended reads (3.8, 3.10, 3.18, 3.19)."""

    inputs: Mapping[str, bool | None] = field(default_factory=lambda: dict.fromkeys(INPUT_KEYS))
    input_source: str | None = None
    input_manual: bool | None = None
    redundancy: tuple[str | None, ...] = ()  # per port: "primary", "backup" or None
    light_lux: float | None = None  # the sending card's own sensor (3.8.4)
    function_card: str | None = None
    ambient_lux: float | None = None  # env.light_lux: the NS048C wins, else light_lux
    function_card_temp_c: float | None = None
    function_card_humidity_pct: int | None = None


def psu_id(card: str, rail: int) -> str:
    return f"{card}-psu{rail}"


def _card_row(card: CardValues, cell: tuple[int, int] | None, extended: bool) -> dict[str, Any]:
    b = card.block if card.online else None
    row: dict[str, Any] = {
        "id": card.id,
        "port": card.port,
        "index": card.index,
        "row": cell[0] if cell is not None else None,
        "col": cell[1] if cell is not None else None,
        "online": card.online,
        "monitor": b.monitor if b is not None else card.monitor,
    }
    if b is None:
        row.update(dict.fromkeys(_CARD_READINGS))
    else:
        row.update(
            temp_c=b.temp_c,
            voltage_v=b.voltage_v,
            # The ribbon test needs the monitoring card (spec 3.17); None = not measured.
            module_faults=b.ribbon.faulty_groups if b.ribbon is not None else None,
            humidity_pct=b.humidity_pct if b.humidity_pct is not None else b.card_humidity_pct,
            smoke=b.smoke,
            door_open=any_known(b.door_open),
            fan_rpm=min_known(b.fan_rpm),
            # NovaStar publishes no unit for these, so they travel raw (0..127, None invalid).
            analog_raw=(list(card.analog) if card.analog is not None
                        and any(v is not None for v in card.analog) else None),
        )  # fmt: skip
    if extended:
        row.update(_module_columns(card))
    return row


def _module_columns(card: CardValues) -> dict[str, Any]:
    modules = card.modules
    live = [m for m in modules if m.connected] if modules is not None else []
    return {
        "model": card.model,
        "firmware": card.firmware,
        "modules_connected": len(live) if modules is not None else None,
        "modules_total": len(modules) if modules is not None else None,
        "module_temp_c_max": max_known([m.temp_c for m in live]),
        "module_voltage_v_min": min_known([m.voltage_v for m in live]),
        "run_time_h": max_known([m.run_time_h for m in live]),
        "module_cable_faults": sum(m.cable_faults for m in live) if modules is not None else None,
        "redundant_line": card.redundant_line,
    }


def _psu_rows(card: CardValues, psus_per_cabinet: int, ok_min_v: float) -> list[dict[str, Any]]:
    b = card.block if card.online else None
    monitor = b.monitor if b is not None else card.monitor
    if monitor:
        vouts = [
            b.voltages_v[rail] if b is not None and rail < len(b.voltages_v) else None
            for rail in range(1, psus_per_cabinet + 1)
        ]
    else:  # no monitoring card: the card's own supply voltage stands for its one PSU
        vouts = [b.voltage_v if b is not None else None][: min(1, psus_per_cabinet)]
    return [
        {
            "id": psu_id(card.id, rail),
            "card": card.id,
            "ok": None if v is None else v >= ok_min_v,
            "vout_v": v,
            "iout_a": None,
            "temp_c": None,
            "fan_rpm": None,
        }
        for rail, v in enumerate(vouts, start=1)
    ]


def _list(values: Sequence[int] | None) -> list[int] | None:
    return None if values is None else list(values)


def to_screen_reading(
    controller: ControllerValues,
    cards: Sequence[CardValues],
    *,
    psus_per_cabinet: int,
    psu_ok_min_v: float,
    errors: int = 0,
    positions: Mapping[str, tuple[int, int]] | None = None,
    extended: ExtendedValues | None = None,
) -> ScreenReading:
    """Build the reading: `positions` (card id -> (row, col) in the cabinet grid) fills
    `cards.row`/`col`; `extended` adds the extended keys (all of them, None where not
    read), without it the reading holds the base keys only."""
    where = positions or {}
    card_rows = [_card_row(c, where.get(c.id), extended is not None) for c in cards]
    psu_rows = [r for c in cards for r in _psu_rows(c, psus_per_cabinet, psu_ok_min_v)]
    online_blocks = [c.block for c in cards if c.online and c.block is not None]
    env: dict[str, Any] = {
        "temp_c": max_known([b.monitor_temp_c for b in online_blocks]),
        "humidity_pct": max_known([r["humidity_pct"] for r in card_rows]),
        "smoke": any_known([r["smoke"] for r in card_rows]),
        "door_open": any_known([r["door_open"] for r in card_rows]),
        "fan_rpm": min_known([r["fan_rpm"] for r in card_rows]),
    }
    ctrl: dict[str, Any] = {
        "online": controller.online,
        "link": controller.link.value,
        "model": controller.model,
        "signal_ok": controller.signal_ok,
        "brightness_pct": controller.brightness_pct,
        "temp_c": controller.temp_c,
        "ports_expected": _list(controller.ports_expected),
        "ports_found": _list(controller.ports_found),
        "layout_ok": controller.layout_ok,
    }
    keys = list(CARD_KEYS)
    if extended is not None:
        keys += CARD_COLUMNS
        ctrl.update(
            inputs=dict(extended.inputs),
            input_source=extended.input_source,
            input_manual=extended.input_manual,
            redundancy=list(extended.redundancy),
            light_lux=extended.light_lux,
            function_card=extended.function_card,
            baud=controller.baud,
            reconnect_in_s=controller.reconnect_in_s,
            held_s=controller.held_s,
        )
        env.update(
            light_lux=extended.ambient_lux,
            function_card_temp_c=extended.function_card_temp_c,
            function_card_humidity_pct=extended.function_card_humidity_pct,
        )
    return ScreenReading(
        controller=ctrl,
        cards={k: [r[k] for r in card_rows] for k in keys},
        psus={k: [r[k] for r in psu_rows] for k in PSU_KEYS},
        env=env,
        link=controller.link,
        errors=errors,
    )


# -- decoding the replies ------------------------------------------------------------------
def _value(replies: Replies, read: Read) -> Any:
    """The register's decoded value, or None when the reply is missing, failed or short."""
    reply = replies.get(read)
    decode = read.register.decode
    if not ok(reply) or decode is None:
        return None
    assert reply is not None
    return decode(reply.data)


def _data(replies: Replies, read: Read) -> bytes | None:
    reply = replies.get(read)
    return reply.data if ok(reply) and reply is not None else None


def _extended(replies: Replies, options: NovastarOptions, model: str | None,
              status: ns.InputStatus | None, dvi: bool | None) -> ExtendedValues:  # fmt: skip
    counts = options.card_counts()
    selection = _data(replies, controller_read(ns.INPUT_SELECTION))
    redundant = _value(replies, controller_read(ns.REDUNDANCY))
    lux = _value(replies, controller_read(ns.LIGHT_SENSOR))
    inputs = ns.input_signals(status, dvi)
    fitted = INPUTS_BY_MODEL.get(model or "")
    if fitted is not None:
        inputs = {k: (v if k in fitted else None) for k, v in inputs.items()}
    ports = tuple(
        None if redundant is None or p >= len(redundant) else
        ("backup" if redundant[p] else "primary")
        for p in range(len(counts))
    )  # fmt: skip
    fc_model = mth = fc_lux = None
    f = options.extended.function_card
    if f is not None:
        model_id = _value(replies, Read(ns.FUNCTION_CARD_MODEL, f.port, f.board))
        fc_model = ns.function_card_model_name(model_id)
        for tag, _query in RS485_QUERIES:
            got = _value(replies, Read(ns.FUNCTION_CARD_RS485, f.port, f.board,
                                       ns.FUNCTION_CARD_RS485_READ_LEN, tag=tag))  # fmt: skip
            # Told apart by content, not by which query it followed (see the codec).
            if isinstance(got, ns.Mth300Reading):
                mth = got
            elif got is not None:
                fc_lux = got
    return ExtendedValues(
        inputs={k: inputs[k] for k in INPUT_KEYS},
        input_source=ns.decode_input_source(selection[1:]) if selection else None,
        input_manual=ns.decode_input_mode_manual(selection) if selection else None,
        redundancy=ports,
        light_lux=lux,
        function_card=fc_model,
        # The function card's NS048C (ambient, usually outside) wins over the sending
        # card's own sensor, which then also stands for the environment.
        ambient_lux=fc_lux if fc_lux is not None else lux,
        function_card_temp_c=mth.temp_c if mth else None,
        function_card_humidity_pct=mth.humidity_pct if mth else None,
    )


def _beyond(replies: Replies, counts: Sequence[int], previous: Sequence[int]) -> tuple[int, ...]:
    """Cards answering past the configured end of each chain, from this poll's probes; a
    port not probed, or whose probe was lost on the line, keeps its last count."""
    out = list(previous) or [0] * len(counts)
    for p, n in enumerate(counts):
        if n >= MAX_CARDS_PER_PORT or probe_read(p, n) not in replies:
            continue
        found = 0
        for k in range(n, MAX_CARDS_PER_PORT):
            read = probe_read(p, k)
            if read not in replies:
                break
            reply = replies[read]
            if reply is None:
                found = out[p]
                break
            if reply.ack != ns.Ack.OK:
                break
            found += 1
        out[p] = found
    return tuple(out)


def _ports_found(
    counts: Sequence[int], present: Mapping[tuple[int, int], bool], beyond: Sequence[int]
) -> tuple[int, ...]:
    """Cards answering per port: the chain runs up to its last answering card, so a
    dark card between answering neighbours still counts (it is a card fault, not a
    layout one); a dark card at the end of a chain shortens it."""
    found = []
    for p, n in enumerate(counts):
        if beyond[p]:
            found.append(n + beyond[p])
            continue
        last = next((i for i in range(n - 1, -1, -1) if present.get((p, i), True)), -1)
        found.append(last + 1)
    return tuple(found)


def _cards(
    replies: Replies, counts: Sequence[int], previous: Carried, ports: Sequence[str | None],
    card_info: dict[str, tuple[str | None, str | None]],
) -> tuple[list[CardValues], dict[tuple[int, int], bool], dict[tuple[int, int], bool]]:  # fmt: skip
    """The card rows, and the updated monitor and presence maps; `card_info` is
    refreshed in place from fresh 3.9 answers."""
    monitor, present = dict(previous.monitor), dict(previous.present)
    out = []
    for p, i in cards(counts):
        ident = card_id(p, i)
        reply = replies.get(block_read(p, i))
        if reply is not None:
            present[(p, i)] = reply.ack == ns.Ack.OK
        if reply is None or reply.ack != ns.Ack.OK:
            out.append(CardValues(p, i, False, None, monitor.get((p, i), True)))
            continue
        block = ns.decode_monitoring_block(reply.data)
        monitor[(p, i)] = block.monitor
        info: ns.ReceivingCardInfo | None = _value(replies, Read(ns.RECEIVING_CARD_INFO, p, i))
        model, firmware = (info.model, info.firmware) if info else (None, None)
        if model is not None or firmware is not None:
            card_info[ident] = (model, firmware)
        else:  # 3.9 not read this poll (or failed, or empty): the last answer stands
            model, firmware = card_info.get(ident, (None, None))
        # 3.10.2: a card answering through a redundant port runs on the redundant line;
        # the port state is read every poll, so this holds between 3.9 reads too.
        port_state = ports[p] if p < len(ports) else None
        redundant = None if port_state is None else port_state == "backup"
        out.append(CardValues(
            p, i, True, block, block.monitor, ns.decode_analog_inputs(reply.data), model,
            firmware, _value(replies, Read(ns.SMART_MODULES, p, i)), redundant,
        ))  # fmt: skip
    return out, monitor, present


def convert(
    options: NovastarOptions, replies: Replies, link: LinkFacts, previous: Carried
) -> tuple[ScreenReading, Carried]:
    """The finished reading of one poll and the state for the next (module docstring).
    `replies` is empty when the link is down or held."""
    counts = options.card_counts()
    ports_expected = tuple(counts)
    if not link.reachable:
        online = None if link.link is LinkState.HELD else False
        ctrl = ControllerValues(online=online, link=link.link, ports_expected=ports_expected,
                                baud=link.baud, reconnect_in_s=link.reconnect_in_s,
                                held_s=link.held_s)  # fmt: skip
        dark = [CardValues(p, i, online, None, previous.monitor.get((p, i), True))
                for p, i in cards(counts)]  # fmt: skip
        ext = _extended({}, options, None, None, None)
        reading = _reading(options, ctrl, dark, link.errors, ext)
        return reading, previous
    model = ns.model_name(_value(replies, controller_read(ns.CONTROLLER_MODEL)))
    status = _value(replies, controller_read(ns.INPUT_SOURCE_STATUS))
    dvi = _value(replies, controller_read(ns.DVI_SIGNAL))
    ext = _extended(replies, options, model, status, dvi)
    card_info = dict(previous.card_info)
    card_values, monitor, present = _cards(replies, counts, previous, ext.redundancy, card_info)
    beyond = _beyond(replies, counts, previous.beyond)
    known = [v for v in (status.signal_present if status else None, dvi) if v is not None]
    brightness = next((_value(replies, Read(ns.BRIGHTNESS, c.port, c.index))
                       for c in card_values if c.online), None)  # fmt: skip
    ctrl = ControllerValues(
        online=True,
        link=link.link,
        model=model,
        signal_ok=any(known) if known else None,
        brightness_pct=brightness.global_pct if brightness else None,
        ports_expected=ports_expected,
        ports_found=_ports_found(counts, present, beyond),
        baud=link.baud,
    )
    reading = _reading(options, ctrl, card_values, link.errors, ext)
    return reading, Carried(monitor, present, beyond, card_info)


def _reading(options: NovastarOptions, ctrl: ControllerValues, card_values: Sequence[CardValues],
             errors: int, ext: ExtendedValues) -> ScreenReading:  # fmt: skip
    return to_screen_reading(ctrl, card_values, psus_per_cabinet=options.psus_per_cabinet,
                             psu_ok_min_v=options.psu_ok_min_v, errors=errors,
                             positions=options.positions(), extended=ext)  # fmt: skip

