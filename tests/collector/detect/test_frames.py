"""The matrices detection reads: each reading's values per poll and element, NaN where
a reading is absent from a snapshot, null in it, or absent from every snapshot."""

from __future__ import annotations

import math

import numpy as np
from detect_helpers import polls

from collector.detect.frames import CARD_READINGS, PSU_READINGS, build_batches
from collector.detect.rules import Section


def _expected(docs: list[dict], section: str, names: tuple[str, ...]) -> np.ndarray:
    """Element by element, the slow and obvious way."""
    n = len(docs[0][section]["id"])
    out = np.full((len(docs), len(names), n), np.nan)
    for i, doc in enumerate(docs):
        for r, name in enumerate(names):
            for j, v in enumerate(doc[section].get(name) or [None] * n):
                out[i, r, j] = math.nan if v is None else float(v)
    return out


def test_readings_present_absent_and_null_land_where_they_belong() -> None:
    docs = polls([None] * 5, n_cards=3)
    docs[1]["cards"]["temp_c"] = [41.5, None, 43.0]  # a null inside a column
    docs[3]["psus"]["ok"] = [False, *docs[3]["psus"]["ok"][1:]]  # a flag turns 0
    for doc in docs:
        doc["cards"].pop("smoke", None)  # a reading no snapshot carries
        doc["cards"].pop("humidity_pct", None)
    docs[2]["cards"]["humidity_pct"] = [30.0, 31.0, 32.0]  # a reading in one poll only
    [batch] = build_batches(docs)
    cards = batch.sections[Section.CARD].values
    np.testing.assert_array_equal(cards, _expected(docs, "cards", CARD_READINGS))
    psus = batch.sections[Section.PSU].values
    np.testing.assert_array_equal(psus[:, : len(PSU_READINGS)],
                                  _expected(docs, "psus", PSU_READINGS))
    i_hum = CARD_READINGS.index("humidity_pct")
    assert np.isnan(cards[[0, 1, 3, 4], i_hum]).all() and not np.isnan(cards[2, i_hum]).any()
    assert np.isnan(cards[1, CARD_READINGS.index("temp_c"), 1])
    assert np.isnan(cards[:, CARD_READINGS.index("smoke")]).all()
    assert psus[3, PSU_READINGS.index("ok"), 0] == 0.0
