"""Recommended actions, derived from the report's figures (pure).

Each rule names the component and the figure that triggered it, so the reader can check
it against the tables below the list. Most urgent first.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from collector.reports.model import Action, Severity, Status

if TYPE_CHECKING:
    from collector.reports.model import InspectionReport

WARRANTY_NOTICE_DAYS: Final = 90  # time to offer a service contract before it ends
MIN_COVERAGE: Final = 0.9  # share of the quarter's days with telemetry below which we say so
_ORDER: Final = {Severity.HIGH: 0, Severity.MEDIUM: 1, Severity.LOW: 2}


def _day(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def derive_actions(r: InspectionReport) -> list[Action]:
    out: list[Action] = []
    now = r.generated_ms

    for p in r.predictions:
        name = p.component.split("/", 1)[-1]
        ref = f" (ticket #{p.ticket_id})" if p.ticket_id is not None else ""
        if p.component.startswith("psu/"):
            when = (
                f"predicted to fail by {_day(p.predicted_failure_ms)}"
                if p.predicted_failure_ms is not None
                else "its rail is drifting away from its peers"
            )
            out.append(Action(Severity.HIGH, f"Replace PSU {name}: {when}{ref}."))
        elif p.fault == "running_hot":
            out.append(Action(Severity.MEDIUM,
                              f"Check the cooling of cabinet {name}: running hot{ref}."))

    predicted = {p.component for p in r.predictions}
    for c in r.cabinets:
        if "hot" in c.flags and c.delta_c is not None and f"card/{c.card}" not in predicted:
            out.append(Action(Severity.MEDIUM,
                              f"Cabinet {c.card} runs {c.delta_c:.0f} °C above its peers "
                              "(quarter mean): check its fans and filters."))
        if "fan" in c.flags and c.fan_last_rpm is not None:
            out.append(Action(Severity.MEDIUM,
                              f"Replace the fan of cabinet {c.card}: "
                              f"{c.fan_last_rpm:.0f} rpm on the last day."))
        if "modules" in c.flags and c.module_faults_last:
            out.append(Action(Severity.MEDIUM,
                              f"Replace {_plural(c.module_faults_last, 'faulty module')} in "
                              f"cabinet {c.card} (faulty on {_plural(c.fault_days, 'day')})."))
    for u in r.psus:
        if f"psu/{u.psu}" in predicted:
            continue
        if "low" in u.flags and u.vout_last_min_v is not None:
            out.append(Action(Severity.HIGH, f"Replace PSU {u.psu}: its rail fell to "
                                             f"{u.vout_last_min_v:.2f} V on the last day."))
        elif "falling" in u.flags and u.trend_mv_per_day is not None:
            out.append(Action(Severity.LOW, f"Watch PSU {u.psu}: its rail falls "
                                            f"{-u.trend_mv_per_day:.0f} mV/day."))

    breached = {"response": r.sla.response_breached, "on-site": r.sla.onsite_breached}
    if breached["response"]:
        out.append(Action(Severity.HIGH, f"{_plural(breached['response'], 'response deadline')} "
                                         "breached: review the desk's staffing and on-call."))
    if breached["on-site"]:
        out.append(Action(Severity.HIGH, f"{_plural(breached['on-site'], 'on-site deadline')} "
                                         "breached: review dispatch and travel times."))
    finished_late = sum(
        1 for i in r.incidents if i.resolve.status is Status.BREACHED and i.resolve.done_ms
    )
    if finished_late:
        out.append(Action(Severity.MEDIUM,
                          f"{_plural(finished_late, 'ticket')} resolved after the deadline: "
                          "review spare parts on site and repair times."))
    late_open = [t for t in r.open_tickets if t.resolve_due_ms < now]
    if late_open:
        ids = ", ".join(f"#{t.id}" for t in late_open[:5])
        out.append(Action(Severity.HIGH, f"{_plural(len(late_open), 'ticket')} still open past "
                                         f"the resolve deadline: {ids}."))

    w = r.warranty
    if w is not None and 0 <= w.days_left <= WARRANTY_NOTICE_DAYS:
        out.append(Action(Severity.MEDIUM,
                          f"Warranty ends in {_plural(round(w.days_left), 'day')} "
                          f"({_day(w.end_ms)}): offer a service contract."))

    if r.tasks:
        overdue = [t for t in r.tasks if t.done_ms is None and t.due_ms < now]
        for t in overdue[:3]:
            kind = "follow-up contact" if t.kind == "follow_up" else t.kind
            out.append(Action(Severity.MEDIUM, f"The {kind} due {_day(t.due_ms)} is overdue."))

    h = r.history
    if h is not None:
        measured_days = max(1, round((r.period_end_ms - r.quarter.start_ms) / 86_400_000))
        missing = measured_days - len(h.data_days)
        if missing > 0 and len(h.data_days) < MIN_COVERAGE * measured_days:
            out.append(Action(Severity.LOW,
                              f"No telemetry on {_plural(missing, 'day')} of "
                              f"{measured_days}: check the agent and its network."))
    return sorted(out, key=lambda a: _ORDER[a.severity])


def deadline_label(status: Status) -> str:
    """Words for the tables (the template shows these)."""
    return {
        Status.MET: "met",
        Status.BREACHED: "breached",
        Status.OPEN: "running",
        Status.NOT_APPLICABLE: "—",
    }[status]
