"""Pure arithmetic of the fleet benchmark: percentiles, the live-rate search, the verdict
"does the collector hold this rate", and reading Prometheus text. No I/O here."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks
    (numpy's default "linear" method): p50 of [1, 2, 3, 4] is 2.5, p99 of 100 values is
    0.01 of the way from the 99th to the 100th smallest."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} is not within 0..100")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def median(values: Iterable[float]) -> float | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(vals) if vals else None


@dataclass
class RateSearch:
    """The highest rate that holds: double from `start` until a rate fails (or `max_rate`
    held), then bisect between the best held and the lowest failed until they are within
    `precision` (relative) of each other, or `max_probes` were spent.

    Call `next_rate()`, run that rate, `record(rate, held)`; `next_rate()` returns None
    when done, and `best` is the highest rate that held (None if none did).
    """

    start: float
    max_rate: float
    min_rate: float = 1.0
    precision: float = 0.1
    max_probes: int = 8
    best: float | None = None
    failed: float | None = None
    probes: list[tuple[float, bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0 < self.min_rate <= self.start <= self.max_rate:
            raise ValueError("need 0 < min_rate <= start <= max_rate")

    def next_rate(self) -> float | None:
        if len(self.probes) >= self.max_probes:
            return None
        if self.best is None and self.failed is None:
            return self.start
        if self.failed is None:  # everything held so far: double, up to max_rate
            assert self.best is not None
            if self.best >= self.max_rate:
                return None
            return min(self.best * 2, self.max_rate)
        if self.best is None:  # everything failed so far: halve, down to min_rate
            if self.failed <= self.min_rate:
                return None
            return max(self.failed / 2, self.min_rate)
        if self.failed <= self.best * (1 + self.precision):
            return None
        return (self.best + self.failed) / 2

    def record(self, rate: float, held: bool) -> None:
        """A probe's verdict. A held rate at or above a failed one counts as luck: `best`
        is the highest held rate below the lowest failed one."""
        self.probes.append((rate, held))
        failures = [r for r, ok in self.probes if not ok]
        self.failed = min(failures) if failures else None
        held_ok = [r for r, ok in self.probes if ok and (self.failed is None or r < self.failed)]
        self.best = max(held_ok) if held_ok else None


@dataclass(frozen=True)
class HoldVerdict:
    held: bool
    lag_end: float  # messages published but not stored at the end of the step
    growth_per_s: float  # least-squares slope of that lag over the judged part
    bound: float
    why: str


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (t, y) points; 0 for fewer than two distinct t."""
    if len(points) < 2:
        return 0.0
    mt = sum(t for t, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mt) * (y - my) for t, y in points) / var


def judge_hold(
    samples: Sequence[tuple[float, float]],
    rate: float,
    *,
    warmup: float = 0.25,
    lag_s: float = 2.0,
    min_bound: float = 50.0,
    max_growth: float = 0.03,
) -> HoldVerdict:
    """Did a paced step at `rate` messages/s hold? `samples` are (seconds since the step
    started, lag = published - stored) for the whole step.

    Held means the backlog stays bounded: after the first `warmup` share of the step,
    the lag at the end is at most `lag_s` seconds of traffic (or `min_bound` messages,
    what a batch and the in-flight window hold anyway), and it does not grow by more
    than `max_growth` x rate per second (a collector that falls 3 % behind would pile
    up a backlog without end).
    """
    if not samples:
        return HoldVerdict(False, math.inf, math.inf, 0.0, "no samples")
    t_end = samples[-1][0]
    judged = [(t, y) for t, y in samples if t >= t_end * warmup] or list(samples[-1:])
    bound = max(lag_s * rate, min_bound)
    lag_end = judged[-1][1]
    growth = slope(judged)
    if lag_end > bound:
        return HoldVerdict(False, lag_end, growth, bound,
                           f"backlog {lag_end:.0f} at the end > {bound:.0f}")  # fmt: skip
    if growth > max_growth * rate and lag_end > min_bound / 2:
        return HoldVerdict(False, lag_end, growth, bound,
                           f"backlog grows {growth:.1f}/s > {max_growth * rate:.1f}/s")
    return HoldVerdict(True, lag_end, growth, bound, "bounded")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format -> {"name{labels}": value} (labels as written)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        if not name:
            continue
        try:
            out[name.strip()] = float(value)
        except ValueError:
            continue
    return out


def metric_sum(metrics: dict[str, float], name: str, labels: str | None = None) -> float:
    """Sum of every sample of metric `name` (all label sets, or the one containing
    `labels`, e.g. 'kind="telemetry"')."""
    total = 0.0
    for key, value in metrics.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        if labels is None or labels in rest:
            total += value
    return total
