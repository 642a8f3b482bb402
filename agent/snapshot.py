"""Pure converters: one `ScreenReading` -> `ledwatch.telemetry/1` and `ledwatch.event/1` docs.

No clock, no I/O: the poll loop hands in seq, ts and stats, so the same reading always
gives the same bytes (and tests need no time machine).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from agent.drivers.base import ScreenReading
from agent.settings import AgentSettings
from ledwatch import __version__, contract


def build_snapshot(
    settings: AgentSettings,
    screen: str,
    seq: int,
    ts_ms: int,
    reading: ScreenReading,
    stats: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The telemetry document of one poll; `controller.link` is taken from the reading."""
    controller = dict(reading.controller)
    controller.setdefault("online", reading.link != "down")
    controller["link"] = str(reading.link)
    doc: dict[str, Any] = {
        "schema": contract.SCHEMA_TELEMETRY,
        "site": settings.agent.site,
        "screen": screen,
        "agent": settings.agent.id,
        "seq": seq,
        "ts": ts_ms,
        "controller": controller,
        "cards": {key: list(col) for key, col in reading.cards.items()},
        "psus": {key: list(col) for key, col in reading.psus.items()},
        "env": dict(reading.env),
    }
    # Drivers that found no cards may hand in {}: the schema still wants the columns.
    for key in ("id", "online", "temp_c", "voltage_v", "module_faults"):
        doc["cards"].setdefault(key, [])
    for key in ("id", "ok", "vout_v"):
        doc["psus"].setdefault(key, [])
    if stats is not None:
        doc["stats"] = dict(stats)
    return doc


def merge_psus(
    base: Mapping[str, Sequence[Any]], buses: Sequence[Mapping[str, Sequence[Any]]]
) -> dict[str, list[Any]]:
    """The controller's PSU rows plus each smart-PSU bus's rows, still columnar.

    A smart PSU whose id is a monitoring-card rail (`p0c3-psu1`) takes over that row
    field by field: its own vout/iout/temp/fan/ok/faults win, and where it has no
    reading (unit silent, bus down) the rail's value stays, so a PSU that dies and goes
    quiet still shows the sagging rail. Other smart PSUs are appended. Every column gets
    one element per row (None where a source has no such column).
    """
    keys = list(base)
    rows: dict[str, dict[str, Any]] = {}
    order: list[str] = []

    def add(cols: Mapping[str, Sequence[Any]]) -> None:
        keys.extend(k for k in cols if k not in keys)
        for i, ident in enumerate(cols.get("id", ())):
            row = {k: col[i] for k, col in cols.items()}
            old = rows.get(ident)
            if old is None:
                rows[ident] = row
                order.append(ident)
            else:
                old.update({k: v for k, v in row.items() if v is not None})

    add(base)
    for cols in buses:
        add(cols)
    return {k: [rows[ident].get(k) for ident in order] for k in keys}


def psu_events(
    previous: Mapping[str, Sequence[Any]] | None,
    current: Mapping[str, Sequence[Any]],
    ids: Sequence[str],
) -> list[dict[str, Any]]:
    """`psu_failed` / `psu_recovered` edges of the PSUs in `ids` (the smart ones)."""
    if previous is None:
        return []
    was = dict(zip(previous.get("id", ()), previous.get("ok", ()), strict=True))
    cur_ids = list(current.get("id", ()))
    now = dict(zip(cur_ids, current.get("ok", ()), strict=True))
    faults = dict(zip(cur_ids, current.get("faults", [None] * len(cur_ids)), strict=True))
    events: list[dict[str, Any]] = []
    for ident in ids:
        old, new = was.get(ident), now.get(ident)
        if old is True and new is False:
            event = {"event": "psu_failed", "component": f"psu/{ident}"}
            if faults.get(ident):
                event["faults"] = faults[ident]
            events.append(event)
        elif old is False and new is True:
            events.append({"event": "psu_recovered", "component": f"psu/{ident}"})
    return events


_EVENT_KEYS = ("event", "component", "detail")


def build_events(
    settings: AgentSettings, screen: str, ts_ms: int, reading: ScreenReading
) -> list[dict[str, Any]]:
    """One `ledwatch.event/1` doc per edge event; extra keys of a driver event go to detail."""
    docs = []
    for raw in reading.events:
        extra = {k: v for k, v in raw.items() if k not in _EVENT_KEYS and k != "type"}
        detail = raw.get("detail")
        if extra:
            detail = {**extra, **(detail if isinstance(detail, dict) else {"text": detail})}
        docs.append(
            {
                "schema": contract.SCHEMA_EVENT,
                "site": settings.agent.site,
                "screen": screen,
                "agent": settings.agent.id,
                "ts": ts_ms,
                "event": str(raw.get("event") or raw.get("type") or "unknown"),
                "component": raw.get("component"),
                "detail": detail,
            }
        )
    return docs


def build_status(
    settings: AgentSettings, state: str, ts_ms: int, *, with_version: bool = False
) -> dict[str, Any]:
    """The retained birth (`online`) / will and clean-stop (`offline`) document."""
    doc: dict[str, Any] = {
        "schema": contract.SCHEMA_STATUS,
        "state": state,
        "site": settings.agent.site,
        "agent": settings.agent.id,
        "ts": ts_ms,
    }
    if with_version:
        doc["version"] = __version__
    return doc


def encode(doc: dict[str, Any]) -> bytes:
    """UTF-8 JSON; orjson refuses NaN/inf by writing null, which is the contract's 'missing'."""
    return orjson.dumps(doc)
