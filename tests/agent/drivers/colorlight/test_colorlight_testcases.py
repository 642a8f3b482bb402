"""The data-driven cases in agent/drivers/colorlight/testcases/ (see drivers/family_cases)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.drivers.colorlight.driver import create_driver
from drivers.family_cases import Family, run_case
from firmware_protocols.emulators.colorlight import ColorlightEmulator, fault
from firmware_protocols.emulators.faults import FamilyFault, ManualClock


def start(kwargs: dict[str, Any], faults: list[FamilyFault],
          clock: ManualClock) -> tuple[ColorlightEmulator, str]:  # fmt: skip
    emu = ColorlightEmulator(faults=faults, clock=clock, **kwargs)
    host, port = emu.serve_udp()
    return emu, f"udp://{host}:{port}"


FAMILY = Family("colorlight", start, lambda o, _clock: create_driver(o), fault, create_driver)


@pytest.mark.parametrize("case", FAMILY.cases(), ids=lambda p: p.name)
def test_case(case: Path) -> None:
    run_case(FAMILY, case)
