"""Seeing failure coming: peer comparison and trend over bucketed history (pure).

Readings are averaged into buckets (`bucket_s`, 10 min), kept for a little over a day
per element, and judged when a bucket closes (every `judge_every`-th bucket, hourly by
default: the conditions are about hours, not minutes):

* PSU output voltage, relative to the screen's median of the same bucket (the common
  part, brightness and load, cancels out; with fewer than `min_peers` PSUs the raw
  value is used):
  - peer drop: the recent level (median of `recent_h`) against the PSU's own usual
    relative level (an exponential average over `psu_baseline_h`, frozen while the PSU
    is flagged, restarted when it comes back after being dark alone: a replaced unit).
    Static offsets between healthy units do not matter, a unit that is sinking does. It
    must exceed `psu_min_drop_v` and `psu_drop_z` robust standard deviations (1.4826 x
    MAD) of the drops of all the screen's PSUs, and the newest bucket must agree (a sag
    that is already over is voltage_low's business, not a forecast);
  - trend: a Theil-Sen slope over `psu_trend_window_h`, from the pairs of buckets half
    the window apart (a 24 h window makes a daily cycle cancel out). A slope below
    `-psu_min_slope_v_per_h` extrapolates to the time the level crosses `psu_fail_v`;
    within `psu_horizon_h` that is a warning. The time is carried as
    `predicted_failure_ms` either way.
  Either condition opens `psu_degrading`.
* Cabinet temperature relative to the screen's median: a cabinet `hot_min_delta_c`
  above its peers, and `hot_z` robust deviations, over `recent_h` opens `running_hot`.
  A whole screen in the sun is not a deviation.

A condition must hold for `hold_h` to open and be gone for `clear_h` to clear.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from collector.detect.config import PredictSettings

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
MS_PER_H = 3_600_000


def colmedian(a: FloatArray) -> FloatArray:
    """Median of each column ignoring NaN (NaN where a column has no value); a lower
    median for even counts. Much cheaper than np.nanmedian on small arrays."""
    k, n = a.shape
    if k == 0:
        return np.full(n, np.nan)
    s = np.sort(a, axis=0)  # NaN sort last
    count = k - np.isnan(s).sum(axis=0)
    out = s[np.maximum((count - 1) // 2, 0), np.arange(n)]
    return np.where(count > 0, out, np.nan)


def _median(x: FloatArray) -> float:
    s = np.sort(x[~np.isnan(x)])
    return float(s[(len(s) - 1) // 2]) if len(s) else float("nan")


@dataclass(frozen=True, slots=True)
class Judgement:
    """One element's predictive state change (or, with `active` None, just a forecast)."""

    index: int
    active: bool | None
    ts_ms: int
    value: float | None
    detail: str
    evidence: dict[str, Any]
    predicted_failure_ms: int | None = None


@dataclass(slots=True)
class Series:
    """Bucketed history of one reading of one screen's elements."""

    n: int
    slots: int
    bucket: int = -1  # index (ts // bucket_ms) of the bucket being filled
    acc: FloatArray = field(default_factory=lambda: np.zeros(0))
    cnt: FloatArray = field(default_factory=lambda: np.zeros(0))
    rel: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))  # (slots, n)
    level: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))
    last: int = -1  # bucket index of the newest row of the rings
    closed: int = 0
    streak_on: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    streak_off: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    flagged: BoolArray = field(default_factory=lambda: np.zeros(0, bool))
    # Each element's own long-run relative level (an exponential average, frozen while
    # flagged) and how many buckets it has been dark while its peers were not.
    base: FloatArray = field(default_factory=lambda: np.zeros(0))
    base_n: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    alone_dark: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))

    @classmethod
    def fresh(cls, n: int, slots: int) -> Series:
        return cls(
            n=n,
            slots=slots,
            acc=np.zeros(n),
            cnt=np.zeros(n),
            rel=np.full((slots, n), np.nan),
            level=np.full((slots, n), np.nan),
            streak_on=np.zeros(n, np.int64),
            streak_off=np.zeros(n, np.int64),
            flagged=np.zeros(n, bool),
            base=np.full(n, np.nan),
            base_n=np.zeros(n, np.int64),
            alone_dark=np.zeros(n, np.int64),
        )

    def take(self, index: npt.NDArray[np.int64]) -> Series:
        """These columns (-1: a new element) for a new layout; history is kept."""
        new = Series.fresh(len(index), self.slots)
        found = index >= 0
        src = index[found]
        new.bucket, new.last, new.closed = self.bucket, self.last, self.closed
        for name in ("acc", "cnt", "streak_on", "streak_off", "flagged", "base", "base_n",
                     "alone_dark"):
            getattr(new, name)[found] = getattr(self, name)[src]
        new.rel[:, found] = self.rel[:, src]
        new.level[:, found] = self.level[:, src]
        return new

    def rows(self, ring: FloatArray, k: int, skip: int = 0) -> FloatArray:
        """The `k` buckets before the newest `skip` ones, oldest first (NaN: no data)."""
        head = (self.closed - 1) % self.slots
        return ring[(head - skip - k + 1 + np.arange(k)) % self.slots]

    def _push(self, rel: FloatArray, level: FloatArray) -> None:
        row = self.closed % self.slots
        self.rel[row], self.level[row] = rel, level
        self.closed += 1

    def _close(
        self, bucket: int, mean: FloatArray, common: float, alpha: float, reset: int
    ) -> None:
        if self.last >= 0:  # buckets without any data in between: NaN rows
            blank = np.full(self.n, np.nan)
            for _ in range(min(bucket - self.last - 1, self.slots)):
                self._push(blank, blank)
        rel = mean - common
        self._push(rel, mean)
        self.last = bucket
        known = ~np.isnan(rel)
        # A part that was dark alone for a while was most likely replaced: its new
        # level is its baseline (a scheduled night darkens all peers and resets nothing).
        if known.sum() * 2 >= self.n:
            self.alone_dark = np.where(known, self.alone_dark, self.alone_dark + 1)
        fresh = known & (np.isnan(self.base) | (self.alone_dark >= reset))
        self.base = np.where(fresh, rel, self.base)
        self.base_n = np.where(fresh, 0, self.base_n)
        follow = known & ~fresh & ~self.flagged
        self.base = np.where(follow, self.base + alpha * (rel - self.base), self.base)
        self.base_n = np.where(known, self.base_n + 1, self.base_n)
        self.alone_dark = np.where(known, 0, self.alone_dark)

    def add(
        self,
        ts: npt.NDArray[np.int64],
        values: FloatArray,
        p: PredictSettings,
        judge: Callable[[Series, int], list[Judgement]],
    ) -> list[tuple[int, Judgement]]:
        """Accumulate (T, n) values; each time a bucket closes that is due, `judge` the
        history as it stands then. Returns (poll index, judgement) pairs."""
        out: list[tuple[int, Judgement]] = []
        if len(ts) == 0 or self.n == 0:  # a family that reports no PSUs or cabinets
            return out
        bucket_ms = int(p.bucket_s * 1000)
        if int(ts[0]) // bucket_ms == self.bucket == int(ts[-1]) // bucket_ms:
            ok = ~np.isnan(values)  # the live path: a poll or two into the open bucket
            self.acc += np.where(ok, values, 0.0).sum(axis=0)
            self.cnt += ok.sum(axis=0)
            return out
        bucket_h = p.bucket_s / 3600
        alpha = min(1.0, bucket_h / p.psu_baseline_h)
        reset = max(1, round(p.reset_after_dark_h / bucket_h))
        min_peers = p.min_peers
        buckets = ts // bucket_ms
        starts = np.concatenate([[0], np.flatnonzero(np.diff(buckets)) + 1])
        ok = ~np.isnan(values)
        sums = np.add.reduceat(np.where(ok, values, 0.0), starts, axis=0)
        cnts = np.add.reduceat(ok, starts, axis=0).astype(np.float64)
        segments = [int(x) for x in buckets[starts]]
        if segments[0] == self.bucket:  # the batch continues the open bucket
            sums[0] += self.acc
            cnts[0] += self.cnt
        else:
            sums = np.concatenate([self.acc[np.newaxis], sums])
            cnts = np.concatenate([self.cnt[np.newaxis], cnts])
            segments = [self.bucket, *segments]
            starts = np.concatenate([[0], starts])
        # Means of every bucket this batch closes and their medians across the screen
        # (the part all peers share), in one go.
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(cnts > 0, sums / np.maximum(cnts, 1), np.nan)
        known = (~np.isnan(means)).sum(axis=1)
        ordered = np.sort(means, axis=1)  # NaN last
        medians = ordered[np.arange(len(means)), np.maximum((known - 1) // 2, 0)]
        common = np.where(known >= min_peers, medians, 0.0)
        for i in range(len(segments) - 1):  # every bucket but the last one is closed
            if segments[i] < 0 or not known[i]:
                continue
            self._close(segments[i], means[i], float(common[i]), alpha, reset)
            if self.closed % p.judge_every == 0:
                row = int(starts[i + 1])
                out += [(row, j) for j in judge(self, int(ts[row]))]
        self.bucket = segments[-1]
        self.acc, self.cnt = sums[-1].copy(), cnts[-1].copy()
        return out

    def _step(
        self, cond: BoolArray, known: BoolArray, hold: int, clear: int
    ) -> tuple[BoolArray, BoolArray]:
        """Count judgements in a row; an element without recent data keeps its counts
        (a dark cabinet neither confirms nor clears a warning about its PSU)."""
        self.streak_on = np.where(known, np.where(cond, self.streak_on + 1, 0), self.streak_on)
        self.streak_off = np.where(known, np.where(cond, 0, self.streak_off + 1),
                                   self.streak_off)
        opened = ~self.flagged & (self.streak_on >= hold)
        cleared = self.flagged & (self.streak_off >= clear)
        self.flagged = (self.flagged | opened) & ~cleared
        return opened, cleared


def _robust_scale(x: FloatArray, floor: float) -> float:
    center = _median(x)
    if np.isnan(center):
        return floor
    mad = _median(np.abs(x - center))
    return max(1.4826 * mad, floor)


def judge_psus(s: Series, now_ms: int, p: PredictSettings) -> list[Judgement]:
    """PSU voltages: peer drop or trend -> psu_degrading (see the module docstring)."""
    bucket_h = p.bucket_s / 3600
    recent = max(1, round(p.recent_h / bucket_h))
    window = min(s.slots, max(4, round(p.psu_trend_window_h / bucket_h)))
    half = window // 2
    filled = min(s.closed, s.slots)
    now_rel = colmedian(s.rows(s.rel, recent))
    latest = s.rows(s.rel, 1)[0]
    level = colmedian(s.rows(s.level, recent))
    settled = s.base_n >= 2 * recent  # a baseline of a few hours at least
    drop = np.where(settled, s.base - now_rel, np.nan)
    slope = np.full(s.n, np.nan)
    if filled >= window:
        pairs = (s.rows(s.rel, half) - s.rows(s.rel, half, skip=half)) / (half * bucket_h)
        slope = colmedian(pairs)
    scale = _robust_scale(drop, 0.005)
    with np.errstate(invalid="ignore", divide="ignore"):
        hours = np.where(slope < 0, (level - p.psu_fail_v) / -slope, np.inf)
        # the newest bucket agrees: a sag that is already over is not degradation
        now_low = latest <= s.base - p.psu_min_drop_v / 2
        peer = ((drop >= p.psu_min_drop_v) & (drop >= p.psu_drop_z * scale) & now_low
                & (s.n >= p.min_peers))
        trend = (slope <= -p.psu_min_slope_v_per_h) & (hours <= p.psu_horizon_h) & now_low
    hold = max(1, round(p.hold_h / (bucket_h * p.judge_every)))
    clear = max(1, round(p.clear_h / (bucket_h * p.judge_every)))
    opened, cleared = s._step(peer | trend, ~np.isnan(now_rel), hold, clear)
    out = []
    for i in map(int, np.flatnonzero(opened | cleared | (s.flagged & trend))):
        predicted = None
        if np.isfinite(hours[i]):
            predicted = now_ms + int(max(float(hours[i]), 0.0) * MS_PER_H)
        evidence = {
            "level_v": _num(level[i]),
            "drop_v": _num(drop[i]),
            "drop_z": _num(drop[i] / scale),
            "slope_v_per_h": _num(slope[i]),
            "predicted_failure_ms": predicted,
            "peers": s.n,
        }
        parts = [f"vout {level[i]:.2f} V"]
        if bool(peer[i]):
            parts.append(f"{drop[i]:.2f} V below its own usual level against its "
                         f"{s.n - 1} peers (z {drop[i] / scale:.1f})")
        if predicted is not None and np.isfinite(slope[i]):
            parts.append(f"trend {slope[i] * 24:+.3f} V/day, {p.psu_fail_v:g} V in "
                         f"{hours[i]:.0f} h")
        active: bool | None = None
        if opened[i]:
            active = True
        elif cleared[i]:
            active = False
        out.append(Judgement(i, active, now_ms, _num(level[i]), "; ".join(parts), evidence,
                             predicted))
    return out


def judge_temps(s: Series, now_ms: int, p: PredictSettings) -> list[Judgement]:
    """Cabinet temperatures: persistently hotter than the screen's others -> running_hot."""
    bucket_h = p.bucket_s / 3600
    recent = max(1, round(p.recent_h / bucket_h))
    if s.n < p.min_peers or min(s.closed, s.slots) < recent:
        return []
    dev = colmedian(s.rows(s.rel, recent))
    scale = _robust_scale(dev, 0.5)
    with np.errstate(invalid="ignore"):
        cond = (dev >= p.hot_min_delta_c) & (dev >= p.hot_z * scale)
    hold = max(1, round(p.hold_h / (bucket_h * p.judge_every)))
    clear = max(1, round(p.clear_h / (bucket_h * p.judge_every)))
    opened, cleared = s._step(cond, ~np.isnan(dev), hold, clear)
    level = colmedian(s.rows(s.level, recent))
    out = []
    for i in map(int, np.flatnonzero(opened | cleared)):
        evidence = {"temp_c": _num(level[i]), "above_peers_c": _num(dev[i]),
                    "z": _num(dev[i] / scale), "peers": s.n}
        detail = (f"temp {level[i]:.1f} °C, {dev[i]:.1f} °C above the median of its "
                  f"{s.n - 1} peers over {p.recent_h:g} h (z {dev[i] / scale:.1f})")
        out.append(Judgement(i, bool(opened[i]), now_ms, _num(level[i]), detail, evidence))
    return out


def _num(x: Any) -> float | None:
    x = float(x)
    return None if not np.isfinite(x) else round(x, 4)
