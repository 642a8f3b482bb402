"""Monthly service-desk KPIs (formulas in docs/tickets.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from collector.api.deps import CtxDep, Role, require
from collector.api.schemas import KpisPublic
from ledwatch.contract import ID_PATTERN

router = APIRouter(
    prefix="/api/v1/kpis",
    tags=["kpis"],
    dependencies=[Depends(require(Role.VIEWER))],
)


@router.get("", response_model=KpisPublic)
def get_kpis(
    ctx: CtxDep,
    month: Annotated[str, Query(
        description="YYYY-MM, UTC month", examples=["2026-03"], max_length=64,
        # Documented, not enforced here: the service's 422 then states the format.
        json_schema_extra={"pattern": r"^[0-9]{4}-(0[1-9]|1[0-2])$"},
    )],
    site: Annotated[str | None, Query(pattern=ID_PATTERN.pattern)] = None,
) -> KpisPublic:
    # The month is checked by the service so the 422 message states the format.
    screens = {(s.site, s.screen) for s in ctx.screens.list()}
    return KpisPublic.model_validate(ctx.tickets.kpis(month, site=site, screens=screens))
