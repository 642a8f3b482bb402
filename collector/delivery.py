"""Seq accounting per stream: which snapshots were stored, which are missing, which twice.

An agent numbers its snapshots per screen (`seq`, strictly increasing, surviving agent
restarts), so a stream (site, screen, agent) is complete when every seq between the
first and the newest seen has arrived. Pure bookkeeping, no I/O; the service records a
seq once its snapshot's points are stored (a refused write leaves it missing).

```
 first              last          received = (last - first + 1) - missing
   |##########.....#####..#######|
              └gap┘     └gap┘     gaps: sorted, disjoint [lo, hi], inclusive
```
* A seq above `last` extends the range (a jump opens a gap); a seq inside a gap fills
  it (out of order, not a loss); a seq below `first` is a late delivery of an old
  message (seq never restarts), so the range grows down and the hole between opens a gap;
  anything else was seen already: a duplicate (an at-least-once re-delivery).
* Memory per stream is O(open gaps), capped at `max_gaps`: past the cap the oldest gap
  is forgotten. Its seqs stay counted as missing (`forgotten`); one of them arriving
  later is then counted as a duplicate, since it can no longer be told apart.
* The view is one collector process's: with several collectors in a share group each
  sees a share of every stream, so the others' shares look like gaps. The stored `seq`
  field (`controller` measurement) is the whole picture there.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

StreamKey = tuple[str, str, str]  # (site, screen, agent)
StreamSeq = tuple[str, str, str, int]  # (site, screen, agent, seq) of one snapshot

DEFAULT_MAX_GAPS = 1000
DEFAULT_MAX_STREAMS = 100_000
REPORT_GAPS = 20


class Outcome(StrEnum):
    FIRST = "first"  # the stream's first seq
    NEXT = "next"  # last + 1
    JUMP = "jump"  # above last + 1: opened a gap
    FILL = "fill"  # inside a gap: late, not lost
    LATE = "late"  # below first: an old message delivered late
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class StreamReport:
    """One stream's state; `gaps` holds at most the first `REPORT_GAPS` open gaps."""

    site: str
    screen: str
    agent: str
    first: int
    last: int
    expected: int
    received: int
    missing: int
    open_gaps: int
    gaps: tuple[tuple[int, int], ...]
    duplicates: int
    out_of_order: int
    forgotten_gaps: int


@dataclass(frozen=True, slots=True)
class DeliveryTotals:
    streams: int = 0
    gaps: int = 0  # open gaps, all streams
    missing: int = 0  # seqs missing, all streams (forgotten ones included)
    duplicates: int = 0
    out_of_order: int = 0
    forgotten_gaps: int = 0  # gaps dropped by the per-stream cap
    untracked: int = 0  # seqs of streams beyond the stream cap


class SeqStream:
    """The received seqs of one stream as a range minus gaps (see the module docstring)."""

    __slots__ = (
        "_gap_hi",
        "_gap_lo",
        "_missing",
        "duplicates",
        "first",
        "forgotten",
        "forgotten_gaps",
        "last",
        "max_gaps",
        "out_of_order",
    )

    def __init__(self, max_gaps: int = DEFAULT_MAX_GAPS) -> None:
        if max_gaps < 1:
            raise ValueError("max_gaps must be at least 1")
        self.max_gaps = max_gaps
        self.first: int | None = None
        self.last: int | None = None
        # Parallel sorted lists: bisect on plain ints, no tuple allocation per look-up.
        self._gap_lo: list[int] = []
        self._gap_hi: list[int] = []
        self._missing = 0  # seqs inside the tracked gaps
        self.forgotten = 0  # seqs of gaps dropped by the cap (still missing)
        self.forgotten_gaps = 0
        self.duplicates = 0
        self.out_of_order = 0

    # -- reading ----------------------------------------------------------------------------
    @property
    def missing(self) -> int:
        return self._missing + self.forgotten

    @property
    def open_gaps(self) -> int:
        return len(self._gap_lo)

    @property
    def expected(self) -> int:
        return 0 if self.first is None or self.last is None else self.last - self.first + 1

    @property
    def received(self) -> int:
        """Distinct seqs received (duplicates not counted)."""
        return self.expected - self.missing

    def gaps(self, limit: int | None = None) -> list[tuple[int, int]]:
        n = len(self._gap_lo) if limit is None else min(limit, len(self._gap_lo))
        return [(self._gap_lo[i], self._gap_hi[i]) for i in range(n)]

    # -- recording --------------------------------------------------------------------------
    def add(self, seq: int) -> Outcome:
        first, last = self.first, self.last
        if first is None or last is None:
            self.first = self.last = seq
            return Outcome.FIRST
        if seq > last:
            self.last = seq
            if seq == last + 1:
                return Outcome.NEXT
            self._open(len(self._gap_lo), last + 1, seq - 1)
            return Outcome.JUMP
        if seq < first:
            self.first = seq
            self.out_of_order += 1
            if seq < first - 1:
                self._open(0, seq + 1, first - 1)
            return Outcome.LATE
        i = bisect.bisect_right(self._gap_lo, seq) - 1
        if i < 0 or self._gap_hi[i] < seq:
            self.duplicates += 1
            return Outcome.DUPLICATE
        self._fill(i, seq)
        self.out_of_order += 1
        return Outcome.FILL

    def _open(self, index: int, lo: int, hi: int) -> None:
        self._gap_lo.insert(index, lo)
        self._gap_hi.insert(index, hi)
        self._missing += hi - lo + 1
        self._cap()

    def _cap(self) -> None:
        if len(self._gap_lo) > self.max_gaps:
            # Forget the oldest gap: the newest ones are the likeliest to still fill in.
            size = self._gap_hi.pop(0) - self._gap_lo.pop(0) + 1
            self._missing -= size
            self.forgotten += size
            self.forgotten_gaps += 1

    def _fill(self, i: int, seq: int) -> None:
        lo, hi = self._gap_lo[i], self._gap_hi[i]
        self._missing -= 1
        if lo == hi:
            del self._gap_lo[i], self._gap_hi[i]
        elif seq == lo:
            self._gap_lo[i] = lo + 1
        elif seq == hi:
            self._gap_hi[i] = hi - 1
        else:  # split in two; the count of gaps grows by one
            self._gap_hi[i] = seq - 1
            self._gap_lo.insert(i + 1, seq + 1)
            self._gap_hi.insert(i + 1, hi)
            self._cap()


class DeliveryTracker:
    """All streams of one collector process; thread-safe (writer thread records, the API
    and the metrics endpoint read)."""

    def __init__(
        self, max_gaps: int = DEFAULT_MAX_GAPS, max_streams: int = DEFAULT_MAX_STREAMS
    ) -> None:
        self.max_gaps = max_gaps
        self.max_streams = max_streams
        self._streams: dict[StreamKey, SeqStream] = {}
        self._untracked = 0
        self._lock = threading.Lock()

    def record(self, site: str, screen: str, agent: str, seq: int) -> Outcome | None:
        """Record one stored seq; None when the stream cap leaves it untracked."""
        with self._lock:
            return self._record((site, screen, agent), seq)

    def record_seqs(self, seqs: Iterable[StreamSeq]) -> None:
        """Record (site, screen, agent, seq) of stored telemetry (one lock for a batch)."""
        with self._lock:
            for site, screen, agent, seq in seqs:
                self._record((site, screen, agent), int(seq))

    def _record(self, key: StreamKey, seq: int) -> Outcome | None:
        stream = self._streams.get(key)
        if stream is None:
            if len(self._streams) >= self.max_streams:
                self._untracked += 1
                return None
            stream = self._streams[key] = SeqStream(self.max_gaps)
        return stream.add(seq)

    def totals(self) -> DeliveryTotals:
        with self._lock:
            streams = list(self._streams.values())
            untracked = self._untracked
        return DeliveryTotals(
            streams=len(streams),
            gaps=sum(s.open_gaps for s in streams),
            missing=sum(s.missing for s in streams),
            duplicates=sum(s.duplicates for s in streams),
            out_of_order=sum(s.out_of_order for s in streams),
            forgotten_gaps=sum(s.forgotten_gaps for s in streams),
            untracked=untracked,
        )

    def streams(
        self,
        site: str | None = None,
        screen: str | None = None,
        missing_only: bool = False,
        gap_limit: int = REPORT_GAPS,
    ) -> list[StreamReport]:
        """Reports sorted by (site, screen, agent), optionally filtered."""
        out: list[StreamReport] = []
        with self._lock:
            for (s_site, s_screen, s_agent), st in sorted(self._streams.items()):
                if site is not None and s_site != site:
                    continue
                if screen is not None and s_screen != screen:
                    continue
                if missing_only and st.missing == 0:
                    continue
                assert st.first is not None and st.last is not None
                out.append(
                    StreamReport(
                        site=s_site,
                        screen=s_screen,
                        agent=s_agent,
                        first=st.first,
                        last=st.last,
                        expected=st.expected,
                        received=st.received,
                        missing=st.missing,
                        open_gaps=st.open_gaps,
                        gaps=tuple(st.gaps(gap_limit)),
                        duplicates=st.duplicates,
                        out_of_order=st.out_of_order,
                        forgotten_gaps=st.forgotten_gaps,
                    )
                )
        return out
