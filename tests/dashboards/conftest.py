"""The dashboard tests share one emulated run (emulated_run.py) per module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from emulated_run import Run, emulated_run


@pytest.fixture(scope="module")
def run(influxdb1: Any, mosquitto: Any, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Run]:
    with emulated_run(influxdb1, mosquitto, tmp_path_factory.mktemp("dashboards")) as r:
        yield r
