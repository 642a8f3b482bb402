"""Colorlight discovery: the real UDP probe against emulators on 127.0.0.1."""

from __future__ import annotations

import socket

from agent.drivers.colorlight.discover import discover, lan_search
from firmware_protocols.colorlight.discovery import DeviceType
from firmware_protocols.emulators.colorlight import ColorlightEmulator


def test_finds_every_emulator_probed_and_ignores_the_rest() -> None:
    a = ColorlightEmulator(model_byte=35)
    b = ColorlightEmulator(device_type=DeviceType.SENDING_CARD, model_byte=7)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        _, pa = a.serve_udp()
        _, pb = b.serve_udp()
        found = []
        for port in (pa, pb, silent.getsockname()[1]):
            found += discover(["127.0.0.1"], port=port, timeout_s=0.3, bind=("127.0.0.1", 0))
        assert [(f.port, f.kind, f.model, f.protocol) for f in found] == [
            (pa, "processor", "U9 Max", "B"), (pb, "sending_card", None, "A")]
        assert found[0].url == f"udp://127.0.0.1:{pa}" and a.probes == 1
    finally:
        a.stop()
        b.stop()
        silent.close()


def test_nothing_there_is_an_empty_list() -> None:
    assert discover(["127.0.0.1"], port=9, timeout_s=0.2, bind=("127.0.0.1", 0)) == []


def test_lan_search_gives_the_shared_found_shape() -> None:
    from agent.discover import Search

    emu = ColorlightEmulator(model_byte=35)
    try:
        _, port = emu.serve_udp()
        (found,) = lan_search(Search(("127.0.0.1",), timeout_s=0.3, port=port))
        assert (found.family, found.ip, found.model) == ("colorlight", "127.0.0.1", "U9 Max")
        assert found.controller[:2] == ('driver = "colorlight"', f'url = "udp://127.0.0.1:{port}"')
        assert "processor, B-protocol" in found.info
    finally:
        emu.stop()
