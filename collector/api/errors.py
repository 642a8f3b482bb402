"""Errors -> HTTP: the only place that knows status codes. Every body is {"detail": str}.

It also makes the OpenAPI document say so: FastAPI documents its own 422 shape (a list of
errors), which these handlers replace, so a client or a schema-driven tester reading
/openapi.json would otherwise expect bodies the API never sends.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from collector.tickets.errors import (
    InvalidTransition,
    TicketConflict,
    TicketInputError,
    TicketNotFound,
)
from ledwatch.errors import LedwatchError, UsageError

log = logging.getLogger(__name__)


class ErrorPublic(BaseModel):
    """Every 4xx/5xx body: one sentence saying what is wrong."""

    detail: str


class ConflictPublic(ErrorPublic):
    """409: a step the ticket's state does not allow names the state and what is allowed."""

    state: str | None = Field(default=None, description="the ticket's state")
    allowed_steps: list[str] | None = Field(default=None, description="steps allowed from it")


_ERROR_TEXT: Final = {
    "401": "no or unknown bearer token",
    "403": "the token's role is too low",
    "422": "invalid input: the message names the field and what is wrong",
}


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            parts.append(f"body: invalid JSON ({err.get('ctx', {}).get('error', 'parse error')})")
            continue
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


async def _on_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": _validation_message(exc)}, status_code=422)


async def _on_http(request: Request, exc: Exception) -> Any:
    """FastAPI answers a body it cannot decode (not UTF-8) with a vague 400; say why, as
    the 422 of any other unreadable body does."""
    assert isinstance(exc, StarletteHTTPException)
    cause = exc.__cause__
    if exc.status_code == 400 and isinstance(cause, UnicodeDecodeError):
        bad = cause.object[cause.start : cause.start + 1].hex()
        detail = f"body: invalid JSON (not UTF-8: byte {cause.start} is 0x{bad})"
        return JSONResponse({"detail": detail}, status_code=422)
    return await http_exception_handler(request, exc)


async def _on_bug(_request: Request, _exc: Exception) -> JSONResponse:
    """Anything unexpected: the documented 500 body, never a traceback to the client.
    Starlette re-raises the exception afterwards, so uvicorn logs its traceback."""
    return JSONResponse({"detail": "internal error (logged on the collector)"}, status_code=500)


async def _on_ledwatch(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, TicketNotFound):
        return JSONResponse({"detail": str(exc)}, status_code=404)
    if isinstance(exc, InvalidTransition):
        body = {"detail": str(exc), "state": exc.state, "allowed_steps": list(exc.allowed)}
        return JSONResponse(body, status_code=409)
    if isinstance(exc, TicketConflict):
        return JSONResponse({"detail": str(exc)}, status_code=409)
    if isinstance(exc, TicketInputError | UsageError):
        return JSONResponse({"detail": str(exc)}, status_code=422)
    log.error("%s %s failed: %r", request.method, request.url.path, exc, exc_info=exc)
    return JSONResponse({"detail": "internal error (logged on the collector)"}, status_code=500)


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(LedwatchError, _on_ledwatch)
    app.add_exception_handler(Exception, _on_bug)
    app.openapi = _documenting_errors(app, app.openapi)  # type: ignore[method-assign]


def _documenting_errors(app: FastAPI, build: Callable[[], dict[str, Any]]
                        ) -> Callable[[], dict[str, Any]]:
    """Wrap `app.openapi` so every error response is documented as what it is."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document_errors(build())  # FastAPI caches the dict it returns: fix it in place
        assert app.openapi_schema is not None
        return app.openapi_schema

    return openapi


def document_errors(spec: dict[str, Any]) -> None:
    """In an OpenAPI document: every 4xx/503 body is ErrorPublic (409: ConflictPublic),
    every operation behind a bearer token documents 401 and 403, and FastAPI's own 422
    models (never sent) are gone."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorPublic, ConflictPublic):
        schemas[model.__name__] = model.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
    for item in spec.get("paths", {}).values():
        for op in item.values():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            responses: dict[str, Any] = op["responses"]
            if op.get("security"):
                for code in ("401", "403"):
                    responses.setdefault(code, {"description": _ERROR_TEXT[code]})
            for code, response in responses.items():
                if not (code.isdigit() and (400 <= int(code) < 500 or code == "503")):
                    continue
                content = response.get("content", {})
                if content and "HTTPValidationError" not in str(content):
                    continue  # a route documented its own body (e.g. health's 503)
                name = "ConflictPublic" if code == "409" else "ErrorPublic"
                response["content"] = {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}
                }
                if code == "422":
                    response["description"] = _ERROR_TEXT[code]
    used = json.dumps(spec)
    for unused in ("HTTPValidationError", "ValidationError"):
        if used.count(f'/{unused}"') == 0:
            schemas.pop(unused, None)
            used = json.dumps(spec)
