"""Colorlight emulator over real UDP and TCP on 127.0.0.1, read through the real codec."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from firmware_protocols import colorlight as cl
from firmware_protocols.colorlight import ErrorCode, Op, Request, Response
from firmware_protocols.emulators.colorlight import ColorlightEmulator, fault
from firmware_protocols.emulators.faults import PSU_LOW_S, PSU_SAG_S, ManualClock
from ledwatch.errors import UsageError


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def emu(clock: ManualClock) -> Iterator[ColorlightEmulator]:
    e = ColorlightEmulator(ports=2, cards=[3, 2], modules=8, mfc_ports=[0], clock=clock)
    yield e
    e.stop()


class Udp:
    def __init__(self, addr: tuple[str, int]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(1.0)
        self.addr = addr
        self.codec = cl.ColorlightCodec()
        self.next_id = 0

    def ask(self, cmd: str, **data: Any) -> Response:
        self.next_id += 1
        request = Request(self.next_id, cmd, 1, Op.GET, data or None)
        self.sock.sendto(cl.encode([request]), self.addr)
        (frame,) = cl.decode_datagram(self.codec, self.sock.recv(65536))
        assert isinstance(frame, cl.Frame)
        (reply,) = frame.items
        assert isinstance(reply, Response) and reply.id == self.next_id
        return reply

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def udp(emu: ColorlightEmulator) -> Iterator[Udp]:
    client = Udp(emu.serve_udp())
    yield client
    client.close()


def test_monitoring_commands_over_udp(udp: Udp) -> None:
    info = udp.ask("sndinfo")
    assert info.ok and info.data["model"] == "X100 Pro-4U" and info.data["ports"] == 2
    eth = udp.ask("snd_eth")
    assert eth.data == {"n": 2, "ports": [{"idx": 1, "linked": 1}, {"idx": 2, "linked": 1}]}
    card = udp.ask("rcv_probe", port=2, rcv=2)
    assert card.ok and card.data["linked"] == 1 and card.data["ver"]
    assert udp.ask("rcv_probe", port=2, rcv=3).code == ErrorCode.DEVICE_NOT_FOUND  # past the end
    assert udp.ask("rcv_probe", port=3, rcv=1).code == ErrorCode.INVALID_PARAMS
    assert udp.ask("rcv_probe", port=1).code == ErrorCode.MISSING_REQUIRED
    assert udp.ask("mfc_probe", port=1).data["cardCount"] == 1
    assert udp.ask("mfc_probe", port=2).data == {"port": 2, "cardCount": 0}
    assert udp.ask("pr_video").code == ErrorCode.MISSING_REQUIRED
    video = udp.ask("pr_video", slotCode=16, boardKind=17)
    assert [s["signal"] for s in video.data["sources"]] == [1, 0]
    assert udp.ask("nonsense").code == ErrorCode.CMD_UNSUPPORTED


def test_discovery_probe_on_the_same_socket(emu: ColorlightEmulator, udp: Udp) -> None:
    udp.sock.sendto(cl.PROBE, udp.addr)
    answer = cl.decode_answer(udp.sock.recv(100))
    assert answer is not None and answer.model == "X100 Pro-4U" and emu.probes == 1


def test_heartbeat_is_counted_not_answered(emu: ColorlightEmulator, udp: Udp) -> None:
    udp.sock.sendto(cl.encode([Request(99, "heartbeat", 1, Op.SET, {})]), udp.addr)
    assert udp.ask("sn").data == {"serial": "CL-EMU-000001"}  # the next answer is the sn's
    assert emu.heartbeats == 1


def test_bad_frames_and_foreign_sid(udp: Udp) -> None:
    udp.sock.sendto(b"<[broken]>", udp.addr)
    (frame,) = cl.decode_datagram(udp.codec, udp.sock.recv(1000))
    assert isinstance(frame, cl.Frame) and frame.items[0].code == ErrorCode.INVALID_JSON  # type: ignore[union-attr]
    udp.sock.sendto(cl.encode([Request(5, "sndinfo", 9, Op.GET)]), udp.addr)
    (frame,) = cl.decode_datagram(udp.codec, udp.sock.recv(1000))
    assert isinstance(frame, cl.Frame) and frame.items[0].code == ErrorCode.DEVICE_NOT_FOUND  # type: ignore[union-attr]


def test_faults_show_through_the_codec(
    emu: ColorlightEmulator, udp: Udp, clock: ManualClock
) -> None:
    emu.inject(fault("module_fail", target="p0c1/3"))
    emu.inject(fault("over_temp", target="p0c0"))
    emu.inject(fault("over_temp"))
    emu.inject(fault("signal_lost"))
    emu.inject(fault("psu_sag_then_die", target="p1c0"))
    assert udp.ask("pr_rcv_state", port=1).data["modules"][1] == {"rcv": 2, "err": 3}
    assert udp.ask("mfc_probe", port=1).data["temp"] == 85.0
    assert udp.ask("sndinfo").data["temp"] == 85.0
    sources = udp.ask("pr_video", slotCode=1, boardKind=1).data["sources"]
    assert all(s["signal"] == 0 for s in sources)
    assert udp.ask("rcv_probe", port=2, rcv=1).data["linked"] == 1  # still sagging
    clock.advance(PSU_SAG_S + PSU_LOW_S)
    assert udp.ask("rcv_probe", port=2, rcv=1).data["linked"] == 0  # dark
    assert udp.ask("snd_eth").data["ports"][1]["linked"] == 0  # its port's first cabinet
    assert [m["rcv"] for m in udp.ask("mod_probe", port=2).data["modules"]] == [2]


def test_link_drop_is_silence_on_udp_and_a_reset_on_tcp(
    emu: ColorlightEmulator, udp: Udp, clock: ManualClock
) -> None:
    host, port = emu.serve_tcp()
    emu.inject(fault("link_drop", duration_s=10))
    udp.sock.sendto(cl.encode([Request(1, "sndinfo", 1, Op.GET)]), udp.addr)
    udp.sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        udp.sock.recv(100)
    # Reset at connect, on the send or on the read: any of them is an OSError.
    with pytest.raises(OSError), socket.create_connection((host, port), timeout=1) as conn:
        conn.sendall(cl.encode([Request(1, "sndinfo", 1, Op.GET)]))
        if not conn.recv(100):
            raise ConnectionError("closed without an answer")
    clock.advance(10)
    udp.sock.settimeout(1.0)
    assert udp.ask("sndinfo").ok


def test_tcp_stream_two_clients_split_frames(emu: ColorlightEmulator) -> None:
    addr = emu.serve_tcp()
    frame = cl.encode([Request(1, "sndinfo", 1, Op.GET), Request(2, "snd_eth", 1, Op.GET)])
    conns = [socket.create_connection(addr, timeout=1) for _ in range(2)]
    try:
        for c in conns:
            c.sendall(frame[:7])
        for c in conns:
            c.sendall(frame[7:])
        for c in conns:
            dec = cl.StreamDecoder()
            frames: list[cl.Frame | cl.BadFrame] = []
            while not frames:
                frames = dec.feed(c.recv(65536))
            (got,) = frames
            assert isinstance(got, cl.Frame)
            assert [i.cmd for i in got.valid] == ["sndinfo", "snd_eth"]
    finally:
        for c in conns:
            c.close()


def test_faults_the_protocol_cannot_show_are_refused() -> None:
    for kind in ("fan_stop", "door_open", "smoke", "held"):
        with pytest.raises(UsageError, match="colorlight cannot show it"):
            fault(kind, target="p0c0")
    with pytest.raises(UsageError, match="needs a target"):
        fault("module_fail")
    with pytest.raises(UsageError, match="no cabinet p3c0"):
        ColorlightEmulator(ports=1, cards=2).inject(fault("module_fail", target="p3c0"))


def test_cli_serves_and_prints_its_endpoints() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ledwatch.cli", "emulate", "colorlight", "--udp", "127.0.0.1:0",
         "--tcp", "127.0.0.1:0", "--ports", "1", "--cards", "2", "--fault", "module_fail@5:p0c1",
         "--duration", "0.5"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("udp 127.0.0.1:") and lines[1].startswith("tcp 127.0.0.1:")
    assert "cards p0c0 p0c1" in lines
    assert any(line.startswith("fault module_fail") for line in lines)
    bad = subprocess.run(
        [sys.executable, "-m", "ledwatch.cli", "emulate", "colorlight", "--udp", "127.0.0.1:0",
         "--fault", "fan_stop", "--duration", "0.1"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert bad.returncode == 2 and "reports no fan" in bad.stderr
