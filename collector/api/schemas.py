"""Request and response bodies: one model per direction (Create, step bodies, Public)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from collector.detect.findings import Priority
from collector.tickets.lifecycle import State
from collector.tickets.models import Resolution
from ledwatch.contract import ID_PATTERN

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN.pattern)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Text = Annotated[str, StringConstraints(max_length=4000)]


def storable_text(value: str) -> str:
    """Refuse NUL: PostgreSQL text cannot hold it (the driver would fail with a 500).
    Lone surrogates, which neither database can store, pydantic refuses itself."""
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    return value


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return storable_text(value) if isinstance(value, str) else value


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# -- tickets: requests --------------------------------------------------------------------
class TicketCreate(_In):
    """A fault reported by phone or e-mail."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "site": "acme", "screen": "main", "component": "card/c12",
        "description": "dark block top left", "reporter": "Ann (reception)",
    }]})

    site: Id
    screen: Id
    component: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_./-]{0,127}$")] = Field(
        description='"controller", "card/<id>", "psu/<id>", "env", or another part name'
    )
    description: Annotated[str, StringConstraints(min_length=1, max_length=4000)]
    reporter: Name = Field(description="who called or wrote")
    priority: Priority | None = Field(default=None, description="default: per contract")
    new_site: bool = Field(
        default=False,
        description="true: the site or screen is new (no contract, agent or ticket names it "
        "yet); without it such a report is refused with 422",
    )


class StepBody(_In):
    note: Text = ""
    by: Name | None = Field(default=None, description="the person at the desk (history shows it)")


class DispatchBody(StepBody):
    engineer: Name


class PartBody(_In):
    """A spare part fitted on the repair (recorded in `parts_used` with the resolve)."""

    model: Name = Field(description='the part\'s model, as the installed base names it')
    quantity: int = Field(default=1, ge=1, le=10_000)
    component: Annotated[
        str | None, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_./-]{0,127}$")
    ] = Field(default=None, description='e.g. "psu/p0c3-psu1"; default: the ticket\'s')


class ResolveBody(StepBody):
    resolution: Resolution | None = Field(default=None, description="default: onsite after arrival")
    root_cause: Text = ""
    product_fault: bool = Field(default=True, description="false for misuse: no warranty extension")
    parts: list[PartBody] = Field(default_factory=list, max_length=100,
                                  description="spare parts used on the repair")


class PauseBody(StepBody):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]


class ReopenBody(StepBody):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]


class SurveyBody(StepBody):
    score: int = Field(ge=1, le=5)
    comment: Text = ""


# -- tickets: responses -------------------------------------------------------------------
class TicketEventPublic(_Out):
    ts_ms: int
    actor: str
    step: str
    from_state: str | None
    to_state: str
    note: str


class SurveyPublic(_Out):
    score: int
    satisfied: bool
    comment: str
    ts_ms: int
    actor: str


class TicketPublic(_Out):
    id: int
    key: str
    site: str
    screen: str
    component: str
    fault: str
    priority: Priority
    state: State
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
    spare_due: bool
    in_warranty: bool | None
    reopen_count: int
    repeat_of: int | None
    root_cause: str | None
    resolution: str | None
    product_fault: bool
    flapping: bool = Field(description="the fault came and went repeatedly; kept open")
    predicted_failure_ms: int | None = Field(
        description="predictive tickets: when the part is expected to fail"
    )
    paused_ms: int | None = Field(description="waiting on the customer since: clocks stopped")
    paused_total_ms: int = Field(description="clock time the ticket was paused, this cycle")
    escalation_level: int = Field(description="notification route level reached (0 = first)")
    response_breached_ms: int | None = Field(
        description="the response deadline passed without acknowledge (at the deadline)")
    onsite_breached_ms: int | None = Field(
        description="the on-site deadline passed without arrive (at the deadline)")
    allowed_steps: list[str]


class EffectPublic(_Out):
    component: str
    fault: str
    first_ms: int
    last_ms: int
    active: bool


class PartUsedPublic(_Out):
    component: str
    model: str
    quantity: int
    ts_ms: int


class TicketDetailPublic(TicketPublic):
    history: list[TicketEventPublic]
    survey: SurveyPublic | None
    effects: list[EffectPublic] = Field(
        description="findings caused by this ticket's root cause (e.g. the cabinet a PSU "
        "took dark), recorded here instead of opening tickets of their own"
    )
    evidence: dict[str, Any] | None = Field(description="the readings the fault opened with")
    parts_used: list[PartUsedPublic] = Field(
        default_factory=list, description="spare parts recorded with the resolve")


# -- maintenance windows ------------------------------------------------------------------
class MaintenanceCreate(_In):
    """An engineer works on a screen: its findings open no tickets until the window ends."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "site": "acme", "screen": "main", "duration_min": 90, "who": "J. Smith",
        "why": "replacing receiving card c4",
    }]})

    site: Id
    screen: Id | None = Field(default=None, description="default: the whole site")
    component: Annotated[
        str | None, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_./-]{0,127}$")
    ] = Field(default=None, description='e.g. "card/p0c3", "psu"; default: the whole screen')
    start: AwareDatetime | None = Field(default=None, description="default: now")
    end: AwareDatetime | None = Field(default=None, description="give end or duration_min")
    duration_min: float | None = Field(default=None, gt=0, le=90 * 24 * 60)
    who: Name = Field(description="the engineer on site")
    why: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]


class MaintenancePublic(_Out):
    id: int
    site: str
    screen: str | None
    component: str | None
    start_ms: int
    end_ms: int
    who: str
    why: str
    created_ms: int
    created_by: str
    ended_early_ms: int | None
    source: str


class SuppressedPublic(_Out):
    id: int
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
    ticket_id: int | None


class MaintenanceDetailPublic(MaintenancePublic):
    suppressed: list[SuppressedPublic] = Field(
        description="the tickets this window kept from opening"
    )


class TicketsPublic(BaseModel):
    data: list[TicketPublic]
    count: int


# -- KPIs, screens, health ----------------------------------------------------------------
class KpisPublic(_Out):
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
    failures_by_component: dict[str, int]
    response_breaches: int
    onsite_breaches: int
    inspection_compliance_rate: float | None = Field(
        description="inspections due in the month done by their due date / those judged")
    followup_compliance_rate: float | None = Field(
        description="follow-up contacts due in the month done by their due date / judged")
    inspections_due: int
    followups_due: int
    mtbf_h_by_model: dict[str, dict[str, float | None]] = Field(
        description="kind -> model -> installed unit-hours in the month / failures in the "
        "month (null: no failure)")


class WarrantyPublic(_Out):
    start_ms: int
    end_ms: int
    extension_ms: int
    restarts: int
    downtime_ms: int
    in_warranty: bool


class ScreenPublic(_Out):
    site: str
    screen: str
    agent: str
    seq: int
    ts_ms: int
    received_ms: int
    open_tickets: int


class ScreenDetailPublic(ScreenPublic):
    snapshot: dict[str, Any]
    tickets: list[TicketPublic]
    warranty: WarrantyPublic | None


class HealthPublic(BaseModel):
    status: Literal["ok", "fail"]
    failed: list[str]
    parts: dict[str, Any]
