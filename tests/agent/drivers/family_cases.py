"""Data-driven driver cases: each folder under `agent/drivers/<family>/testcases/` is one.

A case folder holds `case.toml` and either `expected.json` or `init.err`::

    description = "what it shows"
    [emulator]            # keyword arguments of the family's emulator
    [[fault]]             # faults injected at start: kind, at_s, target, duration_s
    [driver]              # driver options; `url` is filled in with the emulator's
    [run]                 # polls = 1, advance_s = 0 (emulator clock moved before each)

`init.err` holds text the `ConfigError` raised by `create_driver` must contain (no
emulator runs). `expected.json` is a subset of the last reading: `link`, `errors`, keys
of `controller` and `env`, and whole columns of `cards`; what it leaves out is free.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.drivers.base import Driver, ScreenReading
from agent.drivers.common.options import parse_options
from drivers.family_payload import validated
from firmware_protocols.emulators.faults import FamilyFault, ManualClock
from ledwatch.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Family:
    name: str  # the driver folder, agent/drivers/<name>
    start: Callable[[dict[str, Any], list[FamilyFault], ManualClock], tuple[Any, str]]
    driver: Callable[[dict[str, Any], ManualClock], Driver]
    fault: Callable[..., FamilyFault]
    create: Callable[[dict[str, Any]], Driver]  # the registry factory, for init.err

    def cases(self) -> list[Path]:
        folder = ROOT / "agent" / "drivers" / self.name / "testcases"
        return sorted(p for p in folder.iterdir() if (p / "case.toml").exists())


def http_family(name: str, emulator: Any, driver: Any, options: Any, create: Any) -> Family:
    """A family whose emulator serves HTTP and whose driver takes (options, clock)."""

    def start(kwargs: dict[str, Any], faults: list[FamilyFault],
              clock: ManualClock) -> tuple[Any, str]:  # fmt: skip
        emu = emulator(faults=faults, clock=clock, **kwargs)
        host, port = emu.serve_http()
        return emu, f"http://{host}:{port}"

    def make(opts: dict[str, Any], clock: ManualClock) -> Driver:
        return driver(parse_options(options, opts), clock=clock)  # type: ignore[no-any-return]

    return Family(name, start, make, emulator.fault, create)


def run_case(family: Family, case: Path) -> ScreenReading | None:
    spec = tomllib.loads((case / "case.toml").read_text("utf-8"))
    options = dict(spec.get("driver", {}))
    err = case / "init.err"
    if err.exists():
        with pytest.raises(ConfigError) as info:
            family.create(options)
        assert err.read_text("utf-8").strip() in str(info.value)
        return None
    clock = ManualClock()
    faults = [family.fault(**f) for f in spec.get("fault", [])]
    emu, url = family.start(dict(spec.get("emulator", {})), faults, clock)
    try:
        drv = family.driver({**options, "url": url}, clock)
        drv.open()
        run = spec.get("run", {})
        reading: ScreenReading | None = None
        try:
            for _ in range(int(run.get("polls", 1))):
                clock.advance(float(run.get("advance_s", 0)))
                reading = drv.poll()
        finally:
            drv.close()
    finally:
        emu.stop()
    assert reading is not None
    validated(reading)
    expect(reading, json.loads((case / "expected.json").read_text("utf-8")))
    return reading


def expect(reading: ScreenReading, expected: dict[str, Any]) -> None:
    if "link" in expected:
        assert str(reading.link) == expected["link"]
    if "errors" in expected:
        assert reading.errors == expected["errors"]
    for section in ("controller", "env", "cards"):
        got = getattr(reading, section)
        for key, value in expected.get(section, {}).items():
            assert key in got, f"{section}.{key} missing"
            assert got[key] == value, f"{section}.{key}: {got[key]!r} != {value!r}"
