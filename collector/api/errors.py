"""Errors -> HTTP: the only place that knows status codes. Every body is {"detail": str}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from collector.tickets.errors import (
    InvalidTransition,
    TicketConflict,
    TicketInputError,
    TicketNotFound,
)
from ledwatch.errors import LedwatchError, UsageError

log = logging.getLogger(__name__)


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
    app.add_exception_handler(LedwatchError, _on_ledwatch)
