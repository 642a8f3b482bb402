"""Business-hours arithmetic for SLA clocks (pure): how far a deadline lies when only
the contract's service hours count.

A contract may say that, for some priorities, its response and on-site times run only
during service hours (weekly hours in the customer's time zone, minus holidays); P1
stays 7 x 24 unless the contract says otherwise. Without a calendar, time is time.
`add(start, duration)` walks the open intervals day by day in local time, so daylight
saving changes are what the customer's clock says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_DAYS = 3660  # ten years of searching for open hours: a calendar with none is an error
Hours = tuple[tuple[int, tuple[tuple[time, time], ...]], ...]  # (weekday, local spans)


@dataclass(frozen=True)
class Calendar:
    """Service hours: weekday -> local (open, close) spans; holidays closed all day."""

    tz: str
    hours: Hours  # (weekday, spans)
    holidays: frozenset[date] = frozenset()

    def _spans(self, day: date) -> list[tuple[int, int]]:
        return _open_spans(self, day)

    def open_between(self, start_ms: int, end_ms: int) -> int:
        """Milliseconds of service time in [start, end)."""
        if end_ms <= start_ms:
            return 0
        total = 0
        day = _local_date(self, start_ms) - timedelta(days=1)
        last = _local_date(self, end_ms)
        while day <= last:
            for a, b in self._spans(day):
                lo, hi = max(a, start_ms), min(b, end_ms)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total

    def add(self, start_ms: int, duration_ms: int) -> int:
        """The moment `duration_ms` of service time after `start_ms`."""
        left = duration_ms
        day = _local_date(self, start_ms) - timedelta(days=1)
        for _ in range(MAX_DAYS):
            for a, b in self._spans(day):
                lo = max(a, start_ms)
                if b <= lo:
                    continue
                if b - lo >= left:
                    return lo + left
                left -= b - lo
            day += timedelta(days=1)
        raise ValueError("the calendar has no service hours")


def _local_date(cal: Calendar, ts_ms: int) -> date:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).astimezone(ZoneInfo(cal.tz)).date()


@lru_cache(maxsize=65_536)
def _open_spans(cal: Calendar, day: date) -> list[tuple[int, int]]:
    """The day's service spans in UTC ms (empty on a holiday)."""
    if day in cal.holidays:
        return []
    zone = ZoneInfo(cal.tz)
    out = []
    for weekday, spans in cal.hours:
        if weekday != day.weekday():
            continue
        for a, b in spans:
            start = datetime.combine(day, a, zone)
            end = datetime.combine(day, b, zone) if b > a else datetime.combine(
                day + timedelta(days=1), b, zone)
            out.append((int(start.timestamp() * 1000), int(end.timestamp() * 1000)))
    return sorted(out)


def parse_hours(spec: dict[str, list[str]]) -> Hours:
    """{"mon": ["08:00-18:00"], ...} -> the Calendar's `hours`; ValueError names the day."""
    out = []
    for day, spans in spec.items():
        if day not in _DAYS:
            raise ValueError(f"{day}: unknown weekday (use {', '.join(_DAYS)})")
        parsed = []
        for text in spans:
            try:
                a, b = (time.fromisoformat(p.strip()) for p in text.split("-"))
            except ValueError:
                raise ValueError(f"{day}: hours must look like '08:00-18:00', got {text!r}") \
                    from None
            if a == b:
                raise ValueError(f"{day}: {text!r} is empty")
            parsed.append((a, b))
        out.append((_DAYS.index(day), tuple(parsed)))
    return tuple(out)
