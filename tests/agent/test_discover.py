"""`ledwatch discover` against the emulator's UDP responder and TCP port, on 127.0.0.1 only."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.discover import main, starter_config, targets
from agent.drivers import create_driver
from agent.drivers.novastar.discover import Controller, as_found, parse_reply, probe, search
from agent.settings import load_settings
from firmware_protocols.emulators.colorlight import ColorlightEmulator
from firmware_protocols.emulators.novastar import (
    DISCOVERY_MAC,
    Fault,
    FaultKind,
    NovastarEmulator,
)
from ledwatch.cli import main as ledwatch
from ledwatch.errors import ConfigError, UsageError


@pytest.fixture
def emu() -> Iterator[NovastarEmulator]:
    e = NovastarEmulator(ports=2, cards=[3, 2])
    yield e
    e.stop()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_discover_lists_and_writes_a_loadable_config(
    emu: NovastarEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, udp = emu.serve_discovery()
    _, tcp = emu.serve_tcp()
    config = tmp_path / "agent.toml"
    code = ledwatch(
        ["discover", "--subnet", "127.0.0.1/32", "--port", str(udp), "--tcp-port", str(tcp),
         "--timeout-s", "0.3", "--write-config", str(config), "--site", "s1", "--agent", "pc1"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "127.0.0.1" in out and "MCTRL660 PRO" in out and DISCOVERY_MAC in out and "3,2" in out
    settings = load_settings(config)
    assert settings.agent.site == "s1" and settings.agent.id == "pc1"
    (screen,) = settings.screens
    assert screen.id == "ctrl-127-0-0-1"
    opts = screen.controller.options()
    assert opts == {"url": f"tcp://127.0.0.1:{tcp}", "ports": 2, "cards_per_port": [3, 2]}
    # A second run does not overwrite the file without --force.
    again = ["discover", "--subnet", "127.0.0.1/32", "--port", str(udp), "--timeout-s", "0.2",
             "--write-config", str(config), "--site", "s1", "--agent", "pc1"]  # fmt: skip
    assert main(again[1:]) == 2 and "--force" in capsys.readouterr().err


def test_broadcast_address_and_found_fields(emu: NovastarEmulator) -> None:
    _, udp = emu.serve_discovery()
    (found,) = search(["127.0.0.1"], udp, 0.3, broadcast=True)
    assert found.ip == "127.0.0.1" and found.mac == DISCOVERY_MAC
    assert "MCTRL660 PRO" in found.info and found.cards_per_port is None


def test_silent_network_and_link_down(
    emu: NovastarEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    nobody = free_udp_port()
    assert main(["--subnet", "127.0.0.1/32", "--port", str(nobody), "--timeout-s", "0.2"]) == 1
    assert "no controller answered" in capsys.readouterr().out
    _, udp = emu.serve_discovery()
    emu.inject(Fault(FaultKind.LINK_DROP, duration_s=60))
    assert search(["127.0.0.1"], udp, 0.2) == []


def test_unreachable_controller_gets_placeholders(tmp_path: Path) -> None:
    """Found by UDP but its TCP port refuses: the config still loads, marked for a human."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    gone = probe(Controller("127.0.0.1", info="x"), closed, 0.1)
    assert gone.cards_per_port is None and gone.model is None
    probed = Controller("127.0.0.1", model="MCTRL300", cards_per_port=(4, 4))
    found = [as_found(gone, 5200), as_found(replace_ip(probed, "127.0.0.1"), 5200)]
    text = starter_config(found, "site-a", "pc1")
    assert "PLACEHOLDER" in text
    path = tmp_path / "agent.toml"
    path.write_text(text.replace('id = "ctrl-127-0-0-1"', 'id = "wall"', 1), "utf-8")
    first, second = load_settings(path).screens
    assert first.controller.options() == {"url": "tcp://127.0.0.1:5200", "cards_per_port": 1}
    assert second.controller.options()["cards_per_port"] == 4
    with pytest.raises(ConfigError, match="--site"):
        starter_config([], "Bad Site", "pc1")


def replace_ip(c: Controller, ip: str) -> Controller:
    return Controller(ip, c.mac, c.info, c.model, c.cards_per_port)


def test_targets_refuse_big_scans(capsys: pytest.CaptureFixture[str]) -> None:
    assert targets("127.0.0.1/32", None) == (["127.0.0.1"], False)
    assert len(targets("10.1.2.0/24", None)[0]) == 254
    assert targets(None, None) == (["255.255.255.255"], True)
    with pytest.raises(UsageError, match=r"at most a /24"):
        targets("127.0.0.0/8", None)
    with pytest.raises(UsageError, match="--subnet"):
        targets("127.0.0.300/32", None)
    assert main(["--subnet", "10.0.0.0/16"]) == 2
    assert "at most a /24" in capsys.readouterr().err
    assert main(["--subnet", "127.0.0.1/32", "--write-config", "x.toml"]) == 2
    assert "--site and --agent" in capsys.readouterr().err


def test_parse_reply() -> None:
    assert parse_reply(b"rqProMI:", "10.0.0.5") is None  # a query, not a reply
    assert parse_reply(b"hello", "10.0.0.5") is None
    got = parse_reply(b"rpProMI:\x00\x01MCTRL4K AA-BB-CC-DD-EE-0F\xff", "10.0.0.5")
    assert got == Controller("10.0.0.5", "aa:bb:cc:dd:ee:0f", "MCTRL4K AA-BB-CC-DD-EE-0F")
    bare = parse_reply(b"rpProMI:", "10.0.0.6")
    assert bare == Controller("10.0.0.6") and bare.screen_id == "ctrl-10-0-0-6"


def test_discover_finds_a_colorlight_processor_and_writes_its_screen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ledwatch discover --family colorlight`: the real 0xEB probe to the emulator's UDP
    port; the starter config loads and its Colorlight screen builds a driver."""
    clt = ColorlightEmulator(model_byte=35)
    try:
        _, port = clt.serve_udp()
        config = tmp_path / "agent.toml"
        code = ledwatch(
            ["discover", "--family", "colorlight", "--subnet", "127.0.0.1/32", "--port",
             str(port), "--timeout-s", "0.3", "--write-config", str(config), "--site", "s1",
             "--agent", "pc1"]
        )  # fmt: skip
        out = capsys.readouterr().out
        assert code == 0, out
        assert "colorlight" in out and "U9 Max" in out and "processor, B-protocol" in out
        assert clt.probes == 1
    finally:
        clt.stop()
    (screen,) = load_settings(config).screens
    assert screen.controller.driver == "colorlight"
    assert screen.controller.options() == {"url": f"udp://127.0.0.1:{port}",
                                           "cards_per_port": 1}  # fmt: skip
    assert "PLACEHOLDER" in config.read_text("utf-8")
    create_driver("colorlight", screen.controller.options()).close()


def test_every_family_searches_unless_one_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    nobody = free_udp_port()
    assert main(["--subnet", "127.0.0.1/32", "--port", str(nobody), "--timeout-s", "0.2"]) == 1
    assert "searched for: colorlight, novastar" in capsys.readouterr().out
    args = ["--family", "novastar", "--subnet", "127.0.0.1/32", "--port", str(nobody),
            "--timeout-s", "0.2"]  # fmt: skip
    assert main(args) == 1
    assert "searched for: novastar)" in capsys.readouterr().out
