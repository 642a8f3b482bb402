"""The data-driven cases in agent/drivers/novastar_coex/testcases/ (drivers/family_cases)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.drivers.novastar_coex.driver import CoexDriver, CoexOptions, create_driver
from drivers.family_cases import http_family, run_case
from firmware_protocols.emulators.novastar_coex import CoexEmulator

FAMILY = http_family("novastar_coex", CoexEmulator, CoexDriver, CoexOptions, create_driver)


@pytest.mark.parametrize("case", FAMILY.cases(), ids=lambda p: p.name)
def test_case(case: Path) -> None:
    run_case(FAMILY, case)
