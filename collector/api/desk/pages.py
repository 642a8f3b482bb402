"""The desk's plumbing: templates, HTML error pages, forms, sessions and CSRF as deps.

The REST API answers errors as JSON (collector/api/errors.py); a person at the desk
needs a page instead, so the desk's routes use `DeskRoute`, which turns the desk's own
errors, unknown tickets and bad paths into HTML pages, and adds the security headers
(a strict Content-Security-Policy: no inline script or style, so an injected `<script>`
in a ticket's text could not run even if escaping failed).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any, Final
from urllib.parse import parse_qsl, quote, urlsplit

import jinja2
from fastapi import Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute

from collector.api.desk import views
from collector.api.desk.session import COOKIE, DeskSession, SessionStore
from collector.tickets.errors import TicketNotFound

PREFIX: Final = "/desk"
MAX_FORM_BYTES: Final = 16 * 1024  # every desk form is a few short fields
MAX_FIELD_CHARS: Final = 2000

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("collector.api.desk", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,  # a typo in a template fails the tests, not silently
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(
    ts=views.fmt_ts,
    duration=views.fmt_duration,
    remaining=views.fmt_remaining,
    value=views.fmt_value,
)

# Vendored static files, read once; the URL carries a content hash so they can be cached.
STATIC: Final = {
    name: (resources.files("collector.api.desk").joinpath("static", name).read_bytes(), ctype)
    for name, ctype in (("desk.css", "text/css"), ("desk.js", "text/javascript"))
}
STATIC_VERSION: Final = hashlib.sha256(b"".join(b for b, _ in STATIC.values())).hexdigest()[:12]
_env.globals.update(static_version=STATIC_VERSION, prefix=PREFIX)


class DeskError(Exception):
    """Shown to the person as a page with this status, title and message."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


class LoginRequired(Exception):
    """No live session: the page redirects to the login form (and back after it)."""


_store_lock = threading.Lock()


def sessions(request: Request) -> SessionStore:
    """The app's session store, made on first use (one per app, hence per process)."""
    state = request.app.state
    with _store_lock:  # two first requests at once must not make two stores
        store = getattr(state, "desk_sessions", None)
        if store is None:
            store = state.desk_sessions = SessionStore()
    assert isinstance(store, SessionStore)
    return store


def current_session(request: Request) -> DeskSession | None:
    return sessions(request).get(request.cookies.get(COOKIE))


def render(
    request: Request,
    template: str,
    status: int = 200,
    session: DeskSession | None = None,
    **context: Any,
) -> HTMLResponse:
    html = _env.get_template(template).render(
        session=session, path=request.url.path, **context
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    session = current_session(request)
    return render(request, "error.html", status, session, title=title, message=message)


def login_url(request: Request) -> str:
    """The login page, coming back to this page afterwards (GETs only: a form is lost)."""
    if request.method != "GET":
        return f"{PREFIX}/login"
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"{PREFIX}/login?next={quote(target, safe='')}"


def safe_next(target: str | None) -> str:
    """Only a path of the desk itself: the login must not redirect anywhere else."""
    if not target:
        return PREFIX
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target or target.startswith("//"):
        return PREFIX
    if parts.path != PREFIX and not parts.path.startswith(PREFIX + "/"):
        return PREFIX
    return target


class DeskRoute(APIRoute):
    """Errors become HTML pages; every answer gets the security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            response: Response
            try:
                response = await handler(request)
            except LoginRequired:
                response = RedirectResponse(login_url(request), status_code=303)
            except DeskError as exc:
                response = error_page(request, exc.status, exc.title, exc.message)
            except TicketNotFound as exc:
                response = error_page(request, 404, "No such ticket", str(exc))
            except RequestValidationError:
                # Only path parameters are validated by FastAPI here (a ticket id that is
                # not a number): the page does not exist.
                response = error_page(request, 404, "Not found", "there is no such page")
            except HTTPException as exc:
                response = error_page(request, exc.status_code, "Error", str(exc.detail))
            response.headers.update(SECURITY_HEADERS)
            return response

        return guarded


def desk_session(request: Request) -> DeskSession:
    session = current_session(request)
    if session is None:
        raise LoginRequired()
    return session


async def form_fields(request: Request) -> dict[str, str]:
    """The urlencoded body of a desk form (the only kind it sends), size-limited.

    Parsed here with the standard library: the desk's forms need no multipart parser.
    A repeated field keeps its first value; an empty body without a type is an empty form.
    """
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise DeskError(413, "Form too large", f"a desk form is at most {MAX_FORM_BYTES} bytes")
    if ctype != "application/x-www-form-urlencoded" and (body or ctype):
        raise DeskError(
            415, "Unsupported form", "send the form as application/x-www-form-urlencoded"
        )
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        raise DeskError(
            400, "Bad form", "the form could not be read (UTF-8, at most 50 fields)"
        ) from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        if len(value) > MAX_FIELD_CHARS:
            raise DeskError(422, "Field too long", f"{key}: at most {MAX_FIELD_CHARS} characters")
        fields.setdefault(key, value.strip())
    return fields


SessionDep = Annotated[DeskSession, Depends(desk_session)]
FormDep = Annotated[dict[str, str], Depends(form_fields)]


@dataclass(frozen=True, slots=True)
class Posted:
    """A checked state-changing form: a live session and the right CSRF token."""

    session: DeskSession
    fields: Mapping[str, str]


def csrf_checked(session: SessionDep, fields: FormDep) -> Posted:
    if not session.csrf_ok(fields.get("csrf")):
        raise DeskError(
            403,
            "Form refused",
            "the form's CSRF token is missing or wrong (an old page, or a form from "
            "another site): reload the page and try again",
        )
    return Posted(session, fields)


def engineer_form(posted: Annotated[Posted, Depends(csrf_checked)]) -> Posted:
    if not posted.session.can_step:
        role = posted.session.principal.role.value
        message = f"this step needs the engineer role; your token has {role}"
        raise DeskError(403, "Not allowed", message)
    return posted


PostedDep = Annotated[Posted, Depends(csrf_checked)]
EngineerDep = Annotated[Posted, Depends(engineer_form)]


def same_origin(request: Request) -> bool:
    """False when the browser says the form came from another site (login CSRF)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser form post, or an old browser: the cookie is still Lax
    host = request.headers.get("x-forwarded-host") or request.headers.get("host", "")
    return urlsplit(origin).netloc.lower() == host.split(",")[0].strip().lower()


def over_tls(request: Request) -> bool:
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or proto == "https"


def query_fields(request: Request) -> dict[str, str]:
    """GET filters: blank means "any"."""
    return {k: v.strip() for k, v in request.query_params.items() if v.strip()}
