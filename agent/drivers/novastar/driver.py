"""NovaStar driver: owns the serial port or TCP socket, uses the pure codec for the bytes.

Per poll: the sending card's model (spec 3.7.2), input signal (3.18 and 3.1.2), then
every receiving card's monitoring block (3.1.1, 0x100 bytes, which also holds the 3.17
ribbon cable test at 0x42), then the brightness (3.3) of the first card that answered.
Requests go out in windows of `pipeline_depth`; replies are matched to requests by
serial number, device, port, board and address, so a late reply to an earlier,
timed-out request is counted and dropped instead of being taken for the wrong card.

A card answered with ACK 01 is offline (its cabinet is dark or missing): that is data,
not a link error. Timeouts, garbage and checksum failures are retried up to `retries`
times and counted. If the sending card answers nothing at all, the reading says
`controller.online = False`, link down, every card offline, and the transport is
reopened on the next poll and, if that fails, on the one after; from then on the driver
waits an exponentially growing, jittered time (`reconnect_min_s` .. `reconnect_max_s`)
between attempts and reports the link down without touching it meanwhile
(transport.Backoff).
A serial URL without a baud rate is auto-detected at connect (1048576, then 115200:
the first rate at which the model register answers) and remembered for reconnects.
Then the extended reads (extended.py: inputs, redundancy, sensors, card info) follow.
`poll()` never raises for anything the device does.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeGuard

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agent.drivers.base import LinkState, ScreenReading
from agent.drivers.novastar.extended import (
    ExtendedOptions,
    carry_card_info,
    extended_requests,
    extended_values,
    merge_extended,
    request_batches,
)
from agent.drivers.novastar.transport import (
    DEFAULT_TCP_PORT,
    Backoff,
    SerialTransport,
    Transport,
    check_url,
    transport_for,
)
from agent.drivers.novastar.uplink_converter import (
    CardValues,
    ControllerValues,
    card_id,
    to_screen_reading,
)
from firmware_protocols import novastar as ns
from firmware_protocols.errors import NovastarProtocolError
from firmware_protocols.novastar import Ack, DeviceType, Frame
from ledwatch.errors import ConfigError

__all__ = ["DEFAULT_TCP_PORT", "NovastarDriver", "NovastarOptions", "create_driver",
           "parse_options"]  # fmt: skip
MAX_CARDS_PER_PORT = 512
CARD_RE = re.compile(r"^p(\d+)c(\d+)$")
# A small register every receiving card has: the card temperature (spec 3.1.1). A probe
# only asks "is a card at this index?": ACK 00 yes, ACK 01 no.
PROBE_ADDR, PROBE_LEN = ns.MONITORING_BLOCK_ADDR, 2


class Order(StrEnum):
    """How the cards of one port run through its block of cabinets (NovaLCT's "connection"
    patterns): row by row or column by column, every line the same way or snaking."""

    ROWS = "rows"
    SNAKE_ROWS = "snake-rows"
    COLS = "cols"
    SNAKE_COLS = "snake-cols"


class Start(StrEnum):
    """The cabinet the port's cable enters first."""

    TOP_LEFT = "top-left"
    TOP_RIGHT = "top-right"
    BOTTOM_LEFT = "bottom-left"
    BOTTOM_RIGHT = "bottom-right"


class LayoutEntry(BaseModel):
    """One `[[screens.controller.layout]]` table: either a port's block of cabinets
    (`port`, `rows`, `cols`, optional `order`, `start`, and `row`/`col` of the block's
    top-left cabinet) or one card placed by hand (`card`, `row`, `col`)."""

    model_config = ConfigDict(extra="forbid")

    port: int | None = Field(None, ge=0, lt=16)
    rows: int | None = Field(None, ge=1, le=MAX_CARDS_PER_PORT)
    cols: int | None = Field(None, ge=1, le=MAX_CARDS_PER_PORT)
    order: Order = Order.SNAKE_ROWS
    start: Start = Start.TOP_LEFT
    card: str | None = None
    row: int | None = Field(None, ge=0, le=10_000)
    col: int | None = Field(None, ge=0, le=10_000)

    @field_validator("card")
    @classmethod
    def _card(cls, value: str | None) -> str | None:
        if value is not None and not CARD_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a card id like 'p0c3' (p<port>c<index>)")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> LayoutEntry:
        given = self.model_fields_set
        if self.card is not None:
            extra = given & {"port", "rows", "cols", "order", "start"}
            if extra:
                raise ValueError(f"{sorted(extra)[0]}: not allowed with card (a card entry "
                                 "has card, row, col)")  # fmt: skip
            for key in ("row", "col"):
                if key not in given:
                    raise ValueError(f"{key}: required with card")
        elif self.port is not None:
            for key in ("rows", "cols"):
                if key not in given:
                    raise ValueError(f"{key}: required with port")
        else:
            raise ValueError("give port (with rows, cols) for a block, or card (with row, col)")
        return self

    def cells(self, count: int) -> list[tuple[int, int]]:
        """(row, col) of the port's cards 0..count-1, for a block entry."""
        assert self.rows is not None and self.cols is not None
        return [
            block_cell(k, self.rows, self.cols, self.order, self.start, self.row or 0,
                       self.col or 0)
            for k in range(count)
        ]  # fmt: skip


def block_cell(
    k: int, rows: int, cols: int, order: Order, start: Start, row0: int = 0, col0: int = 0
) -> tuple[int, int]:
    """Where card `k` of a port hangs in its rows x cols block (pure; see `Order`)."""
    if order in (Order.ROWS, Order.SNAKE_ROWS):
        r, c = divmod(k, cols)
        if order is Order.SNAKE_ROWS and r % 2:
            c = cols - 1 - c
    else:
        c, r = divmod(k, rows)
        if order is Order.SNAKE_COLS and c % 2:
            r = rows - 1 - r
    if start in (Start.TOP_RIGHT, Start.BOTTOM_RIGHT):
        c = cols - 1 - c
    if start in (Start.BOTTOM_LEFT, Start.BOTTOM_RIGHT):
        r = rows - 1 - r
    return row0 + r, col0 + c


class NovastarOptions(BaseModel):
    """The `[screens.controller]` table for `driver = "novastar"` (see sample.toml)."""

    model_config = ConfigDict(extra="forbid")

    url: str
    ports: int = Field(1, ge=1, le=16)
    cards_per_port: int | list[int]
    psus_per_cabinet: int = Field(2, ge=0, le=8)
    timeout_ms: int = Field(300, ge=10, le=60_000)
    retries: int = Field(2, ge=0, le=10)
    psu_ok_min_v: float = Field(4.5, gt=0, le=12.7)
    pipeline_depth: int = Field(8, ge=1, le=64)
    layout: list[LayoutEntry] = Field(default_factory=list)
    probe_every: int = Field(12, ge=0, le=100_000)
    reconnect_min_s: float = Field(1.0, gt=0, le=3600)
    reconnect_max_s: float = Field(60.0, gt=0, le=86_400)
    extended: ExtendedOptions = ExtendedOptions()

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return check_url(url)

    @model_validator(mode="after")
    def _backoff(self) -> NovastarOptions:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError(f"reconnect_max_s: {self.reconnect_max_s} is below "
                             f"reconnect_min_s ({self.reconnect_min_s})")  # fmt: skip
        return self

    @field_validator("cards_per_port")
    @classmethod
    def _cards(cls, cards: int | list[int]) -> int | list[int]:
        counts = [cards] if isinstance(cards, int) else cards
        if any(not 0 <= n <= MAX_CARDS_PER_PORT for n in counts):
            raise ValueError("each count must be 0..512")
        return cards

    @model_validator(mode="after")
    def _per_port(self) -> NovastarOptions:
        if isinstance(self.cards_per_port, list) and len(self.cards_per_port) != self.ports:
            raise ValueError(
                f"cards_per_port: {len(self.cards_per_port)} counts for {self.ports} ports"
            )
        return self

    @model_validator(mode="after")
    def _layout(self) -> NovastarOptions:
        self.positions()
        return self

    def card_counts(self) -> list[int]:
        c = self.cards_per_port
        return [c] * self.ports if isinstance(c, int) else list(c)

    def positions(self) -> dict[str, tuple[int, int]]:
        """Card id -> (row, col) from `layout`; ValueError naming `layout[i].<key>` when
        a card does not exist, a block is too small, or two cards share a cell."""
        counts = self.card_counts()
        where: dict[str, tuple[int, int]] = {}
        placed_by: dict[str, int] = {}
        cell_of: dict[tuple[int, int], str] = {}
        for i, entry in enumerate(self.layout):
            if entry.card is not None:
                m = CARD_RE.fullmatch(entry.card)
                assert m is not None and entry.row is not None and entry.col is not None
                port, index = int(m[1]), int(m[2])
                if port >= self.ports or index >= counts[port]:
                    raise ValueError(
                        f"layout[{i}].card: no card {entry.card} in the expected layout "
                        f"(ports = {self.ports}, cards_per_port = {counts})"
                    )
                cells = {entry.card: (entry.row, entry.col)}
                key = "card"
            else:
                assert entry.port is not None and entry.rows is not None and entry.cols is not None
                if entry.port >= self.ports:
                    raise ValueError(f"layout[{i}].port: {entry.port} is not one of the "
                                     f"{self.ports} port(s) (0..{self.ports - 1})")  # fmt: skip
                n = counts[entry.port]
                if entry.rows * entry.cols < n:
                    raise ValueError(f"layout[{i}].rows: {entry.rows} x {entry.cols} cells "
                                     f"cannot hold the {n} cards of port {entry.port}")  # fmt: skip
                cells = {card_id(entry.port, k): rc for k, rc in enumerate(entry.cells(n))}
                key = "port"
            for card, cell in cells.items():
                if card in placed_by:
                    raise ValueError(f"layout[{i}].{key}: {card} is already placed by "
                                     f"layout[{placed_by[card]}]")  # fmt: skip
                if cell in cell_of:
                    raise ValueError(f"layout[{i}]: {card} and {cell_of[cell]} both at row "
                                     f"{cell[0]}, col {cell[1]}")  # fmt: skip
                placed_by[card], cell_of[cell], where[card] = i, card, cell
        return where


def parse_options(options: dict[str, Any]) -> NovastarOptions:
    """Validate once; a bad value raises `ConfigError` naming `controller.<key>`."""
    try:
        return NovastarOptions.model_validate(options)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = "controller"
        for part in err["loc"]:
            key += f"[{part}]" if isinstance(part, int) else f".{part}"
        msg = str(err["msg"]).removeprefix("Value error, ")
        m = _SUBKEY.match(msg)  # a check that names the key itself: "layout[2].card: ..."
        if m:
            key += m[1] if m[1][0] in "[." else f".{m[1]}"
            msg = msg[m.end() :]
        raise ConfigError(f"{key}: {msg}") from None


_SUBKEY = re.compile(r"^((?:[a-z_]+|\[\d+\]|\.[a-z_]+)+): ")


@dataclass(frozen=True, slots=True)
class _Read:
    """One request: a read (the default), or a write of `data` when `code` is write."""

    device_type: int
    port: int
    board: int
    address: int
    length: int
    code: int = ns.CODE_READ
    data: bytes = b""


class _LinkDown(Exception):
    """The transport failed (closed, reset, unplugged): the poll ends as link down."""


class NovastarDriver:
    """`agent.drivers.base.Driver` for NovaStar sending cards (see the module docstring)."""

    def __init__(self, options: NovastarOptions, transport: Transport | None = None) -> None:
        self.options = options
        self._transport = transport or transport_for(options.url, options.timeout_ms / 1e3)
        self._connected = False
        self._backoff = Backoff(options.reconnect_min_s, options.reconnect_max_s)
        self._decoder = ns.StreamDecoder()
        self._serial = 0
        self._previous: ScreenReading | None = None
        self._monitor: dict[tuple[int, int], bool] = {}
        self._errors = 0
        self._retried = False
        self.polls = 0
        self.errors_total = 0
        # Topology: card presence per (port, index) as last seen (ACK 00 yes, ACK 01 no;
        # a lost reply changes nothing), cards answering past the configured count at the
        # last probe, and whether a probe is owed (after open(), then every probe_every).
        self._positions = options.positions()
        self._present: dict[tuple[int, int], bool] = {}
        self._beyond = [0] * options.ports
        self._probe_due = False
        # 3.9 card info is read every `extended.card_info_every` polls, counted from each
        # (re)connect so a swapped card is seen at once; the cache carries it in between.
        self._card_info: dict[str, tuple[str | None, str | None]] = {}
        self._card_info_polls = 0

    # -- Driver protocol -----------------------------------------------------------------
    def open(self) -> None:
        """Try to connect; a failure is not raised, the first poll reports link down.
        The first poll that reaches the controller also counts the cards on every port."""
        self._probe_due = True
        self._connect()

    def close(self) -> None:
        self._transport.close()
        self._connected = False
        self._card_info_polls = 0  # after a reconnect, read the cards' 3.9 info again

    def poll(self) -> ScreenReading:
        self.polls += 1
        self._errors = 0
        self._retried = False
        counts = self.options.card_counts()
        keys = [(p, i) for p, n in enumerate(counts) for i in range(n)]
        pairs: list[tuple[Frame, Frame | None]] = []
        try:
            if not self._connected:
                if not self._backoff.ready():
                    raise _LinkDown("waiting before the next connection attempt")
                if not self._connect():
                    raise _LinkDown("cannot connect")
            controller = self._read_controller()
            if controller is None:
                raise _LinkDown("the sending card does not answer")
            blocks = self._exchange(
                [
                    _Read(DeviceType.RECEIVING_CARD, p, i, ns.MONITORING_BLOCK_ADDR,
                          ns.MONITORING_BLOCK_LEN)
                    for p, i in keys
                ]
            )  # fmt: skip
            cards = [self._card(p, i, reply) for (p, i), reply in zip(keys, blocks, strict=True)]
            brightness = self._read_brightness(cards)
            every = self.options.probe_every
            if self._probe_due or (every and self.polls % every == 0):
                self._probe_beyond(counts)
                self._probe_due = False
            ext = self.options.extended
            card_info_due = self._card_info_polls % ext.card_info_every == 0
            self._card_info_polls += 1
            for batch in request_batches(extended_requests(ext, counts, card_info_due)):
                pairs += zip(batch, self._exchange_frames(batch), strict=True)
            link = LinkState.DEGRADED if self._errors or self._retried else LinkState.UP
            ctrl = ControllerValues(
                online=True,
                link=link,
                model=controller[0],
                signal_ok=controller[1],
                brightness_pct=brightness,
                ports_expected=tuple(counts),
                ports_found=self._ports_found(counts),
            )
            self._backoff.succeeded()
        except (_LinkDown, OSError):
            self._errors += 1
            if self._connected:
                self.close()
            if self._backoff.ready():  # an attempt was made (not skipped): it failed
                self._backoff.failed()
            pairs = []
            ctrl = ControllerValues(online=False, link=LinkState.DOWN, ports_expected=tuple(counts))
            cards = [CardValues(p, i, False, None, self._monitor.get((p, i), True))
                     for p, i in keys]  # fmt: skip
        self.errors_total += self._errors
        reading = to_screen_reading(
            ctrl,
            cards,
            psus_per_cabinet=self.options.psus_per_cabinet,
            psu_ok_min_v=self.options.psu_ok_min_v,
            errors=self._errors,
            previous=self._previous,
            positions=self._positions,
        )
        merge_extended(reading, extended_values(pairs, counts))
        carry_card_info(reading, self._card_info)
        t = self._transport
        reading.controller["baud"] = t.baudrate if isinstance(t, SerialTransport) else None
        reading.controller["reconnect_in_s"] = (
            # rounded up to 1 ms: the next attempt is never earlier than this says
            None if ctrl.online else math.ceil(self._backoff.remaining_s() * 1000) / 1000
        )
        self._previous = reading
        return reading

    @property
    def stats(self) -> dict[str, int]:
        """Counters for the agent's health report."""
        codec = self._decoder.codec
        return {
            "polls": self.polls,
            "errors": self.errors_total,
            "noise_bytes": codec.noise_bytes,
            "bad_checksums": codec.bad_checksums,
        }

    # -- reads ---------------------------------------------------------------------------
    @property
    def link_state(self) -> LinkState:
        """The link as the last poll left it (DOWN before the first poll)."""
        prev = self._previous
        return prev.link if prev is not None else LinkState.DOWN

    def _connect(self) -> bool:
        """Open the transport; for an auto-baud serial link, also find the rate at which
        the sending card answers its model register (the remembered rate first)."""
        t = self._transport
        rates: list[int | None] = [None]
        if isinstance(t, SerialTransport) and t.auto:
            rates = list(t.candidates())
        for rate in rates:
            try:
                if rate is None:
                    t.open()
                else:
                    assert isinstance(t, SerialTransport)
                    t.open(rate)
            except OSError:
                t.close()
                return False
            self._decoder.reset()
            self._connected = True
            if rate is None or self._answers_at(rate):
                return True
            self.close()
        return False

    def _answers_at(self, rate: int) -> bool:
        """One read of the model register, no retries; a wrong rate is silence or noise,
        which is expected here and not counted as a link error."""
        errors, retried = self._errors, self._retried
        try:
            (reply,) = self._exchange(
                [_Read(DeviceType.SENDING_CARD, 0, 0, ns.CONTROLLER_MODEL_ADDR,
                       ns.CONTROLLER_MODEL_LEN)],
                retries=0,
            )  # fmt: skip
        except _LinkDown:
            return False
        finally:
            self._errors, self._retried = errors, retried
        if reply is None or reply.ack != Ack.OK:
            return False
        assert isinstance(self._transport, SerialTransport)
        self._transport.use(rate)
        return True

    def _read_controller(self) -> tuple[str | None, bool | None] | None:
        """(model, signal_ok), or None if the sending card answered nothing."""
        sd = DeviceType.SENDING_CARD
        model, inputs, dvi = self._exchange(
            [
                _Read(sd, 0, 0, ns.CONTROLLER_MODEL_ADDR, ns.CONTROLLER_MODEL_LEN),
                _Read(sd, 0, 0, ns.INPUT_SOURCE_STATUS_ADDR, ns.INPUT_SOURCE_STATUS_LEN),
                _Read(sd, 0, 0, ns.DVI_SIGNAL_ADDR, ns.DVI_SIGNAL_LEN),
            ]
        )
        if model is None and inputs is None and dvi is None:
            return None
        name = ns.model_name(ns.decode_model_id(model.data)) if _ok(model) else None
        status = ns.decode_input_status(inputs.data) if _ok(inputs) else None
        dvi_ok = ns.decode_dvi_signal(dvi.data) if _ok(dvi) else None
        known = [v for v in (status.signal_present if status else None, dvi_ok) if v is not None]
        return name, (any(known) if known else None)

    def _card(self, port: int, index: int, reply: Frame | None) -> CardValues:
        monitor = self._monitor.get((port, index), True)
        if reply is not None:
            self._present[(port, index)] = reply.ack == Ack.OK
        if reply is None or reply.ack != Ack.OK:
            return CardValues(port, index, False, None, monitor)
        block = ns.decode_monitoring_block(reply.data)
        self._monitor[(port, index)] = block.monitor
        return CardValues(port, index, True, block, block.monitor,
                          ns.decode_analog_inputs(reply.data))

    def _probe_beyond(self, counts: Sequence[int]) -> None:
        """Count the cards answering past the configured end of every port's chain.

        A card that is not there answers ACK 01 (spec 2.2), so one request per port one
        past the configured count says "no more cards"; each extra card that answers
        costs one more round. A probe lost on the line keeps the port's last count.
        """
        nxt = {p: n for p, n in enumerate(counts) if n < MAX_CARDS_PER_PORT}
        beyond = list(self._beyond)
        for p in nxt:
            beyond[p] = 0
        while nxt:
            ports = sorted(nxt)
            replies = self._exchange(
                [_Read(DeviceType.RECEIVING_CARD, p, nxt[p], PROBE_ADDR, PROBE_LEN) for p in ports]
            )
            for p, reply in zip(ports, replies, strict=True):
                if reply is None:
                    beyond[p] = self._beyond[p]
                elif reply.ack == Ack.OK:
                    beyond[p] += 1
                    nxt[p] += 1
                    if nxt[p] < MAX_CARDS_PER_PORT:
                        continue
                del nxt[p]
        self._beyond = beyond

    def _ports_found(self, counts: Sequence[int]) -> tuple[int, ...]:
        """Cards answering per port: the chain runs up to its last answering card, so a
        dark card between answering neighbours still counts (it is a card fault, not a
        layout one); a dark card at the end of a chain shortens it."""
        found = []
        for p, n in enumerate(counts):
            if self._beyond[p]:
                found.append(n + self._beyond[p])
                continue
            last = next((i for i in range(n - 1, -1, -1) if self._present.get((p, i), True)), -1)
            found.append(last + 1)
        return tuple(found)

    def _read_brightness(self, cards: Sequence[CardValues]) -> float | None:
        first = next((c for c in cards if c.online), None)
        if first is None:
            return None
        (reply,) = self._exchange(
            [_Read(DeviceType.RECEIVING_CARD, first.port, first.index, ns.BRIGHTNESS_ADDR,
                   ns.BRIGHTNESS_LEN)]
        )  # fmt: skip
        b = ns.decode_brightness(reply.data) if _ok(reply) else None
        return b.global_pct if b else None

    # -- the transaction layer -----------------------------------------------------------
    def _next_serial(self, busy: dict[int, Any]) -> int:
        while True:
            self._serial = (self._serial + 1) & 0xFF
            if self._serial not in busy:
                return self._serial

    def _exchange_frames(self, frames: Sequence[Frame]) -> list[Frame | None]:
        """`_exchange` for ready-made request frames (extended.py); serials are renumbered."""
        return self._exchange(
            [_Read(f.device_type, f.port, f.board, f.address, f.length, f.code, f.data)
             for f in frames]
        )  # fmt: skip

    def _exchange(self, reads: Sequence[_Read], retries: int | None = None) -> list[Frame | None]:
        """Send every request, pipelined, with retries; a reply or None each, in order.

        A reply is final when its ACK is 0 (data), 1 (card offline) or 4 (invalid
        command); ACK 2/3 (checksum failures on either side) and silence are retried.
        """
        results: list[Frame | None] = [None] * len(reads)
        pending = list(range(len(reads)))
        timeout_s = self.options.timeout_ms / 1000
        tries = (self.options.retries if retries is None else retries) + 1
        for attempt in range(tries):
            if not pending:
                break
            if attempt:
                self._retried = True
            queue, pending = pending, []
            inflight: dict[int, tuple[int, Frame]] = {}
            last_progress = time.monotonic()
            while queue or inflight:
                out = bytearray()
                while queue and len(inflight) < self.options.pipeline_depth:
                    idx = queue.pop(0)
                    r = reads[idx]
                    serial = self._next_serial(inflight)
                    req = (
                        ns.write_request(serial, r.device_type, r.port, r.board, r.address,
                                         r.data)
                        if r.code == ns.CODE_WRITE
                        else ns.read_request(serial, r.device_type, r.port, r.board,
                                             r.address, r.length)
                    )  # fmt: skip
                    inflight[req.serial] = (idx, req)
                    out += ns.encode(req)
                if out:
                    self._write(bytes(out))
                remaining = last_progress + timeout_s - time.monotonic()
                data = self._read(remaining) if remaining > 0 else b""
                if not data and time.monotonic() >= last_progress + timeout_s:
                    # Silence: everything in flight timed out. Drop any half frame so a
                    # corrupt length cannot hold the stream, and retry those reads.
                    self._errors += len(inflight)
                    self._decoder.reset()
                    pending += [idx for idx, _ in inflight.values()]
                    inflight.clear()
                    last_progress = time.monotonic()
                    continue
                noise = self._decoder.codec.noise_bytes
                for frame in self._decoder.feed(data):
                    entry = inflight.get(frame.serial)
                    try:
                        if entry is None:
                            raise NovastarProtocolError(f"serial {frame.serial}: not in flight")
                        ns.check_reply(entry[1], frame)
                    except NovastarProtocolError:
                        self._errors += 1  # a stale reply to a timed-out request, or foreign
                        continue
                    idx, _ = entry
                    del inflight[frame.serial]
                    last_progress = time.monotonic()
                    if frame.ack in (Ack.REQUEST_CHECKSUM, Ack.REPLY_CHECKSUM):
                        self._errors += 1
                        pending.append(idx)
                    else:
                        results[idx] = frame
                if self._decoder.codec.noise_bytes != noise:
                    self._errors += 1  # garbage on the line (counted once per read)
            pending.sort()
        return results

    def _write(self, data: bytes) -> None:
        try:
            self._transport.write(data)
        except OSError as exc:
            raise _LinkDown(str(exc)) from exc

    def _read(self, timeout_s: float) -> bytes:
        try:
            return self._transport.read(timeout_s)
        except OSError as exc:
            raise _LinkDown(str(exc)) from exc


def _ok(frame: Frame | None) -> TypeGuard[Frame]:
    return frame is not None and frame.ack == Ack.OK and len(frame.data) == frame.length


def create_driver(options: dict[str, Any]) -> NovastarDriver:
    """Registry factory (agent/drivers/__init__.py): validate once, then build."""
    return NovastarDriver(parse_options(options))
