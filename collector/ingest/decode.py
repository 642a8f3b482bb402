"""MQTT (topic, payload bytes) -> validated document; pure, no I/O.

Anything that does not fit the contract raises `DecodeError` with a short `reason`
(`topic`, `json`, `schema`, `mismatch`): the service counts it as a dead letter under
that reason, logs the topic, and still acknowledges the message so that a poison
payload cannot be redelivered forever.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ledwatch.contract import TopicInfo, parse_topic, validate_telemetry
from ledwatch.errors import PayloadError

MAX_PAYLOAD_BYTES = 8 * 1024 * 1024


class DecodeError(PayloadError):
    """A payload refused by the collector; `reason` is the dead-letter counter label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Decoded:
    """kind: telemetry | event | status; `name` is the screen (telemetry, event) or agent."""

    kind: str
    site: str
    name: str
    doc: dict[str, Any]


def _load_object(topic: str, payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DecodeError("size", f"{topic}: payload of {len(payload)} bytes is too large")
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("json", f"{topic}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DecodeError("json", f"{topic}: payload is not a JSON object")
    return doc


def decode_telemetry(topic: str, payload: bytes) -> dict[str, Any]:
    """A validated `ledwatch.telemetry/1` document whose site/screen match the topic."""
    decoded = decode(topic, payload)
    if decoded.kind != "telemetry":
        raise DecodeError("topic", f"{topic}: not a telemetry topic")
    return decoded.doc


def decode(topic: str, payload: bytes) -> Decoded:
    try:
        info = parse_topic(topic)
    except PayloadError as exc:
        raise DecodeError("topic", str(exc)) from None
    return _check(topic, info, _load_object(topic, payload))


def decode_object(topic: str, doc: Any) -> Decoded:
    """`decode` for a payload that is already parsed JSON (recorded telemetry)."""
    try:
        info = parse_topic(topic)
    except PayloadError as exc:
        raise DecodeError("topic", str(exc)) from None
    if not isinstance(doc, dict):
        raise DecodeError("json", f"{topic}: payload is not a JSON object")
    return _check(topic, info, doc)


def _check(topic: str, info: TopicInfo, doc: dict[str, Any]) -> Decoded:
    if info.kind == "telemetry":
        try:
            validate_telemetry(doc)
        except PayloadError as exc:
            raise DecodeError("schema", f"{topic}: {exc}") from None
        if doc["site"] != info.site or doc["screen"] != info.name:
            # An agent may only speak for the site/screen its topic (and broker ACL) names.
            raise DecodeError(
                "mismatch",
                f"{topic}: payload is for site {doc['site']!r} screen {doc['screen']!r}",
            )
    elif info.kind == "status":
        state = doc.get("state")
        if state not in ("online", "offline"):
            raise DecodeError("schema", f"{topic}: status 'state' must be 'online' or 'offline'")
    return Decoded(kind=info.kind, site=info.site, name=info.name, doc=doc)
