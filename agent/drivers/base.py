"""The interfaces a family implements: what the agent's poll loop needs from it.

A driver owns its transport (serial port, TCP socket, HTTP client) and uses a pure codec
from firmware_protocols/ for the bytes. The poll loop calls, in order: `open()` once,
`poll()` once per interval (never concurrently), `close()` once at stop. A device that
does not answer is *data*, not an exception: `poll()` returns a reading whose
controller is offline and whose link says down (or held). Only caller misuse raises.

A PSU source (smart power supplies on their own bus, Modbus today) follows the same call
order with `read()` for `poll()`. Both are registered by name in agent/drivers/__init__.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class LinkState(StrEnum):
    """Health of the link to one controller, reported in every snapshot."""

    UP = "up"  # every request of the last poll answered
    DEGRADED = "degraded"  # some requests needed retries or failed
    DOWN = "down"  # the controller did not answer at all
    # Another client holds the controller's link (NovaStar's NovaLCT resets other TCP
    # clients; COEX locks them out while VMP runs): not lost, just not ours to read.
    HELD = "held"


@dataclass(slots=True)
class ScreenReading:
    """One poll of one screen, already in the units and shape of `ledwatch.telemetry/1`.

    `cards` and `psus` are columnar (key -> list, one element per card / PSU, equal
    lengths, with an `id` column); `controller` and `env` are flat objects and
    `controller["link"]` equals `link`. Missing readings are None. `events` are what the
    driver saw happen that the reading cannot show (a reboot message, say); edges such as
    a door opening are the agent's to find, on the finished reading (agent/reading.py).
    The agent adds schema/site/screen/agent/seq/ts/stats.
    """

    controller: dict[str, Any]
    cards: dict[str, list[Any]]
    psus: dict[str, list[Any]]
    env: dict[str, Any]
    link: LinkState = LinkState.UP
    errors: int = 0  # protocol errors / timeouts counted during this poll
    events: list[dict[str, Any]] = field(default_factory=list)


class Driver(Protocol):
    """A controller family's driver; see the module docstring for the call order."""

    def open(self) -> None: ...

    def poll(self) -> ScreenReading: ...

    def close(self) -> None: ...


class PsuSource(Protocol):
    """One bus of smart PSUs: `read()` returns its `psus` columns, one row per PSU in
    `ids` order (values None for a PSU that did not answer), and never raises for what
    the bus does. `last_errors` / `last_answered` describe the last `read()`."""

    @property
    def ids(self) -> Sequence[str]: ...

    @property
    def cards(self) -> Sequence[str | None]: ...  # the receiving card each PSU feeds

    @property
    def columns(self) -> Sequence[str]: ...  # the `psus` columns `read()` returns

    @property
    def last_errors(self) -> int: ...

    @property
    def last_answered(self) -> int: ...

    def describe(self) -> str: ...  # where it reads, for `--check-config` lines

    def open(self) -> None: ...

    def read(self) -> dict[str, list[Any]]: ...

    def close(self) -> None: ...


class PsuSourceOptions(Protocol):
    """A `[[screens.psus]]` table once its family validated it."""

    def psu_ids(self) -> list[tuple[str, str]]: ...  # (key in the table, PSU id)
