"""What the API needs from the running collector, handed in once by `create_app`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collector.delivery import DeliveryTracker
from collector.reports.source import ReportSource
from collector.settings import CareSettings
from collector.state import ScreenDirectory
from collector.tickets.service import TicketService


@dataclass
class ApiContext:
    tickets: TicketService
    screens: ScreenDirectory
    # Parts of the collector and their state, e.g. {"broker": {"ok": True}, "influx":
    # {"ok": False, "error": "timeout"}}; see docs/api.md for how parts are judged.
    health: Callable[[], dict[str, Any]]
    metrics_text: Callable[[], str]  # Prometheus text exposition
    tokens: dict[str, str]  # bearer token -> role (viewer | engineer | admin)
    # Seq accounting of the collector (GET /api/v1/delivery); None: not served.
    delivery: DeliveryTracker | None = None
    # Where inspection reports read history (GET /api/v1/reports/...); None: reports
    # without history charts. The collector passes ReportSource.from_settings(settings).
    reports: ReportSource | None = None
    # Defaults of GET /api/v1/spares ([care] of the collector config); None: the shipped
    # defaults. The collector passes settings.care.
    care: CareSettings | None = None
