"""What Grafana makes of an InfluxQL answer before a panel draws it, for the tests.

Grafana cannot run here, so the tests do its part themselves: a "table" target's answer
becomes one frame (Time, the GROUP BY tags, the selected columns), and the panel's
transformations run on the frames. Only the transformations the LEDwatch dashboards
use are emulated, each as Grafana's source does it (packages/grafana-data/src/
transformations/transformers/*.ts); an unknown one fails the test rather than being
skipped, so a dashboard cannot quietly depend on something untested.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Frame:
    names: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def column(self, name: str) -> list[Any]:
        return [r.get(name) for r in self.rows]


def table_frame(answer: dict[str, Any]) -> Frame:
    """One target's InfluxDB answer as Grafana's table format: Time, tags, then values."""
    names: list[str] = []
    rows: list[dict[str, Any]] = []
    for series in answer["results"][0].get("series", []):
        tags = series.get("tags") or {}
        cols = ["Time" if c == "time" else c for c in series["columns"]]
        for name in ["Time", *tags, *cols]:
            if name not in names:
                names.append(name)
        for values in series["values"]:
            row = dict(tags)
            row.update(zip(cols, values, strict=True))
            rows.append(row)
    return Frame(names, rows)


def _merge(frames: list[Frame], options: dict[str, Any]) -> list[Frame]:
    names: list[str] = []
    for f in frames:
        names += [n for n in f.names if n not in names]
    return [Frame(names, [r for f in frames for r in f.rows])]


_REDUCERS: dict[str, Callable[[list[Any]], Any]] = {
    "lastNotNull": lambda v: next((x for x in reversed(v) if x is not None), None),
    "last": lambda v: v[-1] if v else None,
    "max": lambda v: max((x for x in v if x is not None), default=None),
    "min": lambda v: min((x for x in v if x is not None), default=None),
    "count": len,
}


def _group_by(frames: list[Frame], options: dict[str, Any]) -> list[Frame]:
    spec = options["fields"]
    keys = [n for n, o in spec.items() if o["operation"] == "groupby"]
    out = []
    for f in frames:
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for r in f.rows:
            groups.setdefault(tuple(r.get(k) for k in keys), []).append(r)
        names = list(keys)
        calcs = [(n, agg) for n in f.names if spec.get(n, {}).get("operation") == "aggregate"
                 for agg in spec[n]["aggregations"]]
        names += [f"{n} ({agg})" for n, agg in calcs]
        rows = []
        for key, members in groups.items():
            row = dict(zip(keys, key, strict=True))
            for n, agg in calcs:
                row[f"{n} ({agg})"] = _REDUCERS[agg]([m.get(n) for m in members])
            rows.append(row)
        out.append(Frame(names, rows))
    return out


def _organize(frames: list[Frame], options: dict[str, Any]) -> list[Frame]:
    rename = options.get("renameByName", {})
    exclude = {k for k, v in options.get("excludeByName", {}).items() if v}
    out = []
    for f in frames:
        names = [rename.get(n, n) for n in f.names if n not in exclude]
        rows = [{rename.get(k, k): v for k, v in r.items() if k not in exclude} for r in f.rows]
        out.append(Frame(names, rows))
    return out


def _sort_by(frames: list[Frame], options: dict[str, Any]) -> list[Frame]:
    first = options["sort"][0]  # Grafana uses only the first entry
    for f in frames:
        assert first["field"] in f.names, f"sortBy {first['field']!r} not in {f.names}"
        f.rows.sort(key=lambda r: (r.get(first["field"]) is None, r.get(first["field"])),
                    reverse=bool(first.get("desc")))
    return frames


def _grouping_to_matrix(frames: list[Frame], options: dict[str, Any]) -> list[Frame]:
    assert len(frames) == 1, "groupingToMatrix takes a single frame (merge first)"
    f = frames[0]
    col, row, value = options["columnField"], options["rowField"], options["valueField"]
    for name in (col, row, value):
        assert name in f.names, f"groupingToMatrix {name!r} not in {f.names}"
    empty = {"null": None, "true": True, "false": False}.get(options.get("emptyValue", ""), "")
    cols = list(dict.fromkeys(f.column(col)))
    rows = list(dict.fromkeys(f.column(row)))
    cells = {(r[row], r[col]): r[value] for r in f.rows}
    corner = f"{row}\\{col}"
    names = [corner, *(str(c) for c in cols)]
    out = []
    for rv in rows:
        line: dict[str, Any] = {corner: rv}
        for cv in cols:
            line[str(cv)] = cells.get((rv, cv), empty)
        out.append(line)
    return [Frame(names, out)]


def _calculate_field(frames: list[Frame], options: dict[str, Any]) -> list[Frame]:
    assert options["mode"] == "reduceRow", options
    reducer = _REDUCERS[options["reduce"]["reducer"]]
    include = options["reduce"]["include"]
    alias = options["alias"]
    for f in frames:
        missing = [n for n in include if n not in f.names]
        assert not missing, f"calculateField includes {missing}, not in {f.names}"
        for r in f.rows:
            r[alias] = reducer([r.get(n) for n in include])
        f.names.append(alias)
    return frames


def _rename_by_regex(frames: list[Frame], options: dict[str, Any]) -> list[Frame]:
    pattern = re.compile(options["regex"])
    repl = re.sub(r"\$(\d+)", r"\\\1", options["renamePattern"])
    out = []
    for f in frames:
        new = {n: pattern.sub(repl, n) if pattern.search(n) else n for n in f.names}
        out.append(Frame([new[n] for n in f.names],
                         [{new.get(k, k): v for k, v in r.items()} for r in f.rows]))
    return out


TRANSFORMS: dict[str, Callable[[list[Frame], dict[str, Any]], list[Frame]]] = {
    "merge": _merge,
    "groupBy": _group_by,
    "organize": _organize,
    "sortBy": _sort_by,
    "groupingToMatrix": _grouping_to_matrix,
    "calculateField": _calculate_field,
    "renameByRegex": _rename_by_regex,
}


def transform(panel: dict[str, Any], frames: list[Frame]) -> list[Frame]:
    for step in panel.get("transformations", []):
        assert step["id"] in TRANSFORMS, f"{panel['title']!r}: {step['id']} is not emulated"
        frames = TRANSFORMS[step["id"]](frames, step.get("options", {}))
    return frames


def mapped_text(panel: dict[str, Any], value: Any) -> Any:
    """A value as the panel's value mappings show it (the defaults' mappings)."""
    for mapping in panel["fieldConfig"]["defaults"].get("mappings", []):
        if mapping["type"] == "value" and str(value) in mapping["options"]:
            return mapping["options"][str(value)].get("text", value)
        if mapping["type"] == "special" and value is None and mapping["options"]["match"] == "null":
            return mapping["options"]["result"].get("text", value)
    return value
