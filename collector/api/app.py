"""The collector's REST API (DESIGN.md): `create_app` only wires routers and handlers."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from collector.api.context import ApiContext
from collector.api.deps import check_tokens
from collector.api.desk import router as desk_router
from collector.api.errors import install_handlers
from collector.api.routes import (
    delivery,
    health,
    kpis,
    maintenance,
    reports,
    screens,
    spares,
    tasks,
    tickets,
)

__all__ = ["ApiContext", "create_app"]


def create_app(ctx: ApiContext) -> FastAPI:
    """An app serving `ctx`; bad token roles raise ConfigError here, before serving."""
    app = FastAPI(
        title="LEDwatch collector",
        version="1",
        description="Screens, service tickets and KPIs. Bearer tokens: viewer < engineer < admin.",
    )
    app.state.ctx = ctx
    app.state.tokens = check_tokens(ctx.tokens)
    install_handlers(app)
    app.include_router(health.router)
    app.include_router(health.metrics_router)
    app.include_router(screens.router)
    app.include_router(tickets.router)
    app.include_router(kpis.router)
    app.include_router(delivery.router)
    app.include_router(maintenance.router)
    app.include_router(reports.router)
    app.include_router(spares.router)
    app.include_router(tasks.router)
    app.include_router(desk_router)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        """People who type the collector's address want the service desk."""
        return RedirectResponse("/desk", status_code=307)

    return app
