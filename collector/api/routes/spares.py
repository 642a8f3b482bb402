"""The spares plan: per component model, the stock the contract promises and the stock
that covers the failures expected over a reorder lead time (docs/spares.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from collector.api.care_schemas import SparesPublic
from collector.api.deps import CtxDep, Role, require
from collector.settings import CareSettings
from ledwatch.contract import ID_PATTERN

router = APIRouter(
    prefix="/api/v1/spares",
    tags=["spares"],
    dependencies=[Depends(require(Role.VIEWER))],
    responses={401: {"description": "no or unknown token"},
               403: {"description": "the token's role is too low"}},
)


@router.get("", response_model=SparesPublic, operation_id="getSpares")
def get_spares(
    ctx: CtxDep,
    site: Annotated[str | None, Query(pattern=ID_PATTERN.pattern)] = None,
    region: Annotated[str | None, Query(
        pattern=ID_PATTERN.pattern,
        description="the contracts' region (a site without one is its own region)")] = None,
    lead_time_days: Annotated[float | None, Query(
        ge=0, le=3650, description="reorder lead time; default [care] spares_lead_time_days"),
    ] = None,
    confidence: Annotated[float | None, Query(
        gt=0, le=0.9999, description="default [care] spares_confidence (0.95)")] = None,
    window_days: Annotated[float | None, Query(
        ge=1, le=3650, description="failures counted over the last N days (default 365)"),
    ] = None,
) -> SparesPublic:
    care = ctx.care or CareSettings()
    plan = ctx.tickets.spares(
        site, region,
        lead_time_days=care.spares_lead_time_days if lead_time_days is None else lead_time_days,
        confidence=care.spares_confidence if confidence is None else confidence,
        window_days=care.spares_window_days if window_days is None else window_days,
    )
    return SparesPublic.model_validate(plan)
