"""The data-driven cases in agent/drivers/brompton_tessera/testcases/ (drivers/family_cases)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.drivers.brompton_tessera.driver import TesseraDriver, TesseraOptions, create_driver
from drivers.family_cases import http_family, run_case
from firmware_protocols.emulators.brompton_tessera import TesseraEmulator

FAMILY = http_family("brompton_tessera", TesseraEmulator, TesseraDriver, TesseraOptions,
                     create_driver)  # fmt: skip


@pytest.mark.parametrize("case", FAMILY.cases(), ids=lambda p: p.name)
def test_case(case: Path) -> None:
    run_case(FAMILY, case)
