"""NovaStar driver: one poll = one plan, run through the transaction layer, converted once.

The parts, each in its own module (docs/drivers.md, "The NovaStar family"):

| module | concern |
| --- | --- |
| `options.py` | the `[screens.controller]` table, validated once |
| `layout.py` | where each card hangs (row, col) |
| `plan.py` | what one poll asks, each register of each card once, in stages |
| `transport.py` | the pipe (TCP / serial) and the reconnect backoff |
| `transaction.py` | pipelining, reply matching, retries; connecting; held links |
| `uplink_converter.py` | (request, reply) pairs + the last poll's state -> the reading |
| `discover.py` | LAN search for `ledwatch discover` |

This module only joins them: `poll()` builds the plan, asks its stages in order, hands
every (request, reply) pair to the converter and returns what it built. A card
answered with ACK 01 is offline: that is data, not a link error. Timeouts, garbage and
checksum failures are retried up to `retries` times and counted. If the sending card
answers nothing at all the reading says `controller.online = False`, link down, every
card offline (or, when the pattern says another client holds the link, `held` with
`online` null), and the transport is reopened on the next poll and, if that fails, on
the one after; from then on the driver waits an exponentially growing, jittered time
(`reconnect_min_s` .. `reconnect_max_s`) between attempts and reports the link without
touching it meanwhile. `poll()` never raises for anything the device does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from agent.drivers.base import LinkState, ScreenReading
from agent.drivers.novastar.layout import Order, Start, block_cell
from agent.drivers.novastar.options import NovastarOptions, parse_options
from agent.drivers.novastar.plan import PollPlan, Read
from agent.drivers.novastar.transaction import Connection, LinkDown
from agent.drivers.novastar.transport import DEFAULT_TCP_PORT, Transport, transport_for
from agent.drivers.novastar.uplink_converter import Carried, LinkFacts, convert
from firmware_protocols.novastar import Frame

__all__ = ["DEFAULT_TCP_PORT", "NovastarDriver", "NovastarOptions", "Order", "Start",
           "block_cell", "create_driver", "parse_options"]  # fmt: skip


class NovastarDriver:
    """`agent.drivers.base.Driver` for NovaStar sending cards (see the module docstring)."""

    def __init__(
        self,
        options: NovastarOptions,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        t = transport or transport_for(options.url, options.timeout_ms / 1e3)
        self._link = Connection(t, options, clock)
        self._carried = Carried()
        self._last_link = LinkState.DOWN
        self.polls = 0
        self.errors_total = 0
        # A card count is owed after open() and then every `probe_every` polls; 3.9 card
        # info is read every `extended.card_info_every` polls counted from each
        # (re)connect, so a swapped card is seen at once.
        self._probe_due = False
        self._card_info_polls = 0

    # -- Driver protocol -----------------------------------------------------------------
    def open(self) -> None:
        """Try to connect; a failure is not raised, the first poll reports link down.
        The first poll that reaches the controller also counts the cards on every port."""
        self._probe_due = True
        self._link.connect()

    def close(self) -> None:
        self._link.close()
        self._card_info_polls = 0  # after a reconnect, read the cards' 3.9 info again

    def poll(self) -> ScreenReading:
        self.polls += 1
        tx = self._link.tx
        tx.begin_poll()
        replies: dict[Read, Frame | None] = {}
        every = self.options.probe_every
        plan = PollPlan(
            self.options,
            card_info_due=self._card_info_polls % self.options.extended.card_info_every == 0,
            probe_due=self._probe_due or bool(every and self.polls % every == 0),
        )
        try:
            replies.update(self._link.ensure_open())
            self._ask(plan.controller, replies)
            if all(replies[r] is None for r in plan.controller):
                raise LinkDown("the sending card does not answer")
            self._probe_due = False
            self._card_info_polls += 1
            self._ask(plan.screen, replies)
            while more := plan.follow_up(replies):
                self._ask(more, replies)
            for read in plan.function_card:  # one at a time: see plan.py
                self._ask([read], replies)
            link = LinkState.DEGRADED if tx.errors or tx.retried else LinkState.UP
            self._link.succeeded()
        except (LinkDown, OSError) as exc:
            tx.errors += 1
            was_connected = self._link.connected
            reset = exc.reset if isinstance(exc, LinkDown) else isinstance(exc, ConnectionError)
            link = self._link.failed(reset)
            if was_connected:
                self._card_info_polls = 0
            replies = {}
        self.errors_total += tx.errors
        reachable = link in (LinkState.UP, LinkState.DEGRADED)
        facts = LinkFacts(
            link=link,
            errors=tx.errors,
            baud=self._link.baud,
            reconnect_in_s=None if reachable else self._link.reconnect_in_s(),
            held_s=self._link.held_s(),
        )
        reading, self._carried = convert(self.options, replies, facts, self._carried)
        self._last_link = link
        return reading

    def _ask(self, reads: Sequence[Read], replies: dict[Read, Frame | None]) -> None:
        todo = [r for r in reads if r not in replies]  # e.g. the auto-baud probe's model
        if todo:
            replies.update(zip(todo, self._link.tx.exchange(todo), strict=True))

    @property
    def stats(self) -> dict[str, int]:
        """Counters for the agent's health report."""
        codec = self._link.tx.decoder.codec
        return {
            "polls": self.polls,
            "errors": self.errors_total,
            "noise_bytes": codec.noise_bytes,
            "bad_checksums": codec.bad_checksums,
        }

    @property
    def link_state(self) -> LinkState:
        """The link as the last poll left it (DOWN before the first poll)."""
        return self._last_link


def create_driver(options: dict[str, Any]) -> NovastarDriver:
    """Registry factory (agent/drivers/__init__.py): validate once, then build."""
    return NovastarDriver(parse_options(options))
