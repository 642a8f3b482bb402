"""Detection: each fault appears once and clears once; numpy path == plain path."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import pytest
from datapath_helpers import make_snapshot, random_walk

from collector.detect.engine import Detector
from collector.detect.findings import AGENT_SCREEN, Fault, Finding
from collector.settings import DetectSettings

Mutator = Callable[[dict[str, Any]], None]


def _set(section: str, key: str, index: int | None, value: Any) -> Mutator:
    def mutate(doc: dict[str, Any]) -> None:
        if index is None:
            doc[section][key] = value
        else:
            doc[section][key][index] = value

    return mutate


def _env_only(key: str, value: Any) -> Mutator:
    def mutate(doc: dict[str, Any]) -> None:
        doc["env"][key] = value

    return mutate


CASES: list[tuple[str, Mutator, str, Fault]] = [
    ("controller offline", _set("controller", "online", None, False), "controller",
     Fault.CONTROLLER_LOST),
    ("no video signal", _set("controller", "signal_ok", None, False), "controller",
     Fault.SIGNAL_LOST),
    ("controller hot", _set("controller", "temp_c", None, 90.0), "controller", Fault.TEMP_HIGH),
    ("card offline", _set("cards", "online", 1, False), "card/c1", Fault.CARD_OFFLINE),
    ("dead module", _set("cards", "module_faults", 2, 3), "card/c2", Fault.MODULE_FAULT),
    ("card hot", _set("cards", "temp_c", 0, 80.5), "card/c0", Fault.TEMP_HIGH),
    ("card fan", _set("cards", "fan_rpm", 3, 120.0), "card/c3", Fault.FAN_STOPPED),
    ("cabinet door", _set("cards", "door_open", 0, True), "card/c0", Fault.DOOR_OPEN),
    ("cabinet smoke", _set("cards", "smoke", 2, True), "card/c2", Fault.SMOKE),
    ("psu failed", _set("psus", "vout_v", 1, 0.4), "psu/p1", Fault.PSU_FAILED),
    ("psu sag", _set("psus", "vout_v", 2, 4.3), "psu/p2", Fault.VOLTAGE_LOW),
    ("psu hot", _set("psus", "temp_c", 0, 99.0), "psu/p0", Fault.TEMP_HIGH),
    ("psu fan", _set("psus", "fan_rpm", 0, 0.0), "psu/p0", Fault.FAN_STOPPED),
    # `env` aggregates the cabinets' sensors; it is judged only for a reading no card
    # reports itself (cabinets without monitoring cards), else one door = two tickets.
    ("room smoke", _env_only("smoke", True), "env", Fault.SMOKE),
    ("room door", _env_only("door_open", True), "env", Fault.DOOR_OPEN),
    ("room fan", _env_only("fan_rpm", 10.0), "env", Fault.FAN_STOPPED),
    ("room humid", _env_only("humidity_pct", 97.0), "env", Fault.HUMIDITY_HIGH),
    ("cabinet humid", _set("cards", "humidity_pct", 1, 96.0), "card/c1", Fault.HUMIDITY_HIGH),
]


def run(detector: Detector, docs: list[dict[str, Any]]) -> list[list[Finding]]:
    return [detector.process([doc]) for doc in docs]


@pytest.mark.parametrize("vectorised", [True, False], ids=["numpy", "plain"])
@pytest.mark.parametrize(("name", "mutate", "component", "fault"), CASES, ids=[c[0] for c in CASES])
def test_fault_appears_once_and_clears_once(
    vectorised: bool, name: str, mutate: Mutator, component: str, fault: Fault
) -> None:
    healthy = [make_snapshot(seq=i, ts=1_000_000 + i) for i in range(6)]
    if component == "env":  # a screen whose cabinets have no sensors of their own
        for doc in healthy:
            for column in ("fan_rpm", "door_open", "smoke", "humidity_pct"):
                doc["cards"].pop(column, None)
    faulty = copy.deepcopy(healthy)
    for doc in faulty[1:4]:
        mutate(doc)
    sequence = [healthy[0], *faulty[1:4], healthy[4], healthy[5]]
    got = run(Detector(DetectSettings(), vectorised=vectorised), sequence)
    assert got[0] == []  # a healthy first snapshot reports nothing
    assert [(f.component, f.fault, f.active) for f in got[1]] == [(component, fault, True)]
    assert got[2] == [] and got[3] == []  # still faulty: no repeat
    assert [(f.component, f.fault, f.active) for f in got[4]] == [(component, fault, False)]
    assert got[5] == []
    opened = got[1][0]
    assert (opened.site, opened.screen, opened.ts_ms) == ("s1", "scr1", 1_000_001)
    assert opened.key == f"s1/scr1/{component}/{fault.value}"


@pytest.mark.parametrize("vectorised", [True, False], ids=["numpy", "plain"])
def test_null_reading_changes_nothing(vectorised: bool) -> None:
    det = Detector(vectorised=vectorised)
    hot = make_snapshot()
    hot["cards"]["temp_c"][0] = 90.0
    unknown = make_snapshot()
    unknown["cards"]["temp_c"][0] = None
    assert [f.active for f in det.process([hot])] == [True]
    assert det.process([unknown]) == []  # not cleared by a missing reading
    assert [f.active for f in det.process([make_snapshot()])] == [False]


def test_late_snapshot_does_not_take_a_screen_back_in_time() -> None:
    """A backlog snapshot that arrives after a newer one (re-delivery, an agent's retry)
    is stored but not judged: the fault it still shows was already cleared."""
    det = Detector()
    hot = make_snapshot(seq=1, ts=1_000)
    hot["cards"]["temp_c"][0] = 90.0
    assert [f.active for f in det.process([hot])] == [True]
    assert [f.active for f in det.process([make_snapshot(seq=3, ts=3_000)])] == [False]
    late = copy.deepcopy(hot)
    late.update(seq=2, ts=2_000)
    assert det.process([late]) == [] and det.stale == 1
    assert det.process([make_snapshot(seq=4, ts=3_000)]) == []  # same ts is judged
    assert det.stale == 1


@pytest.mark.parametrize("vectorised", [True, False], ids=["numpy", "plain"])
def test_lost_controller_hides_cards(vectorised: bool) -> None:
    det = Detector(vectorised=vectorised)
    lost = make_snapshot()
    lost["controller"] = {"online": False, "signal_ok": None}
    lost["cards"]["online"] = [False] * 4
    found = det.process([make_snapshot(), lost])
    assert [(f.component, f.fault) for f in found] == [("controller", Fault.CONTROLLER_LOST)]


@pytest.mark.parametrize("vectorised", [True, False], ids=["numpy", "plain"])
def test_psu_failure_then_dark_cabinet(vectorised: bool) -> None:
    """Sag -> failure -> the cabinet's card drops off: card_offline, PSU finding stays."""
    det = Detector(vectorised=vectorised)
    sag, fail, dark = make_snapshot(), make_snapshot(), make_snapshot()
    sag["psus"]["vout_v"][2] = 4.2
    fail["psus"]["vout_v"][2] = 2.0
    dark["cards"]["online"][2] = False
    for key in ("temp_c", "voltage_v", "module_faults", "fan_rpm", "door_open", "smoke"):
        dark["cards"][key][2] = None
    dark["psus"]["vout_v"][2] = 5.0  # a stale or bogus reading behind a dark card
    dark["psus"]["ok"][2] = True
    steps = [det.process([d]) for d in (make_snapshot(), sag, fail, dark)]
    assert [(f.component, f.fault, f.active) for f in steps[1]] == [
        ("psu/p2", Fault.VOLTAGE_LOW, True)
    ]
    assert [(f.component, f.fault, f.active) for f in steps[2]] == [
        ("psu/p2", Fault.PSU_FAILED, True), ("psu/p2", Fault.VOLTAGE_LOW, False)
    ]
    assert [(f.component, f.fault, f.active) for f in steps[3]] == [
        ("card/c2", Fault.CARD_OFFLINE, True)
    ]
    assert "psu/p2 psu_failed" in steps[3][0].detail


def test_agent_will_and_silence() -> None:
    det = Detector(DetectSettings(agent_silence_s=60))
    t0 = 1_000_000
    assert det.process([make_snapshot(agent="a1")], now_ms=t0) == []
    assert det.check_agents(t0 + 59_000) == []
    silent = det.check_agents(t0 + 61_000)
    assert [(f.screen, f.component, f.fault, f.active) for f in silent] == [
        (AGENT_SCREEN, "agent/a1", Fault.AGENT_OFFLINE, True)
    ]
    assert det.check_agents(t0 + 120_000) == []  # reported once
    back = det.process([make_snapshot(agent="a1")], now_ms=t0 + 121_000)
    assert [(f.component, f.active) for f in back] == [("agent/a1", False)]
    will = det.process_status("s1", "a1", {"state": "offline"}, t0 + 130_000)
    assert [(f.fault, f.active) for f in will] == [(Fault.AGENT_OFFLINE, True)]
    assert det.process_status("s1", "a1", {"state": "offline"}, t0 + 131_000) == []
    birth = det.process_status("s1", "a1", {"state": "online"}, t0 + 140_000)
    assert [(f.fault, f.active) for f in birth] == [(Fault.AGENT_OFFLINE, False)]


@pytest.mark.parametrize("seed", range(5))
def test_numpy_equals_plain(seed: int) -> None:
    docs = random_walk(n_docs=40, n_cards=30, seed=seed)
    fast, plain = Detector(vectorised=True), Detector(vectorised=False)
    a = [fast.process([d]) for d in docs]
    b = [plain.process([d]) for d in docs]
    assert a == b
    assert sum(len(x) for x in a) > 100  # the walk really crosses thresholds


def test_numpy_is_faster_on_big_screens() -> None:
    """Measured, not assumed: steady state of a 2,000-card screen where one card toggles."""
    ok = make_snapshot(n_cards=2000)
    bad = copy.deepcopy(ok)
    bad["cards"]["temp_c"][7] = 90.0
    docs = [ok, bad] * 5
    timings = {}
    for vectorised in (True, False):
        det = Detector(vectorised=vectorised)
        start = time.perf_counter()
        for doc in docs:
            det.process([doc])
        timings[vectorised] = (time.perf_counter() - start) / len(docs)
    print(f"2000 cards/snapshot: numpy {timings[True]*1e3:.2f} ms, "
          f"plain {timings[False]*1e3:.2f} ms, ratio {timings[False]/timings[True]:.1f}x")
    assert timings[True] < timings[False]


def test_humidity_high_per_cabinet_and_env_not_double_counted() -> None:
    """A cabinet's own sensors win over the screen aggregate: one ticket per condition."""
    from collector.detect.engine import Detector
    from collector.detect.findings import Fault
    from ledwatch.bench import synthetic_snapshot

    for vectorised in (True, False):
        det = Detector(vectorised=vectorised)
        doc = synthetic_snapshot(4, seq=1)
        doc["cards"]["humidity_pct"][2] = 95.0
        doc["cards"]["door_open"][1] = True
        doc["env"].update(humidity_pct=95.0, door_open=True)
        found = {(f.component, f.fault) for f in det.process([doc]) if f.active}
        assert ("card/p0c2", Fault.HUMIDITY_HIGH) in found
        assert ("card/p0c1", Fault.DOOR_OPEN) in found
        assert not {c for c, _ in found if c == "env"}, found

        # A screen whose cabinets have no such sensors: the env aggregate is judged.
        det = Detector(vectorised=vectorised)
        doc = synthetic_snapshot(4, seq=1)
        for col in ("humidity_pct", "door_open"):
            doc["cards"][col] = [None] * 4
        doc["env"].update(humidity_pct=95.0, door_open=True)
        found = {(f.component, f.fault) for f in det.process([doc]) if f.active}
        assert {("env", Fault.HUMIDITY_HIGH), ("env", Fault.DOOR_OPEN)} <= found


@pytest.mark.parametrize("vectorised", [True, False], ids=["numpy", "plain"])
def test_layout_mismatch_is_a_controller_finding(vectorised: bool) -> None:
    """A port answering with fewer cards than configured (cabinet removed, chain cut)."""
    det = Detector(DetectSettings(), vectorised=vectorised)
    docs = [make_snapshot(seq=i, ts=1_000_000 + i) for i in range(3)]
    docs[0]["controller"].update(layout_ok=True, ports_found=[4, 4])
    docs[1]["controller"].update(layout_ok=False, ports_found=[4, 3])
    docs[2]["controller"].update(layout_ok=True, ports_found=[4, 4])
    got = run(det, docs)
    assert got[0] == []
    [opened] = got[1]
    assert (opened.component, opened.fault, opened.active) == (
        "controller", Fault.LAYOUT_MISMATCH, True)
    assert "[4, 3]" in opened.detail and opened.value is None
    assert [(f.fault, f.active) for f in got[2]] == [(Fault.LAYOUT_MISMATCH, False)]


@pytest.mark.parametrize("vectorised", [True, False], ids=["numpy", "plain"])
def test_a_port_on_its_backup_line_is_a_finding(vectorised: bool) -> None:
    det = Detector(DetectSettings(), vectorised=vectorised)
    docs = [make_snapshot(seq=i, ts=1_000_000 + i) for i in range(4)]
    docs[0]["controller"]["redundancy"] = ["primary", "primary"]
    docs[1]["controller"]["redundancy"] = ["primary", "backup"]
    docs[2]["controller"]["redundancy"] = [None, None]  # unread: no change
    docs[3]["controller"]["redundancy"] = ["primary", "primary"]
    got = run(det, docs)
    assert got[0] == [] and got[2] == []
    [opened] = got[1]
    assert (opened.component, opened.fault, opened.active) == (
        "controller", Fault.REDUNDANCY_BACKUP, True)
    assert "[1]" in opened.detail and opened.priority.value == "P3"
    assert [(f.fault, f.active) for f in got[3]] == [(Fault.REDUNDANCY_BACKUP, False)]
