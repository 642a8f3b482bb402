"""Helpers of the detection benchmark's tests: generate a small fleet and read it back."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ledwatch.bench.detection.generator import (
    INCIDENTS_FILE,
    TELEMETRY_FILE,
    Fleet,
    FleetParams,
    plan_fleet,
    read_lines,
    write_fleet,
)
from ledwatch.bench.detection.labels import Label


@dataclass
class ScreenData:
    """One screen's snapshots in ts order."""

    docs: list[dict[str, Any]] = field(default_factory=list)
    ts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def at(self, ms: int) -> int:
        """Index of the first snapshot at or after `ms`."""
        return int(np.searchsorted(self.ts, ms))

    def between(self, a: int, b: int) -> list[dict[str, Any]]:
        return self.docs[self.at(a):self.at(b)]


@dataclass
class Generated:
    fleet: Fleet
    out: Path
    lines: list[dict[str, Any]]  # {"topic": str | None, "payload": doc}, file order
    screens: dict[tuple[str, str], ScreenData]
    labels: list[Label]


def generate(out: Path, **params: Any) -> Generated:
    fleet = plan_fleet(FleetParams(**params))
    write_fleet(fleet, out)
    lines = list(read_lines(out / TELEMETRY_FILE))
    screens: dict[tuple[str, str], ScreenData] = defaultdict(ScreenData)
    for line in lines:
        doc = line["payload"]
        if doc.get("schema") == "ledwatch.telemetry/1":
            screens[(doc["site"], doc["screen"])].docs.append(doc)
    for data in screens.values():
        data.ts = np.array([d["ts"] for d in data.docs], np.int64)
    labels = [Label.from_json(d) for d in json.loads((out / INCIDENTS_FILE).read_text())]
    return Generated(fleet, out, lines, dict(screens), labels)
