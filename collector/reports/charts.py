"""History charts as inline SVG (matplotlib's object API: no pyplot, no display).

A screen may have hundreds of cabinets, so a chart shows the spread of all of them
(band from the lowest to the highest, the median line) and draws only the cabinets or
PSUs the report flags as their own lines: a readable picture at any screen size.
"""

from __future__ import annotations

import io
import re
import statistics
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from matplotlib import dates as mdates
from matplotlib import rc_context
from matplotlib.figure import Figure

from collector.reports.history import Daily

HIGHLIGHT_MAX: Final = 4
_COLOURS: Final = ("#c0392b", "#d68910", "#7d3c98", "#1f618d")
_BAND: Final = "#aed6f1"
_MEDIAN: Final = "#2e86c1"
# API requests render in worker threads and rc_context changes process-wide settings.
_LOCK: Final = threading.Lock()
_STYLE: Final[Any] = {  # rc_context wants its literal key type; these are checked keys
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "svg.fonttype": "none",  # text stays text: small files, selectable in the PDF
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e5e8e8",
    "grid.linewidth": 0.6,
}


def _x(ts_ms: int) -> float:
    """Matplotlib's date number of an epoch-ms day start."""
    return float(mdates.date2num(datetime.fromtimestamp(ts_ms / 1000, tz=UTC)))


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    # Inline in HTML: drop the XML prolog and DOCTYPE, keep the <svg> element.
    return text[text.index("<svg"):]


def daily_chart(
    series: Mapping[str, Daily],
    highlight: Iterable[str],
    ylabel: str,
    limit: float | None = None,
    limit_label: str = "",
) -> str:
    """Daily values of many elements: min-max band, median, flagged elements as lines."""
    days = sorted({d for s in series.values() for d in s.days_ms})
    by_day: dict[int, list[float]] = {d: [] for d in days}
    for s in series.values():
        for d, v in zip(s.days_ms, s.values, strict=True):
            by_day[d].append(v)
    x = [_x(d) for d in days]
    with _LOCK, rc_context(_STYLE):
        fig = Figure(figsize=(7.0, 2.4), dpi=100)
        ax = fig.subplots()
        lows = [min(by_day[d]) for d in days]
        highs = [max(by_day[d]) for d in days]
        ax.fill_between(x, lows, highs, color=_BAND, alpha=0.6, linewidth=0,
                        label=f"all {len(series)} (min–max)", step=None)
        ax.plot(x, [statistics.median(by_day[d]) for d in days], color=_MEDIAN, linewidth=1.2,
                label="median")
        for colour, name in zip(_COLOURS, list(highlight)[:HIGHLIGHT_MAX], strict=False):
            own = series.get(name)
            if own is None:
                continue
            ax.plot([_x(d) for d in own.days_ms], own.values, color=colour, linewidth=1.4,
                    marker="o", markersize=2.5, label=name)
        if limit is not None:
            ax.axhline(limit, color="#7b7d7d", linewidth=0.8, linestyle="--",
                       label=limit_label or f"{limit:g}")
        ax.set_ylabel(ylabel)
        locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=7)
        if len(x) == 1:
            ax.set_xlim(x[0] - 0.5, x[0] + 0.5)
        svg = _svg(fig)
    return _unique_ids(svg, ylabel)


def _unique_ids(svg: str, prefix: str) -> str:
    """Two inline SVGs in one page must not share element ids (clip paths collide)."""
    tag = re.sub(r"[^a-z0-9]", "", prefix.lower())[:8] or "c"
    return re.sub(r'(id="|url\(#|href="#)([A-Za-z0-9_-]+)', rf"\1{tag}-\2", svg)
