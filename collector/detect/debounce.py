"""Debounce and hysteresis of every rule of every element of a screen at once (pure).

Input: values V of shape (T, M): T polls, M columns (one per rule and element of the
screen, laid out by plan.py; NaN = unknown or hidden), and the poll times. Per column
the state machine is

```
            bad in hold_polls of the last hold_of polls, for hold_s
   clear ─────────────────────────────────────────────────────────> active
         <─────────────────────────────────────────────────────────
            good for clear_polls polls in a row and clear_s seconds
```
where "bad"/"good" are the rule's comparisons after the rolling median (rules.py). A
poll that is neither (hysteresis band, unknown) keeps the state and breaks a run.

`debounce` computes it without a Python loop over polls: run lengths by cumulative
maxima, window counts by cumulative sums, the state by forward-filling the last
set/clear signal; and only for the columns where something can happen (most are clear
and see nothing bad). `debounce_loop` is the same machine written poll by poll, column
by column; the tests hold the two equal. The carried `Carry` makes a batch of T polls
give the same result as T batches of one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    """Per-column parameters, shape (M,), in score space (every rule reads 'above')."""

    sign: FloatArray
    set_level: FloatArray
    clear_level: FloatArray
    hold_polls: IntArray
    hold_window: IntArray  # hold_polls bad polls among the last hold_window ones
    hold_ms: IntArray
    clear_polls: IntArray
    clear_ms: IntArray
    enabled: BoolArray
    smooth: dict[int, IntArray]  # median window -> the columns that use it (window > 1)
    history_len: int  # polls of values carried for the medians
    window_len: int  # polls of bad flags carried for hold_of
    # The same as runs of columns within one copy of `width` columns, `copies` side by
    # side (tiled): medians over slices, not gathers of index arrays (many times cheaper).
    spans: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    width: int = 0
    copies: int = 1

    @classmethod
    def of_blocks(cls, rules: list[Rule], sizes: IntArray) -> Params:
        """Parameters of blocks of columns: `sizes[i]` columns of `rules[i]` each."""
        base = cls.of(rules)

        def rep(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return np.repeat(values, sizes)

        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        smooth = {w: np.concatenate([np.arange(starts[i], starts[i] + sizes[i])
                                     for i in idx.tolist()]).astype(np.int64)
                  for w, idx in base.smooth.items()}
        smooth = {w: cols for w, cols in smooth.items() if len(cols)}
        used = sizes > 0
        return cls(
            sign=rep(base.sign), set_level=rep(base.set_level),
            clear_level=rep(base.clear_level), hold_polls=rep(base.hold_polls),
            hold_window=rep(base.hold_window), hold_ms=rep(base.hold_ms),
            clear_polls=rep(base.clear_polls), clear_ms=rep(base.clear_ms),
            enabled=rep(base.enabled), smooth=smooth,
            history_len=int(max(base.history_len_of(used), 0)),
            window_len=int(max(base.window_len_of(used), 0)),
            spans={w: _spans(cols) for w, cols in smooth.items()},
            width=int(sizes.sum()),
        )

    def tiled(self, copies: int) -> Params:
        """These columns `copies` times side by side (alike screens judged together)."""
        m = len(self.sign)
        offsets = np.arange(copies, dtype=np.int64)[:, np.newaxis] * m

        def rep(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return np.tile(values, copies)

        return Params(
            sign=rep(self.sign), set_level=rep(self.set_level),
            clear_level=rep(self.clear_level), hold_polls=rep(self.hold_polls),
            hold_window=rep(self.hold_window), hold_ms=rep(self.hold_ms),
            clear_polls=rep(self.clear_polls), clear_ms=rep(self.clear_ms),
            enabled=rep(self.enabled),
            smooth={w: (offsets + cols[np.newaxis, :]).ravel() for w, cols in self.smooth.items()},
            history_len=self.history_len, window_len=self.window_len,
            spans=self.spans, width=self.width, copies=self.copies * copies,
        )

    def history_len_of(self, used: BoolArray) -> int:
        """`history_len` over the rules (columns of `of`) that are `used`."""
        return int(max((w for w, idx in self.smooth.items() if used[idx].any()),
                       default=1)) - 1

    def window_len_of(self, used: BoolArray) -> int:
        return int(self.hold_window[used].max(initial=1)) - 1

    @classmethod
    def of(cls, rules: list[Rule]) -> Params:
        """Parameters of columns whose rules are `rules` (one entry per column)."""

        def col(values: list[Any], dtype: type) -> npt.NDArray[Any]:
            return np.array(values, dtype=dtype)

        windows = [r.hold_of or r.hold_polls for r in rules]
        smooth: dict[int, list[int]] = {}
        for i, r in enumerate(rules):
            if r.smooth_polls > 1:
                smooth.setdefault(r.smooth_polls, []).append(i)
        return cls(
            sign=col([r.sign for r in rules], np.float64),
            set_level=col([r.sign * r.threshold for r in rules], np.float64),
            clear_level=col([r.sign * r.clear_level for r in rules], np.float64),
            hold_polls=col([r.hold_polls for r in rules], np.int64),
            hold_window=col(windows, np.int64),
            hold_ms=col([round(r.hold_s * 1000) for r in rules], np.int64),
            clear_polls=col([r.clear_polls for r in rules], np.int64),
            clear_ms=col([round(r.clear_s * 1000) for r in rules], np.int64),
            enabled=col([r.enabled for r in rules], np.bool_),
            smooth={k: np.array(v, dtype=np.int64) for k, v in smooth.items()},
            spans={k: _spans(np.array(v, dtype=np.int64)) for k, v in smooth.items()},
            width=len(rules),
            history_len=max([r.smooth_polls for r in rules], default=1) - 1,
            window_len=max(windows, default=1) - 1,
        )


@dataclass(slots=True)
class Carry:
    """What one batch hands to the next: per column (M,), histories (H, M) and (W, M)."""

    state: I8Array
    bad_run: IntArray
    bad_start: IntArray
    good_run: IntArray
    good_start: IntArray
    history: FloatArray  # the last H values, for the rolling medians
    recent_bad: BoolArray  # whether each of the last W polls was bad

    @classmethod
    def fresh(cls, m: int, history: int, window: int) -> Carry:
        zeros = np.zeros(m, dtype=np.int64)
        return cls(
            state=np.zeros(m, dtype=np.int8),
            bad_run=zeros.copy(),
            bad_start=zeros.copy(),
            good_run=zeros.copy(),
            good_start=zeros.copy(),
            history=np.full((history, m), np.nan),
            recent_bad=np.zeros((window, m), dtype=bool),
        )

    def fits(self, m: int, history: int, window: int) -> bool:
        return self.state.shape[0] == m and self.history.shape[0] == history and (
            self.recent_bad.shape[0] == window)

    def take(self, index: IntArray) -> Carry:
        """Columns `index` of this carry (-1: a fresh column), for a new layout."""
        new = Carry.fresh(len(index), self.history.shape[0], self.recent_bad.shape[0])
        found = index >= 0
        src = index[found]
        for name in ("state", "bad_run", "bad_start", "good_run", "good_start"):
            getattr(new, name)[found] = getattr(self, name)[src]
        new.history[:, found] = self.history[:, src]
        new.recent_bad[:, found] = self.recent_bad[:, src]
        return new

    def split(self, copies: int) -> list[Carry]:
        """The inverse of `concat` for `copies` carries of equal width (each a copy, so a
        screen's carry never pins the arrays of the whole group)."""
        m = self.state.shape[0] // copies
        out = []
        for i in range(copies):
            a, b = i * m, (i + 1) * m
            out.append(Carry(
                state=self.state[a:b].copy(), bad_run=self.bad_run[a:b].copy(),
                bad_start=self.bad_start[a:b].copy(), good_run=self.good_run[a:b].copy(),
                good_start=self.good_start[a:b].copy(), history=self.history[:, a:b].copy(),
                recent_bad=self.recent_bad[:, a:b].copy()))
        return out

    @staticmethod
    def concat(carries: list[Carry]) -> Carry:
        """Side by side (for restoring parked columns)."""

        def cat(name: str, axis: int) -> Any:
            return np.concatenate([getattr(c, name) for c in carries], axis=axis)

        return Carry(
            state=cat("state", 0), bad_run=cat("bad_run", 0), bad_start=cat("bad_start", 0),
            good_run=cat("good_run", 0), good_start=cat("good_start", 0),
            history=cat("history", 1), recent_bad=cat("recent_bad", 1),
        )


def _spans(cols: IntArray) -> tuple[tuple[int, int], ...]:
    """Sorted column indices as runs [start, stop)."""
    if len(cols) == 0:
        return ()
    breaks = np.flatnonzero(np.diff(cols) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [len(cols)]])
    return tuple((int(cols[a]), int(cols[b - 1]) + 1)
                 for a, b in zip(starts.tolist(), stops.tolist(), strict=True))


def _median(part: FloatArray, k: int) -> FloatArray:
    """Rolling median of `k` along axis 0 (rows k-1.. of `part`); NaN if any is NaN."""
    if k == 3:  # closed forms: much cheaper than a sort, and NaN propagates
        a, b, c = part[:-2], part[1:-1], part[2:]
        return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
    if k == 4:  # the mean of the middle two, by a sorting network
        a, b, c, d = part[:-3], part[1:-2], part[2:-1], part[3:]
        a, b = np.minimum(a, b), np.maximum(a, b)
        c, d = np.minimum(c, d), np.maximum(c, d)
        return (np.maximum(a, c) + np.minimum(b, d)) / 2  # the two middle values
    win = np.lib.stride_tricks.sliding_window_view(part, k, axis=0)
    med: FloatArray = np.median(win, axis=-1)
    return med


def smooth(values: FloatArray, history: FloatArray, p: Params) -> FloatArray:
    """Rolling median per column over its window; NaN unless the whole window is known."""
    if not p.smooth:
        return values
    t = values.shape[0]
    h = history.shape[0]
    full = np.concatenate([history, values], axis=0)  # (H + T, M)
    out = values.copy()
    full3 = full.reshape(h + t, p.copies, p.width)  # copies of one layout side by side
    out3 = out.reshape(t, p.copies, p.width)
    for k, spans in p.spans.items():
        for a, b in spans:
            out3[:, :, a:b] = _median(full3[h - (k - 1):, :, a:b], k)[:t]
    return out


def _runs(
    flag: BoolArray, ts: IntArray, run0: IntArray, start0: IntArray
) -> tuple[IntArray, IntArray]:
    """Length and start time of the run of True ending at each poll (0 where False);
    `flag` is (T, K) with the carried run0/start0 of shape (K,); `ts` is (T, 1), or
    (T, K) when the columns are of screens polled at different times."""
    t = flag.shape[0]
    idx = np.arange(t).reshape(t, 1)
    last_off = np.maximum.accumulate(np.where(flag, -1, idx), axis=0)
    inherited = last_off < 0  # True since the batch began: continue the carried run
    run = np.where(inherited, idx + 1 + run0, idx - last_off)
    first = np.minimum(last_off + 1, t - 1)
    at_first = (ts[first, 0] if ts.shape[1] == 1
                else np.take_along_axis(ts, first, axis=0))
    start = np.where(inherited, np.where(run0 > 0, start0, ts[0]), at_first)
    run = np.where(flag, run, 0)
    return run, start


def _window_counts(flags: BoolArray, windows: IntArray, t: int) -> IntArray:
    """Bad polls among the last `windows[k]` polls, for each of the last t rows of
    `flags` (T', K), whose first rows are the carried history."""
    csum = np.concatenate([np.zeros((1, flags.shape[1]), np.int64),
                           np.cumsum(flags, axis=0, dtype=np.int64)], axis=0)
    end = np.arange(flags.shape[0] - t + 1, flags.shape[0] + 1).reshape(t, 1)
    start = np.maximum(end - windows, 0)
    k = np.arange(flags.shape[1]).reshape(1, -1)
    result: IntArray = csum[end, k] - csum[start, k]
    return result


def debounce(
    p: Params, carry: Carry, values: FloatArray, ts: IntArray
) -> tuple[I8Array, FloatArray, Carry]:
    """(T, M) values -> per-poll states (T, M), the smoothed values, the new carry.

    Most columns are clear and see nothing bad: they stay clear, and their pending
    counts are empty (a good run only matters for an active one). Only the others go
    through the machine, which keeps a healthy screen cheap. `ts` is (T,), the polls of
    one screen, or (T, M): columns of several screens side by side (stacked.py).
    """
    t, m = values.shape
    sm = smooth(values, carry.history, p)
    score = sm * p.sign
    bad = (score > p.set_level) & p.enabled
    h, w = p.history_len, p.window_len
    history = np.concatenate([carry.history, values], axis=0)[-h:] if h else carry.history
    busy = bad.any(axis=0) | (carry.state != 0) | (carry.bad_run > 0)
    if w:
        busy |= carry.recent_bad.any(axis=0)
    new = Carry.fresh(m, 0, w)
    new.history = history.copy() if h else carry.history
    cols = np.flatnonzero(busy)
    if len(cols) == 0:
        if w:
            new.recent_bad = np.zeros((w, m), dtype=bool)
        return np.zeros((t, m), dtype=np.int8), sm, new
    states = np.zeros((t, m), dtype=np.int8)
    good = (score[:, cols] < p.clear_level[cols]) | ~p.enabled[cols]
    sub_bad = bad[:, cols]
    tsb = ts.reshape(t, 1) if ts.ndim == 1 else ts[:, cols]
    bad_run, bad_start = _runs(sub_bad, tsb, carry.bad_run[cols], carry.bad_start[cols])
    good_run, good_start = _runs(good, tsb, carry.good_run[cols], carry.good_start[cols])
    flags = np.concatenate([carry.recent_bad[:, cols], sub_bad], axis=0)
    counts = _window_counts(flags, p.hold_window[cols], t)
    set_sig = sub_bad & (counts >= p.hold_polls[cols]) & (tsb - bad_start >= p.hold_ms[cols])
    clr_sig = good & (good_run >= p.clear_polls[cols]) & (
        tsb - good_start >= p.clear_ms[cols])
    signal = np.where(set_sig, 1, np.where(clr_sig, 0, -1)).astype(np.int8)
    idx = np.arange(t).reshape(t, 1)
    last = np.maximum.accumulate(np.where(signal >= 0, idx, -1), axis=0)
    picked = np.take_along_axis(signal, np.maximum(last, 0), axis=0)
    sub_states = np.where(last >= 0, picked, carry.state[cols]).astype(np.int8)
    states[:, cols] = sub_states
    new.state[cols] = sub_states[-1]
    new.bad_run[cols] = bad_run[-1]
    new.bad_start[cols] = np.where(bad_run[-1] > 0, bad_start[-1], 0)
    new.good_run[cols] = good_run[-1]
    new.good_start[cols] = np.where(good_run[-1] > 0, good_start[-1], 0)
    if w:
        new.recent_bad[:, cols] = flags[flags.shape[0] - w:]
    return states, sm, new


def debounce_loop(
    p: Params, carry: Carry, values: FloatArray, ts: IntArray
) -> tuple[I8Array, FloatArray, Carry]:
    """The same machine as `debounce`, one poll and one column at a time (reference)."""
    t, m = values.shape
    h, w = carry.history.shape[0], carry.recent_bad.shape[0]
    states = np.zeros((t, m), dtype=np.int8)
    sm = np.full((t, m), np.nan)
    new = Carry.fresh(m, h, w)
    windows = {int(c): k for k, cols in p.smooth.items() for c in cols}
    for j in range(m):
        k = windows.get(j, 1)
        span = int(p.hold_window[j])
        window = [float(x) for x in carry.history[:, j]]
        seen = [bool(x) for x in carry.recent_bad[:, j]]
        state = int(carry.state[j])
        bad_run, bad_start = int(carry.bad_run[j]), int(carry.bad_start[j])
        good_run, good_start = int(carry.good_run[j]), int(carry.good_start[j])
        enabled = bool(p.enabled[j])
        for row in range(t):
            x = float(values[row, j])
            window.append(x)
            recent = window[-k:]
            v = x if k == 1 else (
                float("nan") if any(np.isnan(recent)) else float(np.median(recent))
            )
            sm[row, j] = v
            score = v * float(p.sign[j])
            now = int(ts[row])
            is_bad = enabled and score > float(p.set_level[j])
            is_good = (not enabled) or score < float(p.clear_level[j])
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
            if is_bad and sum(seen[-span:]) >= p.hold_polls[j] and (
                    now - bad_start >= p.hold_ms[j]):
                state = 1
            elif is_good and good_run >= p.clear_polls[j] and (
                    now - good_start >= p.clear_ms[j]):
                state = 0
            states[row, j] = state
        new.state[j] = state
        new.bad_run[j], new.bad_start[j] = bad_run, bad_start if bad_run else 0
        new.good_run[j], new.good_start[j] = good_run, good_start if good_run else 0
        if h:
            new.history[:, j] = window[-h:]
        if w:
            new.recent_bad[:, j] = seen[-w:]
    return states, sm, new
