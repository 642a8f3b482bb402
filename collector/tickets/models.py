"""Read models handed out by the ticket service (frozen: a snapshot, not a live row)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


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
    allowed_steps: tuple[str, ...] = ()
    spare_due: bool = False  # repair overran `repair_h`: a spare unit is owed
    history: tuple[TicketEvent, ...] = field(default_factory=tuple)
    survey: Survey | None = None

    @property
    def cycle_start_ms(self) -> int:
        """Start of the current service cycle: a reopen starts the SLA clocks again."""
        return self.reopened_ms if self.reopened_ms is not None else self.opened_ms

    @property
    def component_kind(self) -> str:
        return self.component.split("/", 1)[0]
