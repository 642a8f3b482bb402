"""Quarterly reports on schedule: every due screen's report written into a folder.

`generate_due` is meant to be called from the collector's care job (collector/care.py,
every minute is fine): it reports on the quarter that has just ended, skips every
report already on disk, and writes at most `max_per_call` per call, so a fleet's reports
are spread over a few calls instead of stopping ingest for minutes. Files are written to
a temporary name and renamed, so a crash never leaves a half report that would count as
done. Each report is recorded on the screen's inspection task and announced to its
notification route (`report_ready`, with the summary line) before its files are
published.

Layout: `<folder>/<quarter>/<site>/<screen>.pdf` (and `.html`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector.detect.findings import AGENT_SCREEN
from collector.reports.build import build_report
from collector.reports.model import InspectionReport
from collector.reports.quarter import Quarter
from collector.reports.render import render_html, render_pdf
from collector.reports.settings import Format, ReportSettings
from collector.reports.source import ReportSource, contract_screens
from collector.tickets.contracts import date_ms
from collector.tickets.service import TicketService
from collector.tickets.tasks import Task

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GeneratedReport:
    site: str
    screen: str
    quarter: str
    paths: tuple[Path, ...]
    summary: str  # one line for the notification routes


def summary_line(r: InspectionReport) -> str:
    """`acme/main 2026-Q4: availability 99.95 %, 3 incidents (1 SLA breach), ...`."""
    breaches = r.sla.response_breached + r.sla.onsite_breached + r.sla.resolve_breached
    avail = "no data" if r.availability_screen is None else f"{r.availability_screen:.2%}"
    parts = [
        f"availability {avail.replace('%', ' %')}",
        f"{len(r.incidents)} incident{'s' if len(r.incidents) != 1 else ''}"
        f" ({breaches} SLA breach{'es' if breaches != 1 else ''})",
        f"{len(r.predictions)} predicted failure{'s' if len(r.predictions) != 1 else ''}",
        f"{len(r.actions)} recommended action{'s' if len(r.actions) != 1 else ''}",
    ]
    return f"{r.site}/{r.screen} {r.quarter}: " + ", ".join(parts)


def due_screens(
    svc: TicketService,
    quarter: Quarter,
    seen: Iterable[tuple[str, str]] = (),
    contracts: dict[str, Any] | None = None,
) -> list[tuple[str, str]]:
    """Screens owed a report for `quarter`: those the contracts name with an acceptance
    date before the quarter's end, and those seen (live directory, tickets) unless
    accepted after it. A screen accepted later has nothing to report on yet."""
    terms = svc.contracts.terms
    accepted = {
        (site, screen)
        for site, screen in contract_screens(contracts)
        if (day := terms(site, screen).acceptance_date) is not None
        and date_ms(day) < quarter.end_ms
    }
    out = set(accepted)
    for site, screen in set(seen) | svc.screens():
        day = terms(site, screen).acceptance_date
        if screen != AGENT_SCREEN and (day is None or date_ms(day) < quarter.end_ms):
            out.add((site, screen))
    return sorted(out)


def report_paths(folder: Path, quarter: Quarter, site: str, screen: str,
                 formats: Iterable[Format]) -> dict[Format, Path]:
    base = folder / quarter.label / site
    return {fmt: base / f"{screen}.{fmt}" for fmt in formats}


def _stage(path: Path, data: bytes) -> Path:
    """Write `data` next to `path` under a temporary name; `os.replace` publishes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    return tmp


def _inspection_task(svc: TicketService, site: str, screen: str, quarter: Quarter,
                     path: Path) -> Task | None:
    """The inspection task this report answers: the screen's earliest inspection due by
    the end of the next quarter that is still open, or that already names this report
    (a run interrupted before its files were published, done again: the same task)."""
    horizon = quarter.shifted(1).end_ms
    for task in svc.tasks(site=site, screen=screen, kind="inspection", due_before=horizon):
        if task.report == str(path) or (task.done_ms is None and task.report is None):
            return task
    return None


def _record(svc: TicketService, settings: ReportSettings, site: str, screen: str,
            quarter: Quarter, paths: tuple[Path, ...], summary: str, priority: str) -> None:
    """The report on the task (done with it when `complete_tasks`, else attached for a
    person to mark done once read) and `report_ready` to the screen's route. Both are
    idempotent, so a run repeated after a crash records nothing twice."""
    main = paths[0]
    task = _inspection_task(svc, site, screen, quarter, main)
    if task is not None and task.report != str(main):
        if settings.complete_tasks:
            task = svc.complete_task(task.id, "collector (report)",
                                     note=f"quarterly remote inspection report {quarter}",
                                     report=str(main))
        else:
            task = svc.attach_report(task.id, str(main))
    svc.notify_report(site, screen, quarter.label, summary, [str(p) for p in paths],
                      task_id=None if task is None else task.id, priority=priority)


def generate_due(
    svc: TicketService,
    source: ReportSource | None,
    settings: ReportSettings,
    quarter: Quarter | None = None,
    seen: Iterable[tuple[str, str]] = (),
    contracts: dict[str, Any] | None = None,
    priority: str = "P4",
) -> list[GeneratedReport]:
    """Write the reports of `quarter` (default: the last one ended by the service clock)
    that are not on disk yet; return what was written.

    `seen`: the live screens (ScreenDirectory); `contracts`: the raw `[contracts]` table;
    `priority`: what the notification routes see for `report_ready` (`[care]
    task_priority`). Without a router on `svc` nothing is notified.
    Raises HistoryUnavailable when InfluxDB cannot be read (nothing more is written, so
    the next call tries again).
    """
    if not settings.enabled:
        return []
    q = quarter or Quarter.previous(svc.now_ms())
    seen = set(seen)
    known = seen | contract_screens(contracts)
    written: list[GeneratedReport] = []
    for site, screen in due_screens(svc, q, seen, contracts):
        if len(written) >= settings.max_per_call:
            break
        paths = report_paths(settings.folder, q, site, screen, settings.formats)
        if all(p.exists() for p in paths.values()):
            continue
        report = build_report(svc, source, site, screen, q, known=known)
        html = render_html(report)
        staged = {}
        if "pdf" in paths:
            staged[paths["pdf"]] = _stage(paths["pdf"], render_pdf(html).data)
        if "html" in paths:
            staged[paths["html"]] = _stage(paths["html"], html.encode("utf-8"))
        done = tuple(staged)
        line = summary_line(report)
        # Task and notification first, files last: a crash in between leaves no file,
        # so the next call writes the report again and records it again (idempotent).
        _record(svc, settings, site, screen, q, done, line, priority)
        for path, tmp in staged.items():
            os.replace(tmp, path)
        written.append(GeneratedReport(site, screen, q.label, done, line))
        log.info("report written: %s", line)
    return written
