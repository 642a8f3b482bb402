"""The service desk's pages under /desk: log in, the queue, a ticket, screens, KPIs.

Reads need any token (viewer and up); lifecycle steps need engineer, exactly as the REST
API (docs/api.md). Steps call the same `TicketService` methods as the API with the
session's principal as the actor, then redirect back (POST -> 303 -> GET), so a reload
never repeats a step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Final

from fastapi import APIRouter, HTTPException, Path, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials

from collector.api.context import ApiContext
from collector.api.deps import CtxDep, current_principal
from collector.api.desk import views
from collector.api.desk.pages import (
    PREFIX,
    STATIC,
    DeskError,
    DeskRoute,
    EngineerDep,
    FormDep,
    PostedDep,
    SessionDep,
    current_session,
    over_tls,
    query_fields,
    render,
    safe_next,
    same_origin,
    sessions,
)
from collector.api.desk.session import COOKIE, MAX_AGE_S
from collector.detect.findings import Priority
from collector.tickets.errors import InvalidTransition, TicketConflict, TicketInputError
from collector.tickets.lifecycle import State
from collector.tickets.models import Ticket
from collector.tickets.service import TicketFilter, TicketService
from ledwatch.contract import ID_PATTERN

router = APIRouter(prefix=PREFIX, route_class=DeskRoute, include_in_schema=False)

QUEUE_LIMIT: Final = 500  # a desk with more open tickets than this filters first
OPEN_STATES: Final = tuple(s.value for s in State if s is not State.CLOSED)
PRIORITIES: Final = tuple(p.value for p in Priority)
TicketId = Annotated[int, Path(ge=1, le=2**31 - 1)]
IdPath = Annotated[str, Path(pattern=ID_PATTERN.pattern)]


def _choice(fields: Mapping[str, str], key: str, allowed: tuple[str, ...]) -> str | None:
    value = fields.get(key)
    if value is not None and value not in allowed:
        raise DeskError(422, "Bad filter", f"{key} must be one of {', '.join(allowed)}")
    return value


def _site(fields: Mapping[str, str]) -> str | None:
    site = fields.get("site")
    if site is not None and not ID_PATTERN.match(site):
        raise DeskError(422, "Bad filter", "site must be a site id")
    return site


def _full(svc: TicketService, tickets: list[Ticket]) -> list[Ticket]:
    """Lists leave out effects and history; the desk shows effects on every row."""
    return [svc.get(t.id) for t in tickets]


def _sites(ctx: ApiContext) -> list[str]:
    return sorted({s.site for s in ctx.screens.list()} | {s for s, _ in ctx.tickets.screens()})


# -- log in / out ------------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    if current_session(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", next=safe_next(next), message="")


@router.post("/login")
def login(request: Request, fields: FormDep) -> Response:
    """Form field `token` (the API token), optional `name` (for the ticket history)."""
    target = safe_next(fields.get("next"))
    if not same_origin(request):
        raise DeskError(403, "Login refused", "this login form was sent from another site")
    token = fields.get("token", "")
    try:
        creds = HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
        principal = current_principal(request, creds)
    except HTTPException:
        message = "enter your API token" if not token else "unknown token"
        return render(request, "login.html", 401, next=target, message=message)
    store = sessions(request)
    store.drop(request.cookies.get(COOKIE))  # a new id at every log-in: no fixation
    session_id, _ = store.create(principal, fields.get("name", "")[:64])
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(MAX_AGE_S),
        path=PREFIX,
        httponly=True,
        samesite="lax",  # strict: a link to a ticket in a mail would show the log-in form
        secure=over_tls(request),
    )
    return response


@router.post("/logout")
def logout(request: Request, posted: PostedDep) -> Response:
    sessions(request).drop(request.cookies.get(COOKIE))
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="lax")
    return response


# -- the queue ---------------------------------------------------------------------------


@router.get("")
def queue(request: Request, ctx: CtxDep, session: SessionDep) -> Response:
    fields = query_fields(request)
    site = _site(fields)
    state = _choice(fields, "state", OPEN_STATES)
    priority = _choice(fields, "priority", PRIORITIES)
    filters = TicketFilter(
        state=None if state is None else State(state),
        site=site,
        priority=None if priority is None else Priority(priority),
        open_only=True,
    )
    tickets, count = ctx.tickets.list(filters, limit=QUEUE_LIMIT)
    now = ctx.tickets.now_ms()
    rows = views.queue(_full(ctx.tickets, tickets), now)
    return render(
        request,
        "queue.html",
        session=session,
        rows=rows,
        count=count,
        now_ms=now,
        filters=fields,
        sites=_sites(ctx),
        states=OPEN_STATES,
        priorities=PRIORITIES,
    )


# -- one ticket --------------------------------------------------------------------------


def _ticket_page(
    request: Request, ctx: CtxDep, session: SessionDep, ticket_id: int, status: int = 200,
    message: str = "", done: str = "",
) -> Response:
    ticket = ctx.tickets.get(ticket_id)
    now = ctx.tickets.now_ms()
    return render(
        request,
        "ticket.html",
        status,
        session,
        t=ticket,
        clocks=views.clocks(ticket, now),
        deadline=views.next_deadline(ticket, now),
        has_screen=ID_PATTERN.match(ticket.screen) is not None,
        message=message,
        done=done if done in STEPS else "",
    )


@router.get("/tickets/{ticket_id}")
def ticket(
    request: Request, ticket_id: TicketId, ctx: CtxDep, session: SessionDep, done: str = ""
) -> Response:
    return _ticket_page(request, ctx, session, ticket_id, done=done)


def _score(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise TicketInputError(f"score must be an integer 1..5, got {text!r}") from None


def _parts(form: Mapping[str, str]) -> list[dict[str, object]]:
    """The resolve form's one spare-part line (model and quantity), if filled in."""
    model = form.get("part_model", "").strip()
    if not model:
        return []
    quantity = form.get("part_quantity", "").strip() or "1"
    try:
        return [{"model": model, "quantity": int(quantity)}]
    except ValueError:
        raise TicketInputError(f"part quantity must be a whole number, got {quantity!r}") from None


# step -> what it calls: (service, ticket id, actor, form fields) -> the ticket
STEPS: Final[dict[str, Callable[[TicketService, int, str, Mapping[str, str]], Ticket]]] = {
    "acknowledge": lambda s, i, a, f: s.acknowledge(i, a, f.get("note", "")),
    "dispatch": lambda s, i, a, f: s.dispatch(i, a, f.get("engineer", ""), f.get("note", "")),
    "arrive": lambda s, i, a, f: s.arrive(i, a, f.get("note", "")),
    "resolve": lambda s, i, a, f: s.resolve(
        i,
        a,
        resolution=f.get("resolution") or None,
        root_cause=f.get("root_cause", ""),
        product_fault=f.get("product_fault") == "yes",
        note=f.get("note", ""),
        parts=_parts(f),
    ),
    "close": lambda s, i, a, f: s.close_ticket(i, a, f.get("note", "")),
    "reopen": lambda s, i, a, f: s.reopen(i, a, f.get("reason", "")),
    "pause": lambda s, i, a, f: s.pause(i, a, f.get("reason", "")),
    "resume": lambda s, i, a, f: s.resume(i, a, f.get("note", "")),
    "survey": lambda s, i, a, f: s.survey(
        i, a, _score(f.get("score", "")), f.get("comment", "")
    ),
}


@router.post("/tickets/{ticket_id}/{step}")
def take_step(
    request: Request, ticket_id: TicketId, step: str, ctx: CtxDep, posted: EngineerDep
) -> Response:
    action = STEPS.get(step)
    if action is None:
        raise DeskError(404, "No such step", f"{step!r} is not a lifecycle step")
    try:
        action(ctx.tickets, ticket_id, posted.session.actor(), posted.fields)
    except (InvalidTransition, TicketConflict) as exc:
        return _ticket_page(request, ctx, posted.session, ticket_id, 409, str(exc))
    except TicketInputError as exc:
        return _ticket_page(request, ctx, posted.session, ticket_id, 422, str(exc))
    return RedirectResponse(f"{PREFIX}/tickets/{ticket_id}?done={step}", status_code=303)


# -- screens -----------------------------------------------------------------------------


@router.get("/screens")
def screens(request: Request, ctx: CtxDep, session: SessionDep) -> Response:
    rows = []
    for s in ctx.screens.list():
        tickets, count = ctx.tickets.list(
            TicketFilter(site=s.site, screen=s.screen, open_only=True), limit=QUEUE_LIMIT
        )
        worst = min((t.priority for t in tickets), default=None)
        rows.append((s, count, worst))
    return render(
        request, "screens.html", session=session, rows=rows, now_ms=ctx.tickets.now_ms()
    )


@router.get("/screens/{site}/{screen}")
def screen(
    request: Request, site: IdPath, screen: IdPath, ctx: CtxDep, session: SessionDep
) -> Response:
    state = ctx.screens.get(site, screen)
    tickets, _ = ctx.tickets.list(
        TicketFilter(site=site, screen=screen, open_only=True), limit=QUEUE_LIMIT
    )
    if state is None and not tickets:
        raise DeskError(
            404, "Unknown screen", f"{site}/{screen}: no telemetry received since the start"
        )
    full = _full(ctx.tickets, tickets)
    grid = views.cabinet_grid(state.snapshot if state else None, full)
    snap = state.snapshot if state else {}
    return render(
        request,
        "screen.html",
        session=session,
        site=site,
        screen=screen,
        state=state,
        grid=grid,
        controller=views.readings(snap.get("controller")),
        env=views.readings(snap.get("env")),
        cabinet_states=views.CABINET_STATES,
        now_ms=ctx.tickets.now_ms(),
    )


# -- KPIs --------------------------------------------------------------------------------


@router.get("/kpis")
def kpis(request: Request, ctx: CtxDep, session: SessionDep) -> Response:
    fields = query_fields(request)
    now = ctx.tickets.now_ms()
    month = fields.get("month") or datetime.fromtimestamp(now / 1000, UTC).strftime("%Y-%m")
    site = _site(fields)
    screens_known = {(s.site, s.screen) for s in ctx.screens.list()}
    try:
        result = ctx.tickets.kpis(month, site=site, screens=screens_known)
    except TicketInputError as exc:
        return render(
            request, "kpis.html", 422, session, month=month, site=site or "",
            sites=_sites(ctx), rows=[], message=str(exc), months=("", ""),
        )
    return render(
        request,
        "kpis.html",
        session=session,
        month=month,
        site=site or "",
        sites=_sites(ctx),
        rows=views.kpi_rows(result),
        message="",
        months=views.neighbour_months(month),
    )


# -- static files (vendored, no CDN) -----------------------------------------------------


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        raise DeskError(404, "Not found", "there is no such file")
    body, ctype = STATIC[name]
    # The page links `?v=<content hash>`, so a changed file has a new URL.
    return Response(body, media_type=ctype, headers={"Cache-Control": "public, max-age=86400"})
