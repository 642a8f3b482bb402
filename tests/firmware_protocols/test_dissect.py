"""`ledwatch decode novastar`: spec example frames (V1.9, sections cited), codec-built
frames, noise, capture files and the command line's exit codes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from firmware_protocols import novastar as ns
from firmware_protocols.cli import main
from firmware_protocols.dissect import (
    ErrorItem,
    ErrorKind,
    FrameItem,
    Item,
    dissect_capture,
    dissect_novastar,
    find_register,
    parse_hex,
)
from firmware_protocols.novastar import Ack, DeviceType, MonitoringBlock, RibbonCable, encode
from ledwatch.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]

# Spec example frames, by section.
S21_REQUEST = "55 AA 00 32 FE 00 01 00 00 00 00 00 00 00 00 0A 00 01 91 56"
S22_REPLY = "AA 55 00 5D 00 FE 00 00 00 00 01 00 10 00 00 05 00 00 C6 56"
S311_BLOCK_REPLY = (
    "AA 55 00 32 00 FE 01 00 00 00 00 00 00 00 00 0A 00 01 80 36 00 B1 00 00 00 00 00 00 00"
    " 08 01 04 04 05 00 10 32 54 76 00 00 00 00 E4 00 00 00 00 00 00 FF 01 00 04 00 00 00 00"
    " 00 B2 80 80 80 80 80 B1 80 80 80 80 80 80 80 80 00 00 00 00 00 00 00 00 00 03"
    + " FF" * 16
    + " 00" * 174
    + " D8 72"
)
S311_TEMP_REPLY = "AA 55 00 32 00 FE 01 00 00 00 00 00 00 00 00 0A 02 00 80 48 5A 57"
S311_VOLT_REPLY = "AA 55 00 32 00 FE 01 00 00 00 00 00 03 00 00 0A 01 00 A9 3D 57"
S312_DVI_GOOD = "AA 55 00 16 00 FE 00 00 00 00 00 00 17 00 00 02 01 00 01 84 56"
S33_BRIGHTNESS_REPLY = "AA 55 00 14 00 FE 01 00 00 00 00 00 01 00 00 02 05 00 FF FF FF FF FF 6B 5B"
S33_GLOBAL_WRITE = "55 AA 00 15 FE 00 01 00 00 00 01 00 01 00 00 02 01 00 80 EE 56"
S33_BROADCAST_WRITE = (
    "55 AA 00 15 FE 00 01 FF FF FF 01 00 01 00 00 02 05 00 80 80 80 80 80 EF 5B"
)
S36_VERSION_REPLY = "AA 55 00 15 00 FE 00 00 00 00 00 00 04 00 10 04 04 00 04 03 00 00 8B 56"
S372_REPLY_ACK02 = "AA 55 02 32 00 FE 00 00 00 00 00 00 02 00 00 00 02 00 01 00 8C 56"
S373_REPLY = "AA 55 00 32 00 FE 02 00 00 00 00 00 02 00 00 00 02 00 01 81 0D 57"
S39_REPLY = "AA 55 00 32 00 FE 01 00 00 00 00 00 00 00 00 00 06 00 05 41 04 02 00 01 D9 56"
S314_REPLY = "AA 55 00 AA 00 FE 00 00 00 00 00 00 02 00 00 00 02 00 01 00 02 57"
S316_REPLY = "AA 55 00 32 00 FE 00 00 00 00 00 00 06 00 10 02 02 00 30 01 D0 56"
S317_REPLY = (
    "AA 55 00 32 00 FE 01 00 00 00 00 00 42 00 00 0A 10 00 88 88 88 88 88 88 88 88"
    " F8 F0 F0 FF F0 F0 F0 FF C8 62"
)
S318_REPLY = "AA 55 00 32 00 FE 00 00 00 00 00 00 4D 00 00 02 01 00 02 D7 56"
S32_WRITE = "55 AA 00 5D FE 00 00 00 00 00 01 00 10 00 00 05 01 00 00 C7 56"
# Printed in the spec with a wrong checksum (3.7.2 request: the sum gives 89 56).
S372_ERRATUM = "55 AA 00 32 FE 00 00 00 00 00 00 00 02 00 00 00 02 00 87 56"


def one(hexes: str) -> FrameItem:
    items = dissect_novastar(bytes.fromhex(hexes))
    assert len(items) == 1 and isinstance(items[0], FrameItem), items
    return items[0]


def covered(items: list[Item], n: int) -> bool:
    seen = bytearray(n)
    for it in items:
        seen[it.offset : it.offset + len(it.raw)] = b"\x01" * len(it.raw)
    return all(seen)


def test_spec_21_request_every_header_field() -> None:
    """Spec 2.1 worked example: read 0x100 bytes of the monitoring block of card 0."""
    assert one(S21_REQUEST).to_json() == {
        "offset": 0, "size": 20, "direction": "request", "ack": 0, "ack_name": "OK",
        "serial": 0x32, "src": "0xFE", "dst": "0x00", "device_type": 1,
        "device": "receiving_card", "port": 0, "board": 0, "code": "read", "reserved": 0,
        "address": "0x0A000000", "register": "monitoring block", "section": "3.1.1",
        "length": 256, "data": "", "checksum": "0x5691", "checksum_ok": True, "values": None,
    }  # fmt: skip


def test_spec_22_write_reply_to_a_function_card_register() -> None:
    """Spec 2.2: the reply to the 3.2 power switch write (function card on device 0)."""
    j = one(S22_REPLY).to_json()
    assert j["direction"] == "reply" and j["code"] == "write" and j["length"] == 0
    assert (j["src"], j["dst"], j["serial"]) == ("0x00", "0xFE", 0x5D)
    assert j["register"] == "power supply switches" and j["section"] == "3.2"
    assert j["values"] is None  # a write reply carries no data
    w = one(S32_WRITE).to_json()
    assert w["values"] == {"power_switch_1_on": True}  # 0 = on (3.2 table)


def test_spec_311_monitoring_block_values_with_nulls() -> None:
    v = one(S311_BLOCK_REPLY).to_json()["values"]
    assert v["temp_c"] == 27.0 and v["voltage_v"] == 4.9
    assert v["card_humidity_pct"] is None and v["monitor_temp_c"] is None  # validity bit 0
    assert v["monitor"] is True and v["monitor_version"] == "4.0.0.0"
    assert v["humidity_pct"] == 50 and v["smoke"] is False
    assert v["fan_rpm"] == [0, 0, 0, 0] and v["door_open"] == [True, True]
    assert v["voltages_v"][0] == 4.9
    assert v["ribbon"] is None  # all pins 1: no ribbon detection (3.1.1 example)
    json.dumps(v)


def test_spec_311_partial_reads_show_only_what_they_cover() -> None:
    temp = one(S311_TEMP_REPLY)
    assert temp.to_json()["values"] == {"temp_c": 36.0}
    volt = one(S311_VOLT_REPLY).to_json()
    assert volt["register"] == "card supply voltage" and volt["values"] == {"voltage_v": 4.1}


@pytest.mark.parametrize(
    "sec,hexes,register,values",
    [
        ("3.1.2", S312_DVI_GOOD, "DVI signal", {"dvi_signal": True}),
        ("3.3", S33_BRIGHTNESS_REPLY, "brightness",
         {"global_pct": 100.0, "red_pct": 100.0, "green_pct": 100.0, "blue_pct": 100.0,
          "vred_pct": 100.0}),
        ("3.3", S33_GLOBAL_WRITE, "brightness", {"global_pct": 50.2}),
        ("3.6", S36_VERSION_REPLY, "FPGA program version", {"fpga_version": "4.3.0.0"}),
        ("3.7.3", S373_REPLY, "function card model ID", {"model_id": "0x8101",
                                                         "model": "MFN300"}),
        ("3.9", S39_REPLY, "card model and firmware", {"model_id": "0x4105",
                                                       "firmware": "4.2.0.1"}),
        # 3.14 (reconnect) reads the 3.7.2 model register of the sending card.
        ("3.7.2", S314_REPLY, "controller model ID", {"model_id": "0x0001", "model": "MCTRL300"}),
        ("3.16", S316_REPLY, "cabinet size", {"cabinet_width_px": 304}),
        ("3.18", S318_REPLY, "input source status",
         {"input_status": {"raw": "0x02", "signal_present": True, "inputs": ["HDMI"]}}),
    ],
)  # fmt: skip
def test_spec_status_registers_named_and_decoded(
    sec: str, hexes: str, register: str, values: dict[str, object]
) -> None:
    j = one(hexes).to_json()
    assert (j["register"], j["section"]) == (register, sec)
    assert j["values"] == values


def test_spec_317_ribbon_cable() -> None:
    v = one(S317_REPLY).to_json()["values"]["ribbon"]
    assert v["faulty_groups"] == 0 and v["group_errors"] == [0] * 16
    assert v["control_bits"] == [0xF8, 0xF0, 0xF0, 0xFF, 0xF0, 0xF0, 0xF0, 0xFF]


def test_spec_33_broadcast_write_and_failed_reply_ack_names() -> None:
    j = one(S33_BROADCAST_WRITE).to_json()
    assert (j["port"], j["board"], j["code"]) == (0xFF, 0xFFFF, "write")
    failed = one(S372_REPLY_ACK02).to_json()  # spec 3.7.2: a reply with ACK 02
    assert failed["ack"] == 2 and failed["ack_name"] == "REQUEST_CHECKSUM"
    assert failed["values"] is None  # data of a failed read is not trusted
    assert failed["register"] == "controller model ID"


def test_unknown_register_and_offset_inside_a_block() -> None:
    assert find_register(DeviceType.RECEIVING_CARD, 0x0A000030) == (
        "monitoring card +0x10", find_register(DeviceType.RECEIVING_CARD, 0x0A000020)[1]  # type: ignore[index]
    )
    req = ns.read_request(1, DeviceType.RECEIVING_CARD, 0, 0, 0x7F000000, 4)
    j = one(encode(req).hex()).to_json()
    assert j["register"] is None and j["section"] is None and j["values"] is None


def test_codec_built_monitoring_block_round_trips_through_the_dissector() -> None:
    block = MonitoringBlock(
        temp_c=-4.5, voltage_v=4.7, monitor=True, monitor_model=1, monitor_version=(4, 1, 0, 2),
        monitor_temp_c=None, humidity_pct=61, smoke=True, fan_rpm=(1500, 0, None, 1450),
        voltages_v=(5.0, 4.9, 2.5, None, None, None, None, None, None),
        door_open=(False, True),
        ribbon=RibbonCable((0b111, 0, 0b001) + (0,) * 13, (0,) * 8),
    )  # fmt: skip
    req = ns.read_request(9, DeviceType.RECEIVING_CARD, 1, 3, ns.MONITORING_BLOCK_ADDR, 0x100)
    reply = ns.reply_to(req, ns.encode_monitoring_block(block))
    items = dissect_novastar(encode(req) + encode(reply))
    assert [type(i) for i in items] == [FrameItem, FrameItem]
    v = items[1].to_json()["values"]  # type: ignore[union-attr]
    assert v["temp_c"] == -4.5 and v["voltage_v"] == 4.7 and v["monitor_temp_c"] is None
    assert v["fan_rpm"] == [1500, 0, None, 1450] and v["smoke"] is True
    assert v["voltages_v"][:4] == [5.0, 4.9, 2.5, None] and v["door_open"] == [False, True]
    assert v["ribbon"]["faulty_groups"] == 2
    assert items[1].to_json()["port"] == 1 and items[1].to_json()["board"] == 3  # type: ignore[union-attr]
    dark = ns.reply_to(req, ack=Ack.TIMEOUT)  # a cabinet gone dark (spec 2.2 ACK 01)
    j = one(encode(dark).hex()).to_json()
    assert j["ack_name"] == "TIMEOUT" and j["values"] is None


def test_garbage_bad_checksum_truncated_reported_in_order_and_every_byte_covered() -> None:
    good = bytes.fromhex(S21_REQUEST)
    bad = bytes.fromhex(S372_ERRATUM)
    stream = b"\x01\x02\x55" + good + bad + good + b"\x13" + good[:11]
    items = dissect_novastar(stream)
    kinds = [it.error if isinstance(it, ErrorItem) else "frame" for it in items]
    assert kinds == [ErrorKind.GARBAGE, "frame", ErrorKind.BAD_CHECKSUM, "frame",
                     ErrorKind.GARBAGE, ErrorKind.TRUNCATED]  # fmt: skip
    assert [it.offset for it in items] == [0, 3, 23, 43, 63, 64]
    assert items[2].to_json() == {
        "error": "bad checksum", "offset": 23, "size": 20, "bytes": S372_ERRATUM,
        "detail": "checksum 0x5687, computed 0x5689",
    }  # fmt: skip
    assert covered(items, len(stream))


def test_frame_behind_a_false_head_is_still_found() -> None:
    """A false head claiming a long frame must not hide the real frame inside it."""
    good = bytes.fromhex(S311_TEMP_REPLY)
    false_head = bytes.fromhex("AA 55 00 01 00 FE 01 00 00 00 00 00 00 00 00 0A 00 01")
    items = dissect_novastar(false_head + good)
    frames = [it for it in items if isinstance(it, FrameItem)]
    assert [f.raw for f in frames] == [good]
    assert isinstance(items[0], ErrorItem) and items[0].error is ErrorKind.TRUNCATED
    assert covered(items, len(false_head + good))


@pytest.mark.parametrize("data", [b"", b"\x55", b"\xaa\x55", bytes(range(256)) * 3])
def test_odd_inputs_never_raise(data: bytes) -> None:
    items = dissect_novastar(data)
    assert covered(items, len(data))
    for it in items:
        json.dumps(it.to_json())
        it.to_text()


@pytest.mark.parametrize(
    "text",
    [
        "55 AA 00 14",
        "55aa0014",
        "0x55 0xAA 0x00 0x14",
        "0x55AA0014",
        "55:AA:00:14",
        "55-aa, 00-14",
    ],
)
def test_parse_hex_formats(text: str) -> None:
    assert parse_hex(text) == b"\x55\xaa\x00\x14"


@pytest.mark.parametrize("text,msg", [("55 AG", "'AG' is not hex"), ("55 A", "odd number")])
def test_parse_hex_refuses_with_the_bad_token(text: str, msg: str) -> None:
    with pytest.raises(UsageError, match=msg):
        parse_hex(text)


def test_capture_file_chunks_directions_timestamps_comments() -> None:
    """A sniffer log: the request is split over two chunks; the reply interleaves."""
    req = S21_REQUEST.split()
    capture = [
        "# captured with a serial sniffer",
        f"12:00:01.123 > {' '.join(req[:7])}",
        "",
        f"12:00:01.125 < {S311_TEMP_REPLY[:20]}",
        f"[2024-05-01 12:00:01,130] TX: {' '.join(req[7:])}   # rest of the request",
        f"12:00:01.140 < {S311_TEMP_REPLY[20:]}",
        "this is not hex",
        S372_ERRATUM,
    ]
    items = dissect_capture(capture)
    summary = [
        (it.line, it.stream, "frame" if isinstance(it, FrameItem) else it.error)
        for it in items
    ]
    assert summary == [
        (2, ">", "frame"),
        (4, "<", "frame"),
        (7, None, ErrorKind.UNPARSABLE),
        (8, None, ErrorKind.BAD_CHECKSUM),
    ]
    assert items[1].raw == bytes.fromhex(S311_TEMP_REPLY)
    assert items[1].to_json()["values"] == {"temp_c": 36.0}  # type: ignore[union-attr]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_json_one_object_per_item_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    # Several frames in one argument, and a frame spread over several arguments.
    code, out, _ = run_cli(
        ["novastar", "--json", S21_REQUEST.replace(" ", "") + S318_REPLY.replace(" ", ""),
         *S36_VERSION_REPLY.split()], capsys
    )  # fmt: skip
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [j["register"] for j in lines] == [
        "monitoring block", "input source status", "FPGA program version",
    ]  # fmt: skip
    code, out, _ = run_cli(["novastar", "--json", S372_ERRATUM, "01"], capsys)
    assert code == 1
    assert [json.loads(line)["error"] for line in out.splitlines()] == ["bad checksum", "garbage"]


def test_cli_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["novastar", S311_TEMP_REPLY], capsys)
    assert code == 0
    assert "reply" in out and "monitoring block, spec 3.1.1" in out and "temp_c=36.0" in out
    assert out.rstrip().endswith("-- 1 frame(s), 0 error(s)")


@pytest.mark.parametrize(
    "args",
    [[], ["novastar"], ["modbus", "01"], ["novastar", "5Z"], ["novastar", "--file", "/nonexistent"],
     ["novastar", "--file", "x", "55"]],
)  # fmt: skip
def test_cli_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(args, capsys)
    assert code == 2 and err


def test_cli_file_and_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = tmp_path / "capture.txt"
    cap.write_text(f"# two frames\n12:00:01.000 > {S21_REQUEST}\n\n12:00:01.010 < {S318_REPLY}\n")
    code, out, _ = run_cli(["novastar", "--file", str(cap), "--json"], capsys)
    assert code == 0 and [json.loads(x)["line"] for x in out.splitlines()] == [2, 4]
    monkeypatch.setattr(sys, "stdin", io.StringIO(S21_REQUEST[:30] + "\n"))
    code, out, _ = run_cli(["novastar", "--file", "-", "--json"], capsys)
    assert code == 1 and json.loads(out)["error"] == "truncated frame"


def test_ledwatch_entry_point_dispatches_decode() -> None:
    """The real `ledwatch decode` command, as a user runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "ledwatch.cli", "decode", "novastar", "--json", *S22_REPLY.split()],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["register"] == "power supply switches"
