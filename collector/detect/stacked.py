"""Alike screens with one poll each, judged as one matrix.

Live, a batch holds at most one poll of each screen, and a fleet's screens are mostly
alike (the same rules, the same counts of cabinets and PSUs: one plan shape). Judging
them one by one costs a few dozen numpy calls per screen whatever its size; side by
side (the columns of S screens in one row, each with its own poll time) the same calls
serve all S. The per-screen parts (findings, flapping, correlation, prediction) stay in
engine.py; this module only computes, for every screen of the group, what
`Detector._judge_prepared` would: states, smoothed values, dark cabinets, new carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from collector.detect.config import ScreenRules
from collector.detect.debounce import Carry, debounce
from collector.detect.frames import ScreenBatch, SectionFrame
from collector.detect.plan import Plan

FloatArray = npt.NDArray[np.float64]
Judged = tuple[npt.NDArray[np.int8], npt.NDArray[np.int8], FloatArray,
               npt.NDArray[np.bool_], Carry]


@dataclass(slots=True)
class Prepared:
    """A screen batch ready to judge: its state (engine._Screen), rules and plan."""

    st: Any
    batch: ScreenBatch
    sr: ScreenRules
    plan: Plan


def judge_stacked(group: list[Prepared]) -> list[Judged]:
    """(states, states before, smoothed, dark, new carry) per screen, as one pass.

    Every member has one poll and plans of one shape (so the same columns in the same
    order); their element ids may differ, which only the per-screen reports read.
    """
    first = group[0].batch
    plan = group[0].plan
    s, m = len(group), plan.m
    sections = {
        sec: SectionFrame(frame.ids, frame.readings,
                          np.concatenate([p.batch.sections[sec].values for p in group]))
        for sec, frame in first.sections.items()
    }
    ts = np.concatenate([p.batch.ts for p in group])
    # The screens as the "polls" of one batch: hiding is judged row by row, and each row
    # is one screen's poll.
    rows = ScreenBatch(site=first.site, screen=first.screen, ts=ts, seen_ms=ts,
                       agents=(), sections=sections, psu_card=first.psu_card,
                       card_port=first.card_port, card_index=first.card_index)
    raw = plan.values(rows)
    off = np.concatenate([p.sr.schedule.off_mask(p.batch.ts) for p in group])
    hide, _lost, dark = plan.hidden(rows, raw, off)
    values = np.where(hide, np.nan, raw).reshape(1, s * m)
    carry = Carry.concat([p.st.carry for p in group])
    before = carry.state.reshape(s, m)
    states, smoothed, new = debounce(plan.shape.tiled_params(s), carry, values,
                                     np.repeat(ts, m).reshape(1, s * m))
    states, smoothed = states.reshape(s, m), smoothed.reshape(s, m)
    carries = new.split(s)
    return [(states[i:i + 1], before[i], smoothed[i:i + 1], dark[i:i + 1], carries[i])
            for i in range(s)]
