"""Telemetry snapshot -> InfluxDB line protocol (DESIGN.md "InfluxDB"); pure and hot.

Plain string building: a `Point` object costs ~17 us, this costs ~1 us per point
(measured in tests/collector/test_lineproto.py::test_speed); where the install built
collector/influx/_encode.pyx, the cards' and PSUs' lines (most of a snapshot) are
written in C from the same cached texts, ~2x faster, and the Python code is its
fallback. Rules that keep the stored data queryable across InfluxDB 1.x/2.x/3.x and
VictoriaMetrics:

* timestamp = the snapshot's `ts` in ms (write with precision ms), so a re-delivered
  snapshot overwrites itself;
* a field's type never changes: floats are written without `i` (an int 75 from JSON is
  still the float 75), counters with `i`, bools as true/false;
* null readings are left out, and a point with no field at all is left out, except
  the `controller` point: it always carries the snapshot's `seq` (an integer), so each
  stored snapshot is exactly one controller point at `ts`, and storage itself can be
  checked for gaps and duplicates (docs/delivery.md);
* tags are sorted by key (InfluxDB's preferred order) and escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from itertools import repeat
from typing import Any, Protocol

from ledwatch.compiled import encode as _encode

# InfluxDB 1.x keeps `\\` in a tag as two backslashes and refuses a tag that ends in one,
# while VictoriaMetrics unescapes both: no spelling of a backslash reads back the same
# everywhere, so a backslash in an id is stored as "/". A newline would end the line.
_TAG_ESCAPES = str.maketrans(
    {"\\": "/", ",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\n", "\r": "\\r"}
)
_STR_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})


def escape_tag(value: str) -> str:
    """Escape a tag value (see `_TAG_ESCAPES` for backslashes and newlines)."""
    return value.translate(_TAG_ESCAPES)


_TAG_CACHE: dict[str, str] = {}
# Formatting a float costs ~0.3 us here, a dict hit ~0.05 us, and readings repeat (a
# temperature has one decimal, a voltage two), so whole `name=value` fields are cached,
# one table per field. A JSON int and the equal float share an entry, so both are
# written as the float (50 -> 50.0): the text never depends on which arrived first.
# A field that is not first on its line is cached with its comma (",temp_c=41.5"), so a
# line is joined from half the pieces; `key` is the text before the value.
_FIELD_CACHES: dict[tuple[str, Any], dict[Any, str]] = {}
_FIELD_CACHE_MAX = 20_000  # per field: readings repeat, but never trust a payload


def _field_cache(key: str, fmt: Any) -> dict[Any, str]:
    cache = _FIELD_CACHES.get((key, fmt))
    if cache is None or len(cache) > _FIELD_CACHE_MAX:
        cache = _FIELD_CACHES[(key, fmt)] = {}
    return cache


def _field(cache: dict[Any, str], key: str, fmt: Formatter, v: Any) -> str:
    text = cache[v] = key + fmt(v)
    return text


def _tag(value: Any) -> str:
    """`escape_tag` with a cache: card and PSU ids repeat in every snapshot."""
    try:
        return _TAG_CACHE[value]
    except KeyError:
        if len(_TAG_CACHE) > 200_000:  # bounded: ids are few, but never trust a payload
            _TAG_CACHE.clear()
        escaped = _TAG_CACHE[value] = escape_tag(str(value))
        return escaped


def escape_str(value: str) -> str:
    return '"' + value.translate(_STR_ESCAPES) + '"'


def _float(v: Any) -> str:
    # A JSON int in a float column stays a float in line protocol: no `i`, written 50.0.
    # (str() of a float is its shortest round-trip repr.)
    return str(float(v))


def _int(v: Any) -> str:
    return f"{int(v)}i"


def _bool(v: Any) -> str:
    return "true" if v else "false"


Formatter = Callable[[Any], str]

# Field name -> formatter, per measurement; the order is the order on the line.
CONTROLLER_FIELDS: tuple[tuple[str, Formatter], ...] = (
    ("online", _bool),
    ("temp_c", _float),
    ("brightness_pct", _float),
    ("signal_ok", _bool),
    ("layout_ok", _bool),
    ("light_lux", _float),
)
CARD_FIELDS: tuple[tuple[str, Formatter], ...] = (
    ("online", _bool),
    ("temp_c", _float),
    ("voltage_v", _float),
    ("module_faults", _int),
    ("humidity_pct", _float),
    ("smoke", _bool),
    ("door_open", _bool),
    ("fan_rpm", _float),
    ("row", _int),
    ("col", _int),
    ("modules_connected", _int),
    ("module_temp_c_max", _float),
    ("run_time_h", _float),
)
PSU_FIELDS: tuple[tuple[str, Formatter], ...] = (
    ("ok", _bool),
    ("vout_v", _float),
    ("iout_a", _float),
    ("temp_c", _float),
    ("fan_rpm", _float),
    ("faults", lambda v: escape_str(str(v))),
)
ENV_FIELDS: tuple[tuple[str, Formatter], ...] = (
    ("temp_c", _float),
    ("humidity_pct", _float),
    ("smoke", _bool),
    ("door_open", _bool),
    ("fan_rpm", _float),
    ("light_lux", _float),
)
AGENT_FIELDS: tuple[tuple[str, Formatter], ...] = (
    ("queue_depth", _int),
    ("poll_ms", _float),
    ("poll_errors", _int),
    ("uptime_s", _float),
    ("dropped", _int),
)


def _flat_fields(obj: Mapping[str, Any], spec: tuple[tuple[str, Formatter], ...]) -> str:
    return ",".join(f"{name}={fmt(v)}" for name, fmt in spec if (v := obj.get(name)) is not None)


def _present(cols: Mapping[str, list[Any]], spec: tuple[tuple[str, Formatter], ...]
             ) -> list[tuple[str, Formatter, list[Any]]]:
    """(key, formatter, column) of each field the section carries, in line order; the
    key is the text before the value, with the comma for all but the first."""
    out: list[tuple[str, Formatter, list[Any]]] = []
    for name, fmt in spec:
        col = cols.get(name)
        if col is not None:
            out.append((f",{name}=" if out else f"{name}=", fmt, col))
    return out


def _column_lines_py(
    measurement: str,
    tag_key: str,
    tail_tags: str,
    cols: Mapping[str, list[Any]],
    spec: tuple[tuple[str, Formatter], ...],
    ts_suffix: str,
) -> list[str]:
    """One point per element of a columnar section (cards or psus).

    Work is done column by column and rows are then joined, ~2x faster than row by row
    with dict look-ups. A column costs one C-level pass in the common cases: the same
    reading everywhere (online, ok, smoke: a `count`), or readings all seen before (a
    `map` over the field cache); only a new reading or a null takes the Python loop.
    """
    ids = cols["id"]
    n = len(ids)
    columns: list[list[str | None]] = []
    has_null = False
    for key, fmt, col in _present(cols, spec):
        cache = _field_cache(key, fmt)
        first = col[0] if n else None
        if first is not None and col[-1] == first and col.count(first) == n:
            columns.append([cache.get(first) or _field(cache, key, fmt, first)] * n)
            continue
        try:
            columns.append(list(map(cache.__getitem__, col)))
        except KeyError:  # a reading not seen yet, or a null
            column = [None if v is None else (cache.get(v) or _field(cache, key, fmt, v))
                      for v in col]
            has_null = has_null or None in column
            columns.append(column)
    if not columns:
        return []
    heads = _heads(measurement, tag_key, tail_tags, ids)
    if has_null:
        # A row whose first column is null starts with the comma of its second field.
        rows = ["".join([f for f in row if f is not None]) for row in zip(*columns, strict=True)]
        return [f"{head}{fields.removeprefix(',')}{ts_suffix}"
                for head, fields in zip(heads, rows, strict=True) if fields]
    # The common case, every reading present: each line is one C-level join of its head,
    # its fields (commas included) and the timestamp (~30 % less than a join per row and
    # an f-string, and the cached commas halve the pieces again: measured).
    parts: list[Iterable[str | None]] = [heads, *columns]  # no None on this path
    parts.append(repeat(ts_suffix))  # endless; zip stops at the heads, which come first
    return list(map("".join, zip(*parts, strict=False)))


_C_CACHES: dict[tuple[str, Any], Any] = {}  # (key, formatter) -> _encode.FieldCache


def _column_lines_c(
    measurement: str,
    tag_key: str,
    tail_tags: str,
    cols: Mapping[str, list[Any]],
    spec: tuple[tuple[str, Formatter], ...],
    ts_suffix: str,
) -> list[str]:
    """`_column_lines_py` in C (collector/influx/_encode.pyx): the same texts, cached by
    each reading's double instead of a dict of floats, each line written in one go."""
    assert _encode is not None
    present = _present(cols, spec)
    if not present:
        return []
    caches = []
    for key, fmt, _ in present:
        cache = _C_CACHES.get((key, fmt))
        if cache is None:
            cache = _C_CACHES[(key, fmt)] = _encode.FieldCache(
                lambda v, key=key, fmt=fmt: key + fmt(v), _FIELD_CACHE_MAX)
        caches.append(cache)
    heads = _heads(measurement, tag_key, tail_tags, cols["id"])
    return _encode.lines(heads, caches, [col for _, _, col in present], ts_suffix)


# In C where the install built it (chosen once here; the tests hold both paths).
_column_lines = _column_lines_py if _encode is None else _column_lines_c


# Each screen sends the same cards and PSUs poll after poll: the start of their lines
# ("card,card=p0c1,screen=lobby,site=acme ") is built once per layout, not per point.
_HEADS: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}


def _heads(measurement: str, tag_key: str, tail_tags: str, ids: list[Any]) -> list[str]:
    key = (measurement, tail_tags, tuple(ids))
    found = _HEADS.get(key)
    if found is None:
        if len(_HEADS) > 50_000:  # bounded: layouts are few per screen
            _HEADS.clear()
        head, tail = f"{measurement},{tag_key}=", f",{tail_tags} "
        found = _HEADS[key] = [f"{head}{_tag(ident)}{tail}" for ident in ids]
    return found


def snapshot_lines(doc: Mapping[str, Any]) -> list[str]:
    """All points of one validated `ledwatch.telemetry/1` document (no trailing newlines)."""
    site = escape_tag(doc["site"])
    screen = escape_tag(doc["screen"])
    ts_suffix = f" {int(doc['ts'])}"
    screen_tags = f"screen={screen},site={site}"
    lines: list[str] = []
    fields = _flat_fields(doc["controller"], CONTROLLER_FIELDS)
    seq_field = f"seq={int(doc['seq'])}i"
    fields = f"{fields},{seq_field}" if fields else seq_field
    lines.append(f"controller,{screen_tags} {fields}{ts_suffix}")
    lines += _column_lines("card", "card", screen_tags, doc["cards"], CARD_FIELDS, ts_suffix)
    lines += _column_lines("psu", "psu", screen_tags, doc["psus"], PSU_FIELDS, ts_suffix)
    fields = _flat_fields(doc.get("env") or {}, ENV_FIELDS)
    if fields:
        lines.append(f"env,{screen_tags} {fields}{ts_suffix}")
    stats = doc.get("stats")
    if stats:
        fields = _flat_fields(stats, AGENT_FIELDS)
        if fields:
            agent = escape_tag(doc["agent"])
            lines.append(f"agent,agent={agent},site={site} {fields}{ts_suffix}")
    return lines


def snapshots_lines(docs: Iterable[Mapping[str, Any]]) -> list[str]:
    lines: list[str] = []
    for doc in docs:
        lines += snapshot_lines(doc)
    return lines


class TicketChangeLike(Protocol):
    """The fields of `collector.tickets.models.TicketChange` (frozen) this encoder reads."""

    @property
    def ticket_id(self) -> int: ...
    @property
    def site(self) -> str: ...
    @property
    def screen(self) -> str: ...
    @property
    def component(self) -> str: ...
    @property
    def fault(self) -> str: ...
    @property
    def priority(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def ts_ms(self) -> int: ...


def ticket_line(change: TicketChangeLike) -> str:
    """One `ticket` point per state change (DESIGN.md), timestamped with the change."""
    tags = (
        f"priority={escape_tag(str(change.priority))},screen={escape_tag(change.screen)},"
        f"site={escape_tag(change.site)},state={escape_tag(str(change.state))}"
    )
    fields = (
        f"id={int(change.ticket_id)}i,fault={escape_str(str(change.fault))},"
        f"component={escape_str(change.component)}"
    )
    return f"ticket,{tags} {fields} {int(change.ts_ms)}"


class ForecastLike(Protocol):
    """The fields of `collector.detect.engine.Forecast` (frozen) this encoder reads."""

    @property
    def site(self) -> str: ...
    @property
    def screen(self) -> str: ...
    @property
    def psu(self) -> str: ...
    @property
    def ts_ms(self) -> int: ...
    @property
    def predicted_failure_ms(self) -> int: ...
    @property
    def slope_v_per_h(self) -> float | None: ...


def forecast_line(f: ForecastLike) -> str:
    """A PSU's predicted failure time, on its own `psu` series (dashboards plot it)."""
    tags = f"psu={_tag(f.psu)},screen={escape_tag(f.screen)},site={escape_tag(f.site)}"
    fields = f"predicted_failure_ms={int(f.predicted_failure_ms)}i"
    if f.slope_v_per_h is not None:
        fields += f",vout_slope_v_per_h={float(f.slope_v_per_h)}"
    return f"psu,{tags} {fields} {int(f.ts_ms)}"


def event_line(doc: Mapping[str, Any]) -> str | None:
    """An agent's `ledwatch.event/1` as one `event` point: the event's name is a tag (a
    dashboard annotates by it), component and detail are fields. None if it has no time."""
    ts = doc.get("ts")
    if not isinstance(ts, int) or isinstance(ts, bool):
        return None
    tags = (f"event={escape_tag(str(doc.get('event') or 'unknown'))},"
            f"screen={escape_tag(str(doc.get('screen')))},site={escape_tag(str(doc.get('site')))}")
    detail = doc.get("detail")
    if detail is not None and not isinstance(detail, str):
        import json

        detail = json.dumps(detail, sort_keys=True)
    fields = [f"agent={escape_str(str(doc.get('agent') or ''))}",
              f"component={escape_str(str(doc.get('component') or ''))}",
              f"detail={escape_str((detail or '')[:1000])}"]
    return f"event,{tags} {','.join(fields)} {ts}"
