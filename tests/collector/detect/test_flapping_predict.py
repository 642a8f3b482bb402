"""Flapping keeps one finding open; peers and trends see a failing part coming; and the
rolling state survives a restart (dump_state / load_state)."""

from __future__ import annotations

import copy

import numpy as np
from detect_helpers import POLL_MS, T0, Doc, Mutator, each, polls

from collector.detect.engine import Detector
from collector.detect.findings import Fault, Finding

HOUR = 3_600_000


def _offline(d: Doc) -> None:
    d["cards"]["online"][1] = False


def test_a_loose_cable_keeps_one_finding_marked_flapping() -> None:
    """Gone 4 polls, back 4 polls, for two hours: open, clear, re-open as flapping, then
    nothing until it has stayed back for flap_clear_s (30 min)."""
    cycle: list[Mutator | None] = [_offline] * 4 + [None] * 4
    seq = [None] * 3 + cycle * 15 + [None] * 40
    found = [f for r in each(Detector(), polls(seq)) for f in r if f.component == "card/c1"]
    assert [(f.active, f.flapping) for f in found] == [
        (True, False), (False, False), (True, True), (False, False)]
    quiet_from = 3 + len(cycle) * 15 - 4  # the last cycle ends with 4 good polls
    assert found[-1].ts_ms >= T0 + (quiet_from + 30) * POLL_MS


def _fleet(hours: float, n_psus: int = 24, seed: int = 3, poll_ms: int = 120_000,
           sag: tuple[int, float, float] | None = None,
           hot: tuple[int, float, float] | None = None) -> list[Doc]:
    """A screen of n_psus cabinets (one PSU each): unit offsets, noise, a shared daily
    swing; optionally PSU `i` declining by `depth` V from hour `start` on, or cabinet
    `i` running `delta` °C above its peers from hour `start` on."""
    rng = np.random.default_rng(seed)
    n = int(hours * HOUR / poll_ms)
    nominal = rng.uniform(4.92, 5.08, n_psus)
    docs = polls([None] * n, poll_ms=poll_ms, n_cards=n_psus)
    for k, d in enumerate(docs):
        h = k * poll_ms / HOUR
        v = nominal + 0.04 * np.sin(2 * np.pi * h / 24) + rng.normal(0, 0.02, n_psus)
        t = 38 + 6 * np.sin(2 * np.pi * (h - 9) / 24) + rng.normal(0, 0.4, n_psus)
        if sag is not None and h >= sag[1]:
            i, start, depth = sag
            v[i] -= depth * min(1.0, (h - start) / 72)
        if hot is not None and h >= hot[1]:
            t[hot[0]] += hot[2]
        d["psus"]["vout_v"] = [round(float(x), 3) for x in v]
        d["cards"]["temp_c"] = [round(float(x), 1) for x in t]
    return docs


def _run(docs: list[Doc], det: Detector | None = None, step: int = 30) -> list[Finding]:
    det = det or Detector()
    out: list[Finding] = []
    for i in range(0, len(docs), step):
        out += det.process(docs[i:i + step])
    return out


def test_a_shallow_sag_above_the_threshold_is_flagged_days_before() -> None:
    """PSU p5 loses 0.25 V over 72 h and never comes near 4.6 V: no fixed threshold sees
    it, its peers do."""
    docs = _fleet(5 * 24, sag=(5, 36.0, 0.25))
    found = [f for f in _run(docs) if f.component == "psu/p5"]
    assert [(f.fault, f.active) for f in found] == [(Fault.PSU_DEGRADING, True)]
    flagged_h = (found[0].ts_ms - T0) / HOUR
    assert 36 < flagged_h < 36 + 48, flagged_h  # well before the 72 h sag is over
    evidence = found[0].evidence
    assert evidence is not None and evidence["drop_v"] > 0 and evidence["slope_v_per_h"] < 0
    assert min(v for d in docs for v in d["psus"]["vout_v"] if v is not None) > 4.6


def test_a_healthy_week_with_offsets_noise_and_a_daily_swing_flags_nothing() -> None:
    assert _run(_fleet(7 * 24, seed=11)) == []


def test_a_steep_decline_gets_a_predicted_failure_time() -> None:
    det = Detector()
    docs = _fleet(4 * 24, sag=(2, 24.0, 0.6))
    found = [f for f in _run(docs, det) if f.component == "psu/p2"]
    opened = found[0]
    assert opened.fault is Fault.PSU_DEGRADING and opened.active
    forecasts = [f for f in det.forecasts if f.psu == "p2"]
    assert forecasts, "a forecast is written for the dashboards"
    assert all(f.predicted_failure_ms >= f.ts_ms for f in forecasts)
    assert opened.predicted_failure_ms is not None


def test_a_cabinet_persistently_hotter_than_its_peers_is_running_hot() -> None:
    docs = _fleet(24, hot=(7, 6.0, 10.0))
    found = [f for f in _run(docs) if f.fault is Fault.RUNNING_HOT]
    assert [(f.component, f.active) for f in found] == [("card/c7", True)]
    assert 6 < (found[0].ts_ms - T0) / HOUR < 10


def test_the_whole_screen_warming_in_the_sun_is_not_running_hot() -> None:
    docs = _fleet(48)
    for d in docs:  # + 20 °C for everyone in the afternoons
        h = (d["ts"] - T0) / HOUR % 24
        if 12 <= h <= 17:
            d["cards"]["temp_c"] = [t + 20 for t in d["cards"]["temp_c"]]
    assert [f for f in _run(docs) if f.fault is Fault.RUNNING_HOT] == []


def test_rolling_state_survives_a_restart() -> None:
    """Stop after 50 h, restore into a new Detector, go on: the same findings as one run."""
    docs = _fleet(5 * 24, sag=(5, 36.0, 0.25))
    flaky: Mutator = _offline
    for d in docs[1490:1500]:
        flaky(d)
    whole = _run(copy.deepcopy(docs))
    first = Detector()
    cut = 1500
    before = _run(docs[:cut], first)
    second = Detector()
    assert second.load_state(first.dump_state())
    after = _run(docs[cut:], second)
    assert before + after == whole
    assert any(f.fault is Fault.PSU_DEGRADING for f in after)


def test_a_state_from_another_version_is_refused_cleanly() -> None:
    det = Detector()
    assert det.load_state(b"not a pickle") is False
    assert det.process(polls([None] * 3)) == []
