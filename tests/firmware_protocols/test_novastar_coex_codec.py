"""COEX codec: the answer envelope (ok, busy, VMP lock, the two spellings of "absent") and
the payload records, on shapes OBSERVED on an MX30 (legofsalmon/novasun fixtures)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from firmware_protocols import novastar_coex as coex
from firmware_protocols.novastar_coex import Kind


def env(data: Any, code: int = 0, message: str = "Success") -> bytes:
    return json.dumps({"code": code, "data": data, "message": message}).encode()


def reading(value: float, status: int = 0) -> dict[str, Any]:
    return {"name": "", "nameEn": "", "status": status, "value": value}


# A trimmed MX30 monitor/info: structure and spellings as observed, values synthetic.
MONITOR: dict[str, Any] = {
    "name": "Stage left",
    "runtime": 21000,
    "mainBoardTemperature": reading(32, 0) | {"name": "Main_board Temperature"},
    "mainBoardVoltage": reading(11.56),
    "fanInfos": [
        {"fanName": "Chassis Fan 1", "fanSpeed": 3776, "status": 0},
        {"fanName": "FPGA Fan", "fanSpeed": 0, "status": 1},
    ],
    "cabinets": [
        {"cabinetID": 400000000000002, "outPutID": 2050, "index": 0,
         "cabinet": {"temperature": reading(0), "humidity": reading(0), "smoke": reading(0),
                     "voltage": reading(4.2)},
         "rvCards": [{"temperature": reading(43), "voltage": reading(4.2),
                      "humidity": reading(0)}]},
        {"cabinetID": 400000000000001, "outPutID": 2048, "index": 0,
         "cabinet": {"temperature": reading(35), "humidity": reading(40), "smoke": reading(1),
                     "voltage": reading(4.3)},
         "rvCards": [{"temperature": reading(41), "voltage": reading(4.3),
                      "humidity": reading(0)}]},
        {"no": "id"},
    ],
    "screenSourceStatus": [
        {"groupID": 25, "portID": 512, "linkStatus": False},
        {"groupID": 224, "portID": 25856, "linkStatus": True},
    ],
    "outputStatus": [{"outputID": 2048, "linkStatus": True}, {"outputID": 2049}],
    "temperatureInfos": None,
}  # fmt: skip


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (200, env({"count": 3}), Kind.OK, 0),
        (200, env(None, 5, "Busying"), Kind.BUSY, 5),
        (200, env(None, 1, "device locked"), Kind.LOCKED, 1),
        (200, env(None, 7, " Device Locked "), Kind.LOCKED, 7),  # keyed on the message
        (404, b"404 page not found", Kind.ABSENT, None),  # MX40 Pro, OBSERVED
        (200, b"", Kind.ABSENT, None),  # MX30: empty 200, no envelope, OBSERVED
        (200, b"<html>", Kind.BAD, None),
        (200, b'{"data": 1}', Kind.BAD, None),
        (200, env(None, 6, "NotSupport"), Kind.ERROR, 6),
        (500, env(None, 3, "InternalErr"), Kind.ERROR, 3),
        (500, b"oops", Kind.ERROR, None),
    ],
)
def test_answers_are_classified(status: int, body: bytes, kind: Kind, code: int | None) -> None:
    answer = coex.decode_answer(status, body, "application/json")
    assert answer.kind is kind and answer.code == code
    assert answer.held is (kind in (Kind.BUSY, Kind.LOCKED))


def test_require_data() -> None:
    assert coex.require_data(coex.decode_answer(200, env([1]))) == [1]
    with pytest.raises(coex.CoexProtocolError):
        coex.require_data(coex.decode_answer(200, env(None, 5)))


def test_envelope_round_trip() -> None:
    answer = coex.decode_answer(200, coex.envelope({"a": 1}))
    assert answer.kind is Kind.OK and answer.data == {"a": 1} and answer.message == "Success"


def test_monitor_info() -> None:
    m = coex.decode_monitor_info(MONITOR)
    assert m is not None and m.name == "Stage left" and m.runtime_s == 21000
    assert m.temp_c == 32.0 and m.voltage_v == 11.56
    assert [(f.rpm, f.ok) for f in m.fans] == [(3776.0, True), (0.0, False)]
    by_id = {c.cabinet_id: c for c in m.cabinets}  # matched on id, never on position
    assert len(by_id) == 2
    a, b = by_id[400000000000001], by_id[400000000000002]
    assert (a.port, a.index, a.temp_c, a.voltage_v) == (0, 0, 41.0, 4.3)
    assert a.smoke is True and a.humidity_pct == 40.0 and a.monitor_temp_c == 35.0
    assert (b.port, b.smoke, b.humidity_pct, b.monitor_temp_c) == (2, False, None, None)
    assert m.outputs_linked == {2048: True}


def test_signal_leaves_the_internal_source_out() -> None:
    m = coex.decode_monitor_info(MONITOR)
    assert m is not None
    assert coex.signal_present(m, None) is False  # group 224 = internal, by the fallback
    sources = coex.decode_sources([
        {"id": 512, "name": "HDMI2.0 1", "type": 3, "sourceStatus": 0},
        {"id": 25856, "name": "internal-source", "type": 224, "sourceStatus": 1},
    ])  # fmt: skip
    assert sources is not None and [s.internal for s in sources] == [False, True]
    assert coex.signal_present(m, sources) is False
    linked = coex.decode_monitor_info(MONITOR | {"screenSourceStatus": [
        {"groupID": 25, "portID": 512, "linkStatus": True}]})  # fmt: skip
    assert linked is not None and coex.signal_present(linked, sources) is True


def test_cabinet_count_both_spellings() -> None:
    observed = {"list": [{"ScreenID": "{a}", "CabinetCount": 72, "CabinetCountInBlackList": 0},
                         {"ScreenID": "{b}", "CabinetCount": 3}]}  # fmt: skip
    assert coex.decode_cabinet_count(observed) == 75
    assert coex.decode_cabinet_count({"count": 10}) == 10  # FaintGhost's test mock
    assert coex.decode_cabinet_count({"list": [{"ScreenID": "{a}"}]}) is None
    assert coex.decode_cabinet_count([]) is None


def test_cabinet_list() -> None:
    cabinets = coex.decode_cabinet_list([
        {"id": 400000000000001, "index": 0, "outputID": 2048, "outputIndex": 0,
         "rvCardName": "A5sPlus", "rvCardInfo": {"firmware": "4.6.6.68"}, "brightness": 0.5,
         "moduleCount": 4},
        {"id": 400000000000003, "outputID": 2052},
        {"name": "no id"},
    ])  # fmt: skip
    assert cabinets is not None and len(cabinets) == 2
    assert cabinets[0] == coex.CabinetInfo(400000000000001, 0, 0, "A5sPlus", "4.6.6.68", 0.5, 4)
    assert cabinets[1].port == 4 and cabinets[1].firmware is None
    assert coex.decode_cabinet_list({"not": "a list"}) is None


@pytest.mark.parametrize("junk", [None, 1, "x", [], {"cabinets": "x", "fanInfos": [1, None]}])
def test_junk_never_raises(junk: Any) -> None:
    m = coex.decode_monitor_info(junk)
    assert m is None or (m.cabinets == () and m.fans == ())
    coex.decode_sources(junk)
    coex.decode_cabinet_count(junk)
