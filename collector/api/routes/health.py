"""Liveness for load balancers and monitoring: no auth, never a 500."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from collector.api.deps import CtxDep
from collector.api.schemas import HealthPublic

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["health"])
metrics_router = APIRouter(tags=["health"])

_OK_WORDS = frozenset({"ok", "up", "online", "connected", "healthy"})


def part_ok(value: Any) -> bool | None:
    """Judge one entry of `ctx.health()`: a bool, or a dict with `ok` or `status`/`state`.

    Anything else (counters, versions) is information, not a part: None.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, dict):
        if "ok" in value:
            return bool(value["ok"])
        for key in ("status", "state"):
            if key in value:
                return str(value[key]).lower() in _OK_WORDS
    return None


@router.get(
    "/health",
    response_model=HealthPublic,
    responses={503: {"model": HealthPublic, "description": "a part failed"}},
)
def health(ctx: CtxDep) -> JSONResponse:
    parts: dict[str, Any] = {}
    try:
        parts.update(ctx.health())
    except Exception as exc:  # a broken probe is a failed collector, not a 500
        log.exception("health probe failed")
        parts["collector"] = {"ok": False, "error": repr(exc)}
    try:
        ctx.tickets.ping()
        parts["database"] = {"ok": True}
    except Exception as exc:
        parts["database"] = {"ok": False, "error": str(exc).splitlines()[0][:300]}
    failed = sorted(name for name, value in parts.items() if part_ok(value) is False)
    body = HealthPublic(status="fail" if failed else "ok", failed=failed, parts=parts)
    return JSONResponse(body.model_dump(mode="json"), status_code=503 if failed else 200)


@metrics_router.get("/metrics", response_class=PlainTextResponse)
def metrics(ctx: CtxDep) -> PlainTextResponse:
    return PlainTextResponse(
        ctx.metrics_text(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
