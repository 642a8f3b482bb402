"""`InspectionReport` -> HTML (Jinja2) -> PDF (WeasyPrint).

The HTML is self-contained (CSS and SVG charts inline) so the same file can be mailed,
archived or served, and WeasyPrint turns exactly that HTML into the PDF: one layout,
two formats. WeasyPrint is imported only when a PDF is asked for (it loads Pango).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import jinja2

from collector.reports import charts
from collector.reports.actions import deadline_label
from collector.reports.build import CARD_TEMP_HIGH_C, FAN_STOPPED_RPM, HOT_DELTA_C, PSU_LOW_V
from collector.reports.model import InspectionReport
from collector.tickets.contracts import MS_PER_DAY

TEMPLATES: Final = Path(__file__).parent / "templates"


@dataclass(frozen=True, slots=True)
class Pdf:
    data: bytes
    pages: int


def _dt(ts_ms: int | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if ts_ms is None:
        return "—"
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime(fmt)


def _day(ts_ms: int | None) -> str:
    return _dt(ts_ms, "%Y-%m-%d")


def _pct(value: float | None, digits: int = 2) -> str:
    return "no data" if value is None else f"{value * 100:.{digits}f} %"


def _num(value: float | None, fmt: str = ".1f", unit: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:{fmt}}" + (f" {unit}" if unit else "")


def _minutes(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 90:
        return f"{value:.0f} min"
    if value < 48 * 60:
        return f"{value / 60:.1f} h"
    return f"{value / 1440:.1f} d"


_ENV: Final = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,  # a typo in the template fails the tests, not a reader
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters.update(
    dt=_dt, day=_day, pct=_pct, num=_num, minutes=_minutes, deadline=deadline_label
)


def _charts(report: InspectionReport) -> dict[str, str]:
    h = report.history
    if h is None:
        return {}
    out: dict[str, str] = {}
    if h.card_temp_max:
        hot = sorted(
            (c for c in report.cabinets if c.delta_c is not None),
            key=lambda c: -(c.delta_c or 0.0),
        )
        flagged = [c.card for c in hot if "hot" in c.flags] or [c.card for c in hot[:1]]
        out["temperature"] = charts.daily_chart(
            h.card_temp_max, flagged, "daily max °C", CARD_TEMP_HIGH_C,
            f"{CARD_TEMP_HIGH_C:g} °C alarm"
        )
    if h.psu_vout_min:
        worst = sorted(
            (p for p in report.psus if p.flags),
            key=lambda p: (p.trend_mv_per_day if p.trend_mv_per_day is not None else 0.0),
        )
        out["psu"] = charts.daily_chart(
            h.psu_vout_min, [p.psu for p in worst], "daily min V", PSU_LOW_V,
            f"{PSU_LOW_V:g} V alarm"
        )
    return out


def render_html(report: InspectionReport) -> str:
    """The report as one self-contained HTML page."""
    template = _ENV.get_template("inspection.html")
    context: dict[str, Any] = {
        "r": report,
        "charts": _charts(report),
        "css": (TEMPLATES / "report.css").read_text("utf-8"),
        "fan_stopped_rpm": FAN_STOPPED_RPM,
        "hot_delta_c": HOT_DELTA_C,
        "psu_low_v": PSU_LOW_V,
        "day_ms": MS_PER_DAY,
        "flagged_cabinets": [c for c in report.cabinets if c.flags or c.open_faults],
        "flagged_psus": [p for p in report.psus if p.flags],
    }
    return template.render(context)


def render_pdf(html: str) -> Pdf:
    """The HTML laid out on A4 pages by WeasyPrint."""
    import weasyprint

    document = weasyprint.HTML(string=html, base_url=str(TEMPLATES)).render()
    return Pdf(document.write_pdf(), len(document.pages))
