"""The dashboard tests share one emulated run (emulated_run.py) per module.

The run gets a broker of its own: the shared one holds other tests' retained agent
status, whose sites would join the run's tickets and KPIs and make its counts unstable.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from emulated_run import Run, emulated_run
from services import Mosquitto


@pytest.fixture(scope="module")
def run(influxdb1: Any, mosquitto: Any, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Run]:
    # `mosquitto` (unused) makes the run skip, or fail in CI, where no broker is installed.
    with Mosquitto(tmp_path_factory.mktemp("dashboards-broker")) as broker, \
            emulated_run(influxdb1, broker, tmp_path_factory.mktemp("dashboards")) as r:
        yield r
