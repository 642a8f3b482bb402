"""Brompton Tessera processors (SX40, S8, M2, ...) over the IP Control HTTP API (pure).

Sources: `sethdotfm/brompton_exporter` (`tessera_exporter.py`, `README.md`,
`tessera.yml`, `tests/fixtures/values-010127.json`: an SX40 on firmware 3.5.2) and
`bitfocus/companion-module-brompton-tessera` (`index.js`: `GET http://HOST:80/api/`,
values read from the `api` tree; its `docs/TesseraIPControlAPI3_1_0_Beta4.pdf` is the
vendor's document, not machine-read here).

One GET of `/api/` returns the whole tree, `{"api": {...}}`; a sub-path such as
`/api/system/temperature` returns that subtree under its last name. With IP control off
for the loaded project the processor answers an object with a `response-code` key
instead (what else it holds is not published). The parts LEDwatch reads::

    system/temperature/*          C, nested (ethernet/copper/a, ...)     per sensor
    system/fan/<..>/{speed,status}  rpm, bool                           per fan
    system/{processor-type, processor-name, serial-number, software-version}
    project/name
    devices/statistics/{associated-count, online-count, error-count}   tiles
    input/active/source/{port-type, port-number}
    input/ports/<type>/<n>/meta-data/resolution/{width,height}  0 or -1 = no signal
    input/ports/<type>/<n>/meta-data/refresh-rate                -1 = no signal
    output/global-colour/brightness                             nits (0..10000)
    override/{blackout,freeze}/enabled

Not available: per-tile temperature, voltage or error detail (the exporter's README: the
API, 3.5.2, gives only `firmware` and `type` per tile). Pacing: "Start with
scrape_interval at 30s. Brompton warns that frequent polling may cause 'adverse
performance'" (exporter README), hence `MIN_POLL_INTERVAL_S`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from firmware_protocols.brompton_tessera.errors import TesseraProtocolError
from firmware_protocols.jsonvals import boolean as _flag
from firmware_protocols.jsonvals import integer as _int
from firmware_protocols.jsonvals import num as _num
from firmware_protocols.jsonvals import path as _get
from firmware_protocols.jsonvals import text as _str

DEFAULT_PORT: Final = 80
PATH_API: Final = "/api/"
MIN_POLL_INTERVAL_S: Final = 30.0


class Kind(StrEnum):
    OK = "ok"
    IP_CONTROL_DISABLED = "ip_control_disabled"  # answered, but IP control is off
    ERROR = "error"  # HTTP error status
    BAD = "bad"  # not JSON / not an object


@dataclass(frozen=True, slots=True)
class Answer:
    kind: Kind
    tree: Mapping[str, Any] = field(default_factory=dict)
    message: str | None = None


def decode_answer(status: int, body: bytes, path: str = PATH_API) -> Answer:
    """Classify one answer to a GET of `path` (never raises)."""
    if not 200 <= status < 300:
        return Answer(Kind.ERROR, message=f"HTTP {status}")
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return Answer(Kind.BAD, message="not JSON")
    if not isinstance(doc, dict):
        return Answer(Kind.BAD, message="not a JSON object")
    if "response-code" in doc:
        return Answer(Kind.IP_CONTROL_DISABLED, message=f"response-code {doc['response-code']}")
    name = [p for p in path.split("?")[0].split("/") if p][-1:] or ["api"]
    tree = doc.get(name[0])
    if not isinstance(tree, dict):
        return Answer(Kind.BAD, message=f"no {name[0]!r} object in the answer")
    return Answer(Kind.OK, tree)


def require_tree(answer: Answer) -> Mapping[str, Any]:
    if answer.kind is not Kind.OK:
        raise TesseraProtocolError(f"Tessera answer {answer.kind}: {answer.message}")
    return answer.tree


def _leaves(tree: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested object, keyed `a/b/c`."""
    out: dict[str, float] = {}
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            name = f"{prefix}/{key}" if prefix else str(key)
            if isinstance(value, Mapping):
                out.update(_leaves(value, name))
            elif (v := _num(value)) is not None:
                out[name] = v
    return out


@dataclass(frozen=True, slots=True)
class Fan:
    name: str
    rpm: float | None
    ok: bool | None


def _fans(tree: Any, prefix: str = "") -> list[Fan]:
    """Every object with a `speed` below `system/fan`, named by its path."""
    out: list[Fan] = []
    if isinstance(tree, Mapping):
        if "speed" in tree or "status" in tree:
            return [Fan(prefix, _num(tree.get("speed")), _flag(tree.get("status")))]
        for key, value in tree.items():
            out += _fans(value, f"{prefix}/{key}" if prefix else str(key))
    return out


@dataclass(frozen=True, slots=True)
class TesseraStatus:
    processor_type: str | None
    processor_name: str | None
    serial: str | None
    software_version: str | None
    project: str | None
    temps_c: Mapping[str, float]
    fans: tuple[Fan, ...]
    tiles_associated: int | None
    tiles_online: int | None
    tiles_error: int | None
    input_port: str | None  # "sdi 1"
    signal_ok: bool | None
    refresh_hz: float | None
    brightness_nits: float | None
    blackout: bool | None
    freeze: bool | None


def _signal(tree: Mapping[str, Any]) -> tuple[str | None, bool | None, float | None]:
    kind = _str(_get(tree, "input/active/source/port-type"))
    number = _int(_get(tree, "input/active/source/port-number"))
    if kind is None or number is None:
        return None, None, None
    meta = _get(tree, f"input/ports/{kind}/{number}/meta-data")
    width, height = _int(_get(meta, "resolution/width")), _int(_get(meta, "resolution/height"))
    refresh = _num(_get(meta, "refresh-rate"))
    signal = None if width is None or height is None else width > 0 and height > 0
    return f"{kind} {number}", signal, refresh if refresh is not None and refresh > 0 else None


def decode_status(tree: Mapping[str, Any]) -> TesseraStatus:
    """The monitoring view of an `api` tree (see the module docstring); missing -> None."""
    port, signal, refresh = _signal(tree)
    stats = _get(tree, "devices/statistics")
    return TesseraStatus(
        processor_type=_str(_get(tree, "system/processor-type")),
        processor_name=_str(_get(tree, "system/processor-name")),
        serial=_str(_get(tree, "system/serial-number")),
        software_version=_str(_get(tree, "system/software-version")),
        project=_str(_get(tree, "project/name")),
        temps_c=_leaves(_get(tree, "system/temperature")),
        fans=tuple(_fans(_get(tree, "system/fan"))),
        tiles_associated=_int(_get(stats, "associated-count")),
        tiles_online=_int(_get(stats, "online-count")),
        tiles_error=_int(_get(stats, "error-count")),
        input_port=port,
        signal_ok=signal,
        refresh_hz=refresh,
        brightness_nits=_num(_get(tree, "output/global-colour/brightness")),
        blackout=_flag(_get(tree, "override/blackout/enabled")),
        freeze=_flag(_get(tree, "override/freeze/enabled")),
    )
