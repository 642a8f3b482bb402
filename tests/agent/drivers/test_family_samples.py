"""Each new family's sample.toml: builds a driver, names every option, shows true defaults."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agent.drivers.brompton_tessera.driver import TesseraOptions
from agent.drivers.brompton_tessera.driver import create_driver as tessera
from agent.drivers.colorlight.driver import ColorlightOptions
from agent.drivers.colorlight.driver import create_driver as colorlight
from agent.drivers.novastar_coex.driver import CoexOptions
from agent.drivers.novastar_coex.driver import create_driver as coex

ROOT = Path(__file__).resolve().parents[3]
COMMENTED = re.compile(r"^# ([a-z_]+) = (.+)$")


@pytest.mark.parametrize(
    ("folder", "model", "factory", "driver"),
    [
        ("colorlight", ColorlightOptions, colorlight, "colorlight"),
        ("novastar_coex", CoexOptions, coex, "novastar-coex"),
        ("brompton_tessera", TesseraOptions, tessera, "brompton-tessera"),
    ],
)
def test_sample(folder: str, model: type[BaseModel], factory: Any, driver: str) -> None:
    text = (ROOT / "agent" / "drivers" / folder / "sample.toml").read_text("utf-8")
    table = dict(tomllib.loads(text)["screens"]["controller"])
    assert table.pop("driver") == driver
    factory(table)
    shown = set(table)
    for line in text.splitlines():
        m = COMMENTED.match(line)
        if not m:
            continue
        key, value = m[1], tomllib.loads(f"v = {m[2]}")["v"]
        field = model.model_fields[key]  # a commented option that does not exist fails here
        shown.add(key)
        default = field.get_default(call_default_factory=True)
        if default is not None:  # an optional without default shows an example instead
            assert value == default, f"{folder}: {key} default is {default!r}"
    assert shown == set(model.model_fields), set(model.model_fields) - shown
