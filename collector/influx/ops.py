"""The collector's own series for the dashboards: its health, the KPIs, the open tickets.

```
 measurement  tags                                 written                       timestamp
 collector    collector (MQTT client id)           every ops_interval_s          now
 kpi          scope = fleet | site, site           every kpi_interval_s, start   UTC 00:00
 open_ticket  priority, screen, site, ticket (id)  every open_ticket_interval_s  now
                                                   and soon after ticket changes
```
docs/dashboards.md "Measurements" lists the fields. The KPIs and the open tickets live
in SQL (the source of truth, served by the API); Grafana reads only InfluxDB, so the
collector copies what the SLA dashboard needs. Series and timestamps are chosen with
InfluxDB's rule in mind that a point with the same series and timestamp overwrites
(merges into) the earlier one:

* `kpi` has one point per scope and UTC day: each run overwrites the day's point with
  the month's KPIs so far, so the last point of a day is that day's month-to-date;
* `open_ticket` gets a point per open ticket and refresh (every minute by default, on
  the minute), timestamped with the refresh: a panel reads the newest point of each
  ticket. Not floored to the minute, because InfluxDB merges the fields of two writes of
  one point: a clock left out once its step is done would live on from the minute's
  earlier write. When a ticket leaves the open set (closed) or moves to another series
  (its priority was raised), one last point `open=false` is written on its old series,
  so "open now" panels drop it at once instead of showing it until it ages out.

The line builders are pure. `OpsScheduler` decides what is due from the wall clock and
only then calls its sources (the collector's counters, the ticket service): the ingest
loop pays a few comparisons per batch when nothing is due. Types never change per field
(InfluxDB refuses a point whose field changes type): counters are always integers (`i`),
durations and rates always floats, flags booleans.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

# The same spelling of each type as the telemetry (one rule for every measurement).
from collector.influx.lineproto import Formatter, _bool, _float, _int, escape_str, escape_tag

log = logging.getLogger(__name__)

MS_PER_MINUTE = 60_000
MS_PER_DAY = 86_400_000
# A ticket change asks for a fresh `open_ticket` run, at most this often: a burst of
# findings (a whole screen going dark) must not turn into one SQL read per change.
POKE_GAP_MS = 2_000
# After a failed run (database down), wait this long before trying again rather than
# logging the same error on every batch.
RETRY_MS = 30_000
_PAGE = 1000  # open tickets read per query


def _fields(pairs: Iterable[tuple[str, str | None]]) -> str:
    return ",".join(f"{k}={v}" for k, v in pairs if v is not None)


# -- collector: the process's own health ------------------------------------------------

# name -> formatter; the order is the order on the line. Counters since the process
# started (Grafana takes `non_negative_derivative`), gauges as they are now.
COLLECTOR_FIELDS: tuple[tuple[str, Formatter], ...] = (
    ("received", _int),  # MQTT messages decoded (all kinds)
    ("stored_points", _int),
    ("stored_batches", _int),
    ("dead_letters", _int),
    ("write_errors", _int),
    ("dropped_points", _int),
    ("pending", _int),  # gauge: received, not yet acknowledged
    ("writes_in_flight", _int),  # gauge
    ("held_messages", _int),  # gauge: messages in the batches in flight
    ("write_requests", _int),
    ("write_seconds", _float),  # latency = derivative(write_seconds) / derivative(requests)
    ("write_failing", _bool),
    ("seq_gaps", _int),  # gauge: open gaps
    ("seq_missing", _int),  # gauge
    ("seq_duplicates", _int),
    ("findings", _int),
    ("ticket_errors", _int),
    ("ops_errors", _int),  # failed runs of this module's jobs
    ("broker_connected", _bool),
    ("notify_sent", _int),
    ("notify_failed", _int),
    ("notify_retrying", _int),  # gauge: notifications waiting for a retry
    ("notify_given_up", _int),
    ("notify_channels_down", _int),  # gauge
    ("uptime_s", _float),
)


class MetricsLike(Protocol):
    """What `collector_stats` reads of `collector.metrics.Metrics`."""

    started_ts: float

    def snapshot(self) -> dict[str, object]: ...


class PoolLike(Protocol):
    """What it reads of `collector.pipeline.WritePool` (its `stats` is a `WriteStats`)."""

    @property
    def stats(self) -> Any: ...


class SenderLike(Protocol):
    """What it reads of `collector.notify.sender.Sender`."""

    def stats(self) -> dict[str, Any]: ...


def _total(value: object) -> int:
    """The sum of a counter kept per label (received by kind, dead letters by reason)."""
    assert isinstance(value, Mapping), value
    return sum(int(v) for v in value.values())


def collector_stats(
    metrics: MetricsLike,
    pool: PoolLike | None,
    sender: SenderLike | None,
    now_s: float | None = None,
) -> dict[str, Any]:
    """The collector's counters flattened for `collector_line` (one dict, one moment).

    The pool and the sender exist only once the collector started (the sender only
    with notification channels): their fields are left out until then."""
    snap = metrics.snapshot()
    out: dict[str, Any] = {
        "received": _total(snap["received"]),
        "dead_letters": _total(snap["dead_letters"]),
        "write_errors": _total(snap["write_errors"]),
        "broker_connected": bool(snap["connected"]),
        "uptime_s": (time.time() if now_s is None else now_s) - metrics.started_ts,
    }
    for key in ("stored_points", "stored_batches", "dropped_points", "pending", "findings",
                "ticket_errors", "seq_gaps", "seq_missing", "seq_duplicates"):
        out[key] = snap[key]
    if pool is not None:
        st = dataclasses.replace(pool.stats)  # a copy: the write workers update it
        out.update(writes_in_flight=st.in_flight, held_messages=st.held_messages,
                   write_requests=st.writes, write_seconds=st.write_seconds,
                   write_failing=st.failing)
    if sender is not None:
        s = sender.stats()
        out.update(notify_sent=s["sent"], notify_failed=s["failed"],
                   notify_retrying=s["retrying"], notify_given_up=s["given_up"],
                   notify_channels_down=len(s["down"]))
    return out


def collector_line(collector_id: str, stats: Mapping[str, Any], ts_ms: int) -> str | None:
    """One `collector` point; keys of `stats` not in COLLECTOR_FIELDS are ignored, None
    values left out. None when nothing is left."""
    fields = _fields((name, None if (v := stats.get(name)) is None else fmt(v))
                     for name, fmt in COLLECTOR_FIELDS)
    if not fields:
        return None
    return f"collector,collector={escape_tag(collector_id)} {fields} {int(ts_ms)}"


# -- kpi: the month's KPIs so far, one point per UTC day ---------------------------------


class KpisLike(Protocol):
    """A `collector.tickets.kpis.Kpis` (a dataclass): `month`, `site`, then the KPIs."""

    @property
    def month(self) -> str: ...
    @property
    def site(self) -> str | None: ...


_KPI_TAG_FIELDS = frozenset({"month", "site"})
_HINTS: dict[type, dict[str, Any]] = {}


def _kind(annotation: Any) -> Any:
    """The stored type of a declared field: int, float, bool, str, or ("dict", inner)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return _kind(args[0]) if len(args) == 1 else None
    if origin is dict:
        return ("dict", _kind(args[1]))
    return annotation if annotation in (bool, int, float, str) else None


_FORMAT: dict[Any, Formatter] = {bool: _bool, int: _int, float: _float,
                                 str: lambda v: escape_str(str(v))}


def _flatten(prefix: str, value: Any, kind: Any) -> Iterable[tuple[str, str]]:
    """A dict field as one field per key (nested dicts joined with `_`), nulls left out."""
    if not isinstance(value, Mapping):
        return
    for key in sorted(value, key=str):
        inner = value[key]
        name = f"{prefix}_{key}"
        if isinstance(kind, tuple):
            yield from _flatten(name, inner, kind[1])
        elif inner is not None and kind in _FORMAT:
            yield escape_tag(name), _FORMAT[kind](inner)


def kpi_fields(kpis: Any) -> list[tuple[str, str]]:
    """(field key, formatted value) for every KPI of the dataclass, in declaration order.

    The format follows the field's declared type, not the value, so a float KPI that is
    exactly 1 is still written as a float. A dict `<x>_by_<y>` becomes `<x>_<key>` per key
    (`failures_by_component` -> `failures_card`, ...; `mtbf_h_by_model` ->
    `mtbf_h_<kind>_<model>`). Null values are left out; `month` and `site` are not KPIs
    (`kpi_line` writes them as a field and a tag)."""
    cls = type(kpis)
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    out: list[tuple[str, str]] = []
    for f in dataclasses.fields(kpis):
        if f.name in _KPI_TAG_FIELDS:
            continue
        kind = _kind(hints[f.name])
        value = getattr(kpis, f.name)
        if isinstance(kind, tuple):
            out += _flatten(f.name.split("_by_", 1)[0], value, kind[1])
        elif value is not None and kind in _FORMAT:
            out.append((escape_tag(f.name), _FORMAT[kind](value)))
    return out


def kpi_line(kpis: KpisLike, ts_ms: int) -> str:
    """One `kpi` point: scope `fleet` (site None) or `site` with the site as a tag."""
    tags = "scope=fleet" if kpis.site is None else f"scope=site,site={escape_tag(kpis.site)}"
    fields = _fields([("month", escape_str(kpis.month)), *kpi_fields(kpis)])
    return f"kpi,{tags} {fields} {int(ts_ms)}"


def day_start_ms(now_ms: int) -> int:
    return now_ms - now_ms % MS_PER_DAY


def month_of(now_ms: int) -> str:
    """`YYYY-MM` of `now_ms` in UTC, the month `TicketService.kpis` takes."""
    return datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y-%m")


# -- open_ticket: every ticket not closed, with its SLA clocks ---------------------------


def _left_min(ms: int) -> float:
    return ms / MS_PER_MINUTE


def open_ticket_tags(t: Any) -> str:
    """The series of a ticket's point (a priority change moves it to another series)."""
    return (f"priority={escape_tag(str(t.priority))},screen={escape_tag(str(t.screen))},"
            f"site={escape_tag(str(t.site))},ticket={int(t.id)}")


def open_ticket_line(t: Any, now_ms: int) -> str:
    """One `open_ticket` point of a `collector.tickets.models.Ticket`, at `now_ms`.

    `<clock>_left_min` is deadline minus now in minutes (negative once passed; frozen
    while the ticket is paused), written while that clock runs: the same clocks and
    rules as the desk's countdowns (collector/api/desk/views.py `clocks`), so response
    and on-site disappear once acknowledged / arrived or when the fault cleared
    (verifying), resolve once resolved. `<clock>_breached` is the desk's "late": the SLA
    check recorded a breach, the step was done late, or it is still due and overdue."""
    from collector.api.desk.views import clocks  # pure; the desk owns the clock rules

    by_name = {c.name: c for c in clocks(t, now_ms)}
    fields: list[tuple[str, str | None]] = [
        ("open", "true"),
        ("state", escape_str(str(t.state))),
        ("fault", escape_str(str(t.fault))),
        ("component", escape_str(str(t.component))),
    ]
    for name, key in (("response", "response"), ("on site", "onsite"), ("resolve", "resolve")):
        c = by_name.get(name)
        fields.append((f"{key}_left_min",
                       _float(_left_min(c.remaining_ms)) if c is not None and c.pending else None))
    for name, key in (("response", "response"), ("on site", "onsite")):
        c = by_name.get(name)
        fields.append((f"{key}_breached", _bool(c is not None and c.late)))
    fields += [("paused", _bool(t.paused_ms is not None)),
               ("escalation_level", _int(t.escalation_level or 0))]
    return f"open_ticket,{open_ticket_tags(t)} {_fields(fields)} {int(now_ms)}"


def gone_ticket_line(tags: str, still_open: bool, now_ms: int) -> str:
    """The last point of a series a ticket left: closed, or moved (priority changed)."""
    state = "moved" if still_open else "closed"
    return f"open_ticket,{tags} open=false,state={escape_str(state)} {int(now_ms)}"


# -- the scheduler ------------------------------------------------------------------------


class TicketSource(Protocol):
    """What the scheduler reads of `collector.tickets.service.TicketService`."""

    def list(self, filters: Any = None, limit: int = 100, offset: int = 0
             ) -> tuple[Sequence[Any], int]: ...
    def kpis(self, month: str, site: str | None = None,
             screens: Iterable[tuple[str, str]] = ()) -> Any: ...
    def screens(self) -> set[tuple[str, str]]: ...
    def add_listener(self, fn: Callable[[Any], None]) -> None: ...


@dataclass
class _Job:
    """Runs once per slot of `period_ms` of the wall clock (so a minute job runs at the
    start of each minute), at once the first time, again `RETRY_MS` after a failure."""

    name: str
    period_ms: int
    run: Callable[[int], list[str]]
    slot: int | None = None
    retry_ms: int | None = None
    last_ms: int = 0

    def due(self, now_ms: int, poked: bool = False) -> bool:
        if self.period_ms <= 0:
            return False
        if self.retry_ms is not None:
            return now_ms >= self.retry_ms
        if poked and now_ms - self.last_ms >= POKE_GAP_MS:
            return True
        return now_ms // self.period_ms != self.slot


class OpsScheduler:
    """Says which of the three measurements are due and builds their lines.

    `due_lines()` is called by the collector's ingest loop before each batch is handed
    to the write pool (like the `ticket` points); it never raises: a failing job is
    logged, counted (`errors`, written as `ops_errors`), reported to `on_error` and
    tried again after `RETRY_MS`. With `tickets` None only `collector` is written. The
    scheduler listens to the ticket service so that a ticket change refreshes
    `open_ticket` within a loop round (at most every `POKE_GAP_MS`), not a minute later.
    """

    def __init__(
        self,
        collector_id: str,
        stats: Callable[[], Mapping[str, Any]],
        *,
        tickets: TicketSource | None = None,
        screens: Callable[[], Iterable[tuple[str, str]]] = tuple,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        collector_interval_s: float = 10.0,
        kpi_interval_s: float = 3600.0,
        open_ticket_interval_s: float = 60.0,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.collector_id = collector_id
        self._stats = stats
        self._tickets = tickets
        self._screens = screens
        self._clock_ms = clock_ms
        self._on_error = on_error
        self.errors = 0
        self._poked = threading.Event()
        self._written: dict[int, str] = {}  # ticket id -> series of its latest point
        no_tickets = tickets is None
        self._jobs = [
            _Job("collector", round(collector_interval_s * 1000), self._collector),
            _Job("kpi", 0 if no_tickets else round(kpi_interval_s * 1000), self._kpi),
            _Job("open_ticket", 0 if no_tickets else round(open_ticket_interval_s * 1000),
                 self._open_tickets),
        ]
        if tickets is not None:
            tickets.add_listener(self._ticket_changed)

    def _ticket_changed(self, change: Any) -> None:
        # Called by the ticket service from any thread, after its commit.
        self._poked.set()

    def due_lines(self) -> list[str]:
        """The lines of every job due now (usually none)."""
        now = self._clock_ms()
        poked = self._poked.is_set()
        lines: list[str] = []
        for job in self._jobs:
            is_open = job.name == "open_ticket"
            if not job.due(now, poked and is_open):
                continue
            if is_open:
                self._poked.clear()  # a change during the run pokes again
            try:
                lines += job.run(now)
            except Exception as exc:  # monitoring goes on; the next attempt may work
                self.errors += 1
                job.retry_ms = now + RETRY_MS
                message = f"ops job {job.name}: {exc!r}"
                log.exception("writing the %s measurement failed", job.name)
                if self._on_error is not None:
                    self._on_error(message)
                continue
            job.slot, job.retry_ms, job.last_ms = now // job.period_ms, None, now
        return lines

    # -- the jobs -------------------------------------------------------------------------

    def _collector(self, now_ms: int) -> list[str]:
        stats = dict(self._stats())
        stats["ops_errors"] = self.errors
        line = collector_line(self.collector_id, stats, now_ms)
        return [] if line is None else [line]

    def _kpi(self, now_ms: int) -> list[str]:
        assert self._tickets is not None
        month, ts = month_of(now_ms), day_start_ms(now_ms)
        live = set(self._screens())
        sites = sorted({site for site, _ in live | self._tickets.screens()})
        lines = [kpi_line(self._tickets.kpis(month, None, screens=live), ts)]
        for site in sites:
            mine = {s for s in live if s[0] == site}
            lines.append(kpi_line(self._tickets.kpis(month, site, screens=mine), ts))
        return lines

    def _open_tickets(self, now_ms: int) -> list[str]:
        from collector.tickets.core import TicketFilter  # SQL side: only when due

        assert self._tickets is not None
        found: list[Any] = []
        while True:
            page, total = self._tickets.list(TicketFilter(open_only=True), limit=_PAGE,
                                             offset=len(found))
            found += page
            if not page or len(found) >= total:
                break
        lines: list[str] = []
        written: dict[int, str] = {}
        for t in found:
            written[int(t.id)] = open_ticket_tags(t)
            lines.append(open_ticket_line(t, now_ms))
        for ticket_id, tags in self._written.items():
            if written.get(ticket_id) != tags:
                lines.append(gone_ticket_line(tags, ticket_id in written, now_ms))
        self._written = written
        return lines
