"""Tessera codec: answers (tree, sub-tree, IP control off, junk) and the monitoring view of
an `api` tree shaped like an SX40's on firmware 3.5.2 (sethdotfm/brompton_exporter)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from firmware_protocols import brompton_tessera as bt
from firmware_protocols.brompton_tessera import Kind

TREE: dict[str, Any] = {
    "devices": {
        "items": {"A1B2C3D4E5F6": {"firmware": "3.5.2", "type": "CLD27RS1.5"}},
        "statistics": {"associated-count": 320, "error-count": 2, "online-count": 318},
    },
    "input": {
        "active": {"source": {"port-number": 1, "port-type": "sdi"}},
        "ports": {"sdi": {"1": {"meta-data": {"refresh-rate": 59.94,
                                              "resolution": {"height": 2160, "width": 3840}}}},
                  "hdmi": {"1": {"meta-data": {"refresh-rate": -1,
                                               "resolution": {"height": 0, "width": 0}}}}},
    },
    "output": {"global-colour": {"brightness": 10000}},
    "override": {"blackout": {"enabled": False}, "freeze": {"enabled": True}},
    "project": {"name": "StudioA_v3"},
    "system": {
        "fan": {"case": {"one": {"speed": 1800.0, "status": True},
                         "two": {"speed": 0.0, "status": False}},
                "fpga": {"speed": 2400.0, "status": True}},
        "processor-name": "Studio A Main", "processor-type": "sx40",
        "serial-number": "010127", "software-version": "3.5.2.15",
        "temperature": {"ambient": 28.5, "fpga": 48.7,
                        "ethernet": {"copper": {"a": 36.1}, "sfp": {"a": 37.2}}},
    },
}  # fmt: skip


def test_whole_tree_answer() -> None:
    answer = bt.decode_answer(200, json.dumps({"api": TREE}).encode())
    assert answer.kind is Kind.OK and answer.tree == TREE


def test_sub_tree_answer_is_unwrapped_by_its_last_name() -> None:
    body = json.dumps({"temperature": {"cpu": 45.2}}).encode()
    answer = bt.decode_answer(200, body, "/api/system/temperature")
    assert answer.kind is Kind.OK and answer.tree == {"cpu": 45.2}


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (200, b'{"response-code": 403}', Kind.IP_CONTROL_DISABLED),  # the exporter's check
        (500, b"", Kind.ERROR),
        (200, b"not json", Kind.BAD),
        (200, b"[1, 2]", Kind.BAD),
        (200, b'{"other": {}}', Kind.BAD),
    ],
)
def test_other_answers(status: int, body: bytes, kind: Kind) -> None:
    answer = bt.decode_answer(status, body)
    assert answer.kind is kind
    with pytest.raises(bt.TesseraProtocolError):
        bt.require_tree(answer)


def test_status() -> None:
    s = bt.decode_status(TREE)
    assert (s.processor_type, s.serial, s.software_version, s.project) == (
        "sx40", "010127", "3.5.2.15", "StudioA_v3")
    assert s.temps_c == {"ambient": 28.5, "fpga": 48.7, "ethernet/copper/a": 36.1,
                         "ethernet/sfp/a": 37.2}  # fmt: skip
    assert [(f.name, f.rpm, f.ok) for f in s.fans] == [
        ("case/one", 1800.0, True), ("case/two", 0.0, False), ("fpga", 2400.0, True)]
    assert (s.tiles_associated, s.tiles_online, s.tiles_error) == (320, 318, 2)
    assert (s.input_port, s.signal_ok, s.refresh_hz) == ("sdi 1", True, 59.94)
    assert (s.brightness_nits, s.blackout, s.freeze) == (10000.0, False, True)


def test_no_signal_sentinels() -> None:
    tree = json.loads(json.dumps(TREE))
    tree["input"]["active"]["source"]["port-type"] = "hdmi"  # 0 x 0 at -1 Hz
    s = bt.decode_status(tree)
    assert (s.input_port, s.signal_ok, s.refresh_hz) == ("hdmi 1", False, None)


def test_missing_parts_are_none() -> None:
    s = bt.decode_status({"system": {"temperature": "x", "fan": [1]}, "input": {}})
    assert s.temps_c == {} and s.fans == () and s.signal_ok is None and s.input_port is None
    assert s.tiles_online is None and s.processor_type is None
