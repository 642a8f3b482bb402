"""Monthly service-desk KPIs (pure): rows in, numbers out. docs/tickets.md has the formulas.

A rate or mean whose denominator is 0 is None ("no data"), never 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from collector.detect.findings import AGENT_SCREEN
from collector.tickets.errors import TicketInputError
from collector.tickets.models import Survey, Ticket


@dataclass(frozen=True, slots=True)
class Downtime:
    site: str
    screen: str
    start_ms: int
    end_ms: int | None  # None: still dark


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


def _unfixed_at(t: Ticket, ts_ms: int) -> bool:
    done = [v for v in (t.cleared_ms, t.resolved_ms, t.closed_ms) if v is not None]
    return not done or min(done) > ts_ms


def month_bounds(month: str) -> tuple[int, int]:
    """`YYYY-MM` -> [start, end) in ms, UTC."""
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except (TypeError, ValueError):
        raise TicketInputError(f"month must be YYYY-MM (e.g. 2026-03), got {month!r}") from None
    if len(month) != 7:
        raise TicketInputError(f"month must be YYYY-MM (e.g. 2026-03), got {month!r}")
    nxt = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return int(start.timestamp() * 1000), int(nxt.timestamp() * 1000)


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
) -> Kpis:
    """KPIs of `month`; inputs may hold more than the month, filtering happens here."""
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
    )

