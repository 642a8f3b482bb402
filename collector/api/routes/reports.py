"""Quarterly remote inspection reports (docs/reports.md), as HTML or PDF."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query
from fastapi.responses import HTMLResponse, Response

from collector.api.deps import CtxDep, Role, require
from collector.reports.build import build_report
from collector.reports.errors import HistoryUnavailable, ReportInputError, UnknownScreen
from collector.reports.quarter import Quarter
from ledwatch.contract import ID_PATTERN

router = APIRouter(
    prefix="/api/v1/reports",
    tags=["reports"],
    dependencies=[Depends(require(Role.VIEWER))],
    responses={
        401: {"description": "no or unknown token"},
        404: {"description": "no telemetry, ticket or contract names this screen"},
        422: {"description": "quarter is not YYYY-Qn, or has not started"},
        503: {"description": "InfluxDB could not be queried for the history"},
    },
)

IdPath = Annotated[str, Path(pattern=ID_PATTERN.pattern)]


def _wants_pdf(fmt: str | None, accept: str | None) -> bool:
    if fmt is not None:
        return fmt == "pdf"
    return "application/pdf" in (accept or "") and "text/html" not in (accept or "")


@router.get(
    "/inspection/{site}/{screen}",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}, "application/pdf": {}},
                     "description": "the report (HTML by default)"}},
)
def inspection_report(
    site: IdPath,
    screen: IdPath,
    ctx: CtxDep,
    quarter: Annotated[str, Query(description="YYYY-Qn, a UTC calendar quarter",
                                  examples=["2026-Q4"], max_length=16,
                                  json_schema_extra={"pattern": r"^[0-9]{4}-Q[1-4]$"})],
    format: Annotated[Literal["html", "pdf"] | None, Query(
        description="html (default) or pdf; without it, Accept: application/pdf gives PDF"
    )] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """The screen's quarterly remote inspection: availability, incidents against the SLA,
    cabinet health from InfluxDB, predicted failures, warranty, parts, recommended actions.
    Rendering takes a second or two (the PDF more)."""
    # Imported here: matplotlib and the templates load on the first report, not at start.
    from collector.reports.render import render_html, render_pdf

    try:
        q = Quarter.parse(quarter)
        live = {(s.site, s.screen) for s in ctx.screens.list()}
        report = build_report(ctx.tickets, ctx.reports, site, screen, q, known=live)
    except ReportInputError as exc:
        raise HTTPException(422, str(exc)) from None
    except UnknownScreen as exc:
        raise HTTPException(404, str(exc)) from None
    except HistoryUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    html = render_html(report)
    if not _wants_pdf(format, accept):
        return HTMLResponse(html)
    name = f"inspection-{site}-{screen}-{q}.pdf"
    return Response(
        render_pdf(html).data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}"'},
    )
