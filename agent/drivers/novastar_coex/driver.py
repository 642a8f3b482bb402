"""NovaStar COEX driver: paced HTTP GETs (httpx) to the processor's API on port 8001,
decoded by the pure codec in `firmware_protocols.novastar_coex`.

Per poll, one request after the other, at least `request_gap_ms` apart:

1. `screen/cabinet/count` (~120 bytes): the cheap check for cabinets dropping out;
2. `device/monitor/info`: per-cabinet temperature, voltage, humidity, smoke; controller
   board temperature and voltage, fans, input links;
3. `device/cabinet` (large) only on the first poll, every `topology_every` polls, and at
   once when the count disagrees with the cached list (this list, not monitor/info, says
   which cabinets are connected);
4. `device/input/sources` with the topology, to tell the internal test source apart.

Living with VMP: while NovaStar's VMP holds the processor it answers `"device locked"`;
a processor busy with something else answers code 5 (Busying). Either makes the link
`held`, not down: the driver sends nothing for `busy_backoff_s` (doubling on each held
poll up to `held_backoff_max_s`), then tries the count again, and reports whatever did
answer (`controller.online` stays True when something answered, None when nothing did;
`controller.held_s` counts the seconds since the hold began). An unreachable processor
(refused, reset, timed out) is `down`, retried with NovaStar's backoff. `poll()` never
raises for what the device does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import Field, model_validator

from agent.drivers.base import LinkState, ScreenReading
from agent.drivers.common.http_json import JsonHttp
from agent.drivers.common.options import FamilyOptions, parse_options
from agent.drivers.novastar.transport import Backoff
from agent.drivers.novastar_coex.uplink_converter import (
    Cabinet,
    ControllerValues,
    to_screen_reading,
)
from firmware_protocols import novastar_coex as coex
from firmware_protocols.novastar_coex import Answer, CabinetInfo, InputSource, Kind, MonitorInfo

SCHEMES = {"http": coex.DEFAULT_PORT}


class CoexOptions(FamilyOptions):
    """The `[screens.controller]` table for `driver = "novastar-coex"` (see sample.toml)."""

    SCHEMES: ClassVar[dict[str, int]] = SCHEMES

    model: str | None = Field(None, min_length=1, max_length=64)
    cabinets: int | None = Field(None, ge=0, le=100_000)
    timeout_s: float = Field(3.0, gt=0, le=60)
    request_gap_ms: int = Field(200, ge=0, le=10_000)
    topology_every: int = Field(10, ge=1, le=100_000)
    busy_backoff_s: float = Field(5.0, gt=0, le=600)
    held_backoff_max_s: float = Field(60.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _order(self) -> CoexOptions:
        if self.held_backoff_max_s < self.busy_backoff_s:
            raise ValueError("held_backoff_max_s: below busy_backoff_s")
        return self


class _Down(Exception):
    """Nothing answered (refused, reset, timed out): the link is down."""


class _Held(Exception):
    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.message)
        self.answer = answer


class CoexDriver:
    """`agent.drivers.base.Driver` for NovaStar COEX processors (module docstring)."""

    def __init__(self, options: CoexOptions, clock: Callable[[], float] = time.monotonic) -> None:
        self.options = options
        _, host, port = options.endpoint()
        self._http = JsonHttp(f"http://{host}:{port}", options.timeout_s,
                              options.request_gap_ms / 1000, clock=clock)  # fmt: skip
        self._clock = clock
        self._backoff = Backoff(options.reconnect_min_s, options.reconnect_max_s, clock=clock)
        self._reachable = False
        self._hold_until = 0.0
        self._held_since: float | None = None
        self._held_reason: str | None = None
        self._strikes = 0
        self._list: tuple[CabinetInfo, ...] | None = None
        self._sources: tuple[InputSource, ...] | None = None
        self._where: dict[int, tuple[int | None, int | None]] = {}  # cabinet id -> place
        self._errors = 0
        self.polls = 0
        self.errors_total = 0

    # -- Driver protocol -----------------------------------------------------------------
    def open(self) -> None:
        """Nothing to open (HTTP is per request); the first poll finds out."""
        self._reachable = True

    def close(self) -> None:
        self._http.close()

    def poll(self) -> ScreenReading:
        self.polls += 1
        self._errors = 0
        now = self._clock()
        answered: dict[str, Any] = {}
        try:
            if now < self._hold_until:
                raise _Held(Answer(Kind.BUSY if self._held_reason == "busy" else Kind.LOCKED))
            if not self._reachable and not self._backoff.ready():
                raise _Down("waiting before the next attempt")
            self._read(answered)
            self._reachable = True
            self._backoff.succeeded()
            self._release()
            link = LinkState.DEGRADED if self._errors else LinkState.UP
        except _Held as held:
            self._hold(held.answer, fresh=now >= self._hold_until)
            link = LinkState.HELD
        except _Down:
            self._errors += 1
            self._release()
            if answered:  # it answered, then stopped mid-poll: keep what came
                link = LinkState.DEGRADED
            else:
                if self._backoff.ready():
                    self._backoff.failed()
                self._reachable = False
                link = LinkState.DOWN
        self.errors_total += self._errors
        return self._reading(link, answered)

    @property
    def stats(self) -> dict[str, int]:
        return {"polls": self.polls, "errors": self.errors_total, "requests": self._http.requests}

    # -- the poll plan -------------------------------------------------------------------
    def _get(self, path: str) -> Answer:
        reply = self._http.get(path)
        if not reply.answered:
            raise _Down(reply.error)
        answer = coex.decode_answer(reply.status or 0, reply.body, reply.content_type)
        if answer.held:
            raise _Held(answer)
        if answer.kind is not Kind.OK:
            self._errors += 1  # absent, bad or an error code: this endpoint is unknown
        return answer

    def _read(self, out: dict[str, Any]) -> None:
        """Fill `out` with what answers; `_Held`/`_Down` end the plan where they happen
        (what answered before stays in `out`)."""
        count = self._get(coex.PATH_CABINET_COUNT)
        out["count"] = coex.decode_cabinet_count(count.data) if count.kind is Kind.OK else None
        monitor = self._get(coex.PATH_MONITOR)
        out["monitor"] = coex.decode_monitor_info(monitor.data) if monitor.kind is Kind.OK else None
        cached = self._list
        topology = (self.polls - 1) % self.options.topology_every == 0
        if cached is None or topology or (out["count"] is not None and out["count"] != len(cached)):
            listing = self._get(coex.PATH_CABINETS)
            fresh = coex.decode_cabinet_list(listing.data) if listing.kind is Kind.OK else None
            if fresh is not None:
                self._list = fresh
                out["list"] = fresh
        if self._sources is None or topology:
            sources = self._get(coex.PATH_SOURCES)
            if sources.kind is Kind.OK:
                self._sources = coex.decode_sources(sources.data)

    # -- holding -------------------------------------------------------------------------
    def _hold(self, answer: Answer, fresh: bool) -> None:
        """A busy/locked answer (fresh) or a poll inside the back-off (not fresh)."""
        now = self._clock()
        if self._held_since is None:
            self._held_since = now
        if fresh:
            self._held_reason = "busy" if answer.kind is Kind.BUSY else "locked"
            self._strikes += 1
            o = self.options
            wait = min(o.held_backoff_max_s, o.busy_backoff_s * 2 ** (self._strikes - 1))
            self._hold_until = now + wait

    def _release(self) -> None:
        self._held_since, self._held_reason, self._strikes, self._hold_until = None, None, 0, 0.0

    # -- the reading ---------------------------------------------------------------------
    def _reading(self, link: LinkState, got: dict[str, Any]) -> ScreenReading:
        monitor: MonitorInfo | None = got.get("monitor")
        count: int | None = got.get("count")
        held = link == LinkState.HELD
        answered_any = bool(got)
        if monitor is not None:
            # monitor/info lists every cabinet of the project, connected or not: one it
            # no longer lists (a project re-imported with new ids) is forgotten.
            listed = {i.cabinet_id for i in self._list or ()}
            self._where = {cid: w for cid, w in self._where.items()
                           if cid in listed}  # fmt: skip
            for c in monitor.cabinets:
                self._where[c.cabinet_id] = (c.port, c.index)
        for info in self._list or ():
            self._where.setdefault(info.cabinet_id, (info.port, info.index))
        listing = {i.cabinet_id: i for i in self._list or ()}
        live = {c.cabinet_id: c for c in monitor.cabinets} if monitor else {}
        # A cached list is only as good as this poll's count says it is.
        list_known = "list" in got or (self._list is not None and count == len(self._list))
        cabinets = []
        for cid, (port, index) in sorted(self._where.items(),
                                         key=lambda kv: (kv[1][0] or 0, kv[1][1] or 0, kv[0])):
            if link is LinkState.DOWN:
                online: bool | None = False
            elif held and not list_known:
                online = None
            else:
                online = cid in listing
            cabinets.append(Cabinet(cid, port, index, online, live.get(cid), listing.get(cid)))
        now = self._clock()
        ctrl = ControllerValues(
            online=(True if answered_any else None) if held else link is not LinkState.DOWN,
            link=link,
            model=self.options.model,
            monitor=monitor,
            signal_ok=coex.signal_present(monitor, self._sources) if monitor else None,
            brightness_pct=_brightness(self._list) if link is not LinkState.DOWN else None,
            cabinets_expected=self.options.cabinets,
            cabinets_found=count,
            held_s=None if self._held_since is None else round(now - self._held_since, 3),
            held_reason=self._held_reason if held else None,
            retry_in_s=(math.ceil(max(0.0, self._hold_until - now) * 1000) / 1000 if held
                        else math.ceil(self._backoff.remaining_s() * 1000) / 1000
                        if link is LinkState.DOWN else None),
        )  # fmt: skip
        return to_screen_reading(ctrl, cabinets, self._errors)


def _brightness(listing: tuple[CabinetInfo, ...] | None) -> float | None:
    """The cabinets' brightness ratio (0..1) as a percentage; their mean if they differ."""
    ratios = [c.brightness_ratio for c in listing or () if c.brightness_ratio is not None]
    return round(100 * sum(ratios) / len(ratios), 2) if ratios else None


def create_driver(options: dict[str, Any]) -> CoexDriver:
    """Registry factory (agent/drivers/__init__.py): validate once, then build."""
    return CoexDriver(parse_options(CoexOptions, options))


__all__ = ["CoexDriver", "CoexOptions", "create_driver"]
