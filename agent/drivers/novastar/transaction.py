"""The transaction layer: the only place where NovaStar requests meet the wire.

`Transactions` sends a stage of the poll plan pipelined (`pipeline_depth` in flight),
matches each reply to its request by serial number, device, port, board and address
(so a late reply to an earlier, timed-out request is counted and dropped instead of
being taken for the wrong card), retries what went unanswered, and counts errors.
`Connection` owns the transport's life: connecting (with the serial auto-baud probe),
the reconnect backoff, and recognising a link that another client holds.

A link is *held* when the controller's TCP port accepts the connection and then resets
it, or leaves it unanswered, before the first reply, on `held_after` attempts in a row
(the reset of a connection that was answering counts as the first). That is what
NovaStar's NovaLCT / "Nova server" does to other clients while it holds the link. The
controller is then very likely fine, only not ours to read: the poll reports `held`,
not `down`, and keeps trying on the backoff schedule. Until `held_after` is reached, and
for a refused or timed-out connect or a link that answered and then went silent, it is
`down` as before. Serial links are never held (a COM port held by another program
cannot even be opened: that is `down`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Final

from agent.drivers.base import LinkState
from agent.drivers.novastar.options import NovastarOptions
from agent.drivers.novastar.plan import Read, controller_read
from agent.drivers.novastar.transport import Backoff, SerialTransport, Transport
from firmware_protocols import novastar as ns
from firmware_protocols.errors import NovastarProtocolError
from firmware_protocols.novastar import Ack, Frame

RETRY_ACKS: Final = (Ack.REQUEST_CHECKSUM, Ack.REPLY_CHECKSUM)
MODEL_READ: Final = controller_read(ns.CONTROLLER_MODEL)


class LinkDown(Exception):
    """The transport failed (closed, reset, unplugged): the poll ends as link down.
    `reset`: the peer closed or reset the connection (its network stack is up)."""

    def __init__(self, why: str, reset: bool = False) -> None:
        super().__init__(why)
        self.reset = reset


class Transactions:
    """Pipelined request/reply exchange with retries over one transport (see module doc).

    `errors` and `retried` describe the current poll (`begin_poll()` clears them);
    `replies` counts every matched reply since the transport was last opened.
    """

    def __init__(self, transport: Transport, options: NovastarOptions) -> None:
        self.transport = transport
        self.timeout_s = options.timeout_ms / 1000
        self.retries = options.retries
        self.depth = options.pipeline_depth
        self.decoder = ns.StreamDecoder()
        self._serial = 0
        self.errors = 0
        self.retried = False
        self.replies = 0

    def begin_poll(self) -> None:
        self.errors = 0
        self.retried = False

    def opened(self) -> None:
        """A fresh connection: no half frame from the last one, no replies seen yet."""
        self.decoder.reset()
        self.replies = 0

    def _next_serial(self, busy: dict[int, tuple[int, Frame]]) -> int:
        while True:
            self._serial = (self._serial + 1) & 0xFF
            if self._serial not in busy:
                return self._serial

    def exchange(self, reads: Sequence[Read], retries: int | None = None) -> list[Frame | None]:
        """Send every request, pipelined, with retries; a reply or None each, in order.

        A reply is final when its ACK is 0 (data), 1 (card offline) or 4 (invalid
        command); ACK 2/3 (checksum failures on either side) and silence are retried.
        """
        results: list[Frame | None] = [None] * len(reads)
        pending = list(range(len(reads)))
        tries = (self.retries if retries is None else retries) + 1
        for attempt in range(tries):
            if not pending:
                break
            if attempt:
                self.retried = True
            queue, pending = pending, []
            inflight: dict[int, tuple[int, Frame]] = {}
            last_progress = time.monotonic()
            while queue or inflight:
                out = bytearray()
                while queue and len(inflight) < self.depth:
                    idx = queue.pop(0)
                    req = reads[idx].frame(self._next_serial(inflight))
                    inflight[req.serial] = (idx, req)
                    out += ns.encode(req)
                if out:
                    self._write(bytes(out))
                remaining = last_progress + self.timeout_s - time.monotonic()
                data = self._read(remaining) if remaining > 0 else b""
                if not data and time.monotonic() >= last_progress + self.timeout_s:
                    # Silence: everything in flight timed out. Drop any half frame so a
                    # corrupt length cannot hold the stream, and retry those reads.
                    self.errors += len(inflight)
                    self.decoder.reset()
                    pending += [idx for idx, _ in inflight.values()]
                    inflight.clear()
                    last_progress = time.monotonic()
                    continue
                noise = self.decoder.codec.noise_bytes
                for frame in self.decoder.feed(data):
                    entry = inflight.get(frame.serial)
                    try:
                        if entry is None:
                            raise NovastarProtocolError(f"serial {frame.serial}: not in flight")
                        ns.check_reply(entry[1], frame)
                    except NovastarProtocolError:
                        self.errors += 1  # a stale reply to a timed-out request, or foreign
                        continue
                    idx, _ = entry
                    del inflight[frame.serial]
                    last_progress = time.monotonic()
                    self.replies += 1
                    if frame.ack in RETRY_ACKS:
                        self.errors += 1
                        pending.append(idx)
                    else:
                        results[idx] = frame
                if self.decoder.codec.noise_bytes != noise:
                    self.errors += 1  # garbage on the line (counted once per read)
            pending.sort()
        return results

    def _write(self, data: bytes) -> None:
        try:
            self.transport.write(data)
        except OSError as exc:
            raise LinkDown(str(exc), isinstance(exc, ConnectionError)) from exc

    def _read(self, timeout_s: float) -> bytes:
        try:
            return self.transport.read(timeout_s)
        except OSError as exc:
            raise LinkDown(str(exc), isinstance(exc, ConnectionError)) from exc


class Connection:
    """The link's life: connect (auto-baud), backoff between failed attempts, and whether
    the last failures look like another client holding the link (module docstring)."""

    def __init__(
        self,
        transport: Transport,
        options: NovastarOptions,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self.tx = Transactions(transport, options)
        self.backoff = Backoff(options.reconnect_min_s, options.reconnect_max_s, clock=clock)
        self.held_after = options.held_after
        self.clock = clock
        self.connected = False
        self._accepted = False  # this attempt's transport opened (the port accepted)
        self._strikes = 0  # attempts in a row that look held
        self._held_since: float | None = None
        self.state = LinkState.DOWN  # what the last failed attempt showed: DOWN or HELD

    @property
    def baud(self) -> int | None:
        t = self.transport
        return t.baudrate if isinstance(t, SerialTransport) else None

    def ensure_open(self) -> dict[Read, Frame | None]:
        """Connect if needed (raising `LinkDown` while the backoff says wait or when the
        connect fails); returns the model read the auto-baud probe made, if it made one,
        so the poll does not ask again."""
        if self.connected:
            return {}
        if not self.backoff.ready():
            raise LinkDown("waiting before the next connection attempt")
        got = self.connect()
        if got is None:
            raise LinkDown("cannot connect")
        return got

    def connect(self) -> dict[Read, Frame | None] | None:
        """Open the transport; for an auto-baud serial link, also find the rate at which
        the sending card answers its model register (the remembered rate first). None
        when no attempt connected; else the model reply of the probe ({} without one)."""
        t = self.transport
        self._accepted = False
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
            except OSError as exc:
                t.close()
                # Reset during the connect: the port accepted, then the peer reset it
                # (with a connect timeout, the reset can arrive before connect returns).
                if isinstance(exc, ConnectionResetError | ConnectionAbortedError):
                    self.tx.opened()
                    self._accepted = True
                return None
            self.tx.opened()
            self.connected = self._accepted = True
            if rate is None:
                return {}
            reply = self._answers_at(rate)
            if reply is not None:
                return {MODEL_READ: reply}
            self.close()
        return None

    def _answers_at(self, rate: int) -> Frame | None:
        """One read of the model register, no retries; a wrong rate is silence or noise,
        which is expected here and not counted as a link error."""
        tx = self.tx
        errors, retried = tx.errors, tx.retried
        try:
            (reply,) = tx.exchange([MODEL_READ], retries=0)
        except LinkDown:
            return None
        finally:
            tx.errors, tx.retried = errors, retried
        if reply is None or reply.ack != Ack.OK:
            return None
        assert isinstance(self.transport, SerialTransport)
        self.transport.use(rate)
        return reply

    def close(self) -> None:
        self.transport.close()
        self.connected = False

    def succeeded(self) -> None:
        self.backoff.succeeded()
        self._strikes = 0
        self._held_since = None

    def failed(self, reset: bool = False) -> LinkState:
        """The poll could not read the controller (`reset`: the peer closed or reset the
        connection): close, count the attempt, and say whether the link is down or held.

        An attempt looks held when the port accepted it and then nothing answered (a
        reset or silence before the first reply), or when the peer reset a connection
        that had been answering (the moment another client takes the link over)."""
        attempted = self.backoff.ready()  # False: the attempt was skipped (backoff wait)
        if self.connected:
            self.close()
        if not attempted:
            return self.state
        self.backoff.failed()
        fresh_and_mute = self._accepted and self.tx.replies == 0
        if (fresh_and_mute or reset) and getattr(self.transport, "may_be_held", False):
            self._strikes += 1
            if self._held_since is None:
                self._held_since = self.clock()
        else:
            self._strikes = 0
            self._held_since = None
        self._accepted = False
        held = 0 < self.held_after <= self._strikes
        self.state = LinkState.HELD if held else LinkState.DOWN
        return self.state

    def reconnect_in_s(self) -> float:
        # rounded up to 1 ms: the next attempt is never earlier than this says
        return math.ceil(self.backoff.remaining_s() * 1000) / 1000

    def held_s(self) -> float | None:
        """Seconds since the first attempt of the current held run (None unless held)."""
        if self.state is not LinkState.HELD or self._held_since is None:
            return None
        return round(self.clock() - self._held_since, 3)
