"""Tickets: list, read, report by phone/e-mail, and one POST per lifecycle step.

Reads need a viewer token; reports and steps (survey included: the desk enters it) need
an engineer token. A step the current state does not allow gets 409 naming the allowed
steps.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response, status

from collector.api.deps import MAX_ID, CtxDep, Engineer, Limit, Offset, Role, require
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
from collector.tickets.lifecycle import TRANSITIONS, WORKING, State, allowed_steps
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
TicketId = Annotated[int, Path(ge=1, le=MAX_ID, description="ticket id")]


def _steps_after(step: str) -> list[str]:
    """The steps the desk may take after `step`, read from the lifecycle table."""
    if step == "pause":
        return ["resume"]
    if step in ("create", "resume"):
        states = [State.OPEN] if step == "create" else sorted(WORKING)
    else:
        states = [to for (_, s), to in TRANSITIONS.items() if s.value == step]
    after: list[str] = []
    for state in states:
        after += [s.value for s in allowed_steps(state) if s.value not in after]
    return after


def _links(step: str) -> dict[str, Any]:
    """OpenAPI links from a response carrying a ticket to its next steps: how a client,
    or schemathesis' stateful phase, walks a ticket through the lifecycle."""
    ticket_id = {"ticket_id": "$response.body#/id"}
    links = {"getTicket": {"operationId": "getTicket", "parameters": ticket_id}}
    for nxt in _steps_after(step):
        links[nxt] = {"operationId": f"{nxt}Ticket", "parameters": ticket_id}
    return links


def _step_responses(step: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {"description": "the ticket after the step", "links": _links(step)},
        409: {"description": "the current state does not allow this step"},
    }


def _detail(ticket: Ticket) -> TicketDetailPublic:
    return TicketDetailPublic.model_validate(ticket)


@router.get("", response_model=TicketsPublic, operation_id="listTickets")
def list_tickets(
    ctx: CtxDep,
    state: State | None = None,
    site: Annotated[str | None, Query(pattern=ID_PATTERN.pattern)] = None,
    screen: Annotated[str | None, Query(pattern=ID_PATTERN.pattern)] = None,
    priority: Priority | None = None,
    open_only: Annotated[bool, Query(alias="open", description="every state but closed")] = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> TicketsPublic:
    filters = TicketFilter(
        state=state, site=site, screen=screen, priority=priority, open_only=open_only
    )
    tickets, count = ctx.tickets.list(filters, limit=limit, offset=offset)
    return TicketsPublic(data=[TicketPublic.model_validate(t) for t in tickets], count=count)


@router.get("/{ticket_id}", response_model=TicketDetailPublic, operation_id="getTicket")
def get_ticket(ticket_id: TicketId, ctx: CtxDep) -> TicketDetailPublic:
    return _detail(ctx.tickets.get(ticket_id))


@router.post(
    "",
    response_model=TicketDetailPublic,
    status_code=status.HTTP_201_CREATED,
    operation_id="createTicket",
    responses={
        201: {"description": "a new ticket", "links": _links("create")},
        200: {"model": TicketDetailPublic, "links": _links("create"),
              "description": "the fault already had an open ticket; report added"},
    },
)
def create_ticket(
    body: TicketCreate, ctx: CtxDep, who: Engineer, response: Response
) -> TicketDetailPublic:
    """A fault reported by phone or e-mail. The site and screen must be known (a contract,
    an agent or an earlier ticket names them) unless the body says `"new_site": true`."""
    if not body.new_site:
        live = {(s.site, s.screen) for s in ctx.screens.list()}
        agent_sites = {site for site, _agent in ctx.screens.agents()}
        ctx.tickets.check_known(body.site, body.screen, live, agent_sites)
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
    "/{ticket_id}/acknowledge",
    response_model=TicketDetailPublic,
    operation_id="acknowledgeTicket",
    responses=_step_responses("acknowledge"),
)
def acknowledge(
    ticket_id: TicketId, ctx: CtxDep, who: Engineer, body: StepBody | None = None
) -> TicketDetailPublic:
    body = body or StepBody()
    return _detail(ctx.tickets.acknowledge(ticket_id, who.actor(body.by), body.note))


@router.post(
    "/{ticket_id}/dispatch",
    response_model=TicketDetailPublic,
    operation_id="dispatchTicket",
    responses=_step_responses("dispatch"),
)
def dispatch(
    ticket_id: TicketId, body: DispatchBody, ctx: CtxDep, who: Engineer
) -> TicketDetailPublic:
    return _detail(ctx.tickets.dispatch(ticket_id, who.actor(body.by), body.engineer, body.note))


@router.post(
    "/{ticket_id}/arrive",
    response_model=TicketDetailPublic,
    operation_id="arriveTicket",
    responses=_step_responses("arrive"),
)
def arrive(
    ticket_id: TicketId, ctx: CtxDep, who: Engineer, body: StepBody | None = None
) -> TicketDetailPublic:
    body = body or StepBody()
    return _detail(ctx.tickets.arrive(ticket_id, who.actor(body.by), body.note))


@router.post(
    "/{ticket_id}/resolve",
    response_model=TicketDetailPublic,
    operation_id="resolveTicket",
    responses=_step_responses("resolve"),
)
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
        parts=[p.model_dump() for p in body.parts],
    )
    return _detail(ticket)


@router.post(
    "/{ticket_id}/close",
    response_model=TicketDetailPublic,
    operation_id="closeTicket",
    responses=_step_responses("close"),
)
def close(
    ticket_id: TicketId, ctx: CtxDep, who: Engineer, body: StepBody | None = None
) -> TicketDetailPublic:
    body = body or StepBody()
    return _detail(ctx.tickets.close_ticket(ticket_id, who.actor(body.by), body.note))


@router.post(
    "/{ticket_id}/reopen",
    response_model=TicketDetailPublic,
    operation_id="reopenTicket",
    responses=_step_responses("reopen"),
)
def reopen(ticket_id: TicketId, body: ReopenBody, ctx: CtxDep, who: Engineer) -> TicketDetailPublic:
    return _detail(ctx.tickets.reopen(ticket_id, who.actor(body.by), body.reason))


@router.post(
    "/{ticket_id}/pause",
    response_model=TicketDetailPublic,
    operation_id="pauseTicket",
    responses=_step_responses("pause"),
)
def pause(ticket_id: TicketId, body: PauseBody, ctx: CtxDep, who: Engineer) -> TicketDetailPublic:
    """Waiting on the customer: the SLA clocks stop until `resume`."""
    return _detail(ctx.tickets.pause(ticket_id, who.actor(body.by), body.reason))


@router.post(
    "/{ticket_id}/resume",
    response_model=TicketDetailPublic,
    operation_id="resumeTicket",
    responses=_step_responses("resume"),
)
def resume(
    ticket_id: TicketId, ctx: CtxDep, who: Engineer, body: StepBody | None = None
) -> TicketDetailPublic:
    body = body or StepBody()
    return _detail(ctx.tickets.resume(ticket_id, who.actor(body.by), body.note))


@router.post(
    "/{ticket_id}/survey",
    response_model=TicketDetailPublic,
    operation_id="surveyTicket",
    responses=_step_responses("survey"),
)
def survey(ticket_id: TicketId, body: SurveyBody, ctx: CtxDep, who: Engineer) -> TicketDetailPublic:
    return _detail(ctx.tickets.survey(ticket_id, who.actor(body.by), body.score, body.comment))
