"""A screen's telemetry history from InfluxDB (InfluxQL), aggregated for the report.

Aggregation happens in InfluxDB (`GROUP BY time(1d), card`), so a quarter of a
200-cabinet screen comes back as ~18,000 daily rows per reading, not millions of points.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from collector.reports.source import InfluxQL

MS_PER_DAY: Final = 86_400_000
TREND_BUCKET: Final = "6h"  # PSU trend: mean per 6 h (a daily cycle averages out over days)
MIN_TREND_SPAN_MS: Final = 12 * 3_600_000


@dataclass(frozen=True, slots=True)
class Daily:
    """One element's daily aggregate (day start ms, value), days without data left out."""

    days_ms: tuple[int, ...]
    values: tuple[float, ...]

    @property
    def peak(self) -> float:
        return max(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def last(self) -> float:
        return self.values[-1]


@dataclass(frozen=True, slots=True)
class Forecast:
    """The newest failure forecast detection wrote to a PSU's series in the period."""

    ts_ms: int
    predicted_failure_ms: int
    slope_v_per_h: float | None


@dataclass(frozen=True)
class History:
    card_temp_max: dict[str, Daily] = field(default_factory=dict)
    card_temp_mean: dict[str, float] = field(default_factory=dict)
    card_fan_min: dict[str, Daily] = field(default_factory=dict)
    card_module_faults: dict[str, Daily] = field(default_factory=dict)  # daily max
    psu_vout_min: dict[str, Daily] = field(default_factory=dict)
    psu_trend_v_per_day: dict[str, float] = field(default_factory=dict)
    psu_fan_min: dict[str, Daily] = field(default_factory=dict)
    psu_forecasts: dict[str, Forecast] = field(default_factory=dict)
    data_days: tuple[int, ...] = ()  # day starts with at least one snapshot
    last_ms: int | None = None  # the newest snapshot in the period

    @property
    def cards(self) -> list[str]:
        ids = set(self.card_temp_max) | set(self.card_fan_min) | set(self.card_module_faults)
        return sorted(ids, key=natural_key)

    @property
    def psus(self) -> list[str]:
        ids = set(self.psu_vout_min) | set(self.psu_fan_min) | set(self.psu_forecasts)
        return sorted(ids, key=natural_key)


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort "c2" before "c10": ids are numbered cabinets and PSUs."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _where(site: str, screen: str, start_ms: int | None = None, end_ms: int | None = None) -> str:
    cond = f"site = {_literal(site)} AND screen = {_literal(screen)}"
    if start_ms is not None and end_ms is not None:
        cond += f" AND time >= {int(start_ms)}ms AND time < {int(end_ms)}ms"
    return cond


def seen(query: InfluxQL, site: str, screen: str) -> bool:
    """Whether InfluxDB ever stored a snapshot of the screen (each has a controller point)."""
    return bool(query(f'SELECT last("seq") FROM "controller" WHERE {_where(site, screen)}'))


def _daily(query: InfluxQL, statement: str, tag: str) -> dict[str, Daily]:
    out: dict[str, Daily] = {}
    for s in query(statement):
        rows = [(int(r[0]), float(r[1])) for r in s.values if r[1] is not None]
        if rows:
            out[s.tags.get(tag, "")] = Daily(tuple(r[0] for r in rows), tuple(r[1] for r in rows))
    return out


def _slope_per_day(rows: list[tuple[int, float]]) -> float | None:
    """Least-squares slope (V/day) of bucket means; None on too little data to say."""
    if len(rows) < 4 or rows[-1][0] - rows[0][0] < MIN_TREND_SPAN_MS:
        return None
    t = np.array([r[0] for r in rows], dtype=float) / MS_PER_DAY
    v = np.array([r[1] for r in rows], dtype=float)
    slope = float(np.polyfit(t - t[0], v, 1)[0])
    return slope


def fetch_history(
    query: InfluxQL, site: str, screen: str, start_ms: int, end_ms: int
) -> History:
    """Every aggregate the report shows for [start_ms, end_ms); raises HistoryUnavailable."""
    where = _where(site, screen, start_ms, end_ms)
    per_day = "GROUP BY time(1d), {tag} fill(none)"

    def daily(measurement: str, agg: str, fieldname: str, tag: str) -> dict[str, Daily]:
        statement = (
            f'SELECT {agg}("{fieldname}") FROM "{measurement}" WHERE {where} '
            + per_day.format(tag=f'"{tag}"')
        )
        return _daily(query, statement, tag)

    card_temp_mean: dict[str, float] = {}
    for s in query(f'SELECT mean("temp_c") FROM "card" WHERE {where} GROUP BY "card"'):
        if s.values and s.values[0][1] is not None:
            card_temp_mean[s.tags.get("card", "")] = float(s.values[0][1])

    trends: dict[str, float] = {}
    trend_q = (
        f'SELECT mean("vout_v") FROM "psu" WHERE {where} '
        f'GROUP BY time({TREND_BUCKET}), "psu" fill(none)'
    )
    for s in query(trend_q):
        slope = _slope_per_day([(int(r[0]), float(r[1])) for r in s.values if r[1] is not None])
        if slope is not None:
            trends[s.tags.get("psu", "")] = slope

    forecasts: dict[str, Forecast] = {}
    forecast_q = (
        f'SELECT "predicted_failure_ms", "vout_slope_v_per_h" FROM "psu" WHERE {where} '
        'AND "predicted_failure_ms" > 0 GROUP BY "psu" ORDER BY time DESC LIMIT 1'
    )
    for s in query(forecast_q):
        if not s.values:
            continue
        row = dict(zip(s.columns, s.values[0], strict=False))
        slope = row.get("vout_slope_v_per_h")
        forecasts[s.tags.get("psu", "")] = Forecast(
            int(row["time"]),
            int(row["predicted_failure_ms"]),
            None if slope is None else float(slope),
        )

    days: list[int] = []
    for s in query(f'SELECT count("seq") FROM "controller" WHERE {where} GROUP BY time(1d) '
                   "fill(none)"):
        days += [int(r[0]) for r in s.values if r[1]]
    last = query(f'SELECT last("seq") FROM "controller" WHERE {where}')
    last_ms = int(last[0].values[0][0]) if last and last[0].values else None

    return History(
        card_temp_max=daily("card", "max", "temp_c", "card"),
        card_temp_mean=card_temp_mean,
        card_fan_min=daily("card", "min", "fan_rpm", "card"),
        card_module_faults=daily("card", "max", "module_faults", "card"),
        psu_vout_min=daily("psu", "min", "vout_v", "psu"),
        psu_trend_v_per_day=trends,
        psu_fan_min=daily("psu", "min", "fan_rpm", "psu"),
        psu_forecasts=forecasts,
        data_days=tuple(sorted(days)),
        last_ms=last_ms,
    )
