"""The collector process wired together: MQTT -> queue -> ingest -> parallel writes -> ack.

```
 paho thread ──on_message──> bounded queue ──> ingest loop (one thread):
                                                decode + validate   (bad: dead letter, ack)
                                                encode lines, detect findings (per batch)
                                                submit the batch ──> write pool (pipeline.py):
                                                                     up to max_in_flight
                                                                     writes at once, retried
                                                                     with backoff; acks in
                                                                     the order taken
```
A message is acknowledged only after its points are accepted by the sink (or it was
refused as a dead letter), so the broker keeps anything not stored. While the sink is
down the pool retries its batches and, full, blocks the ingest loop, which then takes
one batch more at most (judged as it comes, `_prefetch`) and nothing after it; the
broker stops delivering once `max_pending` messages wait for their ack (MQTT 5 Receive
Maximum). Mosquitto 2.0.11 does not keep to that window (measured: each PUBACK
lets a whole window through), so the bound that holds is ours: the batches held by the
pool (<= max_pending messages together) plus the full queue (max_pending + 1); past that
`_enqueue` blocks paho's thread and TCP pushes back.
Findings go to the ticket service (if any) in the ingest loop, which sees each screen's
snapshots in order; the ticket service's listener adds one `ticket` point per state
change to the next batch. Those points are best-effort history: a crash before that
batch loses them, while the ticket itself is safe in SQL (the source of truth, served by
the API); see docs/delivery.md. Once a batch is stored, its snapshots' seqs go to the
delivery tracker (collector/delivery.py: gaps, duplicates), before the ack.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from collector.api.server import ApiServer, serve_api
from collector.cluster import Ownership
from collector.detect.engine import Detector
from collector.detect.findings import Finding
from collector.influx.errors import WriteError
from collector.influx.lineproto import (
    TicketChangeLike,
    event_line,
    forecast_line,
    snapshot_lines,
    ticket_line,
)
from collector.influx.ops import OpsScheduler, collector_stats
from collector.influx.writers import Writer, make_writer
from collector.ingest.decode import Decoded, DecodeError, decode
from collector.ingest.mqtt_consumer import Inbound, MqttConsumer, MqttOptions
from collector.intake import Cut, Intake, split, split_by_screen
from collector.metrics import PREFIX, Metrics
from collector.pipeline import Batch, Outcome, WritePool
from collector.settings import CollectorSettings
from collector.state import ScreenDirectory, ScreenState
from collector.tickets.errors import TicketConflict

__all__ = ["ApiServer", "Collector", "serve_api"]

log = logging.getLogger(__name__)

_STOP = object()
_MAX_UNAPPLIED = 100_000
# Write a batch early when no message came for this long: the broker sends at most its
# in-flight window before it waits for our acks, so waiting out the whole flush interval
# would cap throughput at one window per interval. Measured (1,000 snapshots, MQTT
# 3.1.1, Mosquitto): 526 msg/s without, 965 msg/s with; a steady inflow still fills
# batches up to batch_size / flush_interval_ms.
_IDLE_FLUSH_S = 0.02


class Collector:
    """One collector process, usable in-process (demo, tests) or from `collector.cli`.

    `tickets` is a `collector.tickets.service.TicketService` or None (data path only);
    the caller owns it (creates and closes it). `writer` overrides `influx.output`.
    """

    def __init__(
        self,
        settings: CollectorSettings,
        *,
        tickets: Any = None,
        writer: Writer | None = None,
        screens: ScreenDirectory | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.settings = settings
        self.tickets = tickets
        self.writer: Writer = writer if writer is not None else make_writer(settings.influx)
        self.screens = screens if screens is not None else ScreenDirectory()
        self.metrics = Metrics()
        self.detector = Detector(settings.detect)
        self._state_name = settings.mqtt.client_id
        self._next_state_save = time.monotonic() + settings.detect_state_save_s
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        inf = settings.influx
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=inf.max_pending + 1)
        self._judge_s = inf.detect_within_ms / 1000.0
        cl = settings.cluster
        self.ownership = Ownership(cl.members, settings.mqtt.client_id, cl.route)
        filters = tuple(self.ownership.filters(settings.mqtt.share_group or None))
        self.consumer = MqttConsumer(
            MqttOptions.from_settings(settings.mqtt, receive_maximum=inf.max_pending,
                                      filters=filters),
            self._enqueue,
            lambda up: self.metrics.set("connected", up),
            keep=self.ownership.keeps if self.ownership.filtering else None,
        )
        self._ticket_lines: list[str] = []
        self._ticket_lock = threading.Lock()
        self._unapplied: list[Finding] = []
        self.delivery = self.metrics.delivery
        self._stopping = threading.Event()
        self._give_up = threading.Event()  # stop() ran out of time: leave unacked
        self._thread: threading.Thread | None = None
        self.pool: WritePool | None = None  # created by start(), once the sink is set up
        self._care: threading.Thread | None = None
        self._ops: threading.Thread | None = None
        self.last_care: Any = None  # collector.care.CareSummary of the latest run
        self.sender: Any = None  # collector.notify.sender.Sender, when [notify] has channels
        # The collector / kpi / open_ticket points for the dashboards (influx/ops.py); the
        # fleet-wide two from one member of a cluster, the one that runs the care job.
        fleet = self.ownership.runs_care
        self.ops = OpsScheduler(
            settings.mqtt.client_id, lambda: collector_stats(self.metrics, self.pool, self.sender),
            tickets=tickets, screens=lambda: [(s.site, s.screen) for s in self.screens.list()],
            clock_ms=self._clock_ms, collector_interval_s=inf.ops_interval_s,
            kpi_interval_s=inf.kpi_interval_s if fleet else 0,
            open_ticket_interval_s=inf.open_ticket_interval_s if fleet else 0,
            on_error=self.metrics.error)
        if tickets is not None:
            tickets.add_listener(self._on_ticket_change)
            self._restore_detector()
            if settings.notify.channels and tickets.router is None:
                from collector.notify.routing import Router

                tickets.router = Router(settings.notify)
            if settings.maintenance:
                added = tickets.sync_windows(settings.maintenance)
                log.info("maintenance windows from the config: %d new", added)

    def _restore_detector(self) -> None:
        saved = self.tickets.load_detector_state(self._state_name)
        if saved is None:
            return
        saved_ms, blob = saved
        if self.detector.load_state(blob):
            age_s = (self._clock_ms() - saved_ms) / 1000
            log.info("detection state restored (%d screens, saved %.0f s ago)",
                     self.detector.screens_tracked, age_s)

    def save_detector_state(self) -> None:
        """Persist detection's rolling state (periodically, and on a clean stop)."""
        if self.tickets is None or self.settings.detect_state_save_s <= 0:
            return
        try:
            self.tickets.save_detector_state(self._state_name, self.detector.dump_state())
        except Exception as exc:  # monitoring goes on; the next save may work
            self.metrics.error(f"saving detection state: {exc}")
            log.exception("could not save the detection state")

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, check_channels: bool = True) -> None:
        """Connect the sink (failures are retried by the loop) and the broker, start the loop.

        With notification channels configured, each is checked first (an unreachable
        one is a ConfigError naming it) and the sender starts delivering the outbox.
        """
        try:
            self.writer.connect()
        except Exception as exc:
            raise WriteError(
                f"cannot set up the {self.settings.influx.output} sink: {exc}", retryable=False
            ) from exc
        if self.tickets is not None and self.settings.notify.channels:
            self._start_sender(check_channels)
        inf = self.settings.influx
        self.pool = WritePool(self.writer, self._batch_done, self._write_failed,
                              max_in_flight=inf.max_in_flight, max_messages=inf.max_pending,
                              retry_max_s=inf.retry_max_s, give_up=self._give_up)
        self._thread = threading.Thread(target=self._run, name="collector-ingest", daemon=True)
        self._thread.start()
        self.consumer.start()
        self._ops = threading.Thread(target=self._ops_loop, name="collector-ops", daemon=True)
        self._ops.start()
        if self.tickets is not None and self.settings.care.enabled and self.ownership.runs_care:
            self._care = threading.Thread(target=self._care_loop, name="collector-care",
                                          daemon=True)
            self._care.start()

    def _ops_loop(self) -> None:
        """The dashboards' own series (influx/ops.py), off the ingest thread: the hourly
        KPIs query the ticket database once per site. Their lines join the next batch,
        like the ticket points."""
        while not self._stopping.wait(1.0):
            lines = self.ops.due_lines()  # never raises: failures are counted and logged
            if lines:
                with self._ticket_lock:
                    self._ticket_lines += lines

    def _care_loop(self) -> None:
        """Proactive care (collector/care.py) off the ingest thread: a report's PDF takes
        seconds to render, and ingest must not wait for it."""
        from collector.care import run_care_jobs
        from collector.reports.source import ReportSource

        source = ReportSource.from_settings(self.settings)
        while not self._stopping.wait(self.settings.care.interval_s):
            try:
                summary = run_care_jobs(self.tickets, self.settings, self._clock_ms(),
                                        screens=self.screens, source=source)
            except Exception as exc:  # run_care_jobs contains its duties' failures
                self.metrics.error(f"care job: {exc!r}")
                log.exception("care job failed")
                continue
            self.last_care = summary
            if summary.errors:
                self.metrics.error(summary.errors[-1])

    def _start_sender(self, check: bool) -> None:
        from collector.notify.build import build_channels, check_channels
        from collector.notify.sender import Sender
        from collector.tickets.outbox import SqlOutbox
        from ledwatch.errors import ConfigError

        tickets = self.tickets

        def open_tickets() -> list[dict[str, Any]]:
            from collector.tickets.service import TicketFilter

            found, _ = tickets.list(TicketFilter(open_only=True), limit=1000)
            return [dataclasses.asdict(t) for t in found]

        channels = build_channels(self.settings.notify, open_tickets=open_tickets,
                                  clock_ms=self._clock_ms)
        if check:
            problems = check_channels(self.settings.notify, channels)
            if problems:
                for channel in channels.values():
                    channel.close()
                raise ConfigError("; ".join(problems))
        # The claim owner is the MQTT client id, fixed per collector: restarted, it takes
        # back at once what it held when it died; another collector waits for the lease.
        store = SqlOutbox(tickets.engine, owner=self.settings.mqtt.client_id)
        self.sender = Sender(store, channels, self._clock_ms, self.settings.notify)
        self.sender.start()
        log.info("notifications: %d channel(s), %d route(s)", len(channels),
                 len(self.settings.notify.routes))

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop taking messages, store and ack what was taken, then disconnect.

        If the sink is still down after `timeout_s`, the taken messages stay
        unacknowledged: the broker redelivers them to the next session.
        """
        if self._thread is None:
            return
        self.consumer.pause()
        self._stopping.set()
        with contextlib.suppress(queue.Full):  # then the loop sees _stopping once drained
            self._queue.put_nowait(_STOP)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._give_up.set()
            self._thread.join(5.0)
        self.save_detector_state()
        if self._care is not None:
            self._care.join(30.0)  # finishing a report in progress
            self._care = None
        if self._ops is not None:
            self._ops.join(10.0)
            self._ops = None
        if self.sender is not None:
            self.sender.stop()
        self.consumer.stop()
        if self.pool is not None:
            self.pool.close()
        self.writer.close()
        self._thread = None

    def wait_connected(self, timeout_s: float = 10.0) -> bool:
        return self.consumer.wait_connected(timeout_s)

    # -- health ---------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        broker = self.consumer.connected
        reachable = self.writer.ping()
        # A server that answers /ping but refuses the writes (401/403 after a token
        # change, 5xx, a full disk) is failing too: the latest write attempt decides.
        writes = self.pool.stats if self.pool is not None else None
        failing = writes is not None and writes.failing
        influx: dict[str, Any] = {"ok": reachable and not failing,
                                  "output": self.settings.influx.output}
        if failing and writes is not None:
            influx["error"] = f"writes failing: {writes.last_failure}"
        elif not reachable:
            influx["error"] = "not reachable"
        database = True
        if self.tickets is not None:
            try:
                # TicketService.ping() raises when the database is unreachable.
                database = self.tickets.ping() is not False
            except Exception:
                database = False
        snap = self.metrics.snapshot()
        parts: dict[str, Any] = {}
        notify_ok = True
        if self.sender is not None:
            stats = self.sender.stats()
            notify_ok = not stats["down"] and stats["running"]
            parts["notify"] = {"ok": notify_ok, **stats}
        healthy = broker and influx["ok"] and database and notify_ok
        return {
            "status": "ok" if healthy else "degraded",
            **parts,
            "broker": {
                "ok": broker,
                "host": self.settings.mqtt.host,
                "port": self.settings.mqtt.port,
            },
            "database": {"ok": database, "enabled": self.tickets is not None},
            "influx": influx,
            "pending": snap["pending"],
            "last_error": snap["last_error"],
        }

    def metrics_text(self) -> str:
        text: str = self.metrics.render()
        if self.pool is not None:
            text += _write_metrics(self.pool)
        if self.ownership.filtering:
            name = f"{PREFIX}other_agents_messages_total"
            text += (f"# HELP {name} Messages of agents other collectors own, acked unread.\n"
                     f"# TYPE {name} counter\n{name} {self.consumer.skipped}\n")
        if self.sender is not None:
            text += self.sender.metrics_text()
        return text

    def status_line(self) -> str:
        s = self.metrics.snapshot()
        received = s["received"]
        dead = s["dead_letters"]
        assert isinstance(received, dict) and isinstance(dead, dict)
        return (
            f"broker={'up' if s['connected'] else 'down'} received={sum(received.values())} "
            f"stored_points={s['stored_points']} dead_letters={sum(dead.values())} "
            f"pending={s['pending']} findings={s['findings']} seq_gaps={s['seq_gaps']} "
            f"seq_missing={s['seq_missing']} seq_duplicates={s['seq_duplicates']}"
            + ("" if self.pool is None else f" writes_in_flight={self.pool.stats.in_flight}")
            + (f" other_agents={self.consumer.skipped}" if self.ownership.filtering else "")
            + ("" if self.sender is None else f" {self.sender.status_text()}")
        )

    # -- paho thread ----------------------------------------------------------------------

    def _enqueue(self, msg: Inbound) -> None:
        # Blocks only if the broker ignored Receive Maximum (MQTT 3.1.1, Mosquitto 2.0.11
        # after acks): that stalls paho's loop, which is the backpressure left then.
        while not self._stopping.is_set():
            try:
                self._queue.put(msg, timeout=0.5)
            except queue.Full:
                continue
            self.metrics.inc("pending")
            return

    def _on_ticket_change(self, change: TicketChangeLike) -> None:
        # Called by the ticket service from any thread (also API requests).
        line = ticket_line(change)
        with self._ticket_lock:
            self._ticket_lines.append(line)
        if self.sender is not None:
            self.sender.wake()  # its outbox rows are committed: deliver now, not next second

    # -- writer loop ----------------------------------------------------------------------

    def _run(self) -> None:
        inf = self.settings.influx
        pool = self.pool
        assert pool is not None
        flush_s = inf.flush_interval_ms / 1000.0
        next_agent_check = time.monotonic() + 1.0
        nxt = Intake()
        while True:
            cur, nxt = nxt, Intake()
            msgs, docs, lines = cur.msgs, cur.docs, cur.lines
            stopping = cur.stop
            deadline: float | None = cur.taken_s + flush_s if msgs else None
            room = min(inf.max_pending, pool.room())
            # A live inflow fills a 10,000-line batch in a third of a second or more:
            # once the queue is empty (caught up), its snapshots are judged as they age
            # past detect_within_ms, not when the batch is written (fault -> ticket
            # latency). A backlog never empties the queue: it is judged in whole
            # intakes, which costs less per snapshot (docs/hot-path.md).
            while not stopping and len(lines) < inf.batch_size and len(msgs) < room:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                self._judge_if_due(cur, now)
                timeout = 0.5 if deadline is None else min(deadline - now, _IDLE_FLUSH_S)
                try:
                    item = self._queue.get(timeout=timeout)
                except queue.Empty:
                    break  # idle (housekeeping) or the inflow paused: write what we have
                if item is _STOP:
                    stopping = True
                    break
                if deadline is None:
                    deadline = time.monotonic() + flush_s
                msgs.append(item)
                self._decode_one(item, cur)
                cur.taken(time.monotonic(), self._judge_s)
            cuts: list[Cut] = []
            if not stopping and len(lines) >= inf.batch_size:
                stopping = self._take_backlog(cur, cuts, room)
            if stopping:
                while self._take_queued(cur):
                    pass  # past the stop marker too: taken is stored before we go
            lines += self._detect(docs[cur.judged:])
            if time.monotonic() >= next_agent_check:
                next_agent_check = time.monotonic() + 1.0
                now_ms = self._clock_ms()
                self._apply(self.detector.check_agents(now_ms))
                self._tick(now_ms)
            if self.settings.detect_state_save_s and time.monotonic() >= self._next_state_save:
                self._next_state_save = time.monotonic() + self.settings.detect_state_save_s
                self.save_detector_state()
            with self._ticket_lock:
                lines += self._ticket_lines
                self._ticket_lines = []
            batches = (split_by_screen(cur, cuts, inf.batch_size) if inf.group_screens
                       else split(cur, cuts))
            # Freed here, while still warm in the caches, rather than by a write thread
            # after the ack: 2,500 objects a document (docs/hot-path.md, item 16).
            cur.clear_docs()
            unsent = len(msgs)  # the intake's messages not yet handed to the pool
            for batch in batches:
                def take_more(held: int = unsent, into: Intake = nxt) -> None:
                    self._prefetch(into, min(inf.max_pending, pool.room()) - held)

                if (batch.msgs or batch.lines) and not pool.submit(
                        batch, None if stopping else take_more):
                    return  # stop() gave up: leave the batch unacknowledged
                unsent -= len(batch.msgs)
            if stopping or (self._stopping.is_set() and self._queue.empty()
                            and not nxt.msgs and not nxt.stop):
                # Taken is stored and acked before we go (or stop() gives up waiting).
                while not pool.wait_idle(0.5):
                    if self._give_up.is_set():
                        return
                return

    def _judge_if_due(self, intake: Intake, now: float) -> None:
        """The loop's judging rule: once the queue is empty (caught up) and the oldest
        unjudged snapshot has waited detect_within_ms, judge what is unjudged."""
        if intake.judge_at is not None and now >= intake.judge_at and self._queue.empty():
            intake.lines += self._detect(intake.docs[intake.judged:])
            intake.judged, intake.judge_at = len(intake.docs), None

    def _prefetch(self, nxt: Intake, room: int) -> None:
        """While `submit` waits for a write slot: take what is queued into the next intake
        (up to one batch and `room` messages) and judge it by the loop's rule, so a live
        fault is judged on arrival, not after the next write. A backlog never empties the
        queue; it is judged later, in whole intakes."""
        now = time.monotonic()
        if not nxt.msgs:
            nxt.taken_s = now
        if not nxt.stop:
            nxt.stop = self._take_queued(nxt, self.settings.influx.batch_size, room)
        nxt.taken(now, self._judge_s)
        self._judge_if_due(nxt, time.monotonic())

    def _batch_done(self, batch: Batch) -> None:
        """Runs once per batch, in the order taken, after it was stored or refused."""
        if batch.outcome == Outcome.STORED:
            if batch.lines:
                self.metrics.inc("stored_points", len(batch.lines))
                self.metrics.inc("stored_batches")
            # Refused (dropped) snapshots are not recorded, so they show as missing.
            self.delivery.record_seqs(batch.seqs)
        elif batch.outcome == Outcome.DROPPED:
            self.metrics.inc("dropped_points", len(batch.lines))
        self.consumer.ack_many(batch.msgs)
        if batch.msgs:
            self.metrics.inc("pending", -len(batch.msgs))

    def _write_failed(self, exc: WriteError, n_lines: int, backoff_s: float) -> None:
        self.metrics.inc("write_errors", label="retryable" if exc.retryable else "fatal")
        self.metrics.error(str(exc))
        if exc.retryable:
            log.warning("write of %d points failed, retry in %.1f s: %s", n_lines, backoff_s, exc)
        else:
            log.error("sink refused %d points as bad data, dropped: %s", n_lines, exc)

    def _take_backlog(self, intake: Intake, cuts: list[Cut], room: int) -> bool:
        """A full batch taken and more already queued (a backlog): take up to
        `intake_batches` write batches, judged as one and written as several. Detection
        costs less per snapshot in bigger batches (docs/hot-path.md); nothing waits
        for more to come, so a live inflow is judged as soon as before. Records where
        each write batch ends in `cuts`; True when the stop marker was taken."""
        size = self.settings.influx.batch_size
        msgs, lines = intake.msgs, intake.lines
        for _ in range(self.settings.influx.intake_batches - 1):
            if len(lines) < size * (len(cuts) + 1) or len(msgs) >= room:
                return False
            cuts.append((len(msgs), len(intake.docs), len(lines)))
            if self._take_queued(intake, size * (len(cuts) + 1), room):
                return True
        return False

    def _take_queued(
        self, intake: Intake, max_lines: float = float("inf"), max_msgs: float = float("inf"),
    ) -> bool:
        """Takes what is queued, without waiting, until the queue is empty or the intake
        holds `max_lines` lines or `max_msgs` messages; True when it took the stop marker
        (and stopped there)."""
        msgs, lines = intake.msgs, intake.lines
        while len(lines) < max_lines and len(msgs) < max_msgs:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False
            if item is _STOP:
                return True
            msgs.append(item)
            self._decode_one(item, intake)
        return False

    def _decode_one(self, msg: Inbound, intake: Intake) -> None:
        try:
            decoded = decode(msg.topic, msg.payload)
        except DecodeError as exc:
            self.metrics.inc("dead_letters", label=exc.reason)
            self.metrics.error(str(exc))
            log.warning("dead letter (%s) on %s: %s", exc.reason, msg.topic, exc)
            return
        self.metrics.inc("received", label=decoded.kind)
        try:
            self._accept(decoded, msg, intake)
        except Exception as exc:  # a bug must cost one message, never the writer loop
            self.metrics.inc("dead_letters", label="internal")
            self.metrics.error(f"{msg.topic}: {exc!r}")
            log.exception("internal error on a message from %s (acked, not stored)", msg.topic)

    def _accept(self, decoded: Decoded, msg: Inbound, intake: Intake) -> None:
        doc = decoded.doc
        if decoded.kind == "telemetry":
            intake.add_doc(doc, snapshot_lines(doc))
            self.screens.update(
                ScreenState(
                    site=doc["site"],
                    screen=doc["screen"],
                    agent=doc["agent"],
                    seq=doc["seq"],
                    ts_ms=doc["ts"],
                    snapshot=doc,
                    received_ms=msg.received_ms,
                )
            )
        elif decoded.kind == "event":
            line = event_line(doc)
            if line is not None:
                intake.lines.append(line)
            if self.tickets is not None:
                try:
                    self.tickets.record_event(doc)
                except Exception as exc:  # the event is stored; its history entry is extra
                    self.metrics.error(f"ticket service: {exc}")
                    log.exception("could not add an event to its ticket's history")
        elif decoded.kind == "status":
            self.screens.set_agent_status(decoded.site, decoded.name, doc)
            self._apply(
                self.detector.process_status(decoded.site, decoded.name, doc, msg.received_ms)
            )

    def _detect(self, docs: list[dict[str, Any]]) -> list[str]:
        """Judge the batch; returns the forecast points to store with it."""
        if not docs:
            return []
        try:
            findings = self.detector.process(docs, self._clock_ms())
        except Exception as exc:  # storing the data matters more than one batch's findings
            self.metrics.error(f"detection: {exc!r}")
            log.exception("detection failed on a batch of %d snapshots", len(docs))
            return []
        self._apply(findings)
        forecasts, self.detector.forecasts = self.detector.forecasts, []
        return [forecast_line(f) for f in forecasts]

    def _tick(self, now_ms: int) -> None:
        if self.tickets is None:
            return
        try:
            self.tickets.tick(now_ms)
        except TicketConflict as exc:
            # Another collector of the cluster opened the same ticket first (a maintenance
            # window ended on both): its commit stands, ours is redone on the next tick.
            log.info("ticket tick lost a race to another collector (%s); retried", exc)
        except Exception as exc:
            self.metrics.error(f"ticket service: {exc}")
            log.exception("ticket service tick failed")

    def _apply(self, findings: list[Finding]) -> None:
        if findings:
            self.metrics.inc("findings", len(findings))
            for f in findings:
                log.info(
                    "finding %s %s%s",
                    f.key,
                    "ACTIVE" if f.active else "cleared",
                    f" ({f.detail})" if f.detail else "",
                )
        if self.tickets is None:
            return
        batch = self._unapplied + findings
        if not batch:
            return
        try:
            self.tickets.apply_findings(batch)
        except Exception as exc:
            # Detection state has moved on, so keep the findings and retry next batch.
            self.metrics.inc("ticket_errors")
            self.metrics.error(f"ticket service: {exc}")
            log.exception("ticket service failed on %d findings", len(batch))
            self._unapplied = batch[-_MAX_UNAPPLIED:]
        else:
            self._unapplied = []


def _write_metrics(pool: WritePool) -> str:
    """The write pool's gauges and counters, Prometheus text."""
    st = dataclasses.replace(pool.stats)  # a copy: workers update it
    rows = (
        ("writes_in_flight", "gauge", "Batches being written or waiting for their acks.",
         st.in_flight),
        ("writes_in_flight_max", "gauge", "The most batches written at once (max_in_flight).",
         pool.max_in_flight),
        ("write_requests_total", "counter", "Write requests the sink accepted.", st.writes),
        ("write_seconds_total", "counter", "Time spent in accepted write requests.",
         round(st.write_seconds, 6)),
        ("write_last_seconds", "gauge", "Duration of the latest accepted write request.",
         round(st.last_write_s, 6)),
        ("write_failing", "gauge", "1 while the latest write attempt failed.", int(st.failing)),
    )
    out: list[str] = []
    for name, kind, help_, value in rows:
        out += [f"# HELP {PREFIX}{name} {help_}", f"# TYPE {PREFIX}{name} {kind}",
                f"{PREFIX}{name} {value}"]
    return "\n".join(out) + "\n"
