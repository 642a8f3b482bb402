"""Topology: the expected cabinet layout (config), card counting per port, row/col columns.

Counting runs against the real emulator over TCP: a card that does not exist answers
ACK 01, exactly what the driver probes for one past the configured end of each chain.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.drivers.base import LinkState, ScreenReading
from agent.drivers.novastar.driver import (
    NovastarDriver,
    Order,
    Start,
    block_cell,
    create_driver,
    parse_options,
)
from drivers.novastar.payload import Finishing, validated_payload
from firmware_protocols.emulators.novastar import (
    PSU_LOW_S,
    PSU_SAG_S,
    Fault,
    FaultKind,
    ManualClock,
    NovastarEmulator,
)
from ledwatch.errors import ConfigError

DARK_AFTER_S = PSU_SAG_S + PSU_LOW_S + 0.1





def cells(reading: ScreenReading) -> dict[str, tuple[int | None, int | None]]:
    c = reading.cards
    return {i: (r, k) for i, r, k in zip(c["id"], c["row"], c["col"], strict=True)}


def online(reading: ScreenReading) -> dict[str, bool]:
    return dict(zip(reading.cards["id"], reading.cards["online"], strict=True))


def events(reading: ScreenReading) -> set[tuple[str, str]]:
    return {(e["event"], e["component"]) for e in reading.events}


# Two ports, each a 2 x 2 block side by side: port 0 on the left, port 1 on the right.
TWO_BLOCKS = [
    {"port": 0, "rows": 2, "cols": 2},
    {"port": 1, "rows": 2, "cols": 2, "col": 2},
]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def screen(clock: ManualClock) -> Iterator[Any]:
    """`screen(cards=3, ...)`: an emulator with that many cards on each of 2 ports and a
    driver configured with `driver_options` (opened, so it counts at its first poll)."""
    made: list[tuple[NovastarEmulator, NovastarDriver]] = []

    def make(cards: int, **driver_options: Any) -> tuple[NovastarEmulator, NovastarDriver]:
        emu = NovastarEmulator(ports=2, cards=cards, psus=1, clock=clock)
        host, port = emu.serve_tcp()
        opts = {"url": f"tcp://{host}:{port}", "ports": 2, "psus_per_cabinet": 1,
                "timeout_ms": 200, "retries": 1, **driver_options}  # fmt: skip
        drv = Finishing(create_driver(opts))  # edge events as the agent finds them
        drv.open()
        made.append((emu, drv))
        return emu, drv

    yield make
    for emu, drv in made:
        drv.close()
        emu.stop()


# -- the pure part: where each card of a port hangs -----------------------------------------
@pytest.mark.parametrize(
    "order,start,expected",
    [
        # 2 rows x 3 cols, card k -> (row, col)
        (Order.ROWS, Start.TOP_LEFT, [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]),
        (Order.SNAKE_ROWS, Start.TOP_LEFT, [(0, 0), (0, 1), (0, 2), (1, 2), (1, 1), (1, 0)]),
        (Order.SNAKE_ROWS, Start.BOTTOM_RIGHT, [(1, 2), (1, 1), (1, 0), (0, 0), (0, 1), (0, 2)]),
        (Order.COLS, Start.TOP_LEFT, [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]),
        (Order.SNAKE_COLS, Start.TOP_RIGHT, [(0, 2), (1, 2), (1, 1), (0, 1), (0, 0), (1, 0)]),
        (Order.SNAKE_COLS, Start.BOTTOM_LEFT, [(1, 0), (0, 0), (0, 1), (1, 1), (1, 2), (0, 2)]),
    ],
    ids=lambda v: str(v) if isinstance(v, str) else "",
)
def test_block_orders(order: Order, start: Start, expected: list[tuple[int, int]]) -> None:
    assert [block_cell(k, 2, 3, order, start) for k in range(6)] == expected
    assert block_cell(0, 2, 3, order, start, 4, 10) == (4 + expected[0][0], 10 + expected[0][1])


def test_layout_positions_from_blocks_and_cards() -> None:
    opts = parse_options(
        {
            "url": "tcp://h",
            "ports": 2,
            "cards_per_port": [4, 2],
            "layout": [
                {"port": 0, "rows": 2, "cols": 2, "order": "snake-rows"},
                {"card": "p1c0", "row": 2, "col": 1},
                {"card": "p1c1", "row": 2, "col": 0},
            ],
        }
    )
    assert opts.positions() == {
        "p0c0": (0, 0), "p0c1": (0, 1), "p0c2": (1, 1), "p0c3": (1, 0),
        "p1c0": (2, 1), "p1c1": (2, 0),
    }  # fmt: skip
    # A block larger than the chain is fine (an irregular screen); cards fill it in order.
    opts = parse_options({"url": "tcp://h", "cards_per_port": 3,
                          "layout": [{"port": 0, "rows": 2, "cols": 2}]})  # fmt: skip
    assert opts.positions() == {"p0c0": (0, 0), "p0c1": (0, 1), "p0c2": (1, 1)}


BASE = {"url": "tcp://h", "ports": 2, "cards_per_port": 4}


@pytest.mark.parametrize(
    "layout,key,words",
    [
        ([{"port": 0, "rows": 1, "cols": 3}], "controller.layout[0].rows", "cannot hold the 4"),
        ([{"port": 2, "rows": 2, "cols": 2}], "controller.layout[0].port", "0..1"),
        ([{"port": 0, "cols": 4}], "controller.layout[0].rows", "required with port"),
        ([{"card": "p0c1", "row": 0}], "controller.layout[0].col", "required with card"),
        ([{"card": "p0c1", "row": 0, "col": 0, "rows": 2}], "controller.layout[0].rows", "not"),
        ([{"row": 0, "col": 0}], "controller.layout[0]", "give port"),
        ([{"card": "p0c4", "row": 0, "col": 0}], "controller.layout[0].card", "no card p0c4"),
        ([{"card": "card3", "row": 0, "col": 0}], "controller.layout[0].card", "p<port>c<index>"),
        ([{"port": 0, "rows": 2, "cols": 2, "order": "zigzag"}], "controller.layout[0].order",
         "snake-rows"),
        ([{"port": 0, "rows": 2, "cols": 2, "row": -1}], "controller.layout[0].row", "0"),
        (
            [{"port": 0, "rows": 2, "cols": 2}, {"port": 1, "rows": 2, "cols": 2, "col": 1}],
            "controller.layout[1]",
            "both at row 0, col 1",
        ),
        (
            [{"port": 0, "rows": 2, "cols": 2}, {"card": "p0c2", "row": 5, "col": 5}],
            "controller.layout[1].card",
            "p0c2 is already placed by layout[0]",
        ),
        ([{"port": 0, "rows": 2, "cols": 2, "colour": "red"}], "controller.layout[0].colour",
         "xtra"),
    ],
)  # fmt: skip
def test_bad_layout_names_the_key(layout: list[dict[str, Any]], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_options({**BASE, "layout": layout})
    message = str(exc.value)
    assert message.startswith(f"{key}: "), message
    assert words in message, message


def test_probe_every_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"^controller\.probe_every: "):
        parse_options({**BASE, "probe_every": -1})


# -- against the emulator -------------------------------------------------------------------
def test_fewer_cards_than_expected(screen: Any) -> None:
    """Configured 2 ports x 4 cards, the screen has 2 x 3: a controller-level mismatch."""
    _, drv = screen(3, cards_per_port=4, layout=TWO_BLOCKS)
    r = drv.poll()
    doc = validated_payload(r)
    c = doc["controller"]
    assert c["online"] is True and r.link is LinkState.UP and r.errors == 0
    assert c["ports_found"] == [3, 3] and c["ports_expected"] == [4, 4]
    assert c["layout_ok"] is False
    # The configured fourth card of each port is reported, offline, at its place.
    assert online(r) == {"p0c0": True, "p0c1": True, "p0c2": True, "p0c3": False,
                         "p1c0": True, "p1c1": True, "p1c2": True, "p1c3": False}  # fmt: skip
    # Snake rows in 2 x 2 blocks; port 1's block starts at column 2.
    assert cells(r) == {
        "p0c0": (0, 0), "p0c1": (0, 1), "p0c2": (1, 1), "p0c3": (1, 0),
        "p1c0": (0, 2), "p1c1": (0, 3), "p1c2": (1, 3), "p1c3": (1, 2),
    }  # fmt: skip


def test_more_cards_than_expected(screen: Any) -> None:
    _, drv = screen(5, cards_per_port=[4, 3])
    r = drv.poll()
    validated_payload(r)
    assert r.controller["ports_found"] == [5, 5] and r.controller["layout_ok"] is False
    assert len(r.cards["id"]) == 7  # only configured cards are read and reported
    assert set(r.cards["row"]) == {None} and set(r.cards["col"]) == {None}  # no layout


def test_dark_card_mid_chain_is_a_card_fault_not_a_layout_one(
    screen: Any, clock: ManualClock
) -> None:
    emu, drv = screen(4, cards_per_port=4, layout=TWO_BLOCKS)
    first = drv.poll()
    assert first.controller["ports_found"] == [4, 4] and first.controller["layout_ok"] is True
    assert all(first.cards["online"])
    emu.inject(Fault(FaultKind.PSU_SAG_THEN_DIE, target="p0c1"))
    clock.advance(DARK_AFTER_S)
    r = drv.poll()
    validated_payload(r)
    state = online(r)
    assert state["p0c1"] is False and state["p0c0"] is True and state["p0c2"] is True
    assert sum(state.values()) == 7
    assert r.controller["ports_found"] == [4, 4] and r.controller["layout_ok"] is True
    assert events(r) == {("card_offline", "card/p0c1")}
    assert cells(r)["p0c1"] == (0, 1)  # an offline card keeps its place on the screen
    # The last card of a chain going dark shortens the chain: indistinguishable on the
    # wire from a cabinet taken out, so it is both a card fault and a layout change.
    emu.inject(Fault(FaultKind.PSU_SAG_THEN_DIE, target="p1c3"))
    clock.advance(DARK_AFTER_S)
    r = drv.poll()
    assert r.controller["ports_found"] == [4, 3] and r.controller["layout_ok"] is False
    assert events(r) == {("card_offline", "card/p1c3"), ("layout_mismatch", "controller")}
    detail = next(e for e in r.events if e["event"] == "layout_mismatch")
    assert detail["ports_found"] == [4, 3] and detail["ports_expected"] == [4, 4]


def test_extra_card_is_probed_every_n_polls(screen: Any, clock: ManualClock) -> None:
    """Past the configured end only a probe sees a card; it runs at open and every N polls."""
    # Card info (3.9) on every poll, so the request counts differ by the probes alone.
    emu, drv = screen(4, cards_per_port=3, probe_every=3, extended={"card_info_every": 1})
    requests = []
    found = []
    for _ in range(3):
        before = emu.requests
        r = drv.poll()
        requests.append(emu.requests - before)
        found.append(r.controller["ports_found"])
        if len(found) == 1:  # the extra cards go dark after the first count
            emu.inject(Fault(FaultKind.PSU_SAG_THEN_DIE, target="p0c3"))
            emu.inject(Fault(FaultKind.PSU_SAG_THEN_DIE, target="p1c3"))
            clock.advance(DARK_AFTER_S)
    # Poll 1 (after open) probes index 3 and 4 on both ports; poll 2 does not probe and
    # keeps the last count; poll 3 probes index 3 again, which now answers ACK 01.
    assert found == [[4, 4], [4, 4], [3, 3]]
    plain = requests[1]
    assert requests[0] == plain + 4 and requests[2] == plain + 2
    assert ("layout_restored", "controller") in events(r) and r.controller["layout_ok"] is True


def test_controller_offline_has_no_count(screen: Any) -> None:
    layout = [TWO_BLOCKS[0], {"port": 1, "rows": 1, "cols": 3, "row": 2}]
    emu, drv = screen(3, cards_per_port=3, layout=layout)
    assert drv.poll().controller["layout_ok"] is True
    emu.inject(Fault(FaultKind.LINK_DROP, duration_s=30))
    r = drv.poll()
    validated_payload(r)
    assert r.link is LinkState.DOWN and r.controller["ports_found"] is None
    assert r.controller["layout_ok"] is None and r.controller["ports_expected"] == [3, 3]
    assert cells(r)["p1c2"] == (2, 2) and not any(r.cards["online"])
    assert events(r) == {("controller_link_lost", "controller")}


def test_sample_layout_example_is_valid() -> None:
    """agent/drivers/novastar/sample.toml with its commented examples switched on."""
    sample = Path(__file__).resolve().parents[4] / "agent" / "drivers" / "novastar"
    text = (sample / "sample.toml").read_text("utf-8")
    text = re.sub(r"^# (\[\[screens\.|[a-z_]+ = )", r"\1", text, flags=re.MULTILINE)
    options = tomllib.loads(text)["screens"]["controller"]
    options.pop("driver")
    opts = parse_options(options)
    assert opts.probe_every == 12 and opts.positions()["p0c4"] == (1, 3)
