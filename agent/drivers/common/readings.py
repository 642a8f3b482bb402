"""Reading helpers shared by the families' converters (pure).

Columnar building, aggregates that skip unknown values (NovaStar's converter uses them
too), and the empty PSU table of a family that sees no PSU. Edge events are not
computed here: the agent computes them once on the finished reading (agent/reading.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from agent.reading import CARD_REQUIRED, PSU_REQUIRED

__all__ = ["CARD_REQUIRED", "PSU_KEYS", "any_known", "columnar", "max_known", "min_known",
           "no_psus"]  # fmt: skip
PSU_KEYS: Final = (*PSU_REQUIRED, "card")


def columnar(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, list[Any]]:
    """Rows -> one list per key (a key a row lacks reads None), all the same length."""
    return {k: [r.get(k) for r in rows] for k in keys}


def no_psus() -> dict[str, list[Any]]:
    """The PSU table of a family whose controller reports no PSU (Modbus buses are merged
    in by the agent)."""
    return {k: [] for k in PSU_KEYS}


def any_known(values: Sequence[bool | None]) -> bool | None:
    known = [v for v in values if v is not None]
    return any(known) if known else None


def min_known(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def max_known(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None
