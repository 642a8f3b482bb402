"""The agent process: one poll thread per screen, the outbox, the publisher.

Drivers are blocking (serial, TCP request/response), so each screen gets its own
thread and a slow controller never delays another screen. Polls run on a fixed grid
(`start + k * interval`, ticks missed by an overlong poll are skipped, not bunched),
so the timestamps of a screen do not drift. A poll never kills its thread: an exception
from a driver is counted, logged, and reported as a controller that could not be read
(link down), and the driver is reopened at the next tick. Nothing here is POSIX-only:
the same code runs as a Windows service.
"""

from __future__ import annotations

import logging
import logging.handlers
import math
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from agent.drivers import create_driver, create_psu_source
from agent.drivers.base import Driver, LinkState, PsuSource, ScreenReading
from agent.metrics import MetricsServer, render
from agent.outbox.base import Kind, Outbox
from agent.outbox.sqlite import SqliteOutbox
from agent.publisher import Publisher
from agent.reading import finish, silent_source
from agent.settings import AgentSettings, ScreenSection
from agent.snapshot import build_events, build_snapshot, encode
from ledwatch import contract
from ledwatch.errors import ConfigError
from ledwatch.files import check_writable_dir

log = logging.getLogger(__name__)

LOG_MAX_BYTES = 5 * 1024 * 1024
LOG_BACKUPS = 5


def setup_logging(
    settings: AgentSettings | None, level: int = logging.INFO
) -> list[logging.Handler]:
    """stderr, plus a size-rotated file when `agent.log_file` is set; returns the handlers
    added so the caller can remove them (tests run several agents in one process)."""
    root = logging.getLogger()
    root.setLevel(level)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    stream = logging.StreamHandler()
    stream.setFormatter(fmt)
    added: list[logging.Handler] = [stream]
    if settings is not None and settings.agent.log_file is not None:
        path = settings.agent.log_file
        path.parent.mkdir(parents=True, exist_ok=True)
        # RotatingFileHandler renames on rollover, which also works on Windows as long
        # as only this process holds the file (no second handler on the same path).
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8", delay=True
        )
        handler.setFormatter(fmt)
        added.append(handler)
    for each in added:
        root.addHandler(each)
    logging.getLogger("paho").setLevel(logging.WARNING)
    return added


def remove_logging(handlers: list[logging.Handler]) -> None:
    root = logging.getLogger()
    for handler in handlers:
        root.removeHandler(handler)
        handler.close()


def check_folders(settings: AgentSettings, create: bool = True) -> None:
    """The data folder and the log file's folder can be written (created if `create`;
    a config check leaves nothing behind); else `ConfigError` naming the folder and
    what to do, e.g. `agent.data_dir /var/x: permission denied: run as a user that can
    write it or set agent.data_dir`."""
    check_writable_dir(settings.agent.data_dir, "agent.data_dir", create)
    if settings.agent.log_file is not None:
        check_writable_dir(settings.agent.log_file.parent, "agent.log_file", create)


def build_drivers(settings: AgentSettings) -> dict[str, Driver]:
    """One driver per screen; a driver's `ConfigError` is re-raised naming the full key."""
    drivers: dict[str, Driver] = {}
    for i, screen in enumerate(settings.screens):
        try:
            drivers[screen.id] = create_driver(
                screen.controller.driver, screen.controller.options()
            )
        except ConfigError as exc:
            msg = str(exc).removeprefix("controller.")
            raise ConfigError(f"screens[{i}].controller.{msg}") from None
    return drivers


def build_psu_sources(settings: AgentSettings) -> dict[str, list[PsuSource]]:
    """One source per `[[screens.psus]]` bus (options validated at load by their family)."""
    return {
        screen.id: [create_psu_source(bus) for bus in screen.psu_options()]
        for screen in settings.screens
    }


def unreadable(reason: str) -> ScreenReading:
    """What the agent reports when it could not read a controller at all (the poller
    finishes it like any reading, with its PSU buses)."""
    return ScreenReading(
        controller={"online": False, "error": reason},
        cards={},
        psus={},
        env={},
        link=LinkState.DOWN,
        errors=1,
    )


def cards_answering(reading: ScreenReading) -> tuple[int, int]:
    online = reading.cards.get("online", [])
    return sum(1 for v in online if v), len(online)


class ScreenPoller:
    """Polls one screen on a fixed interval; owns its driver (open / poll / close)."""

    def __init__(
        self,
        agent: Agent,
        screen: ScreenSection,
        driver: Driver,
        psu_sources: Sequence[PsuSource] = (),
    ) -> None:
        self.agent = agent
        self.screen = screen.id
        self.driver = driver
        self.psu_sources = list(psu_sources)
        self._bus_open = [False] * len(self.psu_sources)
        self._smart_ids = [ident for src in self.psu_sources for ident in src.ids]
        self._last: ScreenReading | None = None  # the last finished reading
        self.topic = contract.telemetry_topic(agent.settings.agent.site, screen.id)
        self.event_topic = contract.event_topic(agent.settings.agent.site, screen.id)
        self.polls = 0
        self.poll_errors = 0
        self.last_poll_ms: float | None = None
        self.last_seq = 0
        self.last_link: str | None = None
        self.last_cards = (0, 0)
        self.last_error: str | None = None
        self._opened = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _open(self) -> bool:
        if self._opened:
            return True
        try:
            self.driver.open()
        except Exception as exc:
            self.last_error = f"open failed: {exc!r}"
            log.warning("screen %s: controller open failed: %r", self.screen, exc)
            return False
        self._opened = True
        return True

    def _close(self) -> None:
        if self._opened:
            self._opened = False
            try:
                self.driver.close()
            except Exception:
                log.exception("screen %s: driver close failed", self.screen)

    def _shutdown(self) -> None:
        self._close()
        for b, source in enumerate(self.psu_sources):
            if self._bus_open[b]:
                self._bus_open[b] = False
                try:
                    source.close()
                except Exception:
                    log.exception("screen %s: psus[%d] close failed", self.screen, b)

    def read(self) -> ScreenReading:
        """The controller, then every PSU source, finished into one reading (merged PSU
        rows, edge events against the last poll: agent/reading.py); never raises."""
        reading = self._read_controller()
        buses = [self._read_bus(b, s) for b, s in enumerate(self.psu_sources)]
        self._last = finish(reading, buses, self._last)
        return self._last

    def _read_bus(self, b: int, source: PsuSource) -> dict[str, list[Any]]:
        """One bus; a failure is counted and gives null rows, the poll goes on."""
        try:
            if not self._bus_open[b]:
                source.open()  # an unreachable bus is not raised: read() retries it
                self._bus_open[b] = True
            cols = source.read()
        except Exception as exc:
            self.poll_errors += 1
            self.last_error = f"psus[{b}] read failed: {exc!r}"
            log.exception("screen %s: psus[%d] read failed; reopening at the next tick",
                          self.screen, b)  # fmt: skip
            self._bus_open[b] = False
            try:
                source.close()
            except Exception:
                log.exception("screen %s: psus[%d] close failed", self.screen, b)
            return silent_source(source)
        self.poll_errors += source.last_errors
        return cols

    def _read_controller(self) -> ScreenReading:
        """One driver poll that never raises: failures become an unreadable controller."""
        if not self._open():
            self.poll_errors += 1
            return unreadable(self.last_error or "open failed")
        try:
            reading = self.driver.poll()
        except Exception as exc:
            self.poll_errors += 1
            self.last_error = f"poll failed: {exc!r}"
            log.exception("screen %s: driver poll failed; reopening at the next tick", self.screen)
            self._close()
            return unreadable(self.last_error)
        self.poll_errors += reading.errors
        return reading

    def poll_once(self) -> ScreenReading:
        settings = self.agent.settings
        ts_ms = time.time_ns() // 1_000_000
        t0 = time.perf_counter()
        reading = self.read()
        poll_ms = round((time.perf_counter() - t0) * 1000.0, 3)
        self.polls += 1
        self.last_poll_ms = poll_ms
        self.last_link = str(reading.link)
        self.last_cards = cards_answering(reading)
        outbox = self.agent.outbox
        stats = {
            "poll_ms": poll_ms,
            "poll_errors": self.poll_errors,
            "queue_depth": outbox.depth(),
            "uptime_s": round(self.agent.uptime_s(), 3),
            "dropped": outbox.dropped(),
        }
        corrupt = len(outbox.set_aside())
        if corrupt:  # only after a bad outbox file was replaced: kept out of normal snapshots
            stats["outbox_corrupt"] = corrupt

        def payload(seq: int) -> bytes:  # runs inside the outbox transaction that owns seq
            return encode(build_snapshot(settings, self.screen, seq, ts_ms, reading, stats))

        try:
            _, self.last_seq = outbox.put_seq(Kind.TELEMETRY, self.topic, self.screen, payload)
            events = build_events(settings, self.screen, ts_ms, reading)
            for doc in events:
                outbox.put(Kind.EVENT, self.event_topic, encode(doc))
        except Exception as exc:  # disk full, outbox closed under us: count, keep polling
            self.poll_errors += 1
            self.last_error = f"outbox put failed: {exc!r}"
            log.exception("screen %s: outbox put failed", self.screen)
        else:
            if self.agent.publisher is not None:
                self.agent.publisher.notify(1 + len(events))
        return reading

    def _run(self) -> None:
        interval = self.agent.settings.agent.poll_interval_s
        start = time.monotonic()
        k = 0
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # last line of defence: the thread must outlive any bug
                self.poll_errors += 1
                log.exception("screen %s: poll loop error", self.screen)
            k = max(k + 1, math.floor((time.monotonic() - start) / interval) + 1)
            self._stop.wait(max(0.0, start + k * interval - time.monotonic()))
        self._shutdown()

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"ledwatch-poll-{self.screen}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)
        else:
            self._shutdown()

    def status(self) -> dict[str, Any]:
        online, total = self.last_cards
        return {
            "polls": self.polls,
            "poll_errors": self.poll_errors,
            "poll_ms": self.last_poll_ms,
            "link": self.last_link,
            "cards_online": online,
            "cards_total": total,
            "seq": self.last_seq,
            "last_error": self.last_error,
            "psus_answered": sum(s.last_answered for s in self.psu_sources),
            "psus_total": len(self._smart_ids),
        }


class Agent:
    """The whole agent; `start()` once, `stop()` once. Parts can be injected for tests."""

    def __init__(
        self,
        settings: AgentSettings,
        *,
        outbox: Outbox | None = None,
        drivers: Mapping[str, Driver] | None = None,
        publish: bool = True,
    ) -> None:
        self.settings = settings
        self._started = time.monotonic()
        drivers = dict(drivers) if drivers is not None else build_drivers(settings)
        buses = build_psu_sources(settings)
        self._owns_outbox = outbox is None  # an injected outbox is closed by its owner
        self.outbox: Outbox = outbox or SqliteOutbox(
            settings.outbox_path, settings.outbox_quota_bytes
        )
        self.publisher = Publisher(settings, self.outbox) if publish else None
        self.pollers = [ScreenPoller(self, s, drivers[s.id], buses[s.id]) for s in settings.screens]
        self.metrics: MetricsServer | None = None  # `[metrics] port`, served from start()
        self._running = False

    def metrics_text(self) -> str:
        """This agent's health in Prometheus text format (what `GET /metrics` answers)."""
        return render(self.status(), self.settings.outbox_quota_bytes)

    def uptime_s(self) -> float:
        return time.monotonic() - self._started

    def start(self) -> None:
        """Start publishing and polling, and the metrics port if configured (a port that
        cannot be opened raises `ConfigError` before anything else starts)."""
        port = self.settings.metrics.port
        if port and self.metrics is None:
            self.metrics = MetricsServer(self.settings.metrics.host, port, self.metrics_text)
            self.metrics.start()
        if self.publisher is not None:
            self.publisher.start()
        for poller in self.pollers:
            poller.start()
        self._running = True
        log.info(
            "agent %s (site %s) polling %d screen(s) every %g s",
            self.settings.agent.id,
            self.settings.agent.site,
            len(self.pollers),
            self.settings.agent.poll_interval_s,
        )

    def run_once(self, timeout_s: float = 30.0) -> bool:
        """Poll every screen once, publish, wait for the broker's acks; True if all acked."""
        if self.publisher is not None:
            self.publisher.start()
        for poller in self.pollers:
            poller.poll_once()
        ok = self.publisher.wait_idle(timeout_s) if self.publisher is not None else True
        self._running = True
        return ok

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop polling, publish the retained offline status, close drivers and outbox."""
        for poller in self.pollers:
            poller.stop()
        for poller in self.pollers:
            poller.join(timeout_s)
        if self.publisher is not None and self._running:
            self.publisher.stop()
        self._running = False
        if self.metrics is not None:
            self.metrics.stop()
            self.metrics = None
        if self._owns_outbox:
            self.outbox.close()
        log.info("agent stopped")

    def status(self) -> dict[str, Any]:
        return {
            "agent": self.settings.agent.id,
            "site": self.settings.agent.site,
            "uptime_s": round(self.uptime_s(), 1),
            "queue_depth": self.outbox.depth(),
            "outbox_bytes": self.outbox.stored_bytes(),
            "dropped": self.outbox.dropped(),
            # Corrupt outbox files moved aside (kept) since the start: path, reason, ...
            "outbox_set_aside": [a.as_dict() for a in self.outbox.set_aside()],
            "mqtt": self.publisher.stats() if self.publisher is not None else None,
            "screens": {p.screen: p.status() for p in self.pollers},
        }


def status_line(status: Mapping[str, Any]) -> str:
    """One line for the console: link, queue and every screen at a glance."""
    mqtt = status.get("mqtt") or {}
    head = (
        f"mqtt {'up' if mqtt.get('connected') else 'DOWN'} queue={status['queue_depth']} "
        f"dropped={status['dropped']} sent={mqtt.get('sent', 0)} acked={mqtt.get('acked', 0)}"
    )
    if status.get("outbox_set_aside"):
        head += f" outbox_corrupt={len(status['outbox_set_aside'])}"
    parts = [
        f"{name}: {s['link'] or '-'} {s['cards_online']}/{s['cards_total']} cards "
        f"{s['poll_ms'] if s['poll_ms'] is not None else '-'} ms err={s['poll_errors']}"
        for name, s in status["screens"].items()
    ]
    return " | ".join([head, *parts])
