"""Quarterly remote inspection reports per screen (DOMAIN.md "Proactive care").

`build.py` gathers the figures (ticket service + InfluxDB history) into an
`InspectionReport`, `actions.py` derives the recommended actions, `charts.py` and
`render.py` turn it into HTML and PDF, `schedule.py` writes every due report into a
folder, `cli.py` is `ledwatch report inspection`. docs/reports.md says where each
figure comes from.
"""

from collector.reports.errors import HistoryUnavailable, ReportError, UnknownScreen
from collector.reports.quarter import Quarter

__all__ = ["HistoryUnavailable", "Quarter", "ReportError", "UnknownScreen"]
