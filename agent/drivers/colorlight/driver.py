"""Colorlight driver: owns the UDP/TCP socket, speaks the string protocol with the pure
codec in `firmware_protocols.colorlight`.

Per poll (one frame per request, pipelined `pipeline_depth` deep, matched by `id`):
`sndinfo` (model, firmware, brightness, sending-card temperature), `snd_eth` (Ethernet
port links), `pr_video` (input signal), then per output port `pr_rcv_state` (modules in
error per card), `mod_probe` (modules per card), `mfc_probe` on the ports configured with
a multifunction card, and `rcv_probe` for every configured receiving card (linked,
runtime, version). On the first poll after `open()` and every `probe_every` polls, one
`rcv_probe` past the end of each chain tells whether more cards answer than configured.
A `heartbeat` goes out whenever `heartbeat_s` passed since the last one (the vendor
recommends 5-30 s; the device does not answer it).

Silence is retried `retries` times and counted; an answer with a non-zero `code` is
final (9006 for a card past the chain means "no card there"). If nothing answers at all
the reading says `controller.online = False`, link down, every card offline, and the
socket is reopened with NovaStar's backoff (`agent.drivers.novastar.transport.Backoff`).
`poll()` never raises for what the device does.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from agent.drivers.base import LinkState, ScreenReading
from agent.drivers.colorlight.transport import SCHEMES, UdpTransport, transport_for
from agent.drivers.colorlight.uplink_converter import (
    CardValues,
    ControllerValues,
    to_screen_reading,
)
from agent.drivers.common.options import (
    FamilyOptions,
    card_counts,
    check_card_counts,
    parse_options,
)
from agent.drivers.novastar.transport import Backoff, TcpTransport, Transport
from firmware_protocols import colorlight as cl
from firmware_protocols.colorlight import Cmd, ErrorCode, Op, Request, Response
from firmware_protocols.colorlight import records as rec
from firmware_protocols.colorlight.messages import HEARTBEAT_DEFAULT_S, ID_MAX

MAX_CARDS_PER_PORT = 1024


class ColorlightOptions(FamilyOptions):
    """The `[screens.controller]` table for `driver = "colorlight"` (see sample.toml)."""

    SCHEMES: ClassVar[dict[str, int]] = SCHEMES

    sid: int = Field(1, ge=1, le=254)
    ports: int = Field(1, ge=1, le=64)
    cards_per_port: int | list[int]
    mfc_ports: list[int] = Field(default_factory=list)
    timeout_ms: int = Field(500, ge=10, le=10_000)
    retries: int = Field(1, ge=0, le=5)
    pipeline_depth: int = Field(8, ge=1, le=64)
    heartbeat_s: float = Field(HEARTBEAT_DEFAULT_S, ge=5.0, le=30.0)
    probe_every: int = Field(10, ge=0, le=100_000)
    video_slot: int = Field(16, ge=0, le=65_535)
    video_board: int = Field(17, ge=0, le=255)

    @field_validator("cards_per_port")
    @classmethod
    def _cards(cls, cards: int | list[int]) -> int | list[int]:
        return check_card_counts(cards, MAX_CARDS_PER_PORT)

    @model_validator(mode="after")
    def _consistent(self) -> ColorlightOptions:
        self.card_counts()
        bad = [p for p in self.mfc_ports if not 0 <= p < self.ports]
        if bad:
            raise ValueError(f"mfc_ports: {bad} not among the ports 0..{self.ports - 1}")
        return self

    def card_counts(self) -> list[int]:
        return card_counts(self.cards_per_port, self.ports)


class _LinkDown(Exception):
    """The transport failed: the poll ends as link down."""


class ColorlightDriver:
    """`agent.drivers.base.Driver` for Colorlight processors (see the module docstring)."""

    def __init__(self, options: ColorlightOptions, transport: Transport | None = None) -> None:
        self.options = options
        self._transport: Any = transport or transport_for(options.url, options.timeout_ms / 1e3)
        self._stream = isinstance(self._transport, TcpTransport)
        self._codec = cl.ColorlightCodec()
        self._decoder = cl.StreamDecoder(self._codec)
        self._backoff = Backoff(options.reconnect_min_s, options.reconnect_max_s)
        self._connected = False
        self._next_id = 0
        self._heartbeat_at = 0.0
        self._probe_due = True
        self._beyond = [0] * options.ports
        self._errors = 0
        self._retried = False
        self.polls = 0
        self.errors_total = 0

    # -- Driver protocol -----------------------------------------------------------------
    def open(self) -> None:
        """Try to open the socket; a failure is reported by the first poll, not raised."""
        self._probe_due = True
        self._connect()

    def close(self) -> None:
        self._transport.close()
        self._connected = False

    def poll(self) -> ScreenReading:
        self.polls += 1
        self._errors, self._retried = 0, False
        counts = self.options.card_counts()
        keys = [(p, i) for p, n in enumerate(counts) for i in range(n)]
        try:
            if not self._connected:
                if not self._backoff.ready():
                    raise _LinkDown("waiting before the next attempt")
                if not self._connect():
                    raise _LinkDown("cannot open the socket")
            self._heartbeat()
            ctrl, cards = self._read_all(counts, keys)
            self._backoff.succeeded()
        except (_LinkDown, OSError):
            self._errors += 1
            if self._connected:
                self.close()
            if self._backoff.ready():
                self._backoff.failed()
            ctrl = ControllerValues(False, LinkState.DOWN, ports_expected=tuple(counts))
            cards = [CardValues(p, i) for p, i in keys]
        self.errors_total += self._errors
        return to_screen_reading(ctrl, cards, self._errors)

    @property
    def stats(self) -> dict[str, int]:
        codec = self._codec
        return {"polls": self.polls, "errors": self.errors_total,
                "noise_bytes": codec.noise_bytes, "bad_frames": codec.bad_frames}  # fmt: skip

    # -- the poll plan -------------------------------------------------------------------
    def _read_all(
        self, counts: list[int], keys: list[tuple[int, int]]
    ) -> tuple[ControllerValues, list[CardValues]]:
        o = self.options
        video = self._req(Cmd.PR_VIDEO, slotCode=o.video_slot, boardKind=o.video_board)
        head = [self._req(Cmd.SNDINFO), self._req(Cmd.SND_ETH), video]
        per_port: list[Request] = []
        for p in range(o.ports):
            per_port.append(self._req(Cmd.PR_RCV_STATE, port=p + 1))
            per_port.append(self._req(Cmd.MOD_PROBE, port=p + 1))
            if p in o.mfc_ports:
                per_port.append(self._req(Cmd.MFC_PROBE, port=p + 1))
        cards = [self._req(Cmd.RCV_PROBE, port=p + 1, rcv=i + 1) for p, i in keys]
        probe_ports = [p for p, n in enumerate(counts) if n < MAX_CARDS_PER_PORT]
        probing = self._probe_due or bool(o.probe_every and self.polls % o.probe_every == 0)
        beyond = [self._req(Cmd.RCV_PROBE, port=p + 1, rcv=counts[p] + 1)
                  for p in (probe_ports if probing else [])]  # fmt: skip
        replies = self._exchange(head + per_port + cards + beyond)
        if not any(r is not None for r in replies):
            raise _LinkDown("the controller does not answer")
        it = iter(replies)
        sndinfo, eth, inputs = next(it), next(it), next(it)
        faults: dict[int, rec.PortModules | None] = {}
        mods: dict[int, rec.PortModules | None] = {}
        mfc: list[rec.MultifunctionCard | None] = []
        for p in range(o.ports):
            faults[p] = _data(next(it), rec.decode_pr_rcv_state)
            mods[p] = _data(next(it), rec.decode_mod_probe)
            if p in o.mfc_ports:
                mfc.append(_data(next(it), rec.decode_mfc_probe))
        card_values = []
        for p, i in keys:
            probe = _data(next(it), rec.decode_rcv_probe)
            f, m = faults[p], mods[p]
            card_values.append(CardValues(
                p, i, probe,
                f.per_card.get(i + 1, 0) if f is not None else None,
                m.per_card.get(i + 1) if m is not None else None,
            ))  # fmt: skip
        if probing:
            self._probe_due = False
            for p in probe_ports:
                r = next(it)
                if r is not None:  # lost on the line: keep the last count
                    self._beyond[p] = 1 if r.ok else 0
        link = LinkState.DEGRADED if self._errors or self._retried else LinkState.UP
        ctrl = ControllerValues(
            online=True,
            link=link,
            sender=_data(sndinfo, rec.decode_sndinfo),
            ethernet=_data(eth, rec.decode_snd_eth),
            video=_data(inputs, rec.decode_pr_video),
            mfc=tuple(mfc),
            ports_expected=tuple(counts),
            ports_found=self._ports_found(counts, card_values),
        )
        return ctrl, card_values

    def _ports_found(self, counts: Sequence[int], cards: Sequence[CardValues]) -> tuple[int, ...]:
        """Cards answering per port: up to the last linked card of the chain (a dark card
        between lit ones is a card fault, not a layout one), or more when a card answers
        past the configured end ("at least one more": one probe per port)."""
        found = []
        for p, n in enumerate(counts):
            if self._beyond[p]:
                found.append(n + self._beyond[p])
                continue
            lit = [c.index for c in cards if c.port == p and c.online]
            found.append(max(lit) + 1 if lit else 0)
        return tuple(found)

    def _req(self, cmd: str, **data: Any) -> Request:
        return Request(0, cmd, self.options.sid, Op.GET, data or None)

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._heartbeat_at >= self.options.heartbeat_s:
            self._heartbeat_at = now
            self._write(cl.encode([Request(self._new_id(), Cmd.HEARTBEAT, self.options.sid,
                                           Op.SET, {})]))  # fmt: skip

    # -- the transaction layer -----------------------------------------------------------
    def _new_id(self) -> int:
        self._next_id = self._next_id % ID_MAX + 1  # 1..ID_MAX, as the vendor client
        return self._next_id

    def _exchange(self, reqs: Sequence[Request]) -> list[Response | None]:
        """Send every request (pipelined), retry silence; a response or None each, in order."""
        results: list[Response | None] = [None] * len(reqs)
        pending = list(range(len(reqs)))
        timeout_s = self.options.timeout_ms / 1000
        for attempt in range(self.options.retries + 1):
            if not pending:
                break
            if attempt:
                self._retried = True
            queue, pending = pending, []
            inflight: dict[int, tuple[int, Request]] = {}
            last = time.monotonic()
            while queue or inflight:
                while queue and len(inflight) < self.options.pipeline_depth:
                    idx = queue.pop(0)
                    req = replace(reqs[idx], id=self._new_id())
                    inflight[req.id] = (idx, req)
                    self._write(cl.encode([req]))
                remaining = last + timeout_s - time.monotonic()
                data = self._read(remaining) if remaining > 0 else b""
                if not data and time.monotonic() >= last + timeout_s:
                    self._errors += len(inflight)  # silence: all in flight timed out
                    self._decoder.reset()
                    pending += [idx for idx, _ in inflight.values()]
                    inflight.clear()
                    last = time.monotonic()
                    continue
                for item in self._items(data):
                    entry = inflight.get(item.id) if isinstance(item, Response) else None
                    if entry is None or not isinstance(item, Response) or item.cmd != entry[1].cmd:
                        self._errors += 1  # stale, foreign or malformed
                        continue
                    del inflight[item.id]
                    results[entry[0]] = item
                    last = time.monotonic()
            pending.sort()
        return results

    def _items(self, data: bytes) -> list[cl.Request | cl.Response | ErrorCode]:
        frames = self._decoder.feed(data) if self._stream else cl.decode_datagram(self._codec, data)
        out: list[cl.Request | cl.Response | ErrorCode] = []
        for f in frames:
            if isinstance(f, cl.BadFrame):
                self._errors += 1
            else:
                out.extend(f.items)
        return out

    def _connect(self) -> bool:
        try:
            self._transport.open()
        except OSError:
            self._transport.close()
            return False
        self._decoder.reset()
        self._connected = True
        self._heartbeat_at = 0.0  # a fresh link is greeted with a heartbeat
        return True

    def _write(self, data: bytes) -> None:
        try:
            self._transport.write(data)
        except OSError as exc:
            raise _LinkDown(str(exc)) from exc

    def _read(self, timeout_s: float) -> bytes:
        try:
            data: bytes = self._transport.read(timeout_s)
        except OSError as exc:
            raise _LinkDown(str(exc)) from exc
        return data


def _data(reply: Response | None, decode: Any) -> Any:
    """Decode a successful reply's data; None for no reply or an error code."""
    return decode(reply.data) if reply is not None and reply.ok else None


def create_driver(options: dict[str, Any]) -> ColorlightDriver:
    """Registry factory (agent/drivers/__init__.py): validate once, then build."""
    return ColorlightDriver(parse_options(ColorlightOptions, options))


__all__ = ["ColorlightDriver", "ColorlightOptions", "UdpTransport", "create_driver"]
