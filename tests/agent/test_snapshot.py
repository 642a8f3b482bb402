"""Snapshots and events built from a reading validate against the published contract."""

from __future__ import annotations

import orjson
import pytest

from agent.drivers.base import LinkState, ScreenReading
from agent.reading import finish
from agent.runtime import unreadable
from agent.settings import AgentSettings, parse_settings
from agent.snapshot import build_events, build_snapshot, build_status, encode
from ledwatch import contract
from ledwatch.errors import PayloadError


@pytest.fixture
def settings() -> AgentSettings:
    return parse_settings(
        {
            "agent": {"id": "pc1", "site": "acme"},
            "screens": [{"id": "lobby", "controller": {"driver": "novastar"}}],
        }
    )


def reading() -> ScreenReading:
    return ScreenReading(
        controller={
            "online": True,
            "model": "MCTRL4K",
            "signal_ok": True,
            "brightness_pct": 80.0,
            "temp_c": 41.5,
        },
        cards={
            "id": ["p0c0", "p0c1"],
            "port": [0, 0],
            "index": [0, 1],
            "online": [True, False],
            "temp_c": [35.5, None],
            "voltage_v": [5.01, None],
            "module_faults": [0, None],
        },
        psus={"id": ["p0c0-psu1"], "card": ["p0c0"], "ok": [True], "vout_v": [5.02]},
        env={"temp_c": 24.0, "door_open": False},
        link=LinkState.DEGRADED,
        errors=2,
        events=[{"event": "card_offline", "component": "p0c1", "detail": "no answer", "port": 0}],
    )


def test_snapshot_validates_and_round_trips(settings: AgentSettings) -> None:
    stats = {"poll_ms": 12.5, "poll_errors": 2, "queue_depth": 3, "uptime_s": 10.0, "dropped": 0}
    doc = build_snapshot(settings, "lobby", 7, 1_700_000_000_123, finish(reading()), stats)
    decoded = orjson.loads(encode(doc))
    contract.validate_telemetry(decoded)
    assert decoded["schema"] == "ledwatch.telemetry/1"
    assert (decoded["site"], decoded["screen"], decoded["agent"]) == ("acme", "lobby", "pc1")
    assert (decoded["seq"], decoded["ts"]) == (7, 1_700_000_000_123)
    assert decoded["controller"]["link"] == "degraded"
    assert decoded["cards"]["temp_c"] == [35.5, None]  # missing is null, never a sentinel
    assert decoded["stats"] == stats


def test_unreadable_controller_still_validates(settings: AgentSettings) -> None:
    finished = finish(unreadable("open failed"))
    doc = orjson.loads(encode(build_snapshot(settings, "lobby", 1, 5, finished)))
    contract.validate_telemetry(doc)
    assert doc["controller"]["online"] is False and doc["controller"]["link"] == "down"
    assert doc["cards"]["id"] == [] and "stats" not in doc


def test_nan_becomes_null_and_bad_reading_is_refused(settings: AgentSettings) -> None:
    r = reading()
    r.cards["temp_c"] = [float("nan"), 30.0]
    doc = orjson.loads(encode(build_snapshot(settings, "lobby", 1, 5, finish(r))))
    assert doc["cards"]["temp_c"] == [None, 30.0]
    r.cards["temp_c"] = [30.0]  # a driver bug: ragged columns are caught by the contract
    with pytest.raises(PayloadError, match=r"cards\.temp_c"):
        contract.validate_telemetry(
            orjson.loads(encode(build_snapshot(settings, "lobby", 1, 5, finish(r))))
        )


def test_events_and_status_docs(settings: AgentSettings) -> None:
    [event] = build_events(settings, "lobby", 99, reading())
    assert event == {
        "schema": "ledwatch.event/1",
        "site": "acme",
        "screen": "lobby",
        "agent": "pc1",
        "ts": 99,
        "event": "card_offline",
        "component": "p0c1",
        "detail": {"port": 0, "text": "no answer"},
    }
    online = build_status(settings, "online", 5, with_version=True)
    assert online["state"] == "online" and online["version"]
    assert build_status(settings, "offline", 5) == {
        "schema": "ledwatch.status/1",
        "state": "offline",
        "site": "acme",
        "agent": "pc1",
        "ts": 5,
    }
