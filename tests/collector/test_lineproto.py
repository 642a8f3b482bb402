"""Line-protocol encoding: golden cases, a row-by-row reference, escaping, types, nulls, speed."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest.mock import patch

import orjson
import pytest
from datapath_helpers import make_snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.influx import lineproto
from collector.influx.lineproto import (
    CARD_FIELDS,
    PSU_FIELDS,
    escape_str,
    escape_tag,
    snapshot_lines,
    ticket_line,
)
from collector.influx.writers import parse_line
from ledwatch.contract import validate_telemetry

CASES = Path(__file__).parent / "testcases" / "lineproto"


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_golden_case(case: str) -> None:
    """Each folder: snapshot.json in, expected.out (one line per point) out."""
    doc = validate_telemetry(json.loads((CASES / case / "snapshot.json").read_text()))
    expected = (CASES / case / "expected.out").read_text().splitlines()
    assert snapshot_lines(doc) == expected


def test_escaping() -> None:
    assert escape_tag("a b,c=d") == r"a\ b\,c\=d"
    assert escape_tag("back\\slash\\") == "back/slash/"  # InfluxDB 1.x can't store these
    assert escape_tag("new\nline") == "new\\nline"  # a raw newline would end the line
    assert escape_str('say "hi" \\o/') == '"say \\"hi\\" \\\\o/"'


def test_escaped_tag_round_trips() -> None:
    doc = make_snapshot(n_cards=1)
    doc["cards"]["id"] = ["odd id,=x"]
    card = next(line for line in snapshot_lines(doc) if line.startswith("card,"))
    measurement, tags, fields, ts = parse_line(card)
    assert (measurement, tags["card"], ts) == ("card", "odd id,=x", doc["ts"])
    assert fields["online"] is True


def test_types_are_stable() -> None:
    """Integers from JSON in float columns stay floats; counters always carry `i`."""
    doc = make_snapshot(n_cards=2)
    doc["cards"]["temp_c"] = [50, 50.5]
    doc["cards"]["module_faults"] = [0, 7]
    lines = [ln for ln in snapshot_lines(doc) if ln.startswith("card,")]
    for line in lines:
        _, _, fields, _ = parse_line(line)
        assert isinstance(fields["temp_c"], float)
        assert isinstance(fields["module_faults"], int)
        assert isinstance(fields["online"], bool)
    assert "temp_c=50.0," in lines[0] and "module_faults=7i" in lines[1]


def test_nulls_are_omitted_and_empty_points_dropped() -> None:
    doc = make_snapshot(n_cards=2)
    for key in ("temp_c", "voltage_v", "module_faults", "fan_rpm", "door_open", "smoke",
                "humidity_pct"):
        doc["cards"][key] = [None, None]
    doc["cards"]["temp_c"][1] = 60.0
    for key in ("ok", "vout_v", "iout_a", "temp_c", "fan_rpm"):
        doc["psus"][key] = [None, None]
    doc["env"] = {"temp_c": None, "humidity_pct": None}
    del doc["stats"]
    lines = snapshot_lines(doc)
    kinds = [line.split(",", 1)[0] for line in lines]
    assert kinds == ["controller", "card", "card"]  # no psu, env, agent point
    assert "null" not in "".join(lines) and "None" not in "".join(lines)
    assert lines[1].split(" ")[1] == "online=true"
    assert lines[2].split(" ")[1] == "online=true,temp_c=60.0"


# A formatter's kind, told by what it makes of True, and the plain way to write that kind.
_KIND = {"true": "bool", "1i": "int", "1.0": "float", '"True"': "str"}
_PLAIN = {"bool": lambda v: "true" if v else "false", "int": lambda v: f"{int(v)}i",
          "float": lambda v: repr(float(v)), "str": lambda v: escape_str(str(v))}


def _reference_section(doc: dict[str, Any], section: str, measurement: str) -> list[str]:
    """Row by row, the plain way: the rules of the module docstring, no caches."""
    spec = {"cards": CARD_FIELDS, "psus": PSU_FIELDS}[section]
    cols = doc[section]
    out = []
    for i, ident in enumerate(cols["id"]):
        fields = []
        for name, fmt in spec:
            value = cols[name][i] if name in cols else None
            if value is None:
                continue
            fields.append(f"{name}={_PLAIN[_KIND[fmt(True)]](value)}")
        if fields:
            out.append(f"{measurement},{measurement}={escape_tag(ident)},screen="
                       f"{escape_tag(doc['screen'])},site={escape_tag(doc['site'])} "
                       f"{','.join(fields)} {doc['ts']}")
    return out


_READING = st.one_of(st.none(), st.sampled_from([0.0, 1.5, 41.25, 5.0]), st.integers(0, 3))


@st.composite
def _columns(draw: Any, spec: tuple[tuple[str, Any], ...], n: int) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {}
    for name, fmt in spec:
        kind = draw(st.sampled_from(["absent", "same", "mixed"]))
        if kind == "absent":
            continue
        kind_of = _KIND[fmt(True)]
        values: st.SearchStrategy[Any]
        if kind_of == "bool":
            values = st.one_of(st.none(), st.booleans())
        elif kind_of == "str":
            values = st.one_of(st.none(), st.sampled_from(["", "OV", 'say "x"']))
        else:
            values = _READING
        if kind == "same":
            cols[name] = [draw(values)] * n
        else:
            cols[name] = draw(st.lists(values, min_size=n, max_size=n))
    return cols


@pytest.mark.parametrize("path", ["c", "python"])
@settings(max_examples=300, deadline=None)
@given(data=st.data(), n=st.integers(1, 6))
def test_fast_paths_match_a_row_by_row_encoder(path: str, data: st.DataObject, n: int) -> None:
    """The column-wise paths (a reading equal everywhere, all seen before, new or null,
    the first column null in some rows, commas cached with the fields) write exactly
    the lines a plain row-by-row encoder writes, whatever the caches hold already: in C
    (collector/influx/_encode.pyx, built by the install) and in Python, its fallback."""
    assert lineproto._encode is not None, "collector.influx._encode missing: no C compiler?"
    doc = make_snapshot(n_cards=n)
    doc["cards"] = {"id": [f"c {i}" for i in range(n)], **data.draw(_columns(CARD_FIELDS, n))}
    doc["psus"] = {"id": [f"p{i}" for i in range(n)], **data.draw(_columns(PSU_FIELDS, n))}
    encoder = lineproto._column_lines_c if path == "c" else lineproto._column_lines_py
    with patch.object(lineproto, "_column_lines", encoder):
        lines = snapshot_lines(doc)
    assert [ln for ln in lines if ln.startswith("card,")] == _reference_section(
        doc, "cards", "card")
    assert [ln for ln in lines if ln.startswith("psu,")] == _reference_section(
        doc, "psus", "psu")


def test_the_c_cache_starts_again_past_its_bound_and_keeps_what_a_double_cannot_hold(
) -> None:
    from collector.influx import _encode

    made: list[object] = []

    def make(v: object) -> str:
        made.append(v)
        return f",x={v}"

    cache = _encode.FieldCache(make, 50)
    heads = [f"m,k={i} " for i in range(40)]
    big = [2**60 + i for i in range(40)]  # not exactly a double: a dict of its own
    for rnd in range(3):
        col = [float(rnd * 40 + i) for i in range(40)]
        got = _encode.lines(heads, [cache, cache], [col, big], " 1")
        assert got == [f"m,k={i} x={col[i]},x={big[i]} 1" for i in range(40)]
        assert len(cache) <= 80  # at most one call's worth past the bound of 50
    assert len(made) == 40 * 3 + 40 * 3  # the bound of 50 made it start again each time
    assert _encode.lines(heads[:2], [cache], [[None, None]], " 1") == []  # no reading
    wide = ["m,k=Zürich ", "m,k=東京 "]  # lines past ASCII take the general copy
    assert _encode.lines(wide, [cache, cache], [[1.5, None], ["ü", 2.5]], " 1") == [
        "m,k=Zürich x=1.5,x=ü 1", "m,k=東京 x=2.5 1"]
    with pytest.raises(ValueError):
        _encode.lines(heads, [cache], [[1.0]], " 1")


def test_the_c_cache_is_safe_to_share_between_threads() -> None:
    # Several collectors in one process share the module's caches. A formatter runs
    # Python code, so another thread can fill, grow or restart a cache meanwhile: each
    # line must still be right (and nothing freed while in use: a crash otherwise).
    import threading

    from collector.influx import _encode

    def make(v: object) -> str:
        time.sleep(0)  # let the other threads in, mid-lookup
        return f",x={v}"

    cache = _encode.FieldCache(make, 64)  # tiny: restarts all the time
    heads = [f"m,k={i} " for i in range(50)]
    errors: list[str] = []

    def work(seed: int) -> None:
        for rnd in range(60):
            col = [float((seed * 7 + rnd * 13 + i) % 300) for i in range(50)]
            got = _encode.lines(heads, [cache], [col], " 1")
            if got != [f"m,k={i} x={col[i]} 1" for i in range(50)]:
                errors.append(f"thread {seed} round {rnd}")

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_ticket_line() -> None:
    @dataclass
    class Change:
        ticket_id: int = 12
        site: str = "s1"
        screen: str = "-"
        component: str = "agent/pc 1"
        fault: str = "agent_offline"
        priority: str = "P2"
        state: str = "open"
        ts_ms: int = 1_700_000_000_000
        opened: bool = True

    assert ticket_line(Change()) == (
        'ticket,priority=P2,screen=-,site=s1,state=open id=12i,fault="agent_offline",'
        'component="agent/pc 1" 1700000000000'
    )


def test_speed() -> None:
    """DESIGN.md: decode + encode ~1.2 us/point in plain Python; report ours, with a margin."""
    doc = make_snapshot(n_cards=200)
    payload = orjson.dumps(doc)
    n_points = len(snapshot_lines(doc))
    rounds = 200
    start = time.perf_counter()
    for _ in range(rounds):
        snapshot_lines(orjson.loads(payload))
    us_per_point = (time.perf_counter() - start) / (rounds * n_points) * 1e6
    print(f"decode+encode: {us_per_point:.2f} us/point ({n_points} points per snapshot)")
    assert us_per_point < 10  # loose: catches a 10x regression, not CI noise


def test_topology_smart_psu_and_extended_fields_are_stored() -> None:
    doc = make_snapshot(n_cards=2)
    doc["controller"].update(layout_ok=False, ports_found=[2, 1], light_lux=350.5)
    doc["cards"].update(row=[0, 1], col=[3, None], modules_connected=[12, 11],
                        module_temp_c_max=[41.5, None], run_time_h=[1200.0, 1300.5])
    doc["psus"]["faults"] = ["", 'output_off,fan "1"']
    doc["env"]["light_lux"] = 350.5
    validate_telemetry(doc)
    lines = snapshot_lines(doc)
    ctrl = lines[0]
    assert "layout_ok=false" in ctrl and "light_lux=350.5" in ctrl and "ports_found" not in ctrl
    card0, card1 = (ln for ln in lines if ln.startswith("card,"))
    assert "row=0i,col=3i,modules_connected=12i,module_temp_c_max=41.5,run_time_h=1200.0" in card0
    assert "row=1i" in card1 and "col=" not in card1 and "module_temp_c_max" not in card1
    psu0, psu1 = (ln for ln in lines if ln.startswith("psu,"))
    assert 'faults=""' in psu0
    assert 'faults="output_off,fan \\"1\\""' in psu1
    assert any(ln.startswith("env,") and "light_lux=350.5" in ln for ln in lines)
