"""A screen's operating schedule: when it is switched off on purpose (pure, no clock).

Off periods are given per weekday in the screen's IANA time zone ("01:00-06:00", or
"23:30-07:00", which runs into the next day) and turned into UTC intervals day by day,
so daylight-saving changes shift them as the screen's own timer does. Each interval is
widened by a grace time on both sides: a screen's timer and its power relays are not
exact, and a screen that powers up five minutes late is not a fault.
"""

from __future__ import annotations

import bisect
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_span(text: str) -> tuple[time, time]:
    """'HH:MM-HH:MM' -> (start, end); raises ValueError naming what is wrong."""
    try:
        a, b = (part.strip() for part in text.split("-"))
        start = time.fromisoformat(a)
        end = time.fromisoformat(b)
    except ValueError:
        raise ValueError(f"off must look like '01:00-06:00', got {text!r}") from None
    if start == end:
        raise ValueError(f"off {text!r} is empty (start equals end)")
    return start, end


class Schedule:
    """Off intervals of one screen; `off_mask(ts)` says which poll times fall in one."""

    def __init__(
        self, tz: str, entries: tuple[tuple[tuple[str, ...], str], ...], grace_ms: float
    ) -> None:
        self.tz = tz
        self.grace_ms = int(grace_ms)
        self._zone = ZoneInfo(tz)
        self._spans: list[tuple[frozenset[int], time, time]] = [
            (frozenset(_DAYS.index(d) for d in days), *parse_span(off)) for days, off in entries
        ]

    @property
    def empty(self) -> bool:
        return not self._spans

    def intervals(self, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
        """Merged, sorted [start, end) off intervals (grace included) meeting the range."""
        if not self._spans:
            return []
        first = datetime.fromtimestamp(start_ms / 1000, UTC).date() - timedelta(days=2)
        last = datetime.fromtimestamp(end_ms / 1000, UTC).date() + timedelta(days=1)
        found: list[tuple[int, int]] = []
        day = first
        while day <= last:
            found += _day_intervals(self, day)
            day += timedelta(days=1)
        found.sort()
        merged: list[tuple[int, int]] = []
        for a, b in found:
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        return [(a, b) for a, b in merged if b > start_ms and a <= end_ms]

    def off_mask(self, ts: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """True where a poll time lies in a scheduled off period (grace included)."""
        if not self._spans or len(ts) == 0:
            return np.zeros(len(ts), dtype=bool)
        spans = self.intervals(int(ts.min()), int(ts.max()))
        if not spans:
            return np.zeros(len(ts), dtype=bool)
        starts = np.array([a for a, _ in spans], dtype=np.int64)
        ends = np.array([b for _, b in spans], dtype=np.int64)
        i = np.searchsorted(starts, ts, side="right") - 1
        return (i >= 0) & (ts < ends[np.maximum(i, 0)])

    def is_off(self, ts_ms: int) -> bool:
        return bool(self.off_mask(np.array([ts_ms], dtype=np.int64))[0])

    def on_again(self, ts_ms: int) -> int:
        """The end of the off period containing `ts_ms` (or `ts_ms` if it is in none)."""
        spans = self.intervals(ts_ms, ts_ms)
        i = bisect.bisect_right([a for a, _ in spans], ts_ms) - 1
        if i >= 0 and ts_ms < spans[i][1]:
            return spans[i][1]
        return ts_ms


@lru_cache(maxsize=65_536)
def _day_intervals(schedule: Schedule, day: date) -> list[tuple[int, int]]:
    """The off intervals starting on local `day` (grace included), in UTC ms."""
    out = []
    for days, start, end in schedule._spans:
        if day.weekday() not in days:
            continue
        a = datetime.combine(day, start, schedule._zone)
        end_day = day if end > start else day + timedelta(days=1)
        b = datetime.combine(end_day, end, schedule._zone)
        out.append(
            (
                int(a.timestamp() * 1000) - schedule.grace_ms,
                int(b.timestamp() * 1000) + schedule.grace_ms,
            )
        )
    return out
