"""Fixtures of the detection benchmark's tests (helpers: fleet_helpers.py)."""

from __future__ import annotations

import pytest
from fleet_helpers import Generated, generate


@pytest.fixture(scope="session")
def small_fleet(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """4 screens x 6 days: most incident and glitch kinds, ~17,000 snapshots."""
    return generate(tmp_path_factory.mktemp("fleet"), seed=3, screens=4, days=6)
