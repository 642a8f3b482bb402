"""Building snapshot sequences for detection tests: polls at a fixed interval."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from datapath_helpers import make_snapshot

from collector.detect.engine import Detector
from collector.detect.findings import Finding

Doc = dict[str, Any]
Mutator = Callable[[Doc], None]
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z
POLL_MS = 60_000


def polls(
    mutators: Iterable[Mutator | None],
    *,
    start_ms: int = T0,
    poll_ms: int = POLL_MS,
    n_cards: int = 4,
    seq0: int = 1,
    **kw: Any,
) -> list[Doc]:
    """One snapshot per mutator (None: healthy), `poll_ms` apart."""
    base = make_snapshot(n_cards=n_cards, **kw)
    out = []
    for i, mutate in enumerate(mutators):
        doc = copy.deepcopy(base)
        doc["seq"] = seq0 + i
        doc["ts"] = start_ms + i * poll_ms
        if mutate is not None:
            mutate(doc)
        out.append(doc)
    return out


def each(detector: Detector, docs: list[Doc]) -> list[list[Finding]]:
    """Findings per snapshot, fed one at a time (the live path)."""
    return [detector.process([d]) for d in docs]


def keyed(findings: Iterable[Finding]) -> list[tuple[str, str, bool]]:
    return [(f.component, f.fault.value, f.active) for f in findings]


def flat(rounds: list[list[Finding]]) -> list[tuple[int, str, str, bool]]:
    """(poll index, component, fault, active) for every finding."""
    return [(i, f.component, f.fault.value, f.active) for i, r in enumerate(rounds) for f in r]
