"""Read models handed out by the ticket service (frozen: a snapshot, not a live row)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Source(StrEnum):
    AUTO = "auto"  # opened by detection from telemetry
    MANUAL = "manual"  # a phone or e-mail report entered by the desk


class Resolution(StrEnum):
    REMOTE = "remote"
    ONSITE = "onsite"


@dataclass(frozen=True, slots=True)
class TicketChange:
    """One state change, as handed to listeners (InfluxDB `ticket` point, notifications)."""

    ticket_id: int
    site: str
    screen: str
    component: str
    fault: str
    priority: str
    state: str
    ts_ms: int
    opened: bool  # True when this change created the ticket
    step: str = ""  # the lifecycle step, or priority / escalate / flapping / effect
    note: str = ""
    event_id: int = 0  # the history entry it wrote


@dataclass(frozen=True, slots=True)
class Effect:
    """A finding recorded on a root-cause ticket instead of opening one of its own."""

    component: str
    fault: str
    first_ms: int
    last_ms: int
    active: bool


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    id: int
    site: str
    screen: str | None  # None: the whole site
    component: str | None  # None: the whole screen
    start_ms: int
    end_ms: int
    who: str
    why: str
    created_ms: int
    created_by: str
    ended_early_ms: int | None
    source: str

    def covers(self, site: str, screen: str, component: str, ts_ms: int) -> bool:
        if site != self.site or not self.start_ms <= ts_ms < self.end_ms:
            return False
        if self.screen is not None and screen != self.screen:
            return False
        if self.component is None:
            return True
        return component == self.component or component.startswith(self.component + "/")


@dataclass(frozen=True, slots=True)
class SuppressedFinding:
    """A ticket that a maintenance window kept from opening."""

    id: int
    maintenance_id: int
    key: str
    site: str
    screen: str
    component: str
    fault: str
    priority: str
    detail: str
    root: str | None
    first_ms: int
    cleared_ms: int | None
    ticket_id: int | None  # opened when the window ended with the fault still active


@dataclass(frozen=True, slots=True)
class TicketEvent:
    ts_ms: int
    actor: str
    step: str
    from_state: str | None
    to_state: str
    note: str


@dataclass(frozen=True, slots=True)
class Survey:
    ticket_id: int
    score: int
    satisfied: bool
    comment: str
    ts_ms: int
    actor: str


@dataclass(frozen=True, slots=True)
class PartUsed:
    """A spare part fitted on a repair, recorded with the resolve step."""

    ticket_id: int
    site: str
    screen: str
    component: str
    model: str
    quantity: int
    ts_ms: int


@dataclass(frozen=True, slots=True)
class Ticket:
    id: int
    key: str
    site: str
    screen: str
    component: str
    fault: str
    priority: str
    state: str
    source: str
    detail: str
    reporter: str | None
    engineer: str | None
    opened_ms: int
    reopened_ms: int | None
    acknowledged_ms: int | None
    dispatched_ms: int | None
    arrived_ms: int | None
    cleared_ms: int | None
    resolved_ms: int | None
    closed_ms: int | None
    response_due_ms: int
    onsite_due_ms: int
    resolve_due_ms: int
    repair_due_ms: int | None
    in_warranty: bool | None
    reopen_count: int
    repeat_of: int | None
    root_cause: str | None
    resolution: str | None
    product_fault: bool
    flapping: bool = False
    predicted_failure_ms: int | None = None
    evidence: dict[str, Any] | None = None
    paused_ms: int | None = None  # waiting on the customer since then: clocks stopped
    paused_total_ms: int = 0
    response_warned: int = 0
    onsite_warned: int = 0
    escalation_level: int = 0
    response_breached_ms: int | None = None
    onsite_breached_ms: int | None = None
    allowed_steps: tuple[str, ...] = ()
    spare_due: bool = False  # repair overran `repair_h`: a spare unit is owed
    history: tuple[TicketEvent, ...] = field(default_factory=tuple)
    survey: Survey | None = None
    effects: tuple[Effect, ...] = ()
    parts_used: tuple[PartUsed, ...] = ()

    @property
    def cycle_start_ms(self) -> int:
        """Start of the current service cycle: a reopen starts the SLA clocks again."""
        return self.reopened_ms if self.reopened_ms is not None else self.opened_ms

    @property
    def component_kind(self) -> str:
        return self.component.split("/", 1)[0]
