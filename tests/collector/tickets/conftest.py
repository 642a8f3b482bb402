"""Ticket fixtures: a settable clock and services on real databases: every test that uses
them runs twice, on a SQLite file and on PostgreSQL (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ticket_helpers import Clock, ms

from collector.tickets import TicketService


@pytest.fixture
def clock() -> Clock:
    return Clock(ms("2026-03-01T00:00"))


@pytest.fixture
def make_service(
    request: pytest.FixtureRequest, ticket_db_url: str, tmp_path: Path, clock: Clock
) -> Iterator[Callable[..., TicketService]]:
    """`make(contracts, name)`: services with the same `name` share one database."""
    made: list[TicketService] = []
    urls = {"tickets.db": ticket_db_url}

    def make(contracts: dict[str, Any] | None = None, name: str = "tickets.db") -> TicketService:
        if name not in urls:
            if ticket_db_url.startswith("sqlite"):
                urls[name] = f"sqlite:///{tmp_path / name}"
            else:
                server = request.getfixturevalue("postgresql")
                urls[name] = server.create_database(f"{ticket_db_url.rsplit('/', 1)[1]}_"
                                                    f"{len(urls)}")
        svc = TicketService(urls[name], contracts, clock=clock)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.close()


@pytest.fixture
def service(make_service: Callable[..., TicketService]) -> TicketService:
    return make_service()
