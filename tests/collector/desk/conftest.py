"""Desk fixtures: the real API server on 127.0.0.1 over a ticket service on SQLite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from desk_helpers import Desk, running_desk


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    """One seeded fleet per test module (tests that take steps use their own tickets)."""
    db = tmp_path_factory.mktemp("desk") / "tickets.db"
    with running_desk(f"sqlite:///{db}") as running:
        yield running
