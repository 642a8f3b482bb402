"""decode(): topic + bytes -> validated document, or a DecodeError with a reason."""

from __future__ import annotations

import orjson
import pytest
from datapath_helpers import make_snapshot

from collector.ingest.decode import DecodeError, decode, decode_telemetry
from ledwatch.contract import event_topic, status_topic, telemetry_topic
from ledwatch.errors import PayloadError


def test_valid_telemetry() -> None:
    doc = make_snapshot(site="s1", screen="scr1")
    doc["future_key"] = {"x": 1}  # receivers ignore unknown keys
    out = decode_telemetry(telemetry_topic("s1", "scr1"), orjson.dumps(doc))
    assert out["seq"] == doc["seq"] and out["cards"]["id"] == doc["cards"]["id"]


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (telemetry_topic("s1", "scr1"), b"{not json", "json"),
        (telemetry_topic("s1", "scr1"), b"\xff\xfe", "json"),
        (telemetry_topic("s1", "scr1"), b"[1, 2]", "json"),
        (telemetry_topic("s1", "scr1"), b'{"schema": "ledwatch.telemetry/1"}', "schema"),
        ("ledwatch/v1/s1/screen/scr1/other", b"{}", "topic"),
        ("something/else", b"{}", "topic"),
        (status_topic("s1", "a1"), b'{"state": "sleeping"}', "schema"),
    ],
)
def test_refused(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(topic, payload)
    assert info.value.reason == reason
    assert isinstance(info.value, PayloadError)


def test_schema_violation_says_what() -> None:
    doc = make_snapshot()
    doc["cards"]["temp_c"][0] = "hot"
    with pytest.raises(DecodeError, match="temp_c") as info:
        decode(telemetry_topic("s1", "scr1"), orjson.dumps(doc))
    assert info.value.reason == "schema"


def test_ragged_columns_refused() -> None:
    doc = make_snapshot(n_cards=3)
    doc["cards"]["voltage_v"] = [5.0]
    with pytest.raises(DecodeError, match="voltage_v") as info:
        decode(telemetry_topic("s1", "scr1"), orjson.dumps(doc))
    assert info.value.reason == "schema"


@pytest.mark.parametrize(("site", "screen"), [("s2", "scr1"), ("s1", "scr2")])
def test_topic_mismatch(site: str, screen: str) -> None:
    """An agent may only speak for the site/screen of its topic (broker ACLs rely on it)."""
    doc = make_snapshot(site="s1", screen="scr1")
    with pytest.raises(DecodeError) as info:
        decode(telemetry_topic(site, screen), orjson.dumps(doc))
    assert info.value.reason == "mismatch"


def test_status_and_event() -> None:
    st = decode(status_topic("s1", "a1"), b'{"state": "offline", "ts": 1}')
    assert (st.kind, st.site, st.name, st.doc["state"]) == ("status", "s1", "a1", "offline")
    ev = decode(event_topic("s1", "scr1"), b'{"kind": "door_opened"}')
    assert (ev.kind, ev.name) == ("event", "scr1")
