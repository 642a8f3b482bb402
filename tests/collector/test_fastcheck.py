"""ledwatch/fastcheck.py: the column-wise fast path is never looser than the schema.

Its acceptance skips fastjsonschema, so every document it accepts must be one the
schema accepts; documents with nulls in range-checked columns must still take the fast
path (they are common: a card that did not answer). Both of its paths are held to this:
the C pass over a column (ledwatch/_columns.pyx, built by the install) and the Python
one it replaces where no compiler is."""

from __future__ import annotations

import copy
from typing import Any

import fastjsonschema
import pytest
from datapath_helpers import make_snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from ledwatch import fastcheck
from ledwatch.contract import _telemetry_fastcheck, _telemetry_validator, telemetry_schema

# The validator first: it once rewrote the shared schema's $refs and broke the other.
_SCHEMA = _telemetry_validator()
_CHECKS = {"c": _telemetry_fastcheck(),
           "python": fastcheck.compile_check(telemetry_schema(), compiled=False)}
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


def test_the_install_built_the_c_pass() -> None:
    # `make venv` compiles it (setup.py, Cython); without it the collector still runs, on
    # the Python path, ~5x slower in this check: a regression the suite should name.
    assert fastcheck.COMPILED, "ledwatch._columns missing: was the C compiler absent?"
    assert "column(" in (_CHECKS["c"].__doc__ or "")
    assert "column(" not in (_CHECKS["python"].__doc__ or "")


@pytest.mark.parametrize("path", sorted(_CHECKS))
@settings(max_examples=400, deadline=None)
@given(section=st.sampled_from(["cards", "psus"]), data=st.data())
def test_never_accepts_what_the_schema_refuses(path: str, section: str,
                                               data: st.DataObject) -> None:
    doc = copy.deepcopy(_BASE)
    cols = doc[section]
    name = data.draw(st.sampled_from(sorted(cols)))
    i = data.draw(st.integers(0, len(cols[name]) - 1))
    cols[name][i] = data.draw(_SCALARS)
    if _CHECKS[path](doc):
        assert _schema_ok(doc), (section, name, cols[name][i])


@settings(max_examples=400, deadline=None)
@given(section=st.sampled_from(["cards", "psus"]), data=st.data())
def test_both_paths_agree(section: str, data: st.DataObject) -> None:
    # The C pass may only differ where the Python one is looser than it needs to be; on
    # the values a real column holds (and the edges around them) they say the same.
    doc = copy.deepcopy(_BASE)
    cols = doc[section]
    for _ in range(data.draw(st.integers(1, 3))):
        name = data.draw(st.sampled_from(sorted(cols)))
        i = data.draw(st.integers(0, len(cols[name]) - 1))
        cols[name][i] = data.draw(_SCALARS)
    assert _CHECKS["c"](doc) == _CHECKS["python"](doc), cols


@pytest.mark.parametrize("path", sorted(_CHECKS))
def test_nulls_keep_the_fast_path_and_ranges_still_hold(path: str) -> None:
    check = _CHECKS[path]
    doc = copy.deepcopy(_BASE)
    assert _schema_ok(doc) and check(doc)
    doc["cards"]["modules_connected"] = [8] * 6
    for name in ("temp_c", "module_faults", "modules_connected"):  # nullable columns
        doc["cards"][name][1] = None
    assert _schema_ok(doc) and check(doc)
    doc["cards"]["module_faults"][2] = -1  # below the minimum, beside a null
    assert not _schema_ok(doc)
    assert not check(doc)


def test_the_c_pass_refuses_what_a_double_cannot_hold() -> None:
    # Stricter, never looser: a huge int, a NaN, a bool in a number column, a subclass.
    from ledwatch import _columns as cc

    num, inf = cc.FLOAT | cc.INT, float("inf")
    assert cc.check([0, 1.5, 2**53], num, -inf, inf, 0, 0)
    assert not cc.check([2**53 + 1], num, -inf, inf, 0, 0)
    assert not cc.check([-(2**70)], num, -inf, inf, 0, 0)
    assert not cc.check([float("nan")], num, -inf, inf, 0, 0)
    assert not cc.check([True], num, -inf, inf, 0, 0)
    assert not cc.check([0.5], cc.INT, -inf, inf, 0, 0)
    assert cc.check([None, 3], cc.INT | cc.NONE, 0.0, 3.0, 0, 0)
    assert not cc.check([None, 4], cc.INT | cc.NONE, 0.0, 3.0, 0, 0)
    assert not cc.check([None], cc.INT, -inf, inf, 0, 0)

    class Sub(str):
        pass

    assert cc.check(["ab"], cc.STR, -inf, inf, 1, 2)
    assert not cc.check(["abc"], cc.STR, -inf, inf, 1, 2)
    assert not cc.check([""], cc.STR, -inf, inf, 1, 2)
    assert not cc.check([Sub("ab")], cc.STR, -inf, inf, 1, 2)
