"""Snapshot builders shared by the collector data-path tests (not a test module)."""

from __future__ import annotations

import copy
import random
from typing import Any

from ledwatch.contract import SCHEMA_TELEMETRY, validate_telemetry


def make_snapshot(
    site: str = "s1",
    screen: str = "scr1",
    agent: str = "a1",
    seq: int = 1,
    ts: int = 1_763_892_000_000,
    n_cards: int = 4,
    **overrides: Any,
) -> dict[str, Any]:
    """A healthy, valid snapshot; `overrides` replace top-level keys."""
    cards = {
        "id": [f"c{i}" for i in range(n_cards)],
        "port": [i // 8 for i in range(n_cards)],
        "index": [i % 8 for i in range(n_cards)],
        "online": [True] * n_cards,
        "temp_c": [40.0 + (i % 10) for i in range(n_cards)],
        "voltage_v": [5.0] * n_cards,
        "module_faults": [0] * n_cards,
        "fan_rpm": [1500.0] * n_cards,
        "door_open": [False] * n_cards,
        "smoke": [False] * n_cards,
        "humidity_pct": [40.0] * n_cards,
    }
    psus = {
        "id": [f"p{i}" for i in range(n_cards)],
        "card": [f"c{i}" for i in range(n_cards)],
        "ok": [True] * n_cards,
        "vout_v": [5.05] * n_cards,
        "iout_a": [20.0] * n_cards,
        "temp_c": [45.0] * n_cards,
        "fan_rpm": [2000.0] * n_cards,
    }
    doc: dict[str, Any] = {
        "schema": SCHEMA_TELEMETRY,
        "site": site,
        "screen": screen,
        "agent": agent,
        "seq": seq,
        "ts": ts,
        "controller": {"online": True, "link": "up", "signal_ok": True,
                       "brightness_pct": 80.0, "temp_c": 40.0},
        "cards": cards,
        "psus": psus,
        "env": {"temp_c": 25.0, "humidity_pct": 40.0, "smoke": False, "door_open": False,
                "fan_rpm": 1200.0},
        "stats": {"queue_depth": 0, "poll_ms": 50.0, "poll_errors": 0, "uptime_s": 10.0},
    }
    doc.update(overrides)
    return validate_telemetry(doc)


def random_walk(n_docs: int, n_cards: int, seed: int) -> list[dict[str, Any]]:
    """Snapshots whose readings wander across every threshold, with nulls, for detection."""
    rnd = random.Random(seed)
    base = make_snapshot(n_cards=n_cards)
    docs = []

    def maybe(value: Any) -> Any:
        return None if rnd.random() < 0.1 else value

    for k in range(n_docs):
        doc = copy.deepcopy(base)
        doc["seq"] = k + 1
        doc["ts"] = base["ts"] + k * 1000
        c, p = doc["cards"], doc["psus"]
        for i in range(n_cards):
            c["online"][i] = rnd.random() > 0.1
            c["temp_c"][i] = maybe(rnd.choice([50.0, 80.0]))
            c["module_faults"][i] = maybe(rnd.choice([0, 0, 3]))
            c["fan_rpm"][i] = maybe(rnd.choice([1500.0, 0.0]))
            c["door_open"][i] = maybe(rnd.random() < 0.2)
            c["smoke"][i] = maybe(rnd.random() < 0.05)
            p["ok"][i] = maybe(rnd.random() > 0.2)
            p["vout_v"][i] = maybe(rnd.choice([5.0, 4.2, 1.0]))
            p["temp_c"][i] = maybe(rnd.choice([40.0, 90.0]))
            p["fan_rpm"][i] = maybe(rnd.choice([2000, 100]))
        doc["controller"]["online"] = rnd.random() > 0.05
        doc["controller"]["signal_ok"] = maybe(rnd.random() > 0.1)
        if rnd.random() < 0.1:  # a card added or removed between polls
            doc["cards"] = {key: col[:-1] for key, col in c.items()}
            doc["psus"] = {key: col[:-1] for key, col in p.items()}
        docs.append(validate_telemetry(doc))
    return docs
