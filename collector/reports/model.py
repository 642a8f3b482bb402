"""The inspection report as data (frozen): what build.py gathers and the template shows.

Kept apart from rendering so the figures can be tested, and the recommended actions
derived, without HTML or PDF in the way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from collector.reports.history import Forecast, History
from collector.reports.quarter import Quarter
from collector.tickets.models import Ticket


class Status(StrEnum):
    """A deadline's outcome."""

    MET = "met"
    BREACHED = "breached"
    OPEN = "open"  # not done yet, deadline still ahead
    NOT_APPLICABLE = "n/a"  # e.g. on site: nobody was dispatched


@dataclass(frozen=True, slots=True)
class Deadline:
    due_ms: int
    done_ms: int | None
    status: Status


@dataclass(frozen=True, slots=True)
class Incident:
    """A ticket whose service cycle started in the quarter, judged against its SLA."""

    ticket: Ticket
    response: Deadline
    onsite: Deadline
    resolve: Deadline
    ack_min: float | None  # time to acknowledge, from the cycle start
    resolve_h: float | None  # time to resolve (resolved, else closed), from the cycle start


@dataclass(frozen=True, slots=True)
class MonthAvailability:
    month: str
    measured_ms: int  # the part of the month measured (a running month: up to now)
    screen: float | None  # this screen, from its screen-dark tickets
    screen_downtime_min: float
    site: float | None  # TicketService.kpis(month, site).availability
    site_screens: int
    site_downtime_min: float


@dataclass(frozen=True, slots=True)
class Cabinet:
    card: str
    temp_max_c: float | None
    temp_mean_c: float | None
    delta_c: float | None  # mean minus the median of the screen's cabinet means
    fan_min_rpm: float | None
    fan_last_rpm: float | None  # minimum of the last day with data
    module_faults_max: int | None
    module_faults_last: int | None  # maximum of the last day with data
    fault_days: int  # days with at least one faulty module
    open_faults: tuple[str, ...]  # faults of the cabinet's tickets open now
    flags: tuple[str, ...]  # "hot", "fan", "modules": what the recommended actions use


@dataclass(frozen=True, slots=True)
class Psu:
    psu: str
    vout_min_v: float | None
    vout_last_min_v: float | None  # minimum of the last day with data
    trend_mv_per_day: float | None
    fan_min_rpm: float | None
    forecast: Forecast | None
    forecast_current: bool  # still forecast on the last day of data
    flags: tuple[str, ...]  # "falling", "low", "forecast"


@dataclass(frozen=True, slots=True)
class Prediction:
    """A component predicted to fail: an open forecast ticket or a current PSU forecast."""

    component: str
    fault: str
    predicted_failure_ms: int | None
    ticket_id: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class WarrantyInfo:
    acceptance: date
    months: int
    original_end_ms: int
    start_ms: int  # acceptance, or the last restart
    end_ms: int
    extension_ms: int
    restarts: int
    downtime_ms: int
    covers_quarter_end: bool
    days_left: float  # from the report's time; negative: ended


@dataclass(frozen=True, slots=True)
class PartRow:
    ts_ms: int
    ticket_id: int | None
    component: str
    model: str
    quantity: int


@dataclass(frozen=True, slots=True)
class TaskRow:
    id: int
    kind: str
    due_ms: int
    done_ms: int | None
    done_by: str | None
    note: str


@dataclass(frozen=True, slots=True)
class InventoryRow:
    kind: str
    model: str
    quantity: int
    seen_ms: int | None


class Severity(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@dataclass(frozen=True, slots=True)
class Action:
    severity: Severity
    text: str


@dataclass(frozen=True, slots=True)
class SlaSummary:
    response_met: int = 0
    response_breached: int = 0
    onsite_met: int = 0
    onsite_breached: int = 0
    resolve_met: int = 0
    resolve_breached: int = 0
    still_open: int = 0


@dataclass(frozen=True)
class InspectionReport:
    site: str
    screen: str
    quarter: Quarter
    generated_ms: int
    period_end_ms: int  # quarter end, or the report's time while the quarter runs
    months: tuple[MonthAvailability, ...]
    availability_screen: float | None
    availability_site: float | None
    site_screens: int
    incidents: tuple[Incident, ...]
    sla: SlaSummary
    open_tickets: tuple[Ticket, ...]  # open at the report's time, whenever opened
    history: History | None
    history_note: str  # why there is no history ("" when there is)
    cabinets: tuple[Cabinet, ...]
    psus: tuple[Psu, ...]
    predictions: tuple[Prediction, ...]
    warranty: WarrantyInfo | None
    parts: tuple[PartRow, ...] | None  # None: the ticket service records no parts (yet)
    tasks: tuple[TaskRow, ...] | None
    inventory: tuple[InventoryRow, ...] | None
    actions: tuple[Action, ...] = field(default=())

    @property
    def in_progress(self) -> bool:
        return self.period_end_ms < self.quarter.end_ms

    @property
    def quarter_days(self) -> int:
        return round((self.quarter.end_ms - self.quarter.start_ms) / 86_400_000)
