"""Latest state per screen (from the in-memory directory) with its open tickets."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path

from collector.api.deps import CtxDep, Role, require
from collector.api.schemas import (
    ScreenDetailPublic,
    ScreenPublic,
    TicketPublic,
    WarrantyPublic,
)
from collector.tickets.service import TicketFilter
from ledwatch.contract import ID_PATTERN

router = APIRouter(
    prefix="/api/v1/screens",
    tags=["screens"],
    dependencies=[Depends(require(Role.VIEWER))],
    responses={401: {"description": "no or unknown token"}},
)

IdPath = Annotated[str, Path(pattern=ID_PATTERN.pattern)]


@router.get("", response_model=list[ScreenPublic])
def list_screens(ctx: CtxDep) -> list[ScreenPublic]:
    out = []
    for s in ctx.screens.list():
        _, open_count = ctx.tickets.list(
            TicketFilter(site=s.site, screen=s.screen, open_only=True), limit=0
        )
        out.append(
            ScreenPublic(
                site=s.site,
                screen=s.screen,
                agent=s.agent,
                seq=s.seq,
                ts_ms=s.ts_ms,
                received_ms=s.received_ms,
                open_tickets=open_count,
            )
        )
    return out


@router.get(
    "/{site}/{screen}",
    response_model=ScreenDetailPublic,
    responses={404: {"description": "no telemetry from this screen since the start"}},
)
def get_screen(site: IdPath, screen: IdPath, ctx: CtxDep) -> ScreenDetailPublic:
    state = ctx.screens.get(site, screen)
    if state is None:
        raise HTTPException(
            404, f"screen {site}/{screen} is unknown: no telemetry received since the start"
        )
    tickets, count = ctx.tickets.list(
        TicketFilter(site=site, screen=screen, open_only=True), limit=1000
    )
    warranty = ctx.tickets.warranty(site, screen)
    return ScreenDetailPublic(
        site=state.site,
        screen=state.screen,
        agent=state.agent,
        seq=state.seq,
        ts_ms=state.ts_ms,
        received_ms=state.received_ms,
        open_tickets=count,
        snapshot=state.snapshot,
        tickets=[TicketPublic.model_validate(t) for t in tickets],
        warranty=None
        if warranty is None
        else WarrantyPublic(
            start_ms=warranty.start_ms,
            end_ms=warranty.end_ms,
            extension_ms=warranty.extension_ms,
            restarts=warranty.restarts,
            downtime_ms=warranty.downtime_ms,
            in_warranty=warranty.covers(ctx.tickets.now_ms()),
        ),
    )
