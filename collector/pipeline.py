"""Writes in flight: batches are stored in parallel and acknowledged in the order taken.

```
 ingest thread ──submit(batch)──> up to `max_in_flight` batches out at once
                                    │ each written by its own worker thread,
                                    │ retried with backoff until stored (or refused)
                                    v
                                 finished batches, acknowledged strictly in submit order
```
Encoding the next batch while the server stores the previous ones is what lets the
collector run at the server's speed rather than at the speed of "encode, write, wait"
in series (docs/performance.md). Three rules keep what the serial loop promised:
- a message is acknowledged only after its batch is stored (or refused as bad data);
- acknowledgements leave in the order the messages came (MQTT wants PUBACKs in order),
  so a later batch that is stored first waits for the earlier ones;
- the messages held (queued, being written or waiting for their turn to be acked) stay
  bounded: `submit` blocks while `max_in_flight` batches are out or their messages
  reach `max_messages`; the ingest thread, blocked, takes one batch more at most
  (`while_waiting`) and then stops taking.
Detection and everything else that needs each screen's snapshots in order stays in the
one ingest thread, before `submit`; only storing runs in parallel.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from collector.delivery import StreamSeq
from collector.influx.errors import WriteError
from collector.influx.writers import Writer

log = logging.getLogger(__name__)

# How often a blocked `submit` lets the ingest thread look at its queue (well inside the
# default detect_within_ms of 20).
WAIT_POLL_S = 0.01


class Outcome:
    """How a batch ended: stored, dropped (refused as bad data) or given up (stop)."""

    STORED = "stored"
    DROPPED = "dropped"
    GAVE_UP = "gave_up"


@dataclass(eq=False)
class Batch:
    msgs: list[Any]  # Inbound messages, in arrival order
    seqs: list[StreamSeq]  # (site, screen, agent, seq) of the telemetry among them
    lines: list[str]
    outcome: str | None = None  # set by the worker once the batch is finished
    taken_s: float = field(default_factory=time.monotonic)


@dataclass
class WriteStats:
    """What /health, /metrics and the status line show of storing (under the pool's lock)."""

    in_flight: int = 0  # batches submitted and not yet acknowledged
    held_messages: int = 0
    writes: int = 0  # write requests that succeeded
    write_seconds: float = 0.0  # their total time (mean latency = write_seconds / writes)
    last_write_s: float = 0.0  # the latest successful one's duration
    failing: bool = False  # the latest write attempt failed (retryable)
    last_failure: str = ""


class WritePool:
    """`submit` batches from one thread; `on_done(batch)` runs in submit order, once each.

    `on_done` is called with the pool's ack lock held, from whichever worker finished the
    oldest outstanding batch; it must not block for long (acks, counters).
    """

    def __init__(
        self,
        writer: Writer,
        on_done: Callable[[Batch], None],
        on_error: Callable[[WriteError, int, float], None],
        *,
        max_in_flight: int,
        max_messages: int,
        retry_max_s: float,
        give_up: threading.Event,
    ) -> None:
        self.writer = writer
        self._on_done = on_done
        self._on_error = on_error
        self.max_in_flight = max(1, max_in_flight)
        self.max_messages = max(1, max_messages)
        self.retry_max_s = retry_max_s
        self._give_up = give_up
        self._lock = threading.Condition()
        self._order: deque[Batch] = deque()  # outstanding, in submit order
        self._todo: deque[Batch] = deque()  # waiting for a worker
        self._ack_lock = threading.Lock()
        self._closed = False
        self._halted = False  # a batch was given up: nothing after it may be acked
        self.stats = WriteStats()
        self._workers = [
            threading.Thread(target=self._work, name=f"collector-write-{i}", daemon=True)
            for i in range(self.max_in_flight)
        ]
        for w in self._workers:
            w.start()

    # -- the ingest thread ----------------------------------------------------------------

    def room(self) -> int:
        """Messages the next batch may hold without passing `max_messages` (>= 1)."""
        with self._lock:
            return max(1, self.max_messages - self.stats.held_messages)

    def submit(self, batch: Batch, while_waiting: Callable[[], None] | None = None) -> bool:
        """Hand a batch over; blocks while the pool is full. False once given up.

        `while_waiting` runs every `WAIT_POLL_S` while blocked, without the pool's lock:
        the ingest thread takes and judges what arrives meanwhile, so a fault is not kept
        waiting for a write slot (collector/service.py `_prefetch`).
        """
        with self._lock:
            while not self._closed and not self._halted and self._full(len(batch.msgs)):
                if while_waiting is None:
                    self._lock.wait(0.5)
                    continue
                self._lock.wait(WAIT_POLL_S)
                if self._closed or self._halted or not self._full(len(batch.msgs)):
                    break
                self._lock.release()
                try:
                    while_waiting()
                finally:
                    self._lock.acquire()
            if self._halted or self._closed:
                return False
            self._order.append(batch)
            self.stats.in_flight += 1
            self.stats.held_messages += len(batch.msgs)
            if batch.lines:
                self._todo.append(batch)
                self._lock.notify_all()
            else:
                batch.outcome = Outcome.STORED  # nothing to store: only its acks wait
        if not batch.lines:
            self._flush()
        return True

    def _full(self, n_msgs: int) -> bool:
        s = self.stats
        return s.in_flight >= self.max_in_flight or (
            s.held_messages > 0 and s.held_messages + n_msgs > self.max_messages)

    def wait_idle(self, timeout_s: float) -> bool:
        """Until every submitted batch is acknowledged; False on timeout or give-up."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._order and not self._halted:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.5))
            return not self._order

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        for w in self._workers:
            w.join(2.0)

    # -- workers --------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._todo and not self._closed:
                    self._lock.wait(0.5)
                if not self._todo:
                    return  # closed and nothing left
                batch = self._todo.popleft()
            batch.outcome = self._store(batch.lines)
            if batch.outcome == Outcome.GAVE_UP:
                with self._lock:
                    self._halted = True
                    self._lock.notify_all()
            self._flush()

    def _store(self, lines: list[str]) -> str:
        """Write until stored: anything but a refusal is retried with the same batch
        (unexpected exceptions too: dropping the batch unacknowledged would pin its
        messages in the broker's in-flight window until the next reconnect)."""
        backoff = 0.2
        while True:
            started = time.monotonic()
            try:
                try:
                    self.writer.write(lines)
                except WriteError:
                    raise
                except Exception as exc:  # a sink bug or an odd library error
                    log.exception("unexpected error from the sink")
                    raise WriteError(f"{type(exc).__name__}: {exc}", retryable=True) from exc
            except WriteError as exc:
                with self._lock:
                    self.stats.failing = exc.retryable
                    self.stats.last_failure = str(exc)[:500]
                self._on_error(exc, len(lines), backoff)
                if not exc.retryable:
                    return Outcome.DROPPED
                if self._give_up.wait(backoff):
                    return Outcome.GAVE_UP
                backoff = min(backoff * 2, self.retry_max_s)
                continue
            took = time.monotonic() - started
            with self._lock:
                s = self.stats
                s.writes += 1
                s.write_seconds += took
                s.last_write_s = took
                s.failing = False
            return Outcome.STORED

    def _flush(self) -> None:
        """Acknowledge finished batches from the oldest on, in order, exactly once."""
        with self._ack_lock:
            while True:
                with self._lock:
                    if self._halted or not self._order or self._order[0].outcome is None:
                        return
                    batch = self._order[0]
                try:
                    self._on_done(batch)
                except Exception:  # a counter or an ack failing must not stop the others
                    log.exception("finishing a stored batch")
                with self._lock:
                    self._order.popleft()
                    self.stats.in_flight -= 1
                    self.stats.held_messages -= len(batch.msgs)
                    self._lock.notify_all()
