"""A driver reading inside a full `ledwatch.telemetry/1` payload, validated.

The JSON round trip first is deliberate: what the agent publishes is JSON, so a value
that only a Python dict can hold (a tuple, a bytes, an enum) must fail here too.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from agent.drivers.base import ScreenReading
from agent.reading import finish
from ledwatch.contract import SCHEMA_TELEMETRY, validate_telemetry


def validated_payload(reading: ScreenReading, seq: int = 1) -> dict[str, Any]:
    doc = {
        "schema": SCHEMA_TELEMETRY, "site": "site1", "screen": "wall", "agent": "pc1",
        "seq": seq, "ts": int(time.time() * 1000), "controller": reading.controller,
        "cards": reading.cards, "psus": reading.psus, "env": reading.env,
    }  # fmt: skip
    return validate_telemetry(orjson.loads(orjson.dumps(doc)))


class Finishing:
    """A driver whose readings go through the agent's `finish` as the poll loop's do, so
    a test sees the edge events (found by the agent on the finished reading, against the
    last poll) where it used to see the driver's own."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self._last: ScreenReading | None = None

    def poll(self) -> ScreenReading:
        self._last = finish(self.driver.poll(), previous=self._last)
        return self._last

    def __getattr__(self, name: str) -> Any:
        return getattr(self.driver, name)
