"""Tickets: list, read, report by phone/e-mail, and one POST per lifecycle step.

Reads need a viewer token; reports and steps (survey included: the desk enters it) need
an engineer token. A step the current state does not allow gets 409 naming the allowed
steps.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from collector.api.deps import CtxDep, Engineer, Role, require
from collector.api.schemas import (
    DispatchBody,
    PauseBody,
    ReopenBody,
    ResolveBody,
    StepBody,
    SurveyBody,
    TicketCreate,
    TicketDetailPublic,
    TicketPublic,
    TicketsPublic,
)
from collector.detect.findings import Priority
from collector.tickets.lifecycle import State
from collector.tickets.models import Ticket
from collector.tickets.service import TicketFilter
from ledwatch.contract import ID_PATTERN

router = APIRouter(
    prefix="/api/v1/tickets",
    tags=["tickets"],
    dependencies=[Depends(require(Role.VIEWER))],
    responses={
        401: {"description": "no or unknown token"},
        403: {"description": "the token's role is too low"},
        404: {"description": "no such ticket"},
    },
)
TicketId = Annotated[int, Path(ge=1, le=2**31 - 1, description="ticket id")]
STEP_RESPONSES: dict[int | str, dict[str, str]] = {
    409: {"description": "the current state does not allow this step"}
}


def _detail(ticket: Ticket) -> TicketDetailPublic:
    return TicketDetailPublic.model_validate(ticket)


@router.get("", response_model=TicketsPublic)
def list_tickets(
    ctx: CtxDep,
    state: State | None = None,
    site: Annotated[str | None, Query(pattern=ID_PATTERN.pattern)] = None,
    screen: Annotated[str | None, Query(pattern=ID_PATTERN.pattern)] = None,
    priority: Priority | None = None,
    open_only: Annotated[bool, Query(alias="open", description="every state but closed")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> TicketsPublic:
    filters = TicketFilter(
        state=state, site=site, screen=screen, priority=priority, open_only=open_only
    )
    tickets, count = ctx.tickets.list(filters, limit=limit, offset=offset)
    return TicketsPublic(data=[TicketPublic.model_validate(t) for t in tickets], count=count)


@router.get("/{ticket_id}", response_model=TicketDetailPublic)
def get_ticket(ticket_id: TicketId, ctx: CtxDep) -> TicketDetailPublic:
    return _detail(ctx.tickets.get(ticket_id))


@router.post(
    "",
    response_model=TicketDetailPublic,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "the fault already had an open ticket; report added"}},
)
def create_ticket(
    body: TicketCreate, ctx: CtxDep, who: Engineer, response: Response
) -> TicketDetailPublic:
    ticket, created = ctx.tickets.create_manual(
        site=body.site,
        screen=body.screen,
        component=body.component,
        description=body.description,
        reporter=body.reporter,
        priority=body.priority,
        actor=who.actor(),
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"{router.prefix}/{ticket.id}"
    return _detail(ticket)


@router.post(
    "/{ticket_id}/acknowledge", response_model=TicketDetailPublic, responses=STEP_RESPONSES
)
def acknowledge(
    ticket_id: TicketId, ctx: CtxDep, who: Engineer, body: StepBody | None = None
) -> TicketDetailPublic:
    body = body or StepBody()
    return _detail(ctx.tickets.acknowledge(ticket_id, who.actor(body.by), body.note))


@router.post("/{ticket_id}/dispatch", response_model=TicketDetailPublic, responses=STEP_RESPONSES)
def dispatch(
    ticket_id: TicketId, body: DispatchBody, ctx: CtxDep, who: Engineer
) -> TicketDetailPublic:
    return _detail(ctx.tickets.dispatch(ticket_id, who.actor(body.by), body.engineer, body.note))


@router.post("/{ticket_id}/arrive", response_model=TicketDetailPublic, responses=STEP_RESPONSES)
def arrive(
    ticket_id: TicketId, ctx: CtxDep, who: Engineer, body: StepBody | None = None
) -> TicketDetailPublic:
    body = body or StepBody()
    return _detail(ctx.tickets.arrive(ticket_id, who.actor(body.by), body.note))


@router.post("/{ticket_id}/resolve", response_model=TicketDetailPublic, responses=STEP_RESPONSES)
def resolve(
    ticket_id: TicketId, ctx: CtxDep, who: Engineer, body: ResolveBody | None = None
) -> TicketDetailPublic:
    body = body or ResolveBody()
    ticket = ctx.tickets.resolve(
        ticket_id,
        who.actor(body.by),
        resolution=body.resolution,
        root_cause=body.root_cause,
        product_fault=body.product_fault,
        note=body.note,
    )
    return _detail(ticket)


@router.post("/{ticket_id}/close", response_model=TicketDetailPublic, responses=STEP_RESPONSES)
def close(
    ticket_id: TicketId, ctx: CtxDep, who: Engineer, body: StepBody | None = None
) -> TicketDetailPublic:
    body = body or StepBody()
    return _detail(ctx.tickets.close_ticket(ticket_id, who.actor(body.by), body.note))


@router.post("/{ticket_id}/reopen", response_model=TicketDetailPublic, responses=STEP_RESPONSES)
def reopen(ticket_id: TicketId, body: ReopenBody, ctx: CtxDep, who: Engineer) -> TicketDetailPublic:
    return _detail(ctx.tickets.reopen(ticket_id, who.actor(body.by), body.reason))


@router.post("/{ticket_id}/pause", response_model=TicketDetailPublic, responses=STEP_RESPONSES)
def pause(ticket_id: TicketId, body: PauseBody, ctx: CtxDep, who: Engineer) -> TicketDetailPublic:
    """Waiting on the customer: the SLA clocks stop until `resume`."""
    return _detail(ctx.tickets.pause(ticket_id, who.actor(body.by), body.reason))


@router.post("/{ticket_id}/resume", response_model=TicketDetailPublic, responses=STEP_RESPONSES)
def resume(
    ticket_id: TicketId, ctx: CtxDep, who: Engineer, body: StepBody | None = None
) -> TicketDetailPublic:
    body = body or StepBody()
    return _detail(ctx.tickets.resume(ticket_id, who.actor(body.by), body.note))


@router.post("/{ticket_id}/survey", response_model=TicketDetailPublic, responses=STEP_RESPONSES)
def survey(ticket_id: TicketId, body: SurveyBody, ctx: CtxDep, who: Engineer) -> TicketDetailPublic:
    return _detail(ctx.tickets.survey(ticket_id, who.actor(body.by), body.score, body.comment))
