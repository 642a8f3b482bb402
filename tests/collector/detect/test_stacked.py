"""Alike screens judged side by side (stacked.py) give what each judged alone gives."""

from __future__ import annotations

import copy
import random

from detect_helpers import POLL_MS, T0, Doc, polls

from collector.detect.config import DetectSettings
from collector.detect.engine import Detector


def _screen_walk(seed: int, screen: str, n_cards: int, n: int = 60) -> list[Doc]:
    """One screen's polls whose readings wander across every threshold."""
    r = random.Random(seed)
    out = []
    doc = polls([None], n_cards=n_cards, screen=screen, agent=f"pc-{screen}")[0]
    for k in range(n):
        d = copy.deepcopy(doc)
        d["seq"], d["ts"] = k + 1, T0 + k * POLL_MS
        c, p = d["cards"], d["psus"]
        if k % 3 == 0:  # changes held for 3 polls, so debounce has runs to count
            for i in range(n_cards):
                if r.random() < 0.3:
                    c["temp_c"][i] = r.choice([None, 50.0, 72.0, 80.0, 120.0])
                if r.random() < 0.2:
                    c["module_faults"][i] = r.choice([0, 0, 2, None])
                if r.random() < 0.15:
                    c["online"][i] = r.random() > 0.4
                if r.random() < 0.2:
                    p["vout_v"][i] = r.choice([5.0, 4.65, 4.4, 0.5, None])
            d["controller"]["signal_ok"] = r.random() > 0.15
            doc = d
        out.append(d)
    return out


def _fleet() -> dict[str, list[Doc]]:
    fleet = {f"a{i}": _screen_walk(i, f"a{i}", 12) for i in range(6)}  # one shape
    fleet.update({f"b{i}": _screen_walk(100 + i, f"b{i}", 5) for i in range(3)})  # another
    return fleet


def _per_screen(findings: list[object]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in findings:
        out.setdefault(f.screen, []).append(repr(f))  # type: ignore[attr-defined]
    return out


def test_side_by_side_equals_one_by_one() -> None:
    settings = DetectSettings.model_validate({
        "sites": {"s1": {"screens": {"a1": {"schedule": [  # one screen off for a while
            {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "off": "00:30-01:10"}]}}}},
    })
    fleet = _fleet()
    together, alone = Detector(settings), Detector(settings)
    got, want = [], []
    for k in range(60):
        docs = [walk[k] for walk in fleet.values()]
        if k == 30:
            docs.append(copy.deepcopy(fleet["a2"][10]))  # a late one: stale, not judged
        got += together.process(docs)
        for doc in docs:
            want += alone.process([doc])
    assert _per_screen(got) == _per_screen(want)
    assert together.stale == alone.stale == 1
    assert len(got) > 100  # the walks really cross thresholds, on every shape
    assert {f.screen for f in got} >= {"a0", "a5", "b0", "b2"}
    assert together.errors == alone.errors == 0
