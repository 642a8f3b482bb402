"""Report fixtures: one emulated quarter of a screen in the real InfluxDB 1.x (auth on)
and a ticket service on SQLite, built once per session (writing it takes a few seconds)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent, HERE.parent / "api", HERE.parent / "tickets"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import emulated  # noqa: E402
from emulated import Run  # noqa: E402

from collector.reports.source import ReportSource, V1Query  # noqa: E402
from collector.tickets import TicketService  # noqa: E402

SITE = "rpt"
SCREEN = "wall"


@pytest.fixture(scope="session")
def run(influxdb1: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    db = tmp_path_factory.mktemp("reports") / "tickets.db"
    url = f"sqlite:///{db}"
    clock = emulated.Clock(emulated.RUN_START)
    svc = TicketService(url, emulated.contracts(SITE, SCREEN), clock=clock)
    emulated.write_telemetry(influxdb1, SITE, SCREEN)
    ids = emulated.open_tickets(svc, clock, SITE, SCREEN)
    query = V1Query(influxdb1.url, influxdb1.database, influxdb1.username,  # type: ignore[attr-defined]
                    influxdb1.password)  # type: ignore[attr-defined]
    yield Run(SITE, SCREEN, svc, clock, ReportSource(query), ids, url, influxdb1)
    svc.close()
