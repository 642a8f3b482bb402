"""The matrices detection reads: each reading's values per poll and element, NaN where
a reading is absent from a snapshot, null in it, or absent from every snapshot."""

from __future__ import annotations

import math

import numpy as np
import pytest
from detect_helpers import polls
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.detect import frames
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


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(2**60), 2**60),
                    st.floats(allow_nan=False))


@settings(max_examples=200, deadline=None)
@given(rows=st.integers(1, 4).flatmap(
    lambda n: st.lists(st.lists(_VALUES, min_size=n, max_size=n), min_size=1, max_size=4)))
def test_the_c_conversion_is_numpys(rows: list[list[object]]) -> None:
    # ledwatch/_columns.pyx `to_doubles` stands in for numpy's fromiter where it is built;
    # into a strided view, as detection writes it (one reading of a (T, R, N) array).
    assert frames._columns is not None, "ledwatch._columns missing: was the C compiler absent?"
    n = len(rows[0])
    got, want = np.zeros((len(rows), 3, n)), np.zeros((len(rows), 3, n))
    frames._fill_c(got[:, 1], rows, n)
    frames._fill_numpy(want[:, 1], rows, n)
    np.testing.assert_array_equal(got, want)


def test_the_c_conversion_refuses_what_is_not_a_number() -> None:
    out = np.zeros((1, 2))
    with pytest.raises(TypeError):
        frames._fill_c(out, [[1.0, "2.0"]], 2)
    with pytest.raises(ValueError):
        frames._fill_c(out, [[1.0]], 2)
