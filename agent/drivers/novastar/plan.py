"""What one NovaStar poll asks, in which order. Pure: no I/O.

A poll is one `PollPlan`, built from the options at the start of the poll. Every request
names a register of the codec's one table (`firmware_protocols.novastar.registers`), and
the plan holds each request once: a register of a card is never read twice in a poll
(the base and the extended reads used to ask for the model, 3.18 and 3.1.2 twice). The
requests go out in stages::

    controller    3.7.2 model, 3.18 input status, 3.1.2 DVI: if none answers, the
                  link is down (or held) and the poll ends here
    screen        the other sending card reads (3.19, 3.10.1, 3.8.4), then per card the
                  3.1.1 monitoring block, 3.9 card info (every `card_info_every` polls),
                  smart modules, and one probe past the end of each chain when due
    follow_up()   what depends on the answers: 3.3 brightness of the first card that
                  answered, the next probe of a chain whose probe found a card; asked
                  until it returns nothing
    function card the MFN300's model, then each 3.8.1 query write and its answer read,
                  one at a time and in order: the answer register is shared by every
                  RS-485 device, so a query overtaking the previous read would answer
                  for the wrong sensor

Stages may be pipelined inside (`pipeline_depth`), except the function card's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from agent.drivers.novastar.layout import MAX_CARDS_PER_PORT
from agent.drivers.novastar.options import NovastarOptions
from firmware_protocols import novastar as ns
from firmware_protocols.novastar import Ack, Frame, Register

# A probe only asks "is a card at this index?" (ACK 00 yes, ACK 01 no): the first two
# bytes of the monitoring block, the card temperature (3.1.1), which every card has.
PROBE_LEN = 2


@dataclass(frozen=True, slots=True)
class Read:
    """One request of a poll: `register` of the card at (`port`, `board`); a write of
    `data` when given. `length` shortens a read (a probe, the 7-byte RS-485 answer).
    `tag` tells apart two reads of the same register on purpose (the RS-485 answer,
    once per sensor). Equal reads are the same request: the plan holds each once."""

    register: Register
    port: int = 0
    board: int = 0
    length: int | None = None
    data: bytes | None = None
    tag: str = ""

    @property
    def size(self) -> int:
        return self.register.length if self.length is None else self.length

    def frame(self, serial: int) -> Frame:
        reg = self.register
        if self.data is not None:
            return ns.write_request(serial, reg.device_type, self.port, self.board,
                                    reg.address, self.data)  # fmt: skip
        return ns.read_request(serial, reg.device_type, self.port, self.board, reg.address,
                               self.size)  # fmt: skip


Replies = Mapping[Read, Frame | None]


def ok(reply: Frame | None) -> bool:
    """A usable answer: ACK 0 with all the data asked for."""
    return reply is not None and reply.ack == Ack.OK and len(reply.data) == reply.length


def controller_read(register: Register) -> Read:
    return Read(register)


def block_read(port: int, index: int) -> Read:
    return Read(ns.MONITORING_BLOCK, port, index)


def probe_read(port: int, index: int) -> Read:
    return Read(ns.MONITORING_BLOCK, port, index, PROBE_LEN)


CONTROLLER_READS = tuple(
    controller_read(r) for r in (ns.CONTROLLER_MODEL, ns.INPUT_SOURCE_STATUS, ns.DVI_SIGNAL)
)
RS485_QUERIES = (("mth300", ns.MTH300_QUERY), ("ns048c", ns.NS048C_QUERY))


def cards(counts: Sequence[int]) -> list[tuple[int, int]]:
    """(port, index) of every configured card, in the order of the `cards` columns."""
    return [(p, i) for p, n in enumerate(counts) for i in range(n)]


class PollPlan:
    """The requests of one poll (see the module docstring for the stages)."""

    def __init__(
        self, options: NovastarOptions, *, card_info_due: bool = True, probe_due: bool = False
    ) -> None:
        self.options = options
        self.counts = options.card_counts()
        self.probe_due = probe_due
        self._planned: set[Read] = set()
        ext = options.extended
        self.controller = self._take(CONTROLLER_READS)
        screen = [controller_read(r) for r, on in (
            (ns.INPUT_SELECTION, ext.inputs), (ns.REDUNDANCY, ext.redundancy),
            (ns.LIGHT_SENSOR, ext.light_sensor),
        ) if on]  # fmt: skip
        screen += [block_read(p, i) for p, i in cards(self.counts)]
        for p, i in cards(self.counts):
            if card_info_due and (ext.card_info or ext.redundancy):
                screen.append(Read(ns.RECEIVING_CARD_INFO, p, i))
            if ext.smart_modules:
                screen.append(Read(ns.SMART_MODULES, p, i))
        if probe_due:
            screen += [probe_read(p, n) for p, n in enumerate(self.counts)
                       if n < MAX_CARDS_PER_PORT]  # fmt: skip
        self.screen = self._take(screen)
        self.function_card = self._take(self._function_card_reads())

    def _take(self, reads: Iterable[Read]) -> list[Read]:
        """`reads` minus those already planned: one request per register and card."""
        out = []
        for r in reads:
            if r not in self._planned:
                self._planned.add(r)
                out.append(r)
        return out

    def _function_card_reads(self) -> Iterator[Read]:
        f = self.options.extended.function_card
        if f is None:
            return
        yield Read(ns.FUNCTION_CARD_MODEL, f.port, f.board)
        for (tag, query), rs485 in zip(RS485_QUERIES, (f.mth300_rs485, f.ns048c_rs485),
                                       strict=True):  # fmt: skip
            if rs485 is None:
                continue
            reg = ns.FUNCTION_CARD_RS485
            yield Read(reg, f.port, f.board, data=ns.rs485_request(rs485, query), tag=tag)
            yield Read(reg, f.port, f.board, ns.FUNCTION_CARD_RS485_READ_LEN, tag=tag)

    def follow_up(self, replies: Replies) -> list[Read]:
        """Reads that depend on the answers so far; empty when there are none left."""
        more: list[Read] = []
        first = next((k for k in cards(self.counts) if ok(replies.get(block_read(*k)))), None)
        if first is not None:
            more.append(Read(ns.BRIGHTNESS, *first))
        if self.probe_due:
            for p, n in enumerate(self.counts):
                k = n
                while ok(replies.get(probe_read(p, k))) and k + 1 < MAX_CARDS_PER_PORT:
                    k += 1
                if k > n:  # a card answered past the end: ask one further
                    more.append(probe_read(p, k))
        return self._take(more)
