"""Pure converters: one `ScreenReading` -> `ledwatch.telemetry/1` and `ledwatch.event/1` docs.

No clock, no I/O: the poll loop hands in seq, ts and stats, so the same reading always
gives the same bytes (and tests need no time machine).
"""

from __future__ import annotations

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
    """The telemetry document of one poll: the finished reading (agent/reading.py:
    `finish`) in its envelope, nothing added to the reading itself."""
    doc: dict[str, Any] = {
        "schema": contract.SCHEMA_TELEMETRY,
        "site": settings.agent.site,
        "screen": screen,
        "agent": settings.agent.id,
        "seq": seq,
        "ts": ts_ms,
        "controller": dict(reading.controller),
        "cards": {key: list(col) for key, col in reading.cards.items()},
        "psus": {key: list(col) for key, col in reading.psus.items()},
        "env": dict(reading.env),
    }
    if stats is not None:
        doc["stats"] = dict(stats)
    return doc


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
