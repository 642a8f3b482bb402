"""Warranty arithmetic (pure): acceptance date, product-fault downtime, restarts.

Rules (DOMAIN.md, each figure a contract term):
- the warranty runs `warranty_months` from the acceptance date (00:00 UTC);
- a product-fault downtime that starts inside the warranty extends its end by its length;
- when the downtime accumulated since the last (re)start passes
  `warranty_restart_downtime_days`, the warranty starts again at the end of the downtime
  that crossed the threshold, and the accumulator resets.
Downtime that starts after the warranty ended changes nothing (service is then at cost).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from collector.tickets.contracts import MS_PER_DAY, ContractTerms, add_months_ms, date_ms


@dataclass(frozen=True, slots=True)
class Warranty:
    start_ms: int  # acceptance, or the last restart
    end_ms: int
    extension_ms: int  # downtime added since start_ms
    restarts: int
    downtime_ms: int  # product-fault downtime accumulated since start_ms

    def covers(self, ts_ms: int) -> bool:
        return ts_ms < self.end_ms


def warranty_status(
    terms: ContractTerms, downtimes: Iterable[tuple[int, int]], now_ms: int
) -> Warranty | None:
    """The warranty as of `now_ms`; None when the contract names no acceptance date.

    `downtimes` are finished product-fault downtimes (start_ms, end_ms) of one screen;
    those ending after `now_ms` are ignored (not known yet at that time).
    """
    if terms.acceptance_date is None:
        return None
    start = date_ms(terms.acceptance_date)
    end = add_months_ms(start, terms.warranty_months)
    threshold = terms.warranty_restart_downtime_days * MS_PER_DAY
    accumulated = extension = restarts = 0
    for down_start, down_end in sorted(downtimes):
        if down_end > now_ms or down_end <= down_start or down_start < start:
            continue
        if down_start >= end:
            continue
        length = down_end - down_start
        accumulated += length
        if accumulated > threshold:
            start, restarts = down_end, restarts + 1
            end = add_months_ms(start, terms.warranty_months)
            accumulated = extension = 0
        else:
            extension += length
            end += length
    return Warranty(start, end, extension, restarts, accumulated)
