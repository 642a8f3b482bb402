"""The NovaStar emulator on its own: fault specs, scenarios, TCP clients, CLI, pty."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from firmware_protocols import novastar as ns
from firmware_protocols.emulators.novastar import (
    PSU_DRIFT_S,
    PSU_DRIFT_V,
    Fault,
    FaultKind,
    ManualClock,
    NovastarEmulator,
    load_scenario,
    parse_fault,
    psu_drift_v,
)
from ledwatch.errors import ConfigError, UsageError

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    "spec,fault",
    [
        ("psu_sag_then_die@30:p0c3/1", Fault(FaultKind.PSU_SAG_THEN_DIE, 30, "p0c3/1")),
        ("psu_sag_then_die@30:p0c3-psu2", Fault(FaultKind.PSU_SAG_THEN_DIE, 30, "p0c3-psu2")),
        ("module_fail@10:p1c0", Fault(FaultKind.MODULE_FAIL, 10, "p1c0")),
        ("psu_drift@20:p2c1/1", Fault(FaultKind.PSU_DRIFT, 20, "p2c1/1")),
        ("link_drop@60+20", Fault(FaultKind.LINK_DROP, 60, None, 20)),
        ("held@30+60", Fault(FaultKind.HELD, 30, None, 60)),
        ("signal_lost", Fault(FaultKind.SIGNAL_LOST)),
        ("door_open@1.5+2:p0c0/2", Fault(FaultKind.DOOR_OPEN, 1.5, "p0c0/2", 2)),
    ],
)
def test_parse_fault(spec: str, fault: Fault) -> None:
    assert parse_fault(spec) == fault


def test_psu_drift_curve_is_smooth_and_bounded() -> None:
    steps = [psu_drift_v(t) for t in range(0, int(PSU_DRIFT_S) + 31)]
    assert steps[0] == 0 and steps[-1] == PSU_DRIFT_V == 0.25
    assert steps == sorted(steps)  # only ever down, then steady
    assert max(b - a for a, b in itertools.pairwise(steps)) < 0.005  # no step of 5 mV/s
    assert psu_drift_v(PSU_DRIFT_S / 2) == pytest.approx(PSU_DRIFT_V / 2)


def test_fault_targets() -> None:
    assert parse_fault("psu_sag_then_die:p0c3-psu2").card == "p0c3"
    assert parse_fault("psu_sag_then_die:p0c3-psu2").number == 2
    assert parse_fault("smoke:p1c4").number is None


@pytest.mark.parametrize(
    "spec,match",
    [
        ("melt@3:p0c0", "unknown fault kind"),
        ("module_fail@10", "not a card id"),
        ("psu_drift@20", "not a card id"),
        ("link_drop:p0c0", "takes no target"),
        ("held:p0c0", "takes no target"),
        ("module_fail@-1:p0c0", "expected kind"),
        ("module_fail@x:p0c0", "expected kind"),
    ],
)
def test_bad_fault_specs(spec: str, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        parse_fault(spec)


def test_load_scenario(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        'ports = 1\ncards = [4]\npsus = 1\nmodel_id = 0x0101\n'
        '[[fault]]\nkind = "psu_sag_then_die"\nat_s = 30\ntarget = "p0c3/1"\n'
        '[[fault]]\nkind = "link_drop"\nat_s = 60\nduration_s = 20\n'
    )
    sc = load_scenario(path)
    assert sc.ports == 1 and sc.cards == (4,) and sc.psus == 1 and sc.model_id == 0x0101
    assert sc.faults == (parse_fault("psu_sag_then_die@30:p0c3/1"), parse_fault("link_drop@60+20"))
    emu = NovastarEmulator.from_scenario(sc)
    assert emu.card_ids() == ["p0c0", "p0c1", "p0c2", "p0c3"]
    path.write_text('[[fault]]\nkind = "module_fail"\ntarget = "nowhere"\n')
    with pytest.raises(ConfigError, match=r"fault\.0: .*not a card id"):
        load_scenario(path)
    path.write_text("psus = 12\n")
    with pytest.raises(ConfigError, match="psus"):
        load_scenario(path)
    path.write_text("psus = \n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_scenario(path)


def exchange(sock: socket.socket, frames: list[ns.Frame]) -> list[ns.Frame]:
    sock.sendall(b"".join(ns.encode(f) for f in frames))
    dec = ns.StreamDecoder()
    got: list[ns.Frame] = []
    while len(got) < len(frames):
        data = sock.recv(65536)
        assert data, "emulator closed the connection"
        got += dec.feed(data)
    return got


@pytest.fixture
def emu() -> Iterator[NovastarEmulator]:
    e = NovastarEmulator(ports=2, cards=[2, 1], clock=ManualClock())
    yield e
    e.stop()


def test_registers_over_tcp_with_two_clients(emu: NovastarEmulator) -> None:
    addr = emu.serve_tcp()
    with socket.create_connection(addr, 2) as a, socket.create_connection(addr, 2) as b:
        model, block, missing, fw = exchange(
            a,
            [
                ns.read_request(1, 0, 0, 0, ns.CONTROLLER_MODEL_ADDR, 2),
                ns.read_request(2, 1, 1, 0, ns.MONITORING_BLOCK_ADDR, 0x100),
                ns.read_request(3, 1, 1, 1, ns.MONITORING_BLOCK_ADDR, 0x100),
                ns.read_request(4, 0, 0, 0, ns.FIRMWARE_VERSION_ADDR, 4),
            ],
        )
        assert ns.model_name(ns.decode_model_id(model.data)) == "MCTRL660 PRO"
        assert block.ack == ns.Ack.OK and ns.decode_monitoring_block(block.data).monitor
        assert missing.ack == ns.Ack.TIMEOUT and missing.serial == 3
        assert ns.decode_firmware_version(fw.data) == "4.3.0.0"
        # The ribbon register (3.17) read on its own is the same bytes as in the block.
        (ribbon,) = exchange(b, [ns.read_request(9, 1, 1, 0, ns.RIBBON_CABLE_ADDR, 16)])
        assert ribbon.data == block.data[0x42:0x52]
        # Brightness write broadcast to every card (spec 3.3), then read back.
        w = ns.write_request(5, 1, 0xFF, 0xFFFF, ns.BRIGHTNESS_ADDR, b"\x80" * 5)
        (ack,) = exchange(b, [w])
        assert ack.ack == ns.Ack.OK and ack.length == 0
        (br,) = exchange(a, [ns.read_request(6, 1, 0, 1, ns.BRIGHTNESS_ADDR, 5)])
        assert br.data == b"\x80" * 5


def test_link_drop_closes_and_refuses(emu: NovastarEmulator) -> None:
    addr = emu.serve_tcp()
    clock = emu.clock
    assert isinstance(clock, ManualClock)
    with socket.create_connection(addr, 2) as a:
        exchange(a, [ns.read_request(1, 0, 0, 0, ns.CONTROLLER_MODEL_ADDR, 2)])
        emu.inject(Fault(FaultKind.LINK_DROP, duration_s=5))
        a.settimeout(2)
        with pytest.raises((ConnectionError, AssertionError)):
            exchange(a, [ns.read_request(2, 0, 0, 0, ns.CONTROLLER_MODEL_ADDR, 2)])
    # refused: reset at once (on connect or on the first read)
    with pytest.raises((ConnectionError, AssertionError)), socket.create_connection(addr, 2) as b:
        b.settimeout(2)
        exchange(b, [ns.read_request(3, 0, 0, 0, ns.CONTROLLER_MODEL_ADDR, 2)])
    clock.advance(5)
    with socket.create_connection(addr, 2) as c:
        assert exchange(c, [ns.read_request(4, 0, 0, 0, ns.CONTROLLER_MODEL_ADDR, 2)])[0].ack == 0


def test_held_resets_every_client_right_after_connect(emu: NovastarEmulator) -> None:
    """NovaLCT's server holding the link: the open connection is reset when it starts,
    new ones are accepted and reset at once, a serial line is silent. Afterwards, all
    answers again."""
    addr = emu.serve_tcp()
    clock = emu.clock
    assert isinstance(clock, ManualClock)
    model = ns.read_request(1, 0, 0, 0, ns.CONTROLLER_MODEL_ADDR, 2)
    with socket.create_connection(addr, 2) as a:
        assert exchange(a, [model])[0].ack == 0
        emu.inject(Fault(FaultKind.HELD, duration_s=10))
        a.settimeout(2)
        with pytest.raises((ConnectionError, AssertionError)):
            exchange(a, [model])
    for _ in range(2):  # accepted (no refusal), then reset before any answer
        with pytest.raises(ConnectionError), socket.create_connection(addr, 2) as b:
            b.settimeout(2)
            exchange(b, [model])
    assert emu.held_resets >= 2 and emu.handle(model) is None  # serial: silence
    clock.advance(10)
    with socket.create_connection(addr, 2) as c:
        assert exchange(c, [model])[0].ack == 0


def test_pty_with_link(emu: NovastarEmulator, tmp_path: Path) -> None:
    link = tmp_path / "ttyNOVA"
    path = emu.serve_pty(link=link)
    assert os.path.realpath(link) == path
    with serial.Serial(str(link), 115200, timeout=1) as port:
        port.write(ns.encode(ns.read_request(7, 0, 0, 0, ns.INPUT_SOURCE_STATUS_ADDR, 1)))
        dec = ns.StreamDecoder()
        frames: list[ns.Frame] = []
        while not frames:
            chunk = port.read(max(1, port.in_waiting))
            assert chunk, "no reply on the pty"
            frames = dec.feed(chunk)
    assert frames[0].serial == 7 and ns.decode_input_status(frames[0].data).signal_present  # type: ignore[union-attr]
    emu.stop()
    assert not link.exists()


def test_cli_serves_tcp_until_stopped(tmp_path: Path) -> None:
    scenario = tmp_path / "screen.toml"
    scenario.write_text('ports = 1\ncards = 3\n[[fault]]\nkind = "smoke"\ntarget = "p0c2"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "ledwatch.cli", "emulate", "novastar", "--tcp", "127.0.0.1:0",
         "--scenario", str(scenario), "--fault", "module_fail:p0c2/4", "--duration", "20"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().split()
        assert first[0] == "tcp"
        host, port = first[1].rsplit(":", 1)
        with socket.create_connection((host, int(port)), 5) as s:
            (reply,) = exchange(s, [ns.read_request(1, 1, 0, 2, ns.MONITORING_BLOCK_ADDR, 0x100)])
        block = ns.decode_monitoring_block(reply.data)
        assert block.ribbon is not None and block.ribbon.faulty_groups == 4 and block.smoke
        assert proc.stdout.readline().split() == ["cards", "p0c0", "p0c1", "p0c2"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_cli_errors_are_clear(capsys: pytest.CaptureFixture[str]) -> None:
    from firmware_protocols.emulators.cli import main

    for argv, msg in [
        (["novastar"], "say where to serve"),
        (["novastar", "--tcp", "nohost"], "is not HOST:PORT"),
        (["novastar", "--tcp", "127.0.0.1:0", "--fault", "melt@1:p0c0"], "unknown fault kind"),
        (["novastar", "--tcp", "127.0.0.1:0", "--cards", "x"], "is not a card count"),
        (["novastar", "--link", "/tmp/x", "--tcp", "127.0.0.1:0"], "--link needs --pty"),
    ]:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert msg in capsys.readouterr().err
