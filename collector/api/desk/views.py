"""What the desk's pages show, computed from tickets and snapshots. Pure: no I/O, no clock.

Two questions are answered here rather than in templates, so they are tested directly:
which deadline of a ticket comes next (the queue's order and countdowns), and what
colour each cabinet of a screen has (the screen page).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Final

from collector.detect.findings import Priority
from collector.detect.rules import RULES, Op, Rule, Section
from collector.tickets.lifecycle import WORKING, State
from collector.tickets.models import Ticket

# Cabinet colours, worst first (docs/desk.md says what each means).
CABINET_STATES: Final = ("dark", "fault", "warning", "unknown", "ok")
# A layout beyond this is treated as bad data, not drawn as a huge table.
MAX_GRID: Final = 256
# Columns of `cards` that place a cabinet rather than describe it.
_PLACEMENT: Final = frozenset({"id", "row", "col", "port", "index"})
_URGENT: Final = frozenset({Priority.P1.value, Priority.P2.value})


# -- formatting (the same text the countdown script writes: desk.js) ---------------------


def fmt_ts(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_duration(ms: int) -> str:
    """14 min 03 s / 3 h 05 min / 2 d 04 h: precise where it matters, short where not."""
    s = abs(ms) // 1000
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    if s < 48 * 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600:02d} h"


def fmt_remaining(ms: int) -> str:
    return f"overdue {fmt_duration(ms)}" if ms < 0 else f"in {fmt_duration(ms)}"


def fmt_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int | str):
        return str(value)
    return json.dumps(value, separators=(", ", ": "), default=str)


def readings(section: Any) -> list[tuple[str, str]]:
    """A snapshot section (controller, env) as sorted (key, text) pairs."""
    if not isinstance(section, Mapping):
        return []
    return [(str(k), fmt_value(v)) for k, v in sorted(section.items())]


# -- SLA clocks ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Clock:
    """One deadline of a ticket. `remaining_ms` is frozen at the pause while paused."""

    name: str  # response | on site | resolve | repair
    due_ms: int
    met_ms: int | None  # when the step that stops this clock happened
    breached_ms: int | None  # recorded by the SLA check (response, on site)
    remaining_ms: int
    paused: bool
    running: bool  # the state still needs this step (a remote fix needs nobody on site)

    @property
    def pending(self) -> bool:
        return self.met_ms is None and self.running

    @property
    def late(self) -> bool:
        """Missed: a recorded breach, met after the deadline, or still open past it."""
        if self.breached_ms is not None:
            return True
        if self.met_ms is not None:
            return self.met_ms > self.due_ms
        return self.running and self.remaining_ms < 0


def clocks(t: Ticket, now_ms: int) -> list[Clock]:
    """The ticket's deadlines in the order the lifecycle meets them.

    Response and on site run while somebody works on the ticket (as the SLA check
    counts them); resolve runs until the fix, through verifying."""
    paused = t.paused_ms is not None
    ref = t.paused_ms if t.paused_ms is not None else now_ms
    working = t.state in WORKING
    unresolved = working or t.state == State.VERIFYING.value
    rows: list[tuple[str, int | None, int | None, int | None, bool]] = [
        ("response", t.response_due_ms, t.acknowledged_ms, t.response_breached_ms, working),
        ("on site", t.onsite_due_ms, t.arrived_ms, t.onsite_breached_ms, working),
        ("resolve", t.resolve_due_ms, t.resolved_ms, None, unresolved),
        ("repair", t.repair_due_ms, t.resolved_ms, None, unresolved),
    ]
    return [
        Clock(name, due, met, breached, due - ref, paused, running)
        for name, due, met, breached, running in rows
        if due is not None
    ]


def next_deadline(t: Ticket, now_ms: int) -> Clock | None:
    """The nearest of response / on site / resolve not met yet (None: nothing is due)."""
    pending = [c for c in clocks(t, now_ms) if c.pending and c.name != "repair"]
    return min(pending, key=lambda c: c.remaining_ms, default=None)


@dataclass(frozen=True, slots=True)
class QueueRow:
    ticket: Ticket
    deadline: Clock | None

    @property
    def active_effects(self) -> int:
        return sum(1 for e in self.ticket.effects if e.active)


def queue(tickets: Iterable[Ticket], now_ms: int) -> list[QueueRow]:
    """Tickets not closed, nearest deadline first; those with nothing due last, then by
    priority and age, so two tickets due together show the more urgent one first."""
    rows = [QueueRow(t, next_deadline(t, now_ms)) for t in tickets if t.state != "closed"]

    def order(r: QueueRow) -> tuple[bool, int, str, int]:
        left = r.deadline.remaining_ms if r.deadline is not None else 0
        return (r.deadline is None, left, r.ticket.priority, r.ticket.id)

    return sorted(rows, key=order)


# -- the screen as it hangs ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Part:
    """A PSU of a cabinet: its readings, for the cabinet's panel."""

    id: str
    readings: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Cabinet:
    n: int  # position in the snapshot's columns: a safe HTML id, unlike card ids
    card: str
    row: int
    col: int
    state: str  # one of CABINET_STATES
    why: tuple[str, ...]
    readings: tuple[tuple[str, str], ...]
    psus: tuple[Part, ...]
    tickets: tuple[Ticket, ...]


@dataclass(frozen=True, slots=True)
class Grid:
    placement: str  # "row/col", "port/index" or "order" (what the positions came from)
    rows: tuple[tuple[Cabinet | None, ...], ...]
    cabinets: tuple[Cabinet, ...]
    screen_tickets: tuple[Ticket, ...]  # tickets of the controller, the screen, the env
    counts: dict[str, int] = field(default_factory=dict)


def _column(section: Mapping[str, Any], key: str, n: int) -> list[Any]:
    """A columnar array padded to `n` (a short or missing column reads as null)."""
    col = section.get(key)
    values = list(col) if isinstance(col, list) else []
    return (values + [None] * n)[:n]


def _positions(cards: Mapping[str, Any], n: int) -> tuple[str, list[tuple[int, int]]]:
    """(row, col) per card: the layout's row/col when every card has one, else the chain
    (output port as the row, position on it as the column), else one row in order."""
    for placement, rkey, ckey in (("row/col", "row", "col"), ("port/index", "port", "index")):
        rows, cols = _column(cards, rkey, n), _column(cards, ckey, n)
        cells = list(zip(rows, cols, strict=True))
        if n and all(
            isinstance(r, int) and isinstance(c, int) and 0 <= r < MAX_GRID and 0 <= c < MAX_GRID
            for r, c in cells
        ) and len(set(cells)) == n:
            return placement, cells
    return "order", [(i // MAX_GRID, i % MAX_GRID) for i in range(n)]


def _near(rule: Rule, value: Any) -> bool:
    """Past the rule's clearing level (or a bad flag): a ticket may follow soon."""
    if rule.op is Op.TRUE:
        return value is True
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if rule.op is Op.ABOVE:
        return value >= rule.clear_level
    if rule.op is Op.BELOW:
        return value <= rule.clear_level
    return False


def _warnings(section: Section, row: Mapping[str, Any], label: str) -> list[str]:
    out = []
    for rule in RULES:
        if rule.reading == "module_faults":
            continue  # any module fault is already a fault, not a warning
        if rule.section is section and rule.reading in row and _near(rule, row[rule.reading]):
            out.append(f"{label}{rule.reading} {fmt_value(row[rule.reading])} ({rule.name})")
    return out


def _touches(t: Ticket, components: set[str]) -> bool:
    if t.component in components:
        return True
    return any(e.active and e.component in components for e in t.effects)


def _colour(
    row: Mapping[str, Any], working: Sequence[Ticket], psus: Sequence[Mapping[str, Any]]
) -> tuple[str, list[str]]:
    """(state, why) of one cabinet; the order of the tests is the precedence."""
    online = row.get("online")
    if online is False:
        return "dark", ["online: no"]
    if online is not True:
        return "unknown", ["online: not known this poll"]
    why = [f"{t.priority} ticket #{t.id}: {t.fault}" for t in working]
    faults = row.get("module_faults")
    broken = isinstance(faults, int) and not isinstance(faults, bool) and faults > 0
    if broken:
        why.append(f"module_faults {faults}")
    near = _warnings(Section.CARD, row, "")
    for psu in psus:
        label = f"psu {psu.get('id')}: "
        near += _warnings(Section.PSU, psu, label)
        if psu.get("ok") is False:
            near.append(f"{label}ok no")
    why += near
    if broken or any(t.priority in _URGENT for t in working):
        return "fault", why
    return ("warning" if working or near else "ok"), why


def cabinet_grid(snapshot: Mapping[str, Any] | None, tickets: Sequence[Ticket]) -> Grid:
    """Each cabinet of the latest snapshot with its colour, readings and open tickets.

    Colours, first match wins: dark (online false), unknown (online null / not reported),
    fault (a working P1/P2 ticket on the card, its link or its PSUs, or module faults),
    warning (a working P3/P4 ticket, or a reading past a rule's clearing level), ok.
    Only working tickets colour: a verifying or resolved one says the fault went away.
    """
    snap = snapshot or {}
    cards = snap.get("cards")
    cards = cards if isinstance(cards, dict) else {}
    psus = snap.get("psus")
    psus = psus if isinstance(psus, dict) else {}
    ids = [str(i) for i in cards.get("id") or []]
    n = len(ids)
    placement, cells = _positions(cards, n)
    keys = [k for k in cards if k not in _PLACEMENT]
    columns = {k: _column(cards, k, n) for k in keys}
    psu_ids = [str(i) for i in psus.get("id") or []]
    psu_cols = {k: _column(psus, k, len(psu_ids)) for k in psus}
    psu_rows = [{k: v[j] for k, v in psu_cols.items()} for j in range(len(psu_ids))]
    cabinets = []
    for i, card in enumerate(ids):
        row = {k: columns[k][i] for k in keys}
        mine = [p for p in psu_rows if p.get("card") == card]
        components = {f"card/{card}", f"link/{card}", *(f"psu/{p.get('id')}" for p in mine)}
        own = tuple(t for t in tickets if _touches(t, components))
        state, why = _colour(row, [t for t in own if t.state in WORKING], mine)
        parts = tuple(
            Part(str(p.get("id")), tuple((k, fmt_value(v)) for k, v in p.items()
                                         if k not in ("id", "card")))
            for p in mine
        )
        r, c = cells[i]
        readings = tuple((k, fmt_value(row[k])) for k in keys)
        cabinets.append(Cabinet(i, card, r, c, state, tuple(why), readings, parts, own))
    height = 1 + max((c.row for c in cabinets), default=-1)
    width = 1 + max((c.col for c in cabinets), default=-1)
    table: list[list[Cabinet | None]] = [[None] * width for _ in range(height)]
    for cab in cabinets:
        table[cab.row][cab.col] = cab
    counts = {s: sum(1 for c in cabinets if c.state == s) for s in CABINET_STATES}
    on_cabinets = {t.id for cab in cabinets for t in cab.tickets}
    others = tuple(t for t in tickets if t.id not in on_cabinets)
    return Grid(placement, tuple(tuple(r) for r in table), tuple(cabinets), others, counts)


# -- KPIs ---------------------------------------------------------------------------------

# field -> (label, what it measures); fields not named here are shown under their own name
KPI_LABELS: Final = {
    "tickets_opened": ("Tickets opened", "in the month"),
    "tickets_closed": ("Tickets closed", "in the month"),
    "satisfaction_rate": ("Satisfaction", "surveys with a satisfied score / surveys"),
    "surveyed": ("Surveys", "ratings dated in the month"),
    "cycle_compliance_rate": ("Service-cycle compliance", "closed tickets finished in time"),
    "repeat_service_rate": ("Repeat service", "closed tickets that were repeats"),
    "mtta_min": ("MTTA", "mean time to acknowledge"),
    "mttr_min": ("MTTR", "mean time to resolve"),
    "response_compliance_rate": ("Response compliance", "acknowledged within the deadline"),
    "onsite_compliance_rate": ("On-site compliance", "arrived within the deadline"),
    "response_breaches": ("Response breaches", "response deadlines passed unacknowledged"),
    "onsite_breaches": ("On-site breaches", "on-site deadlines passed without arrival"),
    "availability": ("Availability", "1 - dark screen time / screen time"),
    "screens": ("Screens", "counted for availability"),
    "downtime_min": ("Downtime", "dark screen time, all screens"),
    "failures_by_component": ("Failures by component", "tickets opened per component kind"),
}


def fmt_kpi(name: str, value: Any) -> str:
    if value is None:
        return "no data"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in sorted(value.items())) or "none"
    if name.endswith("_rate"):
        return f"{100 * value:.1f} %"
    if name == "availability":
        return f"{100 * value:.3f} %"
    if name.endswith("_min"):
        return f"{value:.1f} min"
    return fmt_value(value)


def kpi_rows(kpis: Any) -> list[tuple[str, str, str, str]]:
    """(field, label, value, meaning) for every KPI field of the dataclass, in its order."""
    rows = []
    for f in fields(kpis):
        if f.name in ("month", "site"):
            continue
        label, meaning = KPI_LABELS.get(f.name, (f.name, ""))
        rows.append((f.name, label, fmt_kpi(f.name, getattr(kpis, f.name)), meaning))
    return rows


def neighbour_months(month: str) -> tuple[str, str]:
    """The months before and after `month` (YYYY-MM), for the page's links."""
    year, mon = int(month[:4]), int(month[5:7])
    before = f"{year - 1}-12" if mon == 1 else f"{year}-{mon - 1:02d}"
    after = f"{year + 1}-01" if mon == 12 else f"{year}-{mon + 1:02d}"
    return before, after
