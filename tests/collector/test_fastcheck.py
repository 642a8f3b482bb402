"""ledwatch/fastcheck.py: the column-wise fast path is never looser than the schema.

Its acceptance skips fastjsonschema, so every document it accepts must be one the
schema accepts; documents with nulls in range-checked columns must still take the fast
path (they are common: a card that did not answer)."""

from __future__ import annotations

import copy
from typing import Any

import fastjsonschema
from datapath_helpers import make_snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from ledwatch.contract import _telemetry_fastcheck, _telemetry_validator

# The validator first: it once rewrote the shared schema's $refs and broke the other.
_SCHEMA = _telemetry_validator()
_CHECK = _telemetry_fastcheck()
_BASE = make_snapshot(site="fast", seq=1, ts=1_763_892_000_000, n_cards=6)
_BASE["cards"].update({"port": [0] * 6, "index": list(range(6)), "row": [0] * 6,
                       "col": list(range(6))})

_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(-5, 5, allow_nan=False),
    st.sampled_from(["", "x", "a" * 70]),
)


def _schema_ok(doc: dict[str, Any]) -> bool:
    try:
        _SCHEMA(doc)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(section=st.sampled_from(["cards", "psus"]), data=st.data())
def test_never_accepts_what_the_schema_refuses(section: str, data: st.DataObject) -> None:
    doc = copy.deepcopy(_BASE)
    cols = doc[section]
    name = data.draw(st.sampled_from(sorted(cols)))
    i = data.draw(st.integers(0, len(cols[name]) - 1))
    cols[name][i] = data.draw(_SCALARS)
    if _CHECK(doc):
        assert _schema_ok(doc), (section, name, cols[name][i])


def test_nulls_keep_the_fast_path_and_ranges_still_hold() -> None:
    doc = copy.deepcopy(_BASE)
    assert _schema_ok(doc) and _CHECK(doc)
    doc["cards"]["modules_connected"] = [8] * 6
    for name in ("temp_c", "module_faults", "modules_connected"):  # nullable columns
        doc["cards"][name][1] = None
    assert _schema_ok(doc) and _CHECK(doc)
    doc["cards"]["module_faults"][2] = -1  # below the minimum, beside a null
    assert not _schema_ok(doc)
    assert not _CHECK(doc)
