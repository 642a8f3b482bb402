"""The wire contract (DESIGN.md): identifiers, MQTT topics, the telemetry schema.

Everything that crosses a process boundary is named here once, so the agent, the
collector, the emulators and the tests cannot drift apart.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

import fastjsonschema

from ledwatch.errors import ConfigError, PayloadError

SCHEMA_TELEMETRY: Final = "ledwatch.telemetry/1"
SCHEMA_EVENT: Final = "ledwatch.event/1"
SCHEMA_STATUS: Final = "ledwatch.status/1"
TOPIC_ROOT: Final = "ledwatch/v1"

ID_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def check_id(value: object, key: str) -> str:
    """Return `value` if it is a valid site/screen/agent id, else raise naming `key`.

    Ids end up inside MQTT topics and InfluxDB tags, so wildcards, slashes and spaces
    must be refused before they can reach either.
    """
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise ConfigError(
            f"{key}: {value!r} is not a valid id (lower-case letters, digits, '_' or '-', "
            "starting with a letter or digit, at most 64 characters)"
        )
    return value


def telemetry_topic(site: str, screen: str) -> str:
    return f"{TOPIC_ROOT}/{site}/screen/{screen}/telemetry"


def event_topic(site: str, screen: str) -> str:
    return f"{TOPIC_ROOT}/{site}/screen/{screen}/event"


def status_topic(site: str, agent: str) -> str:
    return f"{TOPIC_ROOT}/{site}/agent/{agent}/status"


def shared(group: str | None, topic_filter: str) -> str:
    """Prefix a filter with `$share/<group>/` so N collectors split the load.

    `group=None` subscribes plainly (amqtt accepts `$share` but delivers nothing to it).
    """
    return f"$share/{group}/{topic_filter}" if group else topic_filter


TELEMETRY_FILTER: Final = f"{TOPIC_ROOT}/+/screen/+/telemetry"
EVENT_FILTER: Final = f"{TOPIC_ROOT}/+/screen/+/event"
STATUS_FILTER: Final = f"{TOPIC_ROOT}/+/agent/+/status"


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """What a topic says about its sender; `kind` is telemetry, event or status."""

    site: str
    kind: str
    name: str  # screen id for telemetry/event, agent id for status


def parse_topic(topic: str) -> TopicInfo:
    """Split a LEDwatch topic; raise `PayloadError` for anything outside the contract."""
    parts = topic.split("/")
    if len(parts) == 6 and parts[0] == "ledwatch" and parts[1] == "v1":
        _, _, site, section, name, kind = parts
        if (
            (section == "screen" and kind in ("telemetry", "event"))
            or (section == "agent" and kind == "status")
        ) and ID_PATTERN.fullmatch(site) and ID_PATTERN.fullmatch(name):
            return TopicInfo(site=site, kind=kind, name=name)
    raise PayloadError(f"topic {topic!r} is not a ledwatch/v1 topic")


@cache
def telemetry_schema() -> dict[str, Any]:
    """The published JSON Schema of `ledwatch.telemetry/1` (ledwatch/schemas/)."""
    text = resources.files("ledwatch.schemas").joinpath("telemetry-1.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _telemetry_validator() -> Any:
    # A copy: fastjsonschema rewrites the $refs of the dict it is given in place, which
    # would leave `_telemetry_fastcheck` (compiled from the same cached dict) unable to
    # resolve them if this ran first.
    return fastjsonschema.compile(copy.deepcopy(telemetry_schema()))


@cache
def _telemetry_fastcheck() -> Any:
    from ledwatch.fastcheck import compile_check

    return compile_check(telemetry_schema())


def validate_telemetry(doc: Any) -> dict[str, Any]:
    """Validate a decoded telemetry document; raise `PayloadError` saying what is wrong.

    JSON Schema cannot say "all columnar arrays have the same length", so that rule is
    checked here too.
    """
    # The column-wise check accepts only valid documents (about 5x faster); anything it
    # doubts goes to fastjsonschema, which decides and names the problem.
    if not _telemetry_fastcheck()(doc):
        try:
            _telemetry_validator()(doc)
        except fastjsonschema.JsonSchemaValueException as exc:
            raise PayloadError(f"telemetry payload invalid: {exc.message}") from None
    for section in ("cards", "psus"):
        cols = doc[section]
        n = len(cols["id"])
        for key, col in cols.items():
            if len(col) != n:
                raise PayloadError(
                    f"telemetry payload invalid: {section}.{key} has {len(col)} elements, "
                    f"{section}.id has {n}"
                )
    result: dict[str, Any] = doc
    return result
