"""COEX payloads -> typed records (pure; None for anything missing or of the wrong type).

Shapes as OBSERVED on an MX30 (firmware v1.5.1) and recorded, with synthetic values, in
`legofsalmon/novasun` `tests/fixtures/mx30_like_api.json`; meanings from that project's
`docs/coex-http-api.md` and `docs/read-only-monitoring.md`. Read defensively: the
spellings are not verified across models or firmware.

`monitor/info` (large: ~265 KB for 288 cabinets; the cabinet order changes every call,
so cabinets are matched on `cabinetID`, never on position)::

    name                      operator label, not the model (no model is readable)
    runtime                   seconds, advancing in 60 s steps
    mainBoardTemperature      {value} controller board, C
    mainBoardVoltage          {value} V
    fanInfos[]                {fanName, fanSpeed (rpm), status (0 = ok)}
    cabinets[]                {cabinetID, outPutID, index, cabinet: {temperature,
                              humidity, smoke, voltage}, rvCards[]: {temperature,
                              voltage, humidity, ...}}   each reading {value, status}
    screenSourceStatus[]      {groupID, portID, linkStatus}  per input
    outputStatus[]            {outputID, linkStatus}

OBSERVED trap: with every output unplugged `monitor/info` kept listing all cabinets with
readings for minutes, while `/device/cabinet` returned none and `cabinet/count` 0. So
online state comes from the cabinet list and the count, never from `monitor/info`.

`screen/cabinet/count`: `{"list": [{"ScreenID", "CabinetCount", "CabinetCountInBlackList"}]}`
(MX30); `{"count": n}` is what the `FaintGhost/novastar-coex` tests mock, so both are read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from firmware_protocols.jsonvals import integer as _int
from firmware_protocols.jsonvals import mapping as _map
from firmware_protocols.jsonvals import num as _num
from firmware_protocols.jsonvals import objects as _list

OUTPUT_ID_BASE: Final = 2048  # outputID 2048 + n = output n on the MX30 (REASONED)
INTERNAL_SOURCE_TYPE: Final = 224  # /device/input/sources: the internal test source


def _reading(obj: Any) -> float | None:
    """`{name, nameEn, status, value}` -> value."""
    return _num(obj.get("value")) if isinstance(obj, Mapping) else None


def _nonzero(value: float | None) -> float | None:
    """A monitoring-card reading of exactly 0 is taken as "no sensor" (the MX30 reads 0
    for the cabinet-level temperature and humidity of cabinets without one; REASONED)."""
    return None if value is None or value == 0 else value


@dataclass(frozen=True, slots=True)
class Fan:
    name: str | None
    rpm: float | None
    ok: bool | None


@dataclass(frozen=True, slots=True)
class CabinetMonitor:
    cabinet_id: int
    port: int | None  # outPutID - 2048
    index: int | None  # position on that output
    temp_c: float | None  # the receiving card's temperature
    voltage_v: float | None  # the receiving card's supply
    humidity_pct: float | None
    smoke: bool | None
    monitor_temp_c: float | None  # the cabinet's monitoring-card temperature


@dataclass(frozen=True, slots=True)
class SourceStatus:
    group_id: int | None
    port_id: int | None
    linked: bool | None


@dataclass(frozen=True, slots=True)
class MonitorInfo:
    name: str | None
    runtime_s: float | None
    temp_c: float | None
    voltage_v: float | None
    fans: tuple[Fan, ...]
    cabinets: tuple[CabinetMonitor, ...]
    sources: tuple[SourceStatus, ...]
    outputs_linked: Mapping[int, bool]


def _cabinet(raw: Mapping[str, Any]) -> CabinetMonitor | None:
    cid = _int(raw.get("cabinetID"))
    if cid is None:
        return None
    cab = _map(raw.get("cabinet"))
    cards = _list(raw.get("rvCards"))
    card: Mapping[str, Any] = cards[0] if cards else {}
    out = _int(raw.get("outPutID"))
    smoke = _reading(cab.get("smoke"))
    humidity = _nonzero(_reading(card.get("humidity"))) or _nonzero(_reading(cab.get("humidity")))
    return CabinetMonitor(
        cabinet_id=cid,
        port=out - OUTPUT_ID_BASE if out is not None and out >= OUTPUT_ID_BASE else None,
        index=_int(raw.get("index")),
        temp_c=_reading(card.get("temperature")),
        voltage_v=_reading(card.get("voltage")) or _nonzero(_reading(cab.get("voltage"))),
        humidity_pct=humidity,
        smoke=None if smoke is None else smoke != 0,
        monitor_temp_c=_nonzero(_reading(cab.get("temperature"))),
    )


def decode_monitor_info(data: Any) -> MonitorInfo | None:
    if not isinstance(data, Mapping):
        return None
    fans = tuple(
        Fan(
            f.get("fanName") if isinstance(f.get("fanName"), str) else None,
            _num(f.get("fanSpeed")),
            None if _int(f.get("status")) is None else f.get("status") == 0,
        )
        for f in _list(data.get("fanInfos"))
    )
    cabinets = tuple(c for raw in _list(data.get("cabinets")) if (c := _cabinet(raw)))
    sources = tuple(
        SourceStatus(_int(s.get("groupID")), _int(s.get("portID")),
                     s["linkStatus"] if isinstance(s.get("linkStatus"), bool) else None)
        for s in _list(data.get("screenSourceStatus"))
    )  # fmt: skip
    outputs = {
        oid: o["linkStatus"]
        for o in _list(data.get("outputStatus"))
        if (oid := _int(o.get("outputID"))) is not None and isinstance(o.get("linkStatus"), bool)
    }
    name = data.get("name")
    return MonitorInfo(
        name=name if isinstance(name, str) and name else None,
        runtime_s=_num(data.get("runtime")),
        temp_c=_reading(data.get("mainBoardTemperature")),
        voltage_v=_reading(data.get("mainBoardVoltage")),
        fans=fans,
        cabinets=cabinets,
        sources=sources,
        outputs_linked=outputs,
    )


def decode_cabinet_count(data: Any) -> int | None:
    """Cabinets the controller sees, summed over its screens; None if unreadable."""
    if isinstance(data, Mapping):
        direct = _int(data.get("count"))
        if direct is not None:
            return direct
        screens = _list(data.get("list"))
        counts = [_int(s.get("CabinetCount", s.get("cabinetCount"))) for s in screens]
        if counts and all(c is not None for c in counts):
            return sum(c for c in counts if c is not None)
    return None


@dataclass(frozen=True, slots=True)
class CabinetInfo:
    cabinet_id: int
    port: int | None  # outputIndex (= outputID - 2048 on the MX30)
    index: int | None
    card_model: str | None  # rvCardName, e.g. "A5sPlus"
    firmware: str | None  # rvCardInfo.firmware
    brightness_ratio: float | None  # 0..1
    modules: int | None  # moduleCount


def decode_cabinet_list(data: Any) -> tuple[CabinetInfo, ...] | None:
    """The connected cabinets (`/device/cabinet`); None if the payload is not a list."""
    if not isinstance(data, list):
        return None
    out = []
    for c in _list(data):
        cid = _int(c.get("id"))
        if cid is None:
            continue
        info = _map(c.get("rvCardInfo"))
        port = _int(c.get("outputIndex"))
        if port is None and (oid := _int(c.get("outputID"))) is not None:
            port = oid - OUTPUT_ID_BASE
        name, fw = c.get("rvCardName"), info.get("firmware")
        out.append(CabinetInfo(
            cid, port, _int(c.get("index")),
            name if isinstance(name, str) and name else None,
            fw if isinstance(fw, str) and fw else None,
            _num(c.get("brightness")), _int(c.get("moduleCount")),
        ))  # fmt: skip
    return tuple(out)


@dataclass(frozen=True, slots=True)
class InputSource:
    id: int
    name: str | None
    internal: bool
    signal: bool | None  # sourceStatus 1 = signal (0 not connected, 2 no signal)


def decode_sources(data: Any) -> tuple[InputSource, ...] | None:
    if not isinstance(data, list):
        return None
    out = []
    for s in _list(data):
        sid = _int(s.get("id"))
        if sid is None:
            continue
        name = s.get("name") if isinstance(s.get("name"), str) else None
        status = _int(s.get("sourceStatus"))
        internal = s.get("type") == INTERNAL_SOURCE_TYPE or (name or "").startswith("internal")
        out.append(InputSource(sid, name, internal, None if status is None else status == 1))
    return tuple(out)


def signal_present(
    monitor: MonitorInfo, sources: tuple[InputSource, ...] | None
) -> bool | None:
    """Is any real (not internal) input linked? The internal test source is always
    linked, so it is left out: by id from the sources list when known, else by its group
    id 224 (the MX30's; REASONED)."""
    internal = {s.id for s in sources if s.internal} if sources else set()
    known = [
        s.linked
        for s in monitor.sources
        if s.linked is not None
        and s.port_id not in internal
        and not (not internal and s.group_id == INTERNAL_SOURCE_TYPE)
    ]
    return any(known) if known else None
