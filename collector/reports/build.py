"""Gather one screen's quarter into an `InspectionReport` (docs/reports.md: the sources).

Reads only public parts of the ticket service (`list`, `get`, `kpis`, `warranty`,
`contracts`, and, once the lead's additions land, `parts_used`, `tasks`, `inventory`,
looked up with getattr so the report has "no data" sections until then) and the
InfluxQL history of `history.py`. Nothing here writes.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any, Final

from collector.detect.config import PredictSettings
from collector.detect.findings import Fault
from collector.detect.rules import RULES_BY_NAME
from collector.reports import history as hist
from collector.reports.actions import derive_actions
from collector.reports.errors import ReportInputError, UnknownScreen
from collector.reports.model import (
    Cabinet,
    Deadline,
    Incident,
    InspectionReport,
    InventoryRow,
    MonthAvailability,
    PartRow,
    Prediction,
    Psu,
    SlaSummary,
    Status,
    TaskRow,
    WarrantyInfo,
)
from collector.reports.quarter import Quarter
from collector.reports.source import ReportSource
from collector.tickets.contracts import MS_PER_DAY, add_months_ms, date_ms
from collector.tickets.kpis import Downtime, compute_kpis, month_bounds
from collector.tickets.lifecycle import WORKING, State, Step
from collector.tickets.models import Source, Ticket
from collector.tickets.service import TicketFilter, TicketService

# The detection defaults the report judges history by (docs/detection.md), so a cabinet
# the report calls hot is one detection would call hot too.
_PREDICT: Final = PredictSettings()
HOT_DELTA_C: Final = _PREDICT.hot_min_delta_c
FAN_STOPPED_RPM: Final = RULES_BY_NAME["card_fan_stopped"].threshold
PSU_LOW_V: Final = RULES_BY_NAME["voltage_low"].threshold
CARD_TEMP_HIGH_C: Final = RULES_BY_NAME["card_temp_high"].threshold
PSU_FALLING_MV_PER_DAY: Final = -_PREDICT.psu_min_slope_v_per_h * 24 * 1000
FORECASTS: Final = frozenset({Fault.PSU_DEGRADING.value, Fault.RUNNING_HOT.value})
# A PSU forecast older than this before the newest data is no longer current (detection
# writes one every hourly judgement while it still sees the drift).
FORECAST_CURRENT_MS: Final = MS_PER_DAY
_DARK_STATES: Final = frozenset({State.VERIFYING.value, State.RESOLVED.value, State.CLOSED.value})
_PAGE: Final = 500


def screen_tickets(svc: TicketService, site: str, screen: str) -> list[Ticket]:
    """Every ticket the screen ever had (paged through `list`), oldest first."""
    out: list[Ticket] = []
    while True:
        page, total = svc.list(TicketFilter(site=site, screen=screen), limit=_PAGE, offset=len(out))
        out += page
        if not page or len(out) >= total:
            return sorted(out, key=lambda t: t.id)


def check_known(
    svc: TicketService,
    source: ReportSource | None,
    site: str,
    screen: str,
    known: Iterable[tuple[str, str]] = (),
) -> None:
    """Raise UnknownScreen unless a ticket, `known` (live screens, contracts) or InfluxDB
    history names the screen; InfluxDB is asked last, only when nothing else knows it."""
    if (site, screen) in set(known) or (source is not None and (site, screen) in source.screens):
        return
    _, total = svc.list(TicketFilter(site=site, screen=screen), limit=0)
    if total:
        return
    if source is not None and source.query is not None and hist.seen(source.query, site, screen):
        return
    raise UnknownScreen(site, screen)


def _left_working_ms(t: Ticket) -> int | None:
    stamps = [s for s in (t.cleared_ms, t.resolved_ms, t.closed_ms) if s is not None]
    return min(stamps) if stamps else None


def judge(t: Ticket, now_ms: int) -> Incident:
    """The ticket's current cycle against its deadlines (the service's breach records
    first: they are what the desk was told)."""
    left = _left_working_ms(t)
    ack = t.acknowledged_ms
    if t.response_breached_ms is not None or (ack is not None and ack > t.response_due_ms):
        response = Status.BREACHED
    elif ack is not None:
        response = Status.MET
    elif left is not None and left <= t.response_due_ms:
        response = Status.NOT_APPLICABLE  # the fault cleared before anyone had to answer
    elif (left if left is not None else now_ms) > t.response_due_ms:
        response = Status.BREACHED
    else:
        response = Status.OPEN

    # On site is judged for tickets an engineer was sent to, as the on-site compliance
    # KPI does (the service also records a breach for a remote fix that took 48 h).
    arrived = t.arrived_ms
    if t.dispatched_ms is None and arrived is None:
        onsite = Status.NOT_APPLICABLE
    elif t.onsite_breached_ms is not None or (arrived is not None and arrived > t.onsite_due_ms):
        onsite = Status.BREACHED
    elif arrived is not None:
        onsite = Status.MET
    elif (left if left is not None else now_ms) > t.onsite_due_ms:
        onsite = Status.BREACHED
    else:
        onsite = Status.OPEN

    finish = t.resolved_ms if t.resolved_ms is not None else t.closed_ms
    if finish is not None:
        resolve = Status.MET if finish <= t.resolve_due_ms else Status.BREACHED
    else:
        resolve = Status.BREACHED if now_ms > t.resolve_due_ms else Status.OPEN

    start = t.cycle_start_ms
    return Incident(
        ticket=t,
        response=Deadline(t.response_due_ms, ack, response),
        onsite=Deadline(t.onsite_due_ms, arrived, onsite),
        resolve=Deadline(t.resolve_due_ms, finish, resolve),
        ack_min=None if ack is None else (ack - start) / 60_000,
        resolve_h=None if finish is None else (finish - start) / 3_600_000,
    )


def _sla_summary(incidents: Iterable[Incident]) -> SlaSummary:
    counts = dict.fromkeys(SlaSummary.__dataclass_fields__, 0)
    for inc in incidents:
        for name, deadline in (
            ("response", inc.response),
            ("onsite", inc.onsite),
            ("resolve", inc.resolve),
        ):
            if deadline.status in (Status.MET, Status.BREACHED):
                counts[f"{name}_{deadline.status.value}"] += 1
        if inc.ticket.state != State.CLOSED.value and inc.resolve.done_ms is None:
            counts["still_open"] += 1
    return SlaSummary(**counts)


def screen_downtimes(
    svc: TicketService, tickets: Iterable[Ticket], site: str, screen: str, now_ms: int
) -> list[Downtime]:
    """The screen's dark periods, rebuilt from its screen-dark tickets' history exactly as
    the service writes its downtime table (docs/tickets.md "Warranty"): from `open` (or a
    `recur` while none runs) until the ticket leaves the working states.

    Why: `TicketService.kpis` gives availability per site only; the report is per screen.
    """
    terms = svc.contracts.terms(site, screen)
    dark_faults = {f.value for f in terms.downtime_faults}
    out: list[Downtime] = []
    for t in tickets:
        if t.source != Source.AUTO.value or t.fault not in dark_faults:
            continue
        start: int | None = None
        for ev in svc.get(t.id).history:
            if start is None and ev.step in (Step.OPEN.value, Step.RECUR.value):
                start = ev.ts_ms
            elif start is not None and ev.to_state in _DARK_STATES:
                out.append(Downtime(site, screen, start, ev.ts_ms))
                start = None
        if start is not None:
            out.append(Downtime(site, screen, start, None))
    return out


def _availability(
    svc: TicketService,
    site: str,
    screen: str,
    quarter: Quarter,
    downtimes: list[Downtime],
    now_ms: int,
) -> tuple[tuple[MonthAvailability, ...], float | None, float | None, int]:
    months: list[MonthAvailability] = []
    for month in quarter.months:
        start, end = month_bounds(month)
        site_kpis = svc.kpis(month, site=site, screens={(site, screen)})
        # The same formula as the KPI (compute_kpis), over this screen's dark periods only.
        own = compute_kpis(month, [], [], downtimes, {(site, screen)}, now_ms, site)
        months.append(
            MonthAvailability(
                month=month,
                measured_ms=max(0, min(end, now_ms) - start),
                screen=own.availability,
                screen_downtime_min=own.downtime_min,
                site=site_kpis.availability,
                site_screens=site_kpis.screens,
                site_downtime_min=site_kpis.downtime_min,
            )
        )
    measured = sum(m.measured_ms for m in months)
    screen_q = (
        1 - sum(m.screen_downtime_min for m in months) * 60_000 / measured if measured else None
    )
    site_span = sum(m.measured_ms * m.site_screens for m in months)
    site_q = (
        1 - sum(m.site_downtime_min for m in months) * 60_000 / site_span if site_span else None
    )
    return tuple(months), screen_q, site_q, max((m.site_screens for m in months), default=0)


def _open_faults(open_tickets: Iterable[Ticket]) -> dict[str, list[str]]:
    by_component: dict[str, list[str]] = {}
    for t in open_tickets:
        by_component.setdefault(t.component, []).append(t.fault)
    return by_component


def _cabinets(h: hist.History | None, open_faults: dict[str, list[str]]) -> tuple[Cabinet, ...]:
    cards = set(h.cards) if h is not None else set()
    cards |= {c.split("/", 1)[1] for c in open_faults if c.startswith("card/")}
    means = list(h.card_temp_mean.values()) if h is not None else []
    median = statistics.median(means) if len(means) >= 3 else None
    out = []
    for card in sorted(cards, key=hist.natural_key):
        temp = h.card_temp_max.get(card) if h else None
        mean = h.card_temp_mean.get(card) if h else None
        fan = h.card_fan_min.get(card) if h else None
        mods = h.card_module_faults.get(card) if h else None
        delta = None if mean is None or median is None else mean - median
        flags = []
        if delta is not None and delta >= HOT_DELTA_C:
            flags.append("hot")
        if fan is not None and fan.last < FAN_STOPPED_RPM:
            flags.append("fan")
        if mods is not None and mods.last > 0:
            flags.append("modules")
        out.append(
            Cabinet(
                card=card,
                temp_max_c=None if temp is None else temp.peak,
                temp_mean_c=mean,
                delta_c=delta,
                fan_min_rpm=None if fan is None else fan.low,
                fan_last_rpm=None if fan is None else fan.last,
                module_faults_max=None if mods is None else int(mods.peak),
                module_faults_last=None if mods is None else int(mods.last),
                fault_days=0 if mods is None else sum(1 for v in mods.values if v > 0),
                open_faults=tuple(open_faults.get(f"card/{card}", ())),
                flags=tuple(flags),
            )
        )
    return tuple(out)


def _psus(h: hist.History | None) -> tuple[Psu, ...]:
    if h is None:
        return ()
    out = []
    for psu in h.psus:
        vout = h.psu_vout_min.get(psu)
        slope = h.psu_trend_v_per_day.get(psu)
        fan = h.psu_fan_min.get(psu)
        forecast = h.psu_forecasts.get(psu)
        current = (
            forecast is not None
            and h.last_ms is not None
            and forecast.ts_ms >= h.last_ms - FORECAST_CURRENT_MS
        )
        trend_mv = None if slope is None else slope * 1000
        flags = []
        if trend_mv is not None and trend_mv <= PSU_FALLING_MV_PER_DAY:
            flags.append("falling")
        if vout is not None and vout.last < PSU_LOW_V:
            flags.append("low")
        if current:
            flags.append("forecast")
        out.append(
            Psu(
                psu=psu,
                vout_min_v=None if vout is None else vout.low,
                vout_last_min_v=None if vout is None else vout.last,
                trend_mv_per_day=trend_mv,
                fan_min_rpm=None if fan is None else fan.low,
                forecast=forecast,
                forecast_current=current,
                flags=tuple(flags),
            )
        )
    return tuple(out)


def _predictions(open_tickets: Iterable[Ticket], psus: Iterable[Psu]) -> tuple[Prediction, ...]:
    """Open forecast tickets, then current InfluxDB forecasts of PSUs without one."""
    out: list[Prediction] = []
    covered: set[str] = set()
    for t in open_tickets:
        if t.fault in FORECASTS or t.predicted_failure_ms is not None:
            out.append(Prediction(t.component, t.fault, t.predicted_failure_ms, t.id, t.detail))
            covered.add(t.component)
    for p in psus:
        if p.forecast_current and p.forecast is not None and f"psu/{p.psu}" not in covered:
            slope = p.forecast.slope_v_per_h
            detail = "" if slope is None else f"rail trend {slope * 24 * 1000:+.0f} mV/day"
            out.append(
                Prediction(
                    f"psu/{p.psu}", "forecast", p.forecast.predicted_failure_ms, None, detail
                )
            )
    return tuple(sorted(out, key=lambda p: (p.predicted_failure_ms or 2**62, p.component)))


def _warranty(
    svc: TicketService, site: str, screen: str, quarter_end_ms: int, now_ms: int
) -> WarrantyInfo | None:
    terms = svc.contracts.terms(site, screen)
    w = svc.warranty(site, screen)
    if w is None or terms.acceptance_date is None:
        return None
    return WarrantyInfo(
        acceptance=terms.acceptance_date,
        months=terms.warranty_months,
        original_end_ms=add_months_ms(date_ms(terms.acceptance_date), terms.warranty_months),
        start_ms=w.start_ms,
        end_ms=w.end_ms,
        extension_ms=w.extension_ms,
        restarts=w.restarts,
        downtime_ms=w.downtime_ms,
        covers_quarter_end=w.covers(quarter_end_ms - 1),
        days_left=(w.end_ms - now_ms) / MS_PER_DAY,
    )


def _optional(svc: TicketService, name: str, **kwargs: Any) -> list[Any] | None:
    """`svc.<name>(**kwargs)` if the service has it yet; None makes a "no data" section."""
    method = getattr(svc, name, None)
    return None if method is None else list(method(**kwargs))


def _parts(svc: TicketService, site: str, screen: str, q: Quarter) -> tuple[PartRow, ...] | None:
    rows = _optional(svc, "parts_used", site=site, screen=screen, start_ms=q.start_ms,
                     end_ms=q.end_ms)
    if rows is None:
        return None
    return tuple(
        sorted(
            (
                PartRow(int(r.ts_ms), r.ticket_id, str(r.component), str(r.model),
                        int(r.quantity))
                for r in rows
            ),
            key=lambda p: p.ts_ms,
        )
    )


def _tasks(svc: TicketService, site: str, screen: str, q: Quarter) -> tuple[TaskRow, ...] | None:
    rows = _optional(svc, "tasks", site=site, screen=screen)
    if rows is None:
        return None
    # The quarter's tasks, and older ones still not done (they are overdue now).
    keep = [r for r in rows if q.start_ms <= r.due_ms < q.end_ms
            or (r.done_ms is None and r.due_ms < q.start_ms)]
    return tuple(
        TaskRow(int(r.id), str(r.kind), int(r.due_ms), r.done_ms, r.done_by, str(r.note or ""))
        for r in sorted(keep, key=lambda r: r.due_ms)
    )


def _inventory(svc: TicketService, site: str, screen: str) -> tuple[InventoryRow, ...] | None:
    rows = _optional(svc, "inventory", site=site, screen=screen)
    if rows is None:
        return None
    return tuple(
        InventoryRow(str(r.kind), str(r.model), int(r.quantity), r.seen_ms)
        for r in sorted(rows, key=lambda r: (r.kind, r.model))
    )


def build_report(
    svc: TicketService,
    source: ReportSource | None,
    site: str,
    screen: str,
    quarter: Quarter | str,
    known: Iterable[tuple[str, str]] = (),
) -> InspectionReport:
    """The report of `site/screen` for `quarter`, as of the ticket service's clock.

    Raises ReportInputError (bad or future quarter), UnknownScreen, HistoryUnavailable.
    `known`: screens known elsewhere (the live directory, the contracts).
    """
    q = quarter if isinstance(quarter, Quarter) else Quarter.parse(quarter)
    now = svc.now_ms()
    if q.start_ms > now:
        raise ReportInputError(f"quarter {q} has not started yet")
    check_known(svc, source, site, screen, known)
    period_end = min(q.end_ms, now)

    tickets = screen_tickets(svc, site, screen)
    downtimes = screen_downtimes(svc, tickets, site, screen, now)
    months, avail_screen, avail_site, site_screens = _availability(
        svc, site, screen, q, downtimes, now
    )
    in_quarter = [
        t for t in tickets
        if q.start_ms <= t.opened_ms < q.end_ms or q.start_ms <= t.cycle_start_ms < q.end_ms
    ]
    incidents = tuple(judge(t, now) for t in in_quarter)
    open_now = tuple(t for t in tickets if t.state != State.CLOSED.value)
    working = tuple(t for t in open_now if State(t.state) in WORKING)

    history = None
    note = ""
    if source is not None and source.query is not None:
        history = hist.fetch_history(source.query, site, screen, q.start_ms, period_end)
    else:
        note = source.note if source is not None else "no InfluxDB history source configured"
    cabinets = _cabinets(history, _open_faults(working))
    psus = _psus(history)

    report = InspectionReport(
        site=site,
        screen=screen,
        quarter=q,
        generated_ms=now,
        period_end_ms=period_end,
        months=months,
        availability_screen=avail_screen,
        availability_site=avail_site,
        site_screens=site_screens,
        incidents=incidents,
        sla=_sla_summary(incidents),
        open_tickets=open_now,
        history=history,
        history_note=note,
        cabinets=cabinets,
        psus=psus,
        predictions=_predictions(working, psus),
        warranty=_warranty(svc, site, screen, q.end_ms, now),
        parts=_parts(svc, site, screen, q),
        tasks=_tasks(svc, site, screen, q),
        inventory=_inventory(svc, site, screen),
    )
    return _with_actions(report)


def _with_actions(report: InspectionReport) -> InspectionReport:
    from dataclasses import replace

    return replace(report, actions=tuple(derive_actions(report)))
