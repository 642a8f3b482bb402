"""The driver interface: what the agent's poll loop needs from a controller family.

A driver owns its transport (serial port or TCP socket) and uses a pure codec from
firmware_protocols/ for the bytes. The poll loop calls, in order: `open()` once,
`poll()` once per interval (never concurrently), `close()` once at stop. A device that
does not answer is *data*, not an exception: `poll()` returns a reading whose
controller is offline and whose link says down. Only caller misuse raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class LinkState(StrEnum):
    """Health of the link to one controller, reported in every snapshot."""

    UP = "up"  # every request of the last poll answered
    DEGRADED = "degraded"  # some requests needed retries or failed
    DOWN = "down"  # the controller did not answer at all


@dataclass(slots=True)
class ScreenReading:
    """One poll of one screen, already in the units and shape of `ledwatch.telemetry/1`.

    `cards` and `psus` are columnar (key -> list, one element per card / PSU, equal
    lengths, with an `id` column); `controller` and `env` are flat objects. Missing
    readings are None. The agent adds schema/site/screen/agent/seq/ts/stats.
    """

    controller: dict[str, Any]
    cards: dict[str, list[Any]]
    psus: dict[str, list[Any]]
    env: dict[str, Any]
    link: LinkState = LinkState.UP
    errors: int = 0  # protocol errors / timeouts counted during this poll
    events: list[dict[str, Any]] = field(default_factory=list)  # edge events seen this poll


class Driver(Protocol):
    """A controller family's driver; see the module docstring for the call order."""

    def open(self) -> None: ...

    def poll(self) -> ScreenReading: ...

    def close(self) -> None: ...
