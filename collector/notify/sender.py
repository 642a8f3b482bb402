"""The sender: delivers due outbox rows through their channels, retrying with backoff.

```
 ticket transaction ──> outbox rows ──due()──> Sender.run_once ──send()──> receiver
                                     <──delivered() (only after the receiver accepted)
                                     <──failed(retry_at)   temporary: backoff
                                     <──failed(None)       permanent: given up, kept
```
* Nothing is marked delivered before the receiver accepted it; a crash in between sends
  the row again (at-least-once; receivers deduplicate on the notification id).
* A row's retry waits `backoff_s(attempts)`: doubling from `retry_min_s` to
  `retry_max_s`, jittered so that rows that failed together do not retry together. A
  receiver's Retry-After is honoured (up to `retry_max_s`).
* A receiver that is down must not cost a timeout per row nor starve the other
  channels: once two different rows of a channel failed in a row, the channel counts as
  down and its rows are deferred (`failed` with the channel's retry time, counted as an
  attempt, no connection made) until the channel's own backoff has passed; then the
  oldest row probes it. A single row the receiver keeps refusing with a 5xx never
  holds the others back, because the next row's success resets the count.
* A channel bug (any other exception) is logged and treated as temporary: one bad
  notification cannot stop the loop.
Only the sender's thread calls the store and the channels; `stats()` may be called
from any thread.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from collector.notify.channel import Channel
from collector.notify.errors import DeliveryFailed, PermanentFailure, TemporaryFailure
from collector.notify.model import OutboxStore, Pending
from collector.notify.settings import NotifySettings

log = logging.getLogger(__name__)

DOWN_AFTER_ROWS = 2  # distinct rows failing in a row before a channel counts as down
METRICS_PREFIX = "ledwatch_collector_notify_"


def backoff_s(
    failures: int, min_s: float, max_s: float, rand: Callable[[], float] = random.random
) -> float:
    """Delay after the `failures`-th failure in a row (1-based), in [min_s, max_s]."""
    ceiling = min(max_s, min_s * 2 ** min(max(failures, 1) - 1, 40))
    return max(min_s, ceiling * (0.5 + 0.5 * rand()))


@dataclass
class _ChannelState:
    type: str
    sent: int = 0
    failed: int = 0  # failed attempts, temporary ones (each try counts)
    given_up: int = 0
    deferred: int = 0
    refresh_failed: int = 0
    retrying: set[str] = field(default_factory=set)  # ids waiting for a retry
    last_error: str = ""
    last_error_ms: int | None = None
    last_sent_ms: int | None = None
    failing: set[str] = field(default_factory=set)  # distinct rows failed since last success
    trips: int = 0
    down_until_ms: int = 0

    def public(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "up": not self.failing,
            "sent": self.sent,
            "failed": self.failed,
            "retrying": len(self.retrying),
            "given_up": self.given_up,
            "deferred": self.deferred,
            "refresh_failed": self.refresh_failed,
            "last_error": self.last_error,
            "last_error_ms": self.last_error_ms,
            "last_sent_ms": self.last_sent_ms,
            "down_until_ms": self.down_until_ms or None,
        }


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Sender:
    """Delivers the outbox; `run_once` for tests and replays, `start`/`stop` for a thread.

    `clock_ms` gives the time written as `delivered` and used when `run_once` gets none;
    the sender owns `channels` and closes them on `stop()`.
    """

    def __init__(
        self,
        store: OutboxStore,
        channels: dict[str, Channel],
        clock_ms: Callable[[], int],
        settings: NotifySettings,
        *,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.channels = channels
        self.clock_ms = clock_ms
        self.settings = settings
        self._rand = rand
        self._lock = threading.Lock()
        self._state = {name: _ChannelState(ch.kind) for name, ch in channels.items()}
        self._loop_errors = 0
        self._last_error = ""
        self._last_error_ms: int | None = None
        self._last_run_ms: int | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- delivery -------------------------------------------------------------------------
    def run_once(self, now_ms: int | None = None) -> int:
        """Try every due row (up to `batch`); returns how many rows were handled."""
        now = self.clock_ms() if now_ms is None else now_ms
        due = self.store.due(now, self.settings.batch)
        handled = 0
        for pending in due:
            if self._stop.is_set():
                break  # the rest stays due: a stop must not wait for a whole batch
            self._deliver(pending, now)
            handled += 1
        with self._lock:
            self._last_run_ms = now
        return handled

    def _channel_state(self, name: str) -> _ChannelState:
        with self._lock:
            return self._state.setdefault(name, _ChannelState("unknown"))

    def _deliver(self, pending: Pending, now: int) -> None:
        note = pending.notification
        channel = self.channels.get(note.channel)
        st = self._channel_state(note.channel)
        if channel is None:
            self._give_up(pending, st, f"channel {note.channel!r} is not configured", now)
            return
        if st.down_until_ms > now:
            error = f"deferred: channel down since its last errors: {st.last_error}"
            self.store.failed(note.id, error[:1000], st.down_until_ms)
            with self._lock:
                st.deferred += 1
                st.retrying.add(note.id)
            return
        try:
            channel.send(note)
        except PermanentFailure as exc:
            self._give_up(pending, st, str(exc), now)
        except TemporaryFailure as exc:
            self._retry(pending, st, str(exc), exc.retry_after_s, now)
        except DeliveryFailed as exc:
            self._retry(pending, st, str(exc), None, now)
        except Exception as exc:
            log.exception("%s: sending %s failed unexpectedly", channel.key, note.id)
            self._retry(pending, st, f"{type(exc).__name__}: {exc}", None, now)
        else:
            done_ms = self.clock_ms()
            self.store.delivered(note.id, done_ms)
            with self._lock:
                st.sent += 1
                st.last_sent_ms = done_ms
                st.retrying.discard(note.id)
                st.failing.clear()
                st.trips = 0
                st.down_until_ms = 0

    def _error(self, st: _ChannelState, error: str, now: int) -> None:
        st.last_error = error[:500]
        st.last_error_ms = now

    def _retry(
        self, pending: Pending, st: _ChannelState, error: str, hint_s: float | None, now: int
    ) -> None:
        s = self.settings
        delay_s = backoff_s(pending.attempts + 1, s.retry_min_s, s.retry_max_s, self._rand)
        if hint_s is not None:
            delay_s = max(delay_s, min(hint_s, s.retry_max_s))
        note = pending.notification
        self.store.failed(note.id, error[:1000], now + int(delay_s * 1000))
        with self._lock:
            first = not st.failing
            st.failed += 1
            st.retrying.add(note.id)
            self._error(st, error, now)
            st.failing.add(note.id)
            if len(st.failing) >= DOWN_AFTER_ROWS:
                st.trips += 1
                down_s = backoff_s(st.trips, s.retry_min_s, s.retry_max_s, self._rand)
                st.down_until_ms = now + int(down_s * 1000)
        if first:
            log.warning("notify.channels.%s: %s (will retry)", note.channel, error)

    def _give_up(self, pending: Pending, st: _ChannelState, error: str, now: int) -> None:
        note = pending.notification
        self.store.failed(note.id, error[:1000], None)
        with self._lock:
            st.given_up += 1
            st.retrying.discard(note.id)
            self._error(st, error, now)
        log.warning(
            "notify.channels.%s: gave up %s (%s, %s): %s",
            note.channel, note.id, note.event, note.queue, error,
        )

    def refresh(self, now_ms: int | None = None) -> None:
        """Each channel's periodic upkeep (Alertmanager re-push); failures are counted."""
        now = self.clock_ms() if now_ms is None else now_ms
        for name, channel in self.channels.items():
            try:
                channel.refresh(now)
            except Exception as exc:
                if not isinstance(exc, DeliveryFailed):
                    log.exception("%s: refresh failed unexpectedly", channel.key)
                st = self._channel_state(name)
                with self._lock:
                    st.refresh_failed += 1
                    self._error(st, f"refresh: {exc}", now)

    # -- thread ---------------------------------------------------------------------------
    def start(self) -> None:
        """Run `run_once` and `refresh` every `interval_s` (at once again after a full batch)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="ledwatch-notify", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Deliver now instead of at the next tick (call after committing a ticket change)."""
        self._wake.set()

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop the thread (waits for the send in progress, bounded), then close channels."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            longest = max((c.timeout_s for c in self.channels.values()), default=0.0)
            # A send in progress may block for its connect plus its reply timeout.
            self._thread.join(timeout_s if timeout_s is not None else 5.0 + 2 * longest)
            self._thread = None
        for channel in self.channels.values():
            try:
                channel.close()
            except Exception:
                log.exception("%s: close failed", channel.key)

    def _loop(self) -> None:
        while not self._stop.is_set():
            busy = False
            try:
                busy = self.run_once() >= self.settings.batch
                self.refresh()
            except Exception as exc:  # the store (database) failed: try again next tick
                message = f"{type(exc).__name__}: {exc}"
                with self._lock:
                    repeated = message == self._last_error
                    self._loop_errors += 1
                    self._last_error = message[:500]
                    self._last_error_ms = self.clock_ms()
                if not repeated:
                    log.exception("notify sender: %s", message)
            if not busy:
                self._wake.wait(self.settings.interval_s)
                self._wake.clear()

    # -- health ---------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counters for /health, metrics and the status line (no `ok` key: not judged)."""
        with self._lock:
            channels = {name: st.public() for name, st in sorted(self._state.items())}
            out: dict[str, Any] = {
                "running": self._thread is not None and self._thread.is_alive(),
                "last_run_ms": self._last_run_ms,
                "store_errors": self._loop_errors,
                "last_error": self._last_error,
                "last_error_ms": self._last_error_ms,
            }
        for total in ("sent", "failed", "retrying", "given_up", "deferred"):
            out[total] = sum(c[total] for c in channels.values())
        out["down"] = sorted(name for name, c in channels.items() if not c["up"])
        out["channels"] = channels
        return out

    def metrics_text(self, prefix: str = METRICS_PREFIX) -> str:
        """Prometheus text (format 0.0.4) of `stats()`, labelled by channel and type."""
        stats = self.stats()
        series = (
            ("sent_total", "counter", "Notifications the receiver accepted.", "sent"),
            ("failed_total", "counter", "Delivery attempts that failed and will be retried.",
             "failed"),
            ("given_up_total", "counter", "Notifications given up (refused for good).",
             "given_up"),
            ("deferred_total", "counter", "Rows held back while their channel was down.",
             "deferred"),
            ("refresh_failed_total", "counter", "Periodic re-pushes that failed.",
             "refresh_failed"),
            ("retrying", "gauge", "Notifications waiting for a retry.", "retrying"),
            ("up", "gauge", "1 unless the channel's last attempts failed.", "up"),
        )
        lines = []
        for name, kind, help_text, key in series:
            lines += [f"# HELP {prefix}{name} {help_text}", f"# TYPE {prefix}{name} {kind}"]
            for channel, c in stats["channels"].items():
                labels = f'channel="{_label(channel)}",type="{_label(c["type"])}"'
                lines.append(f"{prefix}{name}{{{labels}}} {int(c[key])}")
        lines += [
            f"# HELP {prefix}store_errors_total Sender loops the outbox store failed.",
            f"# TYPE {prefix}store_errors_total counter",
            f"{prefix}store_errors_total {stats['store_errors']}",
        ]
        return "\n".join(lines) + "\n"

    def status_text(self) -> str:
        """`notify_sent=3 notify_retrying=1 notify_given_up=0 notify_down=desk-mail`."""
        s = self.stats()
        down = ",".join(s["down"]) or "-"
        return (
            f"notify_sent={s['sent']} notify_retrying={s['retrying']} "
            f"notify_given_up={s['given_up']} notify_down={down}"
        )
