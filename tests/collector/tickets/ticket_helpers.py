"""Helpers shared by the ticket tests: time in readable UTC and a settable clock."""

from __future__ import annotations

from datetime import UTC, datetime

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR


def ms(text: str) -> int:
    """'2026-03-01T10:00' (UTC) -> ms."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


class Clock:
    def __init__(self, now_ms: int) -> None:
        self.ms = now_ms

    def __call__(self) -> int:
        return self.ms

    def set(self, text: str) -> int:
        self.ms = ms(text)
        return self.ms
