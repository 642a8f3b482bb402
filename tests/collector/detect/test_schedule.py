"""Operating schedules: a screen switched off on schedule is a non-event; outside its
schedule a dark screen is a fault as before. Local time, daylight saving, grace."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from detect_helpers import Doc, each, flat, polls

from collector.detect.config import DetectSettings
from collector.detect.engine import Detector
from collector.detect.schedule import Schedule, parse_span

MIN = 60_000


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_spans_and_errors() -> None:
    assert parse_span("01:00-06:30")[1].minute == 30
    for bad in ("25:00-06:00", "01:00", "06:00-06:00", "x-y"):
        with pytest.raises(ValueError):
            parse_span(bad)


def test_off_periods_follow_local_time_and_daylight_saving() -> None:
    """Berlin, off 01:00-06:00 local: 00:00-05:00 UTC in winter, 23:00-04:00 in summer."""
    s = Schedule("Europe/Berlin", ((("mon", "tue", "wed", "thu", "fri", "sat", "sun"),
                                    "01:00-06:00"),), grace_ms=0)
    winter = s.intervals(utc("2026-01-14T12:00"), utc("2026-01-15T12:00"))
    assert (utc("2026-01-15T00:00"), utc("2026-01-15T05:00")) in winter
    summer = s.intervals(utc("2026-07-14T12:00"), utc("2026-07-15T12:00"))
    assert (utc("2026-07-14T23:00"), utc("2026-07-15T04:00")) in summer
    # the night the clocks go forward (2026-03-29 02:00 -> 03:00) is an hour shorter
    spring = s.intervals(utc("2026-03-28T12:00"), utc("2026-03-29T12:00"))
    assert (utc("2026-03-29T00:00"), utc("2026-03-29T04:00")) in spring


def test_wrapping_periods_weekdays_and_grace() -> None:
    s = Schedule("UTC", ((("fri",), "23:30-07:00"),), grace_ms=15 * MIN)
    ts = np.array([utc("2026-01-16T23:00"), utc("2026-01-16T23:20"), utc("2026-01-17T03:00"),
                   utc("2026-01-17T07:14"), utc("2026-01-17T07:16"), utc("2026-01-15T23:40")])
    # Friday 23:30 (23:15 with grace) to Saturday 07:00 (07:15); Thursday is a working night
    assert s.off_mask(ts).tolist() == [False, True, True, True, False, False]
    assert s.on_again(utc("2026-01-17T03:00")) == utc("2026-01-17T07:15")
    assert s.on_again(utc("2026-01-17T09:00")) == utc("2026-01-17T09:00")


SETTINGS = DetectSettings.model_validate({
    "sites": {"s1": {"timezone": "UTC", "screens": {"scr1": {
        "schedule": [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                      "off": "01:00-06:00"}]}}}},
})


def _off(d: Doc) -> None:
    """The screen's cabinets powered down: every card dark, no picture."""
    d["controller"]["signal_ok"] = False
    for key, col in d["cards"].items():
        if key not in ("id", "port", "index"):
            d["cards"][key] = [None] * len(col)
    d["cards"]["online"] = [False] * len(d["cards"]["id"])
    d["psus"]["vout_v"] = [None] * len(d["psus"]["id"])


def test_switched_off_on_schedule_opens_nothing() -> None:
    """Dark from 01:05 to 05:55 every night for a week: not one finding."""
    det = Detector(SETTINGS)
    day = [None] * 33 + [_off] * 145 + [None] * 542  # 2-min polls: off 01:06 .. 05:54
    docs = polls(day * 7, start_ms=utc("2026-01-05T00:00"), poll_ms=2 * MIN, n_cards=8)
    found = []
    for i in range(0, len(docs), 50):  # as the live collector would, a few at a time
        found += det.process(docs[i:i + 50])
        found += det.check_agents(docs[min(i + 50, len(docs) - 1)]["ts"])
    assert found == []


def test_dark_outside_its_schedule_is_one_ticket() -> None:
    det = Detector(SETTINGS)
    seq = [None] * 5 + [_off] * 30 + [None] * 10  # 10:05 .. 10:34 dark
    got = flat(each(det, polls(seq, start_ms=utc("2026-01-05T10:00"), n_cards=8)))
    roots = [(c, f, a) for _, c, f, a in got if c in ("screen", "controller")]
    assert roots == [("controller", "signal_lost", True), ("screen", "screen_dark", True),
                     ("controller", "signal_lost", False), ("screen", "screen_dark", False)]


def test_a_screen_still_dark_after_its_schedule_opens_once_the_grace_is_over() -> None:
    det = Detector(SETTINGS)
    seq = [None] * 5 + [_off] * 120  # dark from 05:00 and still at 07:00
    got = flat(each(det, polls(seq, start_ms=utc("2026-01-05T04:55"), n_cards=8)))
    opened = [(i, f) for i, c, f, a in got if a and c == "screen"]
    # 06:00 + 15 min grace = poll 80; card_offline holds 2 polls
    assert opened == [(81, "screen_dark")]


def test_the_agent_of_a_switched_off_screen_is_not_offline() -> None:
    """The display PC is switched off with its screen: no agent_offline at night."""
    det = Detector(SETTINGS)
    evening = polls([None] * 3, start_ms=utc("2026-01-05T00:50"), n_cards=8)
    morning = polls([None] * 3, start_ms=utc("2026-01-05T06:05"), n_cards=8, seq0=10)
    assert flat(each(det, evening)) == []
    assert det.check_agents(utc("2026-01-05T03:00")) == []
    assert flat(each(det, morning)) == []
    # but silent in the afternoon, it is offline
    assert det.check_agents(utc("2026-01-05T06:20")) != []
