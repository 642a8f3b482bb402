"""Debounce and hysteresis of many rules over many elements and polls at once (pure).

Input: for one section of one screen, values V of shape (T, R, N) (T polls, R rules, N
elements; NaN = unknown or hidden) and the poll times. Per (rule, element) the state
machine is

```
            bad for hold_polls polls and hold_s seconds
   clear ─────────────────────────────────────────────> active
         <─────────────────────────────────────────────
            good for clear_polls polls and clear_s seconds
```
where "bad"/"good" are the rule's comparisons after the rolling median (rules.py). A
poll that is neither (hysteresis band, unknown) restarts both pending counts and keeps
the state: opening and clearing both need unbroken evidence.

`debounce` computes it without a Python loop over polls: run lengths by cumulative
maxima, the state by forward-filling the last set/clear signal. `debounce_loop` is the
same machine written poll by poll, element by element; the tests hold the two equal.
The carried `Carry` makes a batch of T polls give the same result as T batches of one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from collector.detect.rules import Rule

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
I8Array = npt.NDArray[np.int8]


@dataclass(frozen=True, slots=True)
class Params:
    """Per-rule parameters as (R, 1) arrays, in score space (every rule reads 'above')."""

    sign: FloatArray
    set_level: FloatArray
    clear_level: FloatArray
    hold_polls: IntArray
    hold_window: IntArray  # hold_polls bad polls among the last hold_window ones
    hold_ms: IntArray
    clear_polls: IntArray
    clear_ms: IntArray
    smooth: tuple[int, ...]  # window per rule
    enabled: BoolArray

    @classmethod
    def of(cls, rules: tuple[Rule, ...]) -> Params:
        def col(values: list[Any], dtype: type) -> npt.NDArray[Any]:
            return np.array(values, dtype=dtype).reshape(len(rules), 1)

        return cls(
            sign=col([r.sign for r in rules], np.float64),
            set_level=col([r.sign * r.threshold for r in rules], np.float64),
            clear_level=col([r.sign * r.clear_level for r in rules], np.float64),
            hold_polls=col([r.hold_polls for r in rules], np.int64),
            hold_window=col([r.hold_of or r.hold_polls for r in rules], np.int64),
            hold_ms=col([round(r.hold_s * 1000) for r in rules], np.int64),
            clear_polls=col([r.clear_polls for r in rules], np.int64),
            clear_ms=col([round(r.clear_s * 1000) for r in rules], np.int64),
            smooth=tuple(r.smooth_polls for r in rules),
            enabled=col([r.enabled for r in rules], np.bool_),
        )

    @property
    def history_len(self) -> int:
        return max(self.smooth, default=1) - 1

    @property
    def window_len(self) -> int:
        return int(self.hold_window.max(initial=1)) - 1


@dataclass(slots=True)
class Carry:
    """What one batch hands to the next, per (rule, element): shape (R, N) each."""

    state: I8Array
    bad_run: IntArray
    bad_start: IntArray
    good_run: IntArray
    good_start: IntArray
    history: FloatArray  # (H, R, N): the last H values, for the rolling median
    recent_bad: BoolArray  # (W, R, N): whether each of the last W polls was bad

    @classmethod
    def fresh(cls, r: int, n: int, history: int, window: int) -> Carry:
        zeros = np.zeros((r, n), dtype=np.int64)
        return cls(
            state=np.zeros((r, n), dtype=np.int8),
            bad_run=zeros.copy(),
            bad_start=zeros.copy(),
            good_run=zeros.copy(),
            good_start=zeros.copy(),
            history=np.full((history, r, n), np.nan),
            recent_bad=np.zeros((window, r, n), dtype=bool),
        )

    def fits(self, r: int, history: int, window: int) -> bool:
        return self.state.shape[0] == r and self.history.shape[0] == history and (
            self.recent_bad.shape[0] == window)

    def take(self, index: IntArray) -> Carry:
        """Columns `index` of this carry (-1: a fresh element), for a new layout."""
        r, h, w = self.state.shape[0], self.history.shape[0], self.recent_bad.shape[0]
        new = Carry.fresh(r, len(index), h, w)
        found = index >= 0
        src = index[found]
        for name in ("state", "bad_run", "bad_start", "good_run", "good_start"):
            getattr(new, name)[:, found] = getattr(self, name)[:, src]
        new.history[:, :, found] = self.history[:, :, src]
        new.recent_bad[:, :, found] = self.recent_bad[:, :, src]
        return new

    @staticmethod
    def concat(carries: list[Carry]) -> Carry:
        """Side by side along the element axis (for restoring parked elements)."""
        def cat(name: str, axis: int) -> Any:
            return np.concatenate([getattr(c, name) for c in carries], axis=axis)

        return Carry(
            state=cat("state", 1), bad_run=cat("bad_run", 1), bad_start=cat("bad_start", 1),
            good_run=cat("good_run", 1), good_start=cat("good_start", 1),
            history=cat("history", 2), recent_bad=cat("recent_bad", 2),
        )


def smooth(values: FloatArray, history: FloatArray, windows: tuple[int, ...]) -> FloatArray:
    """Rolling median per rule over its window; NaN unless the whole window is known."""
    if max(windows, default=1) == 1:
        return values
    t = values.shape[0]
    full = np.concatenate([history, values], axis=0)  # (H + T, R, N)
    h = history.shape[0]
    out = values.copy()
    for k in sorted(set(windows) - {1}):
        rows = [i for i, w in enumerate(windows) if w == k]
        part = full[h - (k - 1):, rows, :]
        if k == 3:  # closed forms: much cheaper than a sort, and NaN propagates
            a, b, c = part[:-2], part[1:-1], part[2:]
            med = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
        elif k == 4:  # the mean of the middle two, by a sorting network
            a, b, c, d = part[:-3], part[1:-2], part[2:-1], part[3:]
            a, b = np.minimum(a, b), np.maximum(a, b)
            c, d = np.minimum(c, d), np.maximum(c, d)
            med = (np.maximum(a, c) + np.minimum(b, d)) / 2  # the two middle values
        else:
            win = np.lib.stride_tricks.sliding_window_view(part, k, axis=0)
            med = np.median(win, axis=-1)
        out[:, rows, :] = med[:t]
    return out


def _runs(
    flag: BoolArray, ts: IntArray, run0: IntArray, start0: IntArray
) -> tuple[IntArray, IntArray]:
    """Length and start time of the run of True ending at each poll (0 where False);
    `flag` is (T, ...) with the carried run0/start0 of shape (...)."""
    t = flag.shape[0]
    idx = np.arange(t).reshape((t,) + (1,) * (flag.ndim - 1))
    last_off = np.maximum.accumulate(np.where(flag, -1, idx), axis=0)
    inherited = last_off < 0  # True since the batch began: continue the carried run
    run = np.where(inherited, idx + 1 + run0, idx - last_off)
    first = np.minimum(last_off + 1, t - 1)
    start = np.where(inherited, np.where(run0 > 0, start0, ts[0]), ts[first])
    run = np.where(flag, run, 0)
    return run, start


def debounce(
    p: Params, carry: Carry, values: FloatArray, ts: IntArray
) -> tuple[I8Array, FloatArray, Carry]:
    """(T, R, N) values -> per-poll states (T, R, N), the smoothed values, new carry.

    Most (rule, element) pairs are clear and see nothing bad: they stay clear, and their
    pending counts are empty (a good run only matters for an active one). Only the
    others go through the machine, which makes a healthy screen cheap.
    """
    t, r, n = values.shape
    sm = smooth(values, carry.history, p.smooth)
    score = sm * p.sign
    bad = (score > p.set_level) & p.enabled
    h = carry.history.shape[0]
    history = np.concatenate([carry.history, values], axis=0)[-h:] if h else carry.history
    w = carry.recent_bad.shape[0]
    busy = bad.any(axis=0) | (carry.state != 0) | (carry.bad_run > 0)
    if w:
        busy |= carry.recent_bad.any(axis=0)
    states = np.zeros((t, r, n), dtype=np.int8)
    new = Carry.fresh(r, n, 0, w)
    new.history = history.copy()
    rows, cols = np.nonzero(busy)
    if len(rows):
        sub = _machine(p, carry, score[:, rows, cols], bad[:, rows, cols], ts, rows, cols)
        states[:, rows, cols] = sub[0]
        new.state[rows, cols], new.bad_run[rows, cols], new.bad_start[rows, cols] = sub[1:4]
        new.good_run[rows, cols], new.good_start[rows, cols] = sub[4:6]
        if w:
            new.recent_bad[:, rows, cols] = sub[6]
    return states, sm, new


def _machine(
    p: Params,
    carry: Carry,
    score: FloatArray,
    bad: BoolArray,
    ts: IntArray,
    rows: IntArray,
    cols: IntArray,
) -> tuple[Any, ...]:
    """The state machine over the selected (rule, element) pairs, shape (T, K)."""
    t = score.shape[0]

    def per_rule(a: Any) -> Any:
        return a[rows, 0][np.newaxis, :]

    good = (score < per_rule(p.clear_level)) | ~per_rule(p.enabled)
    tsb = ts.reshape(t, 1)
    bad_run, bad_start = _runs(bad, ts, carry.bad_run[rows, cols], carry.bad_start[rows, cols])
    good_run, good_start = _runs(good, ts, carry.good_run[rows, cols],
                                 carry.good_start[rows, cols])
    w = carry.recent_bad.shape[0]
    flags = np.concatenate([carry.recent_bad[:, rows, cols], bad], axis=0)
    counts = _window_counts(flags, per_rule(p.hold_window), t)
    set_sig = bad & (counts >= per_rule(p.hold_polls)) & (
        tsb - bad_start >= per_rule(p.hold_ms))
    clr_sig = good & (good_run >= per_rule(p.clear_polls)) & (
        tsb - good_start >= per_rule(p.clear_ms))
    signal = np.where(set_sig, 1, np.where(clr_sig, 0, -1)).astype(np.int8)
    idx = np.arange(t).reshape(t, 1)
    last = np.maximum.accumulate(np.where(signal >= 0, idx, -1), axis=0)
    picked = np.take_along_axis(signal, np.maximum(last, 0), axis=0)
    states = np.where(last >= 0, picked, carry.state[rows, cols]).astype(np.int8)
    return (
        states,
        states[-1],
        bad_run[-1],
        np.where(bad_run[-1] > 0, bad_start[-1], 0),
        good_run[-1],
        np.where(good_run[-1] > 0, good_start[-1], 0),
        flags[flags.shape[0] - w:],
    )


def _window_counts(flags: BoolArray, windows: IntArray, t: int) -> IntArray:
    """Bad polls among the last `windows[k]` polls, for each of the last t rows of
    `flags` (T', K), whose first rows are the carried history; `windows` is (1, K)."""
    csum = np.concatenate([np.zeros((1, flags.shape[1]), np.int64),
                           np.cumsum(flags, axis=0, dtype=np.int64)], axis=0)
    end = np.arange(flags.shape[0] - t + 1, flags.shape[0] + 1).reshape(t, 1)
    start = np.maximum(end - windows, 0)
    k = np.arange(flags.shape[1]).reshape(1, -1)
    result: IntArray = csum[end, k] - csum[start, k]
    return result


def debounce_loop(
    p: Params, carry: Carry, values: FloatArray, ts: IntArray
) -> tuple[I8Array, FloatArray, Carry]:
    """The same machine as `debounce`, one poll and one element at a time (reference)."""
    t, r, n = values.shape
    h, w = carry.history.shape[0], carry.recent_bad.shape[0]
    states = np.zeros((t, r, n), dtype=np.int8)
    sm = np.full((t, r, n), np.nan)
    new = Carry.fresh(r, n, h, w)
    for i in range(r):
        k = p.smooth[i]
        span = int(p.hold_window[i, 0])
        for j in range(n):
            window = [float(x) for x in carry.history[:, i, j]]
            seen = [bool(x) for x in carry.recent_bad[:, i, j]]
            state = int(carry.state[i, j])
            bad_run, bad_start = int(carry.bad_run[i, j]), int(carry.bad_start[i, j])
            good_run, good_start = int(carry.good_run[i, j]), int(carry.good_start[i, j])
            for row in range(t):
                x = float(values[row, i, j])
                window.append(x)
                recent = window[-k:]
                v = x if k == 1 else (
                    float("nan") if any(np.isnan(recent)) else float(np.median(recent))
                )
                sm[row, i, j] = v
                score = v * float(p.sign[i, 0])
                now = int(ts[row])
                is_bad = bool(p.enabled[i, 0]) and score > float(p.set_level[i, 0])
                is_good = (not bool(p.enabled[i, 0])) or score < float(p.clear_level[i, 0])
                seen.append(is_bad)
                if is_bad:
                    bad_start = bad_start if bad_run else now
                    bad_run += 1
                else:
                    bad_run = 0
                if is_good:
                    good_start = good_start if good_run else now
                    good_run += 1
                else:
                    good_run = 0
                if (
                    is_bad
                    and sum(seen[-span:]) >= p.hold_polls[i, 0]
                    and now - bad_start >= p.hold_ms[i, 0]
                ):
                    state = 1
                elif (
                    is_good
                    and good_run >= p.clear_polls[i, 0]
                    and now - good_start >= p.clear_ms[i, 0]
                ):
                    state = 0
                states[row, i, j] = state
            new.state[i, j] = state
            new.bad_run[i, j], new.bad_start[i, j] = bad_run, bad_start if bad_run else 0
            new.good_run[i, j], new.good_start[i, j] = good_run, good_start if good_run else 0
            if h:
                new.history[:, i, j] = window[-h:]
            if w:
                new.recent_bad[:, i, j] = seen[-w:]
    return states, sm, new
