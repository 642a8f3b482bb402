"""Score a replay's tickets against the labelled month. Pure: no I/O, no clock.

Input: the tickets as `GET /api/v1/tickets/{id}` returns them (a JSON list with
`history`), the labels of incidents.json and the month's screen-days. Rules
(docs/detection-bench.md):

- An alert is a ticket's opening (history step "open", else `opened_ms`) and every
  re-opening (steps "recur": the detector, "reopen": a person).
- An alert matches a label when site and screen agree, the ticket's component is the
  label's root or one of its effects (a screen-level root, "screen" or "controller",
  accepts both), and its time lies in [start - lead, end + 30 min], lead = 7 days for
  slow-onset kinds (psu_death, running_hot), else 5 minutes. Agent labels (screen "-")
  also accept "screen"/"controller" tickets on the screens the agent serves.
- Each alert is given to at most one incident: one whose tight window [start - 5 min,
  end + 30 min] holds it (the latest such start), else the slow-onset incident whose
  start is nearest. Alerts no incident takes are false alerts; those inside a
  non-incident label's window on its components are also glitch tickets.
- A hard incident is found in time when a matching ticket has an alert in [start -
  lead, start + 10 min] and was active (open, acknowledged, dispatched, on site) at the
  start or re-opened between the start and start + 10 min; a dying PSU's start here is
  `dark_ms`, when its cabinet went dark.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from ledwatch.bench.detection.labels import (
    DEFAULT_LEAD_MS,
    HOUR_MS,
    INCIDENT_KINDS,
    NO_SCREEN,
    NON_INCIDENT_KINDS,
    RECALL_WITHIN_MS,
    SCREEN_LEVEL_ROOTS,
    TAIL_MS,
    Label,
)

ALERT_STEPS: Final = frozenset({"open", "recur", "reopen"})
ACTIVE_STATES: Final = frozenset({"open", "acknowledged", "dispatched", "on_site"})

# The targets of issue 7 on the default month.
TARGET_RECALL: Final = 0.99
TARGET_FALSE_PER_1000: Final = 1.0
TARGET_TICKETS_PER_INCIDENT: Final = 1.05
TARGET_PSU_LEAD_MS: Final = 24 * HOUR_MS
TARGET_GLITCH_TICKETS: Final = 0


@dataclass(frozen=True, slots=True)
class Alert:
    """One opening or re-opening of a ticket."""

    ticket: int
    site: str
    screen: str
    component: str
    fault: str
    ts_ms: int
    step: str


@dataclass(slots=True)
class Ticket:
    """The fields of a ticket the scorer relies on."""

    id: int
    site: str
    screen: str
    component: str
    fault: str
    opened_ms: int
    state: str
    history: list[tuple[int, str, str]]  # (ts_ms, step, to_state), in time order

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Ticket:
        history = sorted(
            (int(h["ts_ms"]), str(h.get("step") or ""), str(h.get("to_state") or ""))
            for h in doc.get("history") or []
        )
        return cls(
            id=int(doc["id"]),
            site=str(doc["site"]),
            screen=str(doc["screen"]),
            component=str(doc["component"]),
            fault=str(doc.get("fault") or ""),
            opened_ms=int(doc["opened_ms"]),
            state=str(doc.get("state") or "open"),
            history=history,
        )

    def alerts(self) -> list[Alert]:
        steps = [(ts, step) for ts, step, _ in self.history if step in ALERT_STEPS]
        if not any(step == "open" for _, step in steps):
            steps.insert(0, (self.opened_ms, "open"))
        return [
            Alert(self.id, self.site, self.screen, self.component, self.fault, ts, step)
            for ts, step in sorted(steps)
        ]

    def state_at(self, ts_ms: int) -> str | None:
        """The ticket's state at `ts_ms` (None before it was opened)."""
        if ts_ms < self.opened_ms:
            return None
        state = "open"
        for ts, _, to_state in self.history:
            if ts > ts_ms:
                break
            if to_state:
                state = to_state
        return state


def _covers(label: Label, site: str, screen: str, component: str) -> bool:
    if site != label.site:
        return False
    if screen == label.screen and component in label.components:
        return True
    return screen in label.screens and component in SCREEN_LEVEL_ROOTS


def matches(alert: Alert, label: Label) -> bool:
    lo, hi = label.window
    return lo <= alert.ts_ms <= hi and _covers(label, alert.site, alert.screen, alert.component)


def _tight(alert: Alert, label: Label) -> bool:
    return label.start_ms - DEFAULT_LEAD_MS <= alert.ts_ms <= label.end_ms + TAIL_MS


def assign(alert: Alert, candidates: Iterable[Label]) -> Label | None:
    """The incident that takes `alert` (see the module docstring), or None."""
    hits = [lab for lab in candidates if matches(alert, lab)]
    tight = [lab for lab in hits if _tight(alert, lab)]
    if tight:
        return max(tight, key=lambda lab: (lab.start_ms, lab.id))
    if hits:  # only slow-onset incidents reach this far back: the nearest start wins
        return min(hits, key=lambda lab: (lab.start_ms - alert.ts_ms, lab.id))
    return None


class _Index:
    """Labels by (site, screen), with agent labels also under each screen they silenced."""

    def __init__(self, labels: Iterable[Label]) -> None:
        self._by: dict[tuple[str, str], list[Label]] = defaultdict(list)
        for lab in labels:
            for screen in {lab.screen, *lab.screens}:
                self._by[(lab.site, screen)].append(lab)

    def get(self, site: str, screen: str) -> list[Label]:
        return self._by.get((site, screen), [])


@dataclass(slots=True)
class IncidentResult:
    label: Label
    alerts: list[Alert] = field(default_factory=list)  # the alerts assigned to it
    tickets: list[int] = field(default_factory=list)  # distinct, in order of first alert
    in_time: bool | None = None  # hard labels only
    first_alert_ms: int | None = None  # first matching alert, assigned or not
    lead_ms: int | None = None  # psu_death: dark_ms - first warning on the PSU or its card

    @property
    def delay_ms(self) -> int | None:
        if self.first_alert_ms is None:
            return None
        return self.first_alert_ms - self.label.hard_start_ms


@dataclass(slots=True)
class Report:
    screen_days: float
    n_tickets: int
    n_alerts: int
    incidents: list[IncidentResult]
    false_alerts: list[Alert]
    glitch_alerts: list[tuple[Alert, Label]]
    non_incidents: dict[str, tuple[int, int]]  # kind -> (labels, alerts in them)

    @property
    def hard(self) -> list[IncidentResult]:
        return [r for r in self.incidents if r.label.hard]

    @property
    def recall(self) -> float:
        hard = self.hard
        return sum(1 for r in hard if r.in_time) / len(hard) if hard else 1.0

    @property
    def false_per_1000(self) -> float:
        return len(self.false_alerts) / self.screen_days * 1000 if self.screen_days else 0.0

    @property
    def tickets_per_incident(self) -> float:
        counts = [len(r.tickets) for r in self.incidents if r.tickets]
        return statistics.fmean(counts) if counts else 0.0

    @property
    def psu_leads(self) -> list[IncidentResult]:
        return [r for r in self.incidents if r.label.kind == "psu_death"]

    @property
    def psu_unflagged(self) -> int:
        """PSU deaths with no warning at all before their cabinet went dark."""
        return sum(1 for r in self.psu_leads if r.lead_ms is None or r.lead_ms <= 0)

    def failures(self) -> list[str]:
        out = []
        if self.recall < TARGET_RECALL:
            out.append(f"recall {self.recall:.3f} < {TARGET_RECALL}")
        if self.false_per_1000 > TARGET_FALSE_PER_1000:
            out.append(f"false alerts {self.false_per_1000:.1f} > {TARGET_FALSE_PER_1000:g}"
                       "/1000 screen-days")  # fmt: skip
        if self.tickets_per_incident > TARGET_TICKETS_PER_INCIDENT:
            out.append(f"tickets/incident {self.tickets_per_incident:.2f} > "
                       f"{TARGET_TICKETS_PER_INCIDENT}")  # fmt: skip
        short = [r for r in self.psu_leads if r.lead_ms is None or r.lead_ms < TARGET_PSU_LEAD_MS]
        if short:
            out.append(f"{len(short)} PSU death(s) not flagged >= 24 h before dark")
        if len(self.glitch_alerts) > TARGET_GLITCH_TICKETS:
            out.append(f"{len(self.glitch_alerts)} glitch/non-incident tickets")
        return out

    @property
    def passed(self) -> bool:
        return not self.failures()


def _in_time(label: Label, tickets: Sequence[Ticket]) -> tuple[bool, int | None]:
    """(found in time, first matching alert time) for one label over its tickets."""
    lo, hi = label.window
    start = label.hard_start_ms
    due = start + RECALL_WITHIN_MS
    found, first = False, None
    for t in tickets:
        times = [a.ts_ms for a in t.alerts() if lo <= a.ts_ms <= hi]
        if not times:
            continue
        first = min(times) if first is None else min(first, min(times))
        if not any(x <= due for x in times):
            continue
        if t.state_at(start) in ACTIVE_STATES or any(start <= x <= due for x in times):
            found = True
    return found, first


def _psu_lead(label: Label, tickets: Sequence[Ticket]) -> int | None:
    """dark_ms minus the first alert on the dying PSU or its cabinet's card."""
    if label.dark_ms is None:
        return None
    lo, hi = label.window
    comps = {label.root, *(e for e in label.effects if e.startswith("card/"))}
    times = [a.ts_ms for t in tickets if t.component in comps for a in t.alerts()
             if lo <= a.ts_ms <= hi]  # fmt: skip
    return label.dark_ms - min(times) if times else None


def score(
    tickets: Sequence[Mapping[str, Any]], labels: Sequence[Label], screen_days: float
) -> Report:
    """Score `tickets` (API JSON objects) against `labels` over `screen_days`."""
    parsed = [Ticket.from_json(t) for t in tickets]
    incidents = [lab for lab in labels if lab.incident]
    others = [lab for lab in labels if not lab.incident]
    inc_index, other_index = _Index(incidents), _Index(others)
    results = {lab.id: IncidentResult(lab) for lab in incidents}
    by_place: dict[tuple[str, str, str], list[Ticket]] = defaultdict(list)
    for t in parsed:
        by_place[(t.site, t.screen, t.component)].append(t)

    alerts = sorted((a for t in parsed for a in t.alerts()), key=lambda a: (a.ts_ms, a.ticket))
    false_alerts: list[Alert] = []
    glitch_alerts: list[tuple[Alert, Label]] = []
    non_counts: dict[str, list[int]] = {k: [0, 0] for k in NON_INCIDENT_KINDS}
    for lab in others:
        non_counts.setdefault(lab.kind, [0, 0])[0] += 1
    for alert in alerts:
        taker = assign(alert, inc_index.get(alert.site, alert.screen))
        if taker is not None:
            res = results[taker.id]
            res.alerts.append(alert)
            if alert.ticket not in res.tickets:
                res.tickets.append(alert.ticket)
            continue
        false_alerts.append(alert)
        hit = next((o for o in other_index.get(alert.site, alert.screen) if matches(alert, o)),
                   None)  # fmt: skip
        if hit is not None:
            glitch_alerts.append((alert, hit))
            non_counts[hit.kind][1] += 1

    for res in results.values():
        lab = res.label
        comps = sorted(lab.components)
        screens = [lab.screen, *lab.screens]
        cands = [t for s in screens for c in comps for t in by_place.get((lab.site, s, c), [])
                 if _covers(lab, t.site, t.screen, t.component)]  # fmt: skip
        found, res.first_alert_ms = _in_time(lab, cands)
        if lab.hard:
            res.in_time = found
        if lab.kind == "psu_death":
            res.lead_ms = _psu_lead(lab, cands)

    ordered = sorted(results.values(), key=lambda r: (r.label.start_ms, r.label.id))
    return Report(
        screen_days=screen_days,
        n_tickets=len(parsed),
        n_alerts=len(alerts),
        incidents=ordered,
        false_alerts=false_alerts,
        glitch_alerts=glitch_alerts,
        non_incidents={k: (v[0], v[1]) for k, v in non_counts.items()},
    )


# -- printing -----------------------------------------------------------------------------
def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _hours(ms: int | None) -> str:
    return "-" if ms is None else f"{ms / HOUR_MS:.1f} h"


def _minutes(ms: int | None) -> str:
    if ms is None:
        return "-"
    return f"{ms / 60_000:+.1f} min" if abs(ms) < 2 * HOUR_MS else f"{ms / HOUR_MS:+.1f} h"


def _alert_line(a: Alert) -> str:
    return (f"    ticket {a.ticket:<6} {iso(a.ts_ms)}  {a.step:<6} {a.site}/{a.screen} "
            f"{a.component}  {a.fault}")  # fmt: skip


def score_line(report: Report) -> str:
    leads = [r.lead_ms for r in report.psu_leads if r.lead_ms is not None and r.lead_ms > 0]
    lead_txt = _hours(min(leads)) if leads else ("n/a" if not report.psu_leads else "none")
    if report.psu_unflagged:
        lead_txt += f" ({report.psu_unflagged} unflagged)"
    verdict = "PASS" if report.passed else "FAIL"
    return (
        f"score: recall {report.recall:.3f} | false alerts {report.false_per_1000:.1f}/1000 "
        f"screen-days | tickets/incident {report.tickets_per_incident:.2f} | psu lead min "
        f"{lead_txt} | glitch tickets {len(report.glitch_alerts)} | {verdict}"
    )


def format_report(report: Report, max_rows: int = 40) -> str:
    """The tables, the lists of what went wrong, and the one-line score last."""
    out: list[str] = []
    by_kind: dict[str, list[IncidentResult]] = defaultdict(list)
    for r in report.incidents:
        by_kind[r.label.kind].append(r)
    out.append(f"tickets {report.n_tickets}, alerts (openings + re-openings) {report.n_alerts}, "
               f"screen-days {report.screen_days:g}")  # fmt: skip
    out.append("")
    out.append(f"{'incident kind':<18} {'n':>3} {'hard':>4} {'in 10 min':>9} {'detected':>8} "
               f"{'tickets/inc':>11} {'alerts/inc':>10} {'median delay':>13}")  # fmt: skip
    kinds = [k for k in INCIDENT_KINDS if k in by_kind] + sorted(set(by_kind) - set(INCIDENT_KINDS))
    for kind in kinds:
        rows = by_kind[kind]
        hard = [r for r in rows if r.label.hard]
        in_time = f"{sum(1 for r in hard if r.in_time)}/{len(hard)}" if hard else "-"
        detected = f"{sum(1 for r in rows if r.tickets)}/{len(rows)}"
        tpi = [len(r.tickets) for r in rows if r.tickets]
        api = [len(r.alerts) for r in rows if r.alerts]
        delays = [r.delay_ms for r in rows if r.delay_ms is not None]
        out.append(
            f"{kind:<18} {len(rows):>3} {len(hard):>4} {in_time:>9} {detected:>8} "
            f"{(statistics.fmean(tpi) if tpi else 0):>11.2f} "
            f"{(statistics.fmean(api) if api else 0):>10.2f} "
            f"{(_minutes(int(statistics.median(delays))) if delays else '-'):>13}"
        )
    out.append("")
    out.append(f"{'non-incident kind':<20} {'labels':>6} {'tickets':>7}")
    for kind, (n, hits) in report.non_incidents.items():
        if n:
            out.append(f"{kind:<20} {n:>6} {hits:>7}")

    missed = [r for r in report.hard if not r.in_time]
    if missed:
        out.append("")
        out.append(f"hard incidents not ticketed within 10 min ({len(missed)}):")
        for r in missed[:max_rows]:
            lab = r.label
            when = "no matching ticket" if r.first_alert_ms is None else (
                f"first matching alert {_minutes(r.delay_ms)} from the start")
            out.append(f"    {lab.id} {lab.kind:<16} {lab.site}/{lab.screen} {lab.root} "
                       f"start {iso(lab.hard_start_ms)}: {when}")  # fmt: skip
    worst = sorted((r for r in report.incidents if len(r.tickets) > 1),
                   key=lambda r: (-len(r.tickets), r.label.start_ms))  # fmt: skip
    if worst:
        out.append("")
        out.append("incidents with more than one ticket (worst first):")
        for r in worst[:10]:
            lab = r.label
            faults = sorted({f"{a.ticket}:{a.component}:{a.fault}" for a in r.alerts})
            out.append(f"    {lab.id} {lab.kind:<16} {lab.site}/{lab.screen} {lab.root}: "
                       f"{len(r.tickets)} tickets ({', '.join(faults)})")  # fmt: skip
    if report.psu_leads:
        out.append("")
        leads = [r.lead_ms for r in report.psu_leads if r.lead_ms is not None and r.lead_ms > 0]
        summary = (f"min {_hours(min(leads))}, median {_hours(int(statistics.median(leads)))}"
                   if leads else "none flagged")  # fmt: skip
        out.append(f"PSU warning lead time before dark (target >= 24 h each): {summary}")
        for r in report.psu_leads:
            lab = r.label
            flag = "ok" if r.lead_ms is not None and r.lead_ms >= TARGET_PSU_LEAD_MS else "SHORT"
            place = f"{lab.site}/{lab.screen}"
            out.append(f"    {lab.id} {place:<28} {lab.root:<18} {lab.note:<46} "
                       f"lead {_hours(r.lead_ms):>8}  {flag}")  # fmt: skip
    if report.false_alerts:
        out.append("")
        out.append(f"false alerts ({len(report.false_alerts)}; "
                   f"{len(report.glitch_alerts)} of them in non-incident windows):")  # fmt: skip
        glitch_of = dict(report.glitch_alerts)
        for a in report.false_alerts[:max_rows]:
            near = glitch_of.get(a)
            extra = f"  <- {near.kind} {near.id}" if near is not None else ""
            out.append(_alert_line(a) + extra)
        if len(report.false_alerts) > max_rows:
            out.append(f"    ... {len(report.false_alerts) - max_rows} more")
    failures = report.failures()
    if failures:
        out.append("")
        out.append("short of the targets: " + "; ".join(failures))
    out.append("")
    out.append(score_line(report))
    return "\n".join(out)


__all__ = ["NO_SCREEN", "Alert", "IncidentResult", "Report", "Ticket", "format_report",
           "matches", "score", "score_line"]  # fmt: skip
