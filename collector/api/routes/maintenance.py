"""Maintenance windows: while an engineer works on a screen, its findings open no tickets.

Creating and ending one needs an engineer token, reading a viewer token. DELETE ends a
window now; it stays on record with the findings it suppressed (docs/detection.md).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status

from collector.api.deps import MAX_ID, CtxDep, Engineer, Limit, Offset, Role, require
from collector.api.schemas import (
    MaintenanceCreate,
    MaintenanceDetailPublic,
    MaintenancePublic,
    SuppressedPublic,
)
from ledwatch.contract import ID_PATTERN

router = APIRouter(
    prefix="/api/v1/maintenance",
    tags=["maintenance"],
    dependencies=[Depends(require(Role.VIEWER))],
    responses={
        401: {"description": "no or unknown token"},
        403: {"description": "the token's role is too low"},
    },
)
WindowId = Annotated[int, Path(ge=1, le=MAX_ID, description="maintenance window id")]


def _detail(ctx: CtxDep, window_id: int) -> MaintenanceDetailPublic:
    window = ctx.tickets.window(window_id)
    held = [SuppressedPublic.model_validate(s) for s in ctx.tickets.suppressed(window_id)]
    return MaintenanceDetailPublic(**asdict(window), suppressed=held)


_WINDOW_ID = {"window_id": "$response.body#/id"}
# OpenAPI links: the window a response returns can be read and ended (schemathesis'
# stateful phase follows them).
_LINKS = {
    "getWindow": {"operationId": "getWindow", "parameters": _WINDOW_ID},
    "endWindow": {"operationId": "endWindow", "parameters": _WINDOW_ID},
}


@router.post(
    "",
    response_model=MaintenanceDetailPublic,
    status_code=status.HTTP_201_CREATED,
    operation_id="createWindow",
    responses={201: {"description": "the window", "links": _LINKS}},
)
def create_window(body: MaintenanceCreate, ctx: CtxDep, who: Engineer) -> MaintenanceDetailPublic:
    start = ctx.tickets.now_ms() if body.start is None else int(body.start.timestamp() * 1000)
    if (body.end is None) == (body.duration_min is None):
        raise HTTPException(422, "give exactly one of end or duration_min")
    if body.end is not None:
        end = int(body.end.timestamp() * 1000)
    else:
        assert body.duration_min is not None
        end = start + round(body.duration_min * 60_000)
    window = ctx.tickets.create_window(
        body.site, start, end, body.who, body.why, screen=body.screen,
        component=body.component, actor=who.actor(),
    )
    return _detail(ctx, window.id)


@router.get("", response_model=list[MaintenancePublic], operation_id="listWindows")
def list_windows(
    ctx: CtxDep,
    site: Annotated[str | None, Query(pattern=ID_PATTERN.pattern)] = None,
    active: Annotated[bool, Query(description="only windows running now")] = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[MaintenancePublic]:
    at = ctx.tickets.now_ms() if active else None
    found = ctx.tickets.windows(site=site, active_at=at, limit=limit, offset=offset)
    return [MaintenancePublic.model_validate(w) for w in found]


@router.get("/{window_id}", response_model=MaintenanceDetailPublic, operation_id="getWindow",
            responses={404: {"description": "no such window"}})
def get_window(window_id: WindowId, ctx: CtxDep) -> MaintenanceDetailPublic:
    return _detail(ctx, window_id)


@router.delete("/{window_id}", response_model=MaintenanceDetailPublic, operation_id="endWindow",
               responses={404: {"description": "no such window"}})
def end_window(window_id: WindowId, ctx: CtxDep, who: Engineer) -> MaintenanceDetailPublic:
    ctx.tickets.end_window(window_id, who.actor())
    return _detail(ctx, window_id)
