"""Bodies of the proactive-care routes: spares (GET /spares) and tasks (/tasks)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from collector.api.schemas import Name, Text, _In, _Out


# -- spares ---------------------------------------------------------------------------------
class SpareLinePublic(_Out):
    kind: str = Field(description="controller | receiving_card | module | psu")
    model: str
    installed: int = Field(description="parts of this model in the scope now")
    min_stock: int = Field(description="ceil(installed x the contracts' spares_min_pct / 100)")
    failures: int = Field(description="product-fault tickets of this model in the window")
    unit_hours: float = Field(description="operating hours of these parts in the window")
    failure_rate_per_unit_year: float | None = Field(
        description="failures / unit_hours x 8766; null without operating hours")
    mtbf_h: float | None = Field(description="unit_hours / failures; null without failures")
    lead_time_days: float
    confidence: float
    expected_failures: float | None = Field(
        description="lambda: failures expected over the lead time at the observed rate")
    poisson_stock: int = Field(
        description="smallest k with Poisson CDF(k; lambda) >= confidence")
    recommended: int = Field(description="max(min_stock, poisson_stock)")
    parts_used: int = Field(description="quantity of this model fitted on resolves in the window")


class SparesPublic(_Out):
    site: str | None
    region: str | None
    start_ms: int = Field(description="the failure window: [start_ms, end_ms)")
    end_ms: int
    lead_time_days: float
    confidence: float
    lines: list[SpareLinePublic]


# -- tasks ----------------------------------------------------------------------------------
class TaskPublic(_Out):
    id: int
    site: str
    screen: str
    kind: Literal["inspection", "follow_up"]
    due_ms: int = Field(description="00:00 UTC of the due date; late from the next day")
    state: Literal["open", "overdue", "done"]
    on_time: bool | None = Field(description="done by the end of its due date; null: not done")
    done_ms: int | None
    done_by: str | None
    note: str
    report: str | None = Field(description="the inspection report written for it (a path)")
    notified_ms: int | None = Field(description="when task_due was queued")
    overdue_notified_ms: int | None = Field(description="when task_overdue was queued")


class TasksPublic(BaseModel):
    data: list[TaskPublic]
    count: int


class TaskDoneBody(_In):
    note: Text = ""
    by: Name | None = Field(default=None, description="who made the contact or the inspection")
    report: Text | None = Field(default=None, description="where the report is, if any")
