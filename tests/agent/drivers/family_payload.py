"""A reading of the newer families inside a full `ledwatch.telemetry/1` payload, validated.

The same check as the NovaStar tests' (`drivers.novastar.payload.validated_payload`:
the JSON round trip, then the published schema, `held` and null `online` included),
plus the columnar rule the schema cannot state: every column of `cards` and `psus` as
long as its `id` column.
"""

from __future__ import annotations

from typing import Any

from agent.drivers.base import ScreenReading
from drivers.novastar.payload import validated_payload


def validated(reading: ScreenReading, seq: int = 1) -> dict[str, Any]:
    doc = validated_payload(reading, seq)
    for section in ("cards", "psus"):
        n = len(doc[section]["id"])
        assert all(len(col) == n for col in doc[section].values()), section
    return doc


def card(reading: ScreenReading, ident: str) -> dict[str, Any]:
    """One card's row of the columnar `cards` table."""
    i = reading.cards["id"].index(ident)
    return {k: v[i] for k, v in reading.cards.items()}
