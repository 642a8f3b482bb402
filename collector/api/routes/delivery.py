"""Seq accounting per stream (collector/delivery.py): what arrived, what is missing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, Field

from collector.api.deps import CtxDep, Role, require
from collector.delivery import REPORT_GAPS
from ledwatch.contract import ID_PATTERN

router = APIRouter(
    prefix="/api/v1/delivery",
    tags=["delivery"],
    dependencies=[Depends(require(Role.VIEWER))],
    responses={
        401: {"description": "no or unknown token"},
        503: {"description": "this collector process does not track delivery"},
    },
)


class GapPublic(BaseModel):
    first: int = Field(description="first missing seq")
    last: int = Field(description="last missing seq (inclusive)")


class StreamPublic(BaseModel):
    site: str
    screen: str
    agent: str
    first: int = Field(description="lowest seq stored by this collector process")
    last: int = Field(description="highest seq stored")
    expected: int = Field(description="last - first + 1")
    received: int = Field(description="distinct seqs stored")
    missing: int = Field(description="seqs inside [first, last] not stored (yet)")
    open_gaps: int
    gaps: list[GapPublic] = Field(description=f"the first {REPORT_GAPS} open gaps, oldest first")
    duplicates: int = Field(description="snapshots stored again (re-deliveries)")
    out_of_order: int = Field(description="snapshots that arrived below the newest seq")
    forgotten_gaps: int = Field(description="gaps dropped by the per-stream cap")


class DeliveryPublic(BaseModel):
    streams: list[StreamPublic]
    count: int
    missing: int = Field(description="sum over the streams listed")
    duplicates: int = Field(description="sum over the streams listed")


@router.get("", response_model=DeliveryPublic)
def get_delivery(
    ctx: CtxDep,
    site: Annotated[str | None, Query(pattern=ID_PATTERN.pattern)] = None,
    screen: Annotated[str | None, Query(pattern=ID_PATTERN.pattern)] = None,
    missing_only: Annotated[bool, Query(description="only streams with a gap")] = False,
) -> DeliveryPublic:
    """Per (site, screen, agent): the seq range this collector process stored, its gaps
    and duplicates. One process's view: with several collectors in a share group, each
    sees a share of every stream (docs/delivery.md)."""
    if ctx.delivery is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "this process does not track delivery"
        )
    reports = ctx.delivery.streams(site=site, screen=screen, missing_only=missing_only)
    streams = [
        StreamPublic(
            site=r.site,
            screen=r.screen,
            agent=r.agent,
            first=r.first,
            last=r.last,
            expected=r.expected,
            received=r.received,
            missing=r.missing,
            open_gaps=r.open_gaps,
            gaps=[GapPublic(first=lo, last=hi) for lo, hi in r.gaps],
            duplicates=r.duplicates,
            out_of_order=r.out_of_order,
            forgotten_gaps=r.forgotten_gaps,
        )
        for r in reports
    ]
    return DeliveryPublic(
        streams=streams,
        count=len(streams),
        missing=sum(r.missing for r in reports),
        duplicates=sum(r.duplicates for r in reports),
    )
