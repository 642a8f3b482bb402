"""One finding per root cause: a dark screen, a broken chain, the PSU that took its
cabinet dark, a hot screen. Effects carry the key of their root."""

from __future__ import annotations

from detect_helpers import Doc, Mutator, each, polls

from collector.detect.engine import Detector
from collector.detect.findings import Finding


def dark(*cards: int) -> Mutator:
    def mutate(d: Doc) -> None:
        for i in cards:
            for key, col in d["cards"].items():
                if key not in ("id", "port", "index"):
                    col[i] = None
            d["cards"]["online"][i] = False
            for j, card in enumerate(d["psus"]["card"]):
                if card == d["cards"]["id"][i]:
                    d["psus"]["vout_v"][j] = None
    return mutate


def run(seq: list[Mutator | None], n_cards: int = 16) -> list[Finding]:
    return [f for r in each(Detector(), polls(seq, n_cards=n_cards)) for f in r]


def roots(found: list[Finding]) -> list[tuple[str, str, bool]]:
    return [(f.component, f.fault.value, f.active) for f in found if f.root is None]


def test_every_cabinet_dark_at_once_is_one_screen_finding() -> None:
    found = run([None] * 4 + [dark(*range(16))] * 6 + [None] * 5)
    assert roots(found) == [("screen", "screen_dark", True), ("screen", "screen_dark", False)]
    effects = [f for f in found if f.root is not None]
    assert {f.component for f in effects} == {f"card/c{i}" for i in range(16)}
    assert {f.root for f in effects} == {"s1/scr1/screen/screen_dark"}
    assert found[0].detail == "16 of 16 cabinets dark at once"


def test_cabinets_going_dark_a_poll_apart_still_make_one_screen_finding() -> None:
    half, rest = dark(*range(8)), dark(*range(16))
    found = run([None] * 4 + [half] + [rest] * 6 + [None] * 5)
    assert [r for r in roots(found) if r[2]] == [("screen", "screen_dark", True)]


def test_a_chain_cut_after_a_position_is_one_link_finding() -> None:
    """make_snapshot puts 8 cards on each port: c0..c7 on port 0. Cut before c5."""
    found = run([None] * 4 + [dark(5, 6, 7)] * 6 + [None] * 5)
    assert roots(found) == [("link/c5", "link_break", True), ("link/c5", "link_break", False)]
    assert sorted(f.component for f in found if f.root and f.active) == [
        "card/c5", "card/c6", "card/c7"]
    assert "3 cabinets from c5 on" in found[0].detail


def test_one_dark_cabinet_in_the_middle_is_its_own_root() -> None:
    found = run([None] * 4 + [dark(3)] * 6 + [None] * 5)
    assert roots(found) == [("card/c3", "card_offline", True), ("card/c3", "card_offline", False)]


def test_a_sagging_psu_that_takes_its_cabinet_dark_is_the_root() -> None:
    def sag(d: Doc) -> None:
        d["psus"]["vout_v"][2] = 4.3

    found = run([None] * 4 + [sag] * 6 + [dark(2)] * 6 + [None] * 8)
    assert roots(found) == [
        ("psu/p2", "voltage_low", True),
        ("psu/p2", "psu_failed", True),
        ("psu/p2", "psu_failed", False),
        ("psu/p2", "voltage_low", False),
    ]
    [effect] = [f for f in found if f.root is not None and f.active]
    assert (effect.component, effect.root) == ("card/c2", "s1/scr1/psu/p2/psu_failed")
    failed = next(f for f in found if f.fault.value == "psu_failed")
    assert "card/c2 went dark after its PSU sagged (last vout 4.30 V)" in failed.detail


def test_the_whole_screen_hot_is_one_screen_finding() -> None:
    """Sun on an outdoor screen: every cabinet crosses 75 °C, a few polls apart."""
    def heat(step: int) -> Mutator:
        def mutate(d: Doc) -> None:
            d["cards"]["temp_c"] = [66.0 + step + (i % 4) for i in range(16)]
        return mutate

    seq: list[Mutator | None] = [None] * 4 + [heat(s) for s in range(14)] + [None] * 8
    found = run(seq)
    assert roots(found) == [("screen", "temp_high", True), ("screen", "temp_high", False)]
    assert len({f.component for f in found if f.root}) == 16


def test_one_hot_cabinet_in_a_cool_screen_is_its_own_root() -> None:
    def hot(d: Doc) -> None:
        d["cards"]["temp_c"][4] = 85.0

    found = run([None] * 4 + [hot] * 8 + [None] * 8)
    assert roots(found) == [("card/c4", "temp_high", True), ("card/c4", "temp_high", False)]
