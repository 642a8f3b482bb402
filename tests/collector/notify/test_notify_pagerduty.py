"""PagerDuty Events API v2 against a local receiver that checks PagerDuty's documented shape.

The receiver's rules come from PagerDuty's Events API v2 pages ("Send an Alert Event",
"Response Codes & Retry Logic"): POST /v2/enqueue with JSON; `routing_key` (the 32
character integration key) and `event_action` (trigger, acknowledge, resolve) always;
`dedup_key` at most 255 characters; a trigger needs `payload.summary` (at most 1024
characters), `payload.source` and `payload.severity` (critical, error, warning, info),
and may carry `timestamp` (ISO 8601), `component`, `group`, `class`, `custom_details`
(an object), `images`, `links` (objects with `href`), `client`, `client_url`.
202 accepted, 400 invalid event, 429 rate limited.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from notify_helpers import HttpReceiver, Reply, Request, notification, ticket

from collector.notify import MemoryOutbox, Sender, build_channels, check_channels, load_notify
from collector.notify.errors import PermanentFailure, TemporaryFailure
from collector.notify.model import Event
from collector.notify.pagerduty import PagerDutyChannel

KEY = "R0123456789abcdef0123456789abcde"  # 32 characters, like an integration key
MakeHttp = Callable[..., HttpReceiver]
TOP_LEVEL = {"routing_key", "event_action", "dedup_key", "payload", "images", "links", "client",
             "client_url"}
PAYLOAD = {"summary", "source", "severity", "timestamp", "component", "group", "class",
           "custom_details"}


def problems(request: Request) -> list[str]:
    """What PagerDuty would refuse in this request (empty: a valid event)."""
    out = []
    if request.path != "/v2/enqueue":
        out.append(f"path {request.path}")
    if not request.headers.get("content-type", "").startswith("application/json"):
        out.append("content type")
    try:
        event = json.loads(request.body)
    except ValueError:
        return ["not JSON"]
    if not isinstance(event, dict):
        return ["not an object"]
    out += [f"unknown key {k}" for k in set(event) - TOP_LEVEL]
    if not (isinstance(event.get("routing_key"), str) and len(event["routing_key"]) == 32):
        out.append("routing_key")
    action = event.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        out.append("event_action")
    dedup = event.get("dedup_key")
    if dedup is not None and not (isinstance(dedup, str) and 0 < len(dedup) <= 255):
        out.append("dedup_key")
    if action in ("acknowledge", "resolve") and dedup is None:
        out.append("dedup_key required")
    payload = event.get("payload")
    if action == "trigger":
        if not isinstance(payload, dict):
            return [*out, "payload"]
        out += [f"unknown payload key {k}" for k in set(payload) - PAYLOAD]
        summary = payload.get("summary")
        if not (isinstance(summary, str) and 0 < len(summary) <= 1024):
            out.append("summary")
        if not (isinstance(payload.get("source"), str) and payload["source"]):
            out.append("source")
        if payload.get("severity") not in ("critical", "error", "warning", "info"):
            out.append("severity")
        if "timestamp" in payload:
            try:
                datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00"))
            except (AttributeError, ValueError):
                out.append("timestamp")
        for key in ("component", "group", "class"):
            if key in payload and not isinstance(payload[key], str):
                out.append(key)
        if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
            out.append("custom_details")
    for link in event.get("links", []):
        if not (isinstance(link, dict) and isinstance(link.get("href"), str)):
            out.append("links")
    return out


def pagerduty(request: Request) -> Reply:
    found = problems(request)
    if found:
        body = {"status": "invalid event", "message": "Event object is invalid", "errors": found}
        return 400, {"Content-Type": "application/json"}, json.dumps(body).encode()
    dedup = json.loads(request.body).get("dedup_key", "generated")
    body = {"status": "success", "message": "Event processed", "dedup_key": dedup}
    return 202, {"Content-Type": "application/json"}, json.dumps(body).encode()


def _events(receiver: HttpReceiver) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in receiver.posts("/v2/enqueue")]


def _settings(url: str, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> Any:
    monkeypatch.setenv("PD_KEY", KEY)
    return load_notify({
        "channels": {"pd": {"type": "pagerduty", "url": url, "routing_key_env": "PD_KEY",
                            "timeout_s": 5}},
        "routes": [{"levels": [["pd"]]}],
        **extra,
    })


def _channel(url: str, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> PagerDutyChannel:
    channel = build_channels(_settings(url, monkeypatch, **extra))["pd"]
    assert isinstance(channel, PagerDutyChannel)
    return channel


def test_trigger_has_the_documented_shape(
    http_receiver: MakeHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = http_receiver(pagerduty)
    channel = _channel(receiver.url + "/v2/enqueue", monkeypatch,
                       desk_url="https://desk.example.com/desk")
    note = notification(Event.OPENED, channel="pd", note="first report")
    channel.send(note)
    [event] = _events(receiver)
    assert event["routing_key"] == KEY
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == note.ticket["key"]
    payload = event["payload"]
    assert payload["summary"] == "P1 acme/lobby screen screen_dark: opened"
    assert payload["source"] == "acme/lobby"
    assert payload["severity"] == "critical"
    assert payload["timestamp"] == "2026-03-01T18:00:00.001Z"
    assert (payload["component"], payload["group"], payload["class"]) == (
        "screen", "acme", "screen_dark")
    details = payload["custom_details"]
    assert details["ticket_id"] == 42 and details["note"] == "first report"
    assert details["response_due"] == "2026-03-01 18:20:00 UTC"
    assert details["notification_id"] == note.id
    assert event["client"] == "LEDwatch"
    assert event["client_url"] == "https://desk.example.com/desk/tickets/42"
    assert event["links"][0]["href"] == event["client_url"]


@pytest.mark.parametrize(
    ("event", "action"),
    [
        (Event.ACKNOWLEDGED, "acknowledge"),
        (Event.CLEARED, "resolve"),
        (Event.RESOLVED, "resolve"),
        (Event.CLOSED, "resolve"),
        (Event.ESCALATED, "trigger"),
        (Event.PRIORITY_RAISED, "trigger"),
        (Event.RESPONSE_BREACHED, "trigger"),
        (Event.ONSITE_BREACHED, "trigger"),
        (Event.REOPENED, "trigger"),
    ],
)
def test_event_actions(
    http_receiver: MakeHttp, monkeypatch: pytest.MonkeyPatch, event: Event, action: str
) -> None:
    receiver = http_receiver(pagerduty)
    _channel(receiver.url + "/v2/enqueue", monkeypatch).send(notification(event, channel="pd"))
    [sent] = _events(receiver)
    assert sent["event_action"] == action
    if action != "trigger":
        assert set(sent) == {"routing_key", "event_action", "dedup_key"}


@pytest.mark.parametrize(
    ("priority", "severity"),
    [("P1", "critical"), ("P2", "error"), ("P3", "warning"), ("P4", "info")],
)
def test_severity_from_priority(
    http_receiver: MakeHttp, monkeypatch: pytest.MonkeyPatch, priority: str, severity: str
) -> None:
    receiver = http_receiver(pagerduty)
    note = notification(channel="pd", ticket=ticket(priority=priority))
    _channel(receiver.url + "/v2/enqueue", monkeypatch).send(note)
    assert _events(receiver)[0]["payload"]["severity"] == severity


def test_refusals(http_receiver: MakeHttp, monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = http_receiver(pagerduty)
    # a wrong path is what a bad URL looks like to PagerDuty: 400, given up
    with pytest.raises(PermanentFailure, match=r"HTTP 400: .*Event object is invalid"):
        _channel(receiver.url + "/v1/enqueue", monkeypatch).send(notification(channel="pd"))
    limited = http_receiver(lambda _r: (429, {}, b'{"status":"throttle event"}'))
    with pytest.raises(TemporaryFailure, match="HTTP 429"):
        _channel(limited.url + "/v2/enqueue", monkeypatch).send(notification(channel="pd"))


def test_check_asks_the_host(http_receiver: MakeHttp, monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = http_receiver(lambda _r: (404, {}, b""))
    assert check_channels(_settings(receiver.url + "/v2/enqueue", monkeypatch)) == []
    assert [(r.method, r.path) for r in receiver.requests] == [("HEAD", "/")]


def test_a_ticket_life_through_the_sender(
    http_receiver: MakeHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = http_receiver(pagerduty)
    settings = _settings(receiver.url + "/v2/enqueue", monkeypatch)
    store = MemoryOutbox()
    for n, event in enumerate((Event.OPENED, Event.ACKNOWLEDGED, Event.RESOLVED), 1):
        store.add(notification(event, channel="pd", n=n))
    sender = Sender(store, build_channels(settings), lambda: 1_772_388_100_000, settings)
    for _ in range(3):
        sender.run_once(1_772_388_100_000)
    assert [e["event_action"] for e in _events(receiver)] == ["trigger", "acknowledge", "resolve"]
    assert len({e["dedup_key"] for e in _events(receiver)}) == 1
    assert sender.stats()["channels"]["pd"]["sent"] == 3
    sender.stop()
