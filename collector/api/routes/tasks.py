"""Proactive-care tasks: follow-up contacts and remote inspections with due dates.

The collector schedules them from each screen's acceptance date (docs/tasks.md); the
desk lists them (viewer) and records one as done (engineer). Doing a task twice gets
409, an unknown id 404, like ticket steps.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from collector.api.care_schemas import TaskDoneBody, TaskPublic, TasksPublic
from collector.api.deps import MAX_ID, CtxDep, Engineer, Limit, Offset, Role, require
from collector.tickets.contracts import date_ms
from collector.tickets.tasks import Task, TaskKind
from ledwatch.contract import ID_PATTERN

router = APIRouter(
    prefix="/api/v1/tasks",
    tags=["tasks"],
    dependencies=[Depends(require(Role.VIEWER))],
    responses={
        401: {"description": "no or unknown token"},
        403: {"description": "the token's role is too low"},
        404: {"description": "no such task"},
    },
)
TaskId = Annotated[int, Path(ge=1, le=MAX_ID, description="task id")]


def _public(task: Task, now_ms: int) -> TaskPublic:
    return TaskPublic.model_validate(task.document(now_ms))


@router.get("", response_model=TasksPublic, operation_id="listTasks")
def list_tasks(
    ctx: CtxDep,
    site: Annotated[str | None, Query(pattern=ID_PATTERN.pattern)] = None,
    screen: Annotated[str | None, Query(pattern=ID_PATTERN.pattern)] = None,
    kind: TaskKind | None = None,
    due_before: Annotated[date | None, Query(
        description="due before this day (YYYY-MM-DD, UTC)")] = None,
    open_only: Annotated[bool, Query(alias="open", description="not done yet")] = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> TasksPublic:
    """Tasks, earliest due first."""
    before = None if due_before is None else date_ms(due_before)
    which = None if kind is None else kind.value
    tasks = ctx.tickets.tasks(site, screen, which, before, open_only, limit=limit, offset=offset)
    now = ctx.tickets.now_ms()
    return TasksPublic(data=[_public(t, now) for t in tasks],
                       count=ctx.tickets.count_tasks(site, screen, which, before, open_only))


@router.get("/{task_id}", response_model=TaskPublic, operation_id="getTask")
def get_task(task_id: TaskId, ctx: CtxDep) -> TaskPublic:
    return _public(ctx.tickets.get_task(task_id), ctx.tickets.now_ms())


@router.post(
    "/{task_id}/done",
    response_model=TaskPublic,
    operation_id="doneTask",
    responses={409: {"description": "the task was already done"}},
)
def done(
    task_id: TaskId, ctx: CtxDep, who: Engineer, body: TaskDoneBody | None = None
) -> TaskPublic:
    """Record the follow-up contact or inspection as done (who, when, a note)."""
    body = body or TaskDoneBody()
    task = ctx.tickets.complete_task(task_id, who.actor(body.by), body.note, body.report)
    return _public(task, ctx.tickets.now_ms())
