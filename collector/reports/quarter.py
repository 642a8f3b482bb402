"""Calendar quarters in UTC: `2026-Q4` -> [2026-10-01, 2027-01-01)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from collector.reports.errors import ReportInputError

_QUARTER: Final = re.compile(r"^(\d{4})-Q([1-4])$")


def _ms(year: int, month: int) -> int:
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000)


@dataclass(frozen=True, slots=True, order=True)
class Quarter:
    year: int
    number: int  # 1..4

    @classmethod
    def parse(cls, text: str) -> Quarter:
        """`YYYY-Qn`; anything else raises `ReportInputError` saying the format."""
        m = _QUARTER.fullmatch(text.strip()) if isinstance(text, str) else None
        if m is None or not 1970 <= int(m.group(1)) <= 9998:
            raise ReportInputError(f"quarter must be YYYY-Qn (e.g. 2026-Q4), got {text!r}")
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def containing(cls, ts_ms: int) -> Quarter:
        dt = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
        return cls(dt.year, (dt.month - 1) // 3 + 1)

    @classmethod
    def previous(cls, ts_ms: int) -> Quarter:
        """The last quarter that has ended at `ts_ms` (what a schedule reports on)."""
        return cls.containing(ts_ms).shifted(-1)

    def shifted(self, quarters: int) -> Quarter:
        index = self.year * 4 + self.number - 1 + quarters
        return Quarter(index // 4, index % 4 + 1)

    @property
    def label(self) -> str:
        return f"{self.year}-Q{self.number}"

    @property
    def start_ms(self) -> int:
        return _ms(self.year, 3 * self.number - 2)

    @property
    def end_ms(self) -> int:
        nxt = self.shifted(1)
        return _ms(nxt.year, 3 * nxt.number - 2)

    @property
    def months(self) -> tuple[str, str, str]:
        """The three `YYYY-MM` months (TicketService.kpis takes one at a time)."""
        first = 3 * self.number - 2
        return (
            f"{self.year}-{first:02d}",
            f"{self.year}-{first + 1:02d}",
            f"{self.year}-{first + 2:02d}",
        )

    def __str__(self) -> str:
        return self.label
