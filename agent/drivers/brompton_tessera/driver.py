"""Brompton Tessera driver: one paced `GET /api/` (httpx) per `min_interval_s`, decoded by
the pure codec in `firmware_protocols.brompton_tessera`.

Brompton warns that frequent polling can hurt processor performance and the public
exporter starts at 30 s, so the driver reads the processor at most every
`min_interval_s` (default 30 s) whatever the agent's interval: a poll in between returns
the last reading again, with `controller.age_s` saying how old its data is. The whole
tree comes in one request (as both public clients read it).

The API reports tiles only as counts (associated, online, in error) and per-tile
firmware and type, so the reading has no per-cabinet rows: `cards` is empty and the
tile counts are controller keys, with `layout_ok` when `tiles` is configured. Processor
temperatures and fans are controller keys too (`temp_c` is the hottest sensor, `fan_rpm`
the slowest fan). IP control switched off for the project is `degraded` with
`controller.ip_control = False`. An unreachable processor is `down`, retried with
NovaStar's backoff. `poll()` never raises for what the device does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

from pydantic import Field

from agent.drivers.base import LinkState, ScreenReading
from agent.drivers.brompton_tessera.uplink_converter import ControllerValues, to_screen_reading
from agent.drivers.common.http_json import JsonHttp
from agent.drivers.common.options import FamilyOptions, parse_options
from agent.drivers.novastar.transport import Backoff
from firmware_protocols import brompton_tessera as bt

SCHEMES = {"http": bt.DEFAULT_PORT}


class TesseraOptions(FamilyOptions):
    """The `[screens.controller]` table for `driver = "brompton-tessera"` (sample.toml)."""

    SCHEMES: ClassVar[dict[str, int]] = SCHEMES

    tiles: int | None = Field(None, ge=0, le=100_000)
    max_brightness_nits: float | None = Field(None, gt=0, le=100_000)
    min_interval_s: float = Field(bt.MIN_POLL_INTERVAL_S, ge=1.0, le=3600)
    timeout_s: float = Field(10.0, gt=0, le=60)


class TesseraDriver:
    """`agent.drivers.base.Driver` for Brompton Tessera processors (module docstring)."""

    def __init__(
        self, options: TesseraOptions, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.options = options
        _, host, port = options.endpoint()
        self._http = JsonHttp(f"http://{host}:{port}", options.timeout_s, clock=clock)
        self._clock = clock
        self._backoff = Backoff(options.reconnect_min_s, options.reconnect_max_s, clock=clock)
        self._last: ScreenReading | None = None
        self._read_at = -math.inf
        self.polls = 0
        self.reads = 0
        self.errors_total = 0

    def open(self) -> None:
        """Nothing to open (HTTP is per request); the first poll reads the processor."""
        self._read_at = -math.inf

    def close(self) -> None:
        self._http.close()

    def poll(self) -> ScreenReading:
        self.polls += 1
        now = self._clock()
        last = self._last
        if last is not None:
            # A processor that answers is read at most every min_interval_s; one that
            # does not is retried on the backoff schedule (silence costs it nothing).
            wait = (not self._backoff.ready() if last.link is LinkState.DOWN
                    else now - self._read_at < self.options.min_interval_s)  # fmt: skip
            if wait:
                return self._again(last, now)
        reading = self._read(now)
        self.errors_total += reading.errors
        self._last, self._read_at = reading, now
        return reading

    @property
    def stats(self) -> dict[str, int]:
        return {"polls": self.polls, "reads": self.reads, "errors": self.errors_total}

    def _again(self, last: ScreenReading, now: float) -> ScreenReading:
        """The last reading for a poll inside the pacing interval (no request sent)."""
        ctrl = dict(last.controller)
        if ctrl.get("age_s") is not None:
            ctrl["age_s"] = round(now - self._read_at, 3)
        if last.link is LinkState.DOWN:
            ctrl["retry_in_s"] = math.ceil(self._backoff.remaining_s() * 1000) / 1000
        return replace(last, controller=ctrl, errors=0, events=[])

    def _read(self, now: float) -> ScreenReading:
        self.reads += 1
        reply = self._http.get(bt.PATH_API)
        o = self.options
        if not reply.answered:
            if self._backoff.ready():
                self._backoff.failed()
            retry = math.ceil(self._backoff.remaining_s() * 1000) / 1000
            down = ControllerValues(False, LinkState.DOWN, tiles_expected=o.tiles, retry_in_s=retry)
            return to_screen_reading(down, errors=1)
        self._backoff.succeeded()
        answer = bt.decode_answer(reply.status or 0, reply.body, bt.PATH_API)
        if answer.kind is not bt.Kind.OK:
            ip_control = False if answer.kind is bt.Kind.IP_CONTROL_DISABLED else None
            values = ControllerValues(True, LinkState.DEGRADED, ip_control=ip_control,
                                      tiles_expected=o.tiles, age_s=0.0)  # fmt: skip
            return to_screen_reading(values, errors=1)
        status = bt.decode_status(answer.tree)
        return to_screen_reading(ControllerValues(
            True, LinkState.UP, status, ip_control=True, tiles_expected=o.tiles,
            max_brightness_nits=o.max_brightness_nits, age_s=0.0,
        ))  # fmt: skip


def create_driver(options: dict[str, Any]) -> TesseraDriver:
    """Registry factory (agent/drivers/__init__.py): validate once, then build."""
    return TesseraDriver(parse_options(TesseraOptions, options))


__all__ = ["TesseraDriver", "TesseraOptions", "create_driver"]
