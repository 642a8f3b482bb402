"""Monthly service-desk KPIs (pure): rows in, numbers out. docs/tickets.md has the formulas.

A rate or mean whose denominator is 0 is None ("no data"), never 0.
"""

from __future__ import annotations

import calendar
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from collector.detect.findings import AGENT_SCREEN
from collector.tickets.errors import TicketInputError
from collector.tickets.models import Survey, Ticket
from collector.tickets.spares import InstalledComponent, failure_kind, hours_between

_MONTH = re.compile(r"[0-9]{4}-[0-9]{2}", re.ASCII)
_MS_PER_DAY = 86_400_000
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class Downtime:
    site: str
    screen: str
    start_ms: int
    end_ms: int | None  # None: still dark


class TaskLike(Protocol):
    """What the compliance KPIs read of a task (tasks.Task)."""

    @property
    def kind(self) -> str: ...
    @property
    def due_ms(self) -> int: ...
    @property
    def done_ms(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Kpis:
    month: str
    site: str | None
    tickets_opened: int
    tickets_closed: int
    satisfaction_rate: float | None
    surveyed: int
    cycle_compliance_rate: float | None
    repeat_service_rate: float | None
    mtta_min: float | None
    mttr_min: float | None
    response_compliance_rate: float | None
    onsite_compliance_rate: float | None
    availability: float | None
    screens: int
    downtime_min: float
    failures_by_component: dict[str, int] = field(default_factory=dict)
    response_breaches: int = 0  # response deadlines that passed in the month without acknowledge
    onsite_breaches: int = 0
    inspection_compliance_rate: float | None = None
    followup_compliance_rate: float | None = None
    inspections_due: int = 0  # the compliance rates' denominators
    followups_due: int = 0
    # kind -> model -> installed unit-hours in the month / failures in the month
    mtbf_h_by_model: dict[str, dict[str, float | None]] = field(default_factory=dict)


def _unfixed_at(t: Ticket, ts_ms: int) -> bool:
    done = [v for v in (t.cleared_ms, t.resolved_ms, t.closed_ms) if v is not None]
    return not done or min(done) > ts_ms


def month_bounds(month: str) -> tuple[int, int]:
    """`YYYY-MM` (years 0001..9999) -> [start, end) in ms, UTC.

    The end is counted in days from the start, not built as a datetime: the month after
    9999-12 has no datetime, but its first millisecond is a plain int64.
    """
    bad = TicketInputError(f"month must be YYYY-MM (e.g. 2026-03), got {month!r}")
    if not isinstance(month, str) or not _MONTH.fullmatch(month):
        raise bad
    year, mon = int(month[:4]), int(month[5:])
    if year < 1 or not 1 <= mon <= 12:
        raise bad
    start = (date(year, mon, 1) - _EPOCH).days * _MS_PER_DAY
    return start, start + calendar.monthrange(year, mon)[1] * _MS_PER_DAY


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def _mean_min(values: Sequence[int]) -> float | None:
    return sum(values) / len(values) / 60_000 if values else None


def _in(ts: int | None, start: int, end: int) -> bool:
    return ts is not None and start <= ts < end


def _dark_ms(intervals: Iterable[tuple[int, int]]) -> int:
    """Length of the union of intervals (overlaps count once)."""
    total, cur_start, cur_end = 0, None, None
    for a, b in sorted(intervals):
        if cur_end is None or a > cur_end:
            if cur_end is not None and cur_start is not None:
                total += cur_end - cur_start
            cur_start, cur_end = a, b
        else:
            cur_end = max(cur_end, b)
    if cur_end is not None and cur_start is not None:
        total += cur_end - cur_start
    return total


def compute_kpis(
    month: str,
    tickets: Iterable[Ticket],
    surveys: Iterable[Survey],
    downtimes: Iterable[Downtime],
    screens: set[tuple[str, str]],
    now_ms: int,
    site: str | None = None,
    tasks: Iterable[TaskLike] = (),
    components: Iterable[InstalledComponent] = (),
) -> Kpis:
    """KPIs of `month`; inputs may hold more than the month, filtering happens here.

    `tasks` (proactive care) and `components` (the installed base) must already be
    limited to `site`."""
    start, end = month_bounds(month)
    tickets = list(tickets)
    opened = [t for t in tickets if _in(t.opened_ms, start, end)]
    closed = [t for t in tickets if t.state == "closed" and _in(t.closed_ms, start, end)]

    month_surveys = [s for s in surveys if _in(s.ts_ms, start, end)]
    satisfied = sum(1 for s in month_surveys if s.satisfied)

    def finished_ms(t: Ticket) -> int:
        return t.resolved_ms if t.resolved_ms is not None else t.closed_ms or 0

    in_cycle = sum(1 for t in closed if finished_ms(t) <= t.resolve_due_ms)
    repeats = sum(1 for t in closed if t.reopen_count > 0 or t.repeat_of is not None)

    acked = [t for t in tickets if _in(t.acknowledged_ms, start, end)]
    resolved = [t for t in tickets if _in(t.resolved_ms, start, end)]
    mtta = _mean_min(
        [t.acknowledged_ms - t.cycle_start_ms for t in acked if t.acknowledged_ms is not None]
    )
    mttr = _mean_min(
        [t.resolved_ms - t.cycle_start_ms for t in resolved if t.resolved_ms is not None]
    )

    started = [t for t in tickets if _in(t.cycle_start_ms, start, end)]
    resp_pop = [t for t in started if t.acknowledged_ms is not None or t.response_due_ms <= now_ms]
    resp_ok = sum(
        1
        for t in resp_pop
        if t.acknowledged_ms is not None and t.acknowledged_ms <= t.response_due_ms
    )
    # The on-site promise is for faults remote help did not fix: a ticket counts when the
    # engineer arrived, or when it was still unfixed (not cleared, resolved or closed) at
    # its on-site deadline, dispatched or not: the same tickets `onsite_breaches` counts.
    onsite_pop = [
        t
        for t in started
        if t.arrived_ms is not None
        or (t.onsite_due_ms <= now_ms and _unfixed_at(t, t.onsite_due_ms))
    ]
    onsite_ok = sum(
        1 for t in onsite_pop if t.arrived_ms is not None and t.arrived_ms <= t.onsite_due_ms
    )

    period_end = min(end, now_ms)
    screen_set = {s for s in screens if s[1] != AGENT_SCREEN and (site is None or s[0] == site)}
    dark_total = 0
    if period_end > start:
        per_screen: dict[tuple[str, str], list[tuple[int, int]]] = {}
        for d in downtimes:
            if d.screen == AGENT_SCREEN or (site is not None and d.site != site):
                continue
            a = max(d.start_ms, start)
            b = min(d.end_ms if d.end_ms is not None else now_ms, period_end)
            if b > a:
                per_screen.setdefault((d.site, d.screen), []).append((a, b))
                screen_set.add((d.site, d.screen))
        dark_total = sum(_dark_ms(iv) for iv in per_screen.values())
    span = len(screen_set) * max(period_end - start, 0)
    availability = 1 - dark_total / span if span else None

    care = _care_compliance(tasks, start, end, now_ms)
    return Kpis(
        month=month,
        site=site,
        tickets_opened=len(opened),
        tickets_closed=len(closed),
        satisfaction_rate=_rate(satisfied, len(month_surveys)),
        surveyed=len(month_surveys),
        cycle_compliance_rate=_rate(in_cycle, len(closed)),
        repeat_service_rate=_rate(repeats, len(closed)),
        mtta_min=mtta,
        mttr_min=mttr,
        response_compliance_rate=_rate(resp_ok, len(resp_pop)),
        onsite_compliance_rate=_rate(onsite_ok, len(onsite_pop)),
        availability=availability,
        screens=len(screen_set),
        downtime_min=dark_total / 60_000,
        failures_by_component=dict(sorted(Counter(t.component_kind for t in opened).items())),
        response_breaches=sum(1 for t in tickets if _in(t.response_breached_ms, start, end)),
        onsite_breaches=sum(1 for t in tickets if _in(t.onsite_breached_ms, start, end)),
        inspection_compliance_rate=_rate(*care["inspection"]),
        followup_compliance_rate=_rate(*care["follow_up"]),
        inspections_due=care["inspection"][1],
        followups_due=care["follow_up"][1],
        mtbf_h_by_model=_mtbf_by_model(opened, components, start, min(end, now_ms)),
    )


_DAY_MS = 86_400_000


def _care_compliance(tasks: Iterable[TaskLike], start: int, end: int, now_ms: int
                     ) -> dict[str, tuple[int, int]]:
    """kind -> (done by their due date, due in the month). A task counts once it is done
    or its due date is over (done later, or not at all: a miss); one due later this
    month and not done yet is not judged yet."""
    out = {"inspection": [0, 0], "follow_up": [0, 0]}
    for task in tasks:
        counts = out.get(task.kind)
        if counts is None or not _in(task.due_ms, start, end):
            continue
        late = task.due_ms + _DAY_MS  # due on its due date, late from the next day
        if task.done_ms is None and now_ms < late:
            continue
        counts[1] += 1
        if task.done_ms is not None and task.done_ms < late:
            counts[0] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def _mtbf_by_model(opened: Iterable[Ticket], components: Iterable[InstalledComponent],
                   start: int, end: int) -> dict[str, dict[str, float | None]]:
    """Installed unit-hours of each (kind, model) in [start, end) over its failures
    opened in the month (spares.FAILURE_KIND, product faults); None without failures.
    A model with failures but no recorded installed base is left out."""
    hours: dict[tuple[str, str], float] = {}
    model_of: dict[tuple[str, str, str, str], str] = {}
    for c in components:
        model_of[(c.site, c.screen, c.component, c.kind)] = c.model
        h = c.quantity * hours_between(c.first_ms, start, end)
        if h > 0:
            hours[(c.kind, c.model)] = hours.get((c.kind, c.model), 0.0) + h
    failures: Counter[tuple[str, str]] = Counter()
    for t in opened:
        kind = failure_kind(t.component, t.fault)
        if kind is not None and t.product_fault:
            failures[(kind, model_of.get((t.site, t.screen, t.component, kind), "unknown"))] += 1
    out: dict[str, dict[str, float | None]] = {}
    for (kind, model), h in sorted(hours.items()):
        n = failures.get((kind, model), 0)
        out.setdefault(kind, {})[model] = h / n if n else None
    return out

