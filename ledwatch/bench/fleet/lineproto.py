"""The benchmark's own snapshot -> line protocol encoder (DESIGN.md, "InfluxDB" table).

The plain writers of the ceiling must send what the collector would send, so this
follows the stored contract, not the collector's code:

| measurement | tags | fields |
| --- | --- | --- |
| controller | screen, site | online, temp_c, brightness_pct, signal_ok, seq (i) |
| card | card, screen, site | online, temp_c, voltage_v, module_faults (i), row (i), col (i), |
| | | modules_connected (i) |
| psu | psu, screen, site | ok, vout_v, iout_a, temp_c, fan_rpm |
| env | screen, site | temp_c, humidity_pct, smoke, door_open, fan_rpm |
| agent | agent, site | queue_depth (i), poll_ms, poll_errors (i), uptime_s |

(i): an integer field.
Rules (docs/delivery.md, docs/architecture.md): timestamp = the snapshot's `ts` in ms;
a null reading is left out and a point with no field is left out, except `controller`,
which always carries `seq`, so one stored snapshot is one controller point; counters are
integers (`i`), readings floats (an integral JSON number is still a float), flags
true/false; tags sorted by key. So a snapshot is 1 controller point + one point per card
and per PSU that has a reading + env + agent: `points_per_snapshot` says how many.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

FLOAT: Final = "f"
INT: Final = "i"
BOOL: Final = "b"

Spec = tuple[tuple[str, str], ...]
CONTROLLER: Final[Spec] = (("online", BOOL), ("temp_c", FLOAT), ("brightness_pct", FLOAT),
                           ("signal_ok", BOOL))  # fmt: skip
CARD: Final[Spec] = (("online", BOOL), ("temp_c", FLOAT), ("voltage_v", FLOAT),
                     ("module_faults", INT), ("row", INT), ("col", INT),
                     ("modules_connected", INT))  # fmt: skip
PSU: Final[Spec] = (("ok", BOOL), ("vout_v", FLOAT), ("iout_a", FLOAT), ("temp_c", FLOAT),
                    ("fan_rpm", FLOAT))  # fmt: skip
ENV: Final[Spec] = (("temp_c", FLOAT), ("humidity_pct", FLOAT), ("smoke", BOOL),
                    ("door_open", BOOL), ("fan_rpm", FLOAT))  # fmt: skip
AGENT: Final[Spec] = (("queue_depth", INT), ("poll_ms", FLOAT), ("poll_errors", INT),
                      ("uptime_s", FLOAT))  # fmt: skip

_TAG = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", "\\": "/", "\n": "\\n"})


def tag(value: object) -> str:
    return str(value).translate(_TAG)


def value_text(value: Any, kind: str) -> str:
    if kind == BOOL:
        return "true" if value else "false"
    if kind == INT:
        return f"{int(value)}i"
    return repr(float(value))


def fields_of(obj: Mapping[str, Any], spec: Spec) -> list[str]:
    return [f"{name}={value_text(v, kind)}" for name, kind in spec
            if (v := obj.get(name)) is not None]  # fmt: skip


def _rows(cols: Mapping[str, Sequence[Any]], spec: Spec) -> list[list[str]]:
    n = len(cols["id"])
    rows: list[list[str]] = [[] for _ in range(n)]
    for name, kind in spec:
        col = cols.get(name)
        if col is None:
            continue
        for i, v in enumerate(col):
            if v is not None:
                rows[i].append(f"{name}={value_text(v, kind)}")
    return rows


def snapshot_points(doc: Mapping[str, Any]) -> list[str]:
    """The line-protocol points of one `ledwatch.telemetry/1` document (no newlines)."""
    site, screen, ts = tag(doc["site"]), tag(doc["screen"]), int(doc["ts"])
    where = f"screen={screen},site={site}"
    controller = [*fields_of(doc.get("controller") or {}, CONTROLLER), f"seq={int(doc['seq'])}i"]
    out = [f"controller,{where} {','.join(controller)} {ts}"]
    for measurement, key, spec in (("card", "card", CARD), ("psu", "psu", PSU)):
        cols = doc.get(f"{measurement}s") or {"id": []}
        for ident, row in zip(cols["id"], _rows(cols, spec), strict=True):
            if row:
                out.append(f"{measurement},{key}={tag(ident)},{where} {','.join(row)} {ts}")
    env = fields_of(doc.get("env") or {}, ENV)
    if env:
        out.append(f"env,{where} {','.join(env)} {ts}")
    agent = fields_of(doc.get("stats") or {}, AGENT)
    if agent:
        out.append(f"agent,agent={tag(doc['agent'])},site={site} {','.join(agent)} {ts}")
    return out


def points_per_snapshot(doc: Mapping[str, Any]) -> int:
    return len(snapshot_points(doc))


def by_screen(docs: Sequence[Mapping[str, Any]], window: int) -> list[Mapping[str, Any]]:
    """`docs` screen by screen within each run of `window` snapshots, each screen's own
    polls in order: the order a collector may send a backlog in (the collector's
    `influx.group_screens` does it within one intake), which both servers take faster
    than arrival order (docs/hot-path.md, "Requests by screen")."""
    out: list[Mapping[str, Any]] = []
    for start in range(0, len(docs), window):
        out += sorted(docs[start:start + window], key=lambda d: d["screen"])  # stable
    return out


def batches(docs: Iterable[Mapping[str, Any]], size: int = 5000) -> list[bytes]:
    """The points of `docs` in `size`-line request bodies, as a plain writer sends them."""
    out: list[bytes] = []
    lines: list[str] = []
    for doc in docs:
        lines += snapshot_points(doc)
        while len(lines) >= size:
            out.append("\n".join(lines[:size]).encode())
            lines = lines[size:]
    if lines:
        out.append("\n".join(lines).encode())
    return out
