"""A link held by another client (NovaLCT / "Nova server"): the driver reports `held`,
backs off, keeps trying, and never calls the controller lost for it.

The emulator's `held` fault does what NovaLCT does to other TCP clients: the connection
open when it starts is reset, and every new one is accepted and reset at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent.drivers.base import LinkState
from agent.drivers.novastar.driver import create_driver
from agent.reading import finish
from agent.snapshot import build_snapshot
from drivers.novastar.payload import Finishing, validated_payload
from firmware_protocols.emulators.novastar import Fault, FaultKind, ManualClock, NovastarEmulator
from ledwatch.errors import ConfigError

CARDS = 3


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def emu(clock: ManualClock) -> Iterator[NovastarEmulator]:
    e = NovastarEmulator(ports=1, cards=CARDS, psus=2, clock=clock)
    yield e
    e.stop()


def driver(emu: NovastarEmulator, **options: Any) -> Finishing:
    host, port = emu.serve_tcp()
    return Finishing(create_driver(
        {"url": f"tcp://{host}:{port}", "cards_per_port": CARDS, "timeout_ms": 100,
         "retries": 0, "reconnect_min_s": 0.05, "reconnect_max_s": 0.05, **options}
    ))  # fmt: skip


def events(reading: Any) -> list[str]:
    return [e["event"] for e in reading.events]


def test_held_link_is_reported_held_not_lost(emu: NovastarEmulator, clock: ManualClock) -> None:
    drv = driver(emu, held_after=3)
    drv.open()
    try:
        assert drv.poll().link is LinkState.UP
        emu.inject(Fault(FaultKind.HELD, duration_s=60))
        # The open connection is reset (the other client took over): not yet known to be
        # held, so down as before; the next two free attempts are reset right after
        # the connect, the third attempt in a row makes it held.
        first, second, held = drv.poll(), drv.poll(), drv.poll()
        assert [first.link, second.link] == [LinkState.DOWN, LinkState.DOWN]
        assert events(first) == ["controller_link_lost"] and events(second) == []
        assert held.link is LinkState.HELD and events(held) == ["controller_link_held"]
        assert emu.held_resets >= 2
        c = held.controller
        assert c["link"] == "held" and c["online"] is None
        assert c["held_s"] is not None and c["held_s"] >= 0 and c["reconnect_in_s"] > 0
        # Cards are unknown (null), not offline; so are the rails behind them.
        assert held.cards["online"] == [None] * CARDS
        assert set(held.psus["ok"]) == {None} and len(held.psus["id"]) == CARDS * 2
        assert held.errors >= 1
        validated_payload(held)
        # While the backoff waits, the poll does not touch the port and stays held.
        resets = emu.held_resets
        waiting = drv.poll()
        assert waiting.link is LinkState.HELD and events(waiting) == []
        assert emu.held_resets == resets
        time.sleep(0.06)
        again = drv.poll()  # tried again (a reset), still held, held_s grows
        assert again.link is LinkState.HELD and again.controller["held_s"] >= c["held_s"]
        # The other client lets go: the next attempt reads the screen again.
        clock.advance(61)
        time.sleep(0.06)
        back = drv.poll()
        assert back.link is LinkState.UP and back.controller["online"] is True
        assert events(back) == ["controller_link_released"]
        assert back.controller["held_s"] is None and all(back.cards["online"])
    finally:
        drv.close()


def test_held_snapshot_validates_and_refused_connects_are_down(
    emu: NovastarEmulator, clock: ManualClock
) -> None:
    """A refused connect (link dropped) is never held, whatever came before."""
    drv = driver(emu, held_after=2)
    emu.inject(Fault(FaultKind.HELD, duration_s=5))
    polls = [drv.poll() for _ in range(2)]
    assert [p.link for p in polls] == [LinkState.DOWN, LinkState.HELD]
    doc = build_snapshot_doc(polls[-1])
    assert doc["controller"]["link"] == "held" and doc["controller"]["online"] is None
    clock.advance(5)
    emu.inject(Fault(FaultKind.LINK_DROP, duration_s=30))  # now nothing listens
    time.sleep(0.06)
    down = drv.poll()
    assert down.link is LinkState.DOWN and down.controller["online"] is False
    assert down.controller["held_s"] is None
    assert events(down) == ["controller_link_released", "controller_link_lost"]
    assert down.cards["online"] == [False] * CARDS
    drv.close()


def build_snapshot_doc(reading: Any) -> dict[str, Any]:
    from agent.settings import parse_settings

    settings = parse_settings({"agent": {"id": "pc1", "site": "held"},
                               "screens": [{"id": "wall", "controller": {"driver": "novastar"}}]})
    doc = build_snapshot(settings, "wall", 1, 5, finish(reading))
    return validated_payload_doc(doc)


def validated_payload_doc(doc: dict[str, Any]) -> dict[str, Any]:
    import orjson

    from ledwatch.contract import validate_telemetry

    return validate_telemetry(orjson.loads(orjson.dumps(doc)))


def test_held_after_is_validated_and_zero_never_holds(emu: NovastarEmulator) -> None:
    with pytest.raises(ConfigError, match=r"^controller\.held_after: "):
        create_driver({"url": "tcp://h", "cards_per_port": 1, "held_after": -1})
    drv = driver(emu, held_after=0)
    emu.inject(Fault(FaultKind.HELD, duration_s=60))
    links = set()
    for _ in range(6):
        links.add(drv.poll().link)
        time.sleep(0.06)
    assert links == {LinkState.DOWN}
    drv.close()
