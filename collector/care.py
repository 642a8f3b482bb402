"""Proactive care, the collector's background job: one call does every care duty due.

```
run_care_jobs(tickets, settings, now_ms, screens=live directory, source=report source)
  1. installed base   every live screen's latest snapshot -> `components`
                      (at most once per screen per [care] inventory_interval_min)
  2. tasks            follow-ups and inspections from each acceptance date (tasks.py)
  3. notifications    task_due / task_overdue through the outbox ([care] task_priority)
  4. reports          the last quarter's inspection reports still missing, at most
                      [reports] max_per_call per call, each recorded on its inspection
                      task and announced (report_ready) to the screen's route
```
It runs off the ingest thread (rendering a PDF takes a second or two) and never raises
for one failing duty: each failure is logged, named in `CareSummary.errors`, and tried
again on the next call. Notifications are outbox rows, so the sender delivers them with
the same at-least-once guarantees as ticket changes (docs/notifications.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from collector.settings import CollectorSettings
from collector.state import ScreenDirectory
from collector.tickets.contracts import MS_PER_DAY
from collector.tickets.service import TicketService

if TYPE_CHECKING:
    from collector.reports.schedule import GeneratedReport
    from collector.reports.source import ReportSource

log = logging.getLogger(__name__)
# The last error per duty: a failure that repeats every run (an unwritable report folder)
# is one traceback, then a line per run.
_last_errors: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class CareSummary:
    """What one run did (for the log line and /health)."""

    inventory_recorded: int = 0
    tasks_created: int = 0
    due_notified: int = 0
    overdue_notified: int = 0
    reports: tuple[GeneratedReport, ...] = ()
    errors: tuple[str, ...] = field(default=())

    def line(self) -> str:
        text = (f"care: inventory {self.inventory_recorded}, tasks +{self.tasks_created}, "
                f"notified {self.due_notified} due / {self.overdue_notified} overdue, "
                f"reports {len(self.reports)}")
        return text + (f", {len(self.errors)} failed" if self.errors else "")


def run_care_jobs(
    tickets: TicketService,
    settings: CollectorSettings,
    now_ms: int | None = None,
    *,
    screens: ScreenDirectory | None = None,
    source: ReportSource | None = None,
) -> CareSummary:
    """Do the care duties due at `now_ms` (default: the ticket service's clock).

    `screens`: the live directory (latest snapshots: installed base, screens seen);
    `source`: where reports read history (default `ReportSource.from_settings`).
    """
    care = settings.care
    now = tickets.now_ms() if now_ms is None else now_ms
    if not care.enabled:
        return CareSummary()
    errors: list[str] = []
    live = screens.list() if screens is not None else []
    seen = {(s.site, s.screen) for s in live}

    def attempt(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:  # one duty failing must not stop the others
            error = f"{what}: {type(exc).__name__}: {exc}"
            if _last_errors.get(what) == error:
                log.warning("care job: %s (again)", error)
            else:
                log.exception("care job: %s failed", what)
            _last_errors[what] = error
            errors.append(error)
            return None
        _last_errors.pop(what, None)
        return result

    recorded = 0
    every_ms = round(care.inventory_interval_min * 60_000)
    stale_ms = round(care.inventory_stale_days * MS_PER_DAY)
    for state in live:
        done = attempt(f"inventory of {state.site}/{state.screen}", tickets.observe_inventory,
                       state.snapshot, now, every_ms=every_ms, stale_ms=stale_ms)
        recorded += bool(done)
    created = attempt("scheduling tasks", tickets.schedule_tasks, now, seen) or []
    counts = attempt("notifying tasks", tickets.notify_tasks, now, priority=care.task_priority,
                     notice_ms=round(care.task_notice_days * MS_PER_DAY)) or (0, 0)
    reports: list[GeneratedReport] = []
    if settings.reports.enabled:
        from collector.reports.schedule import generate_due
        from collector.reports.source import ReportSource

        src = source if source is not None else ReportSource.from_settings(settings)
        reports = attempt("inspection reports", generate_due, tickets, src, settings.reports,
                          seen=seen, contracts=settings.contracts,
                          priority=care.task_priority) or []
    summary = CareSummary(recorded, len(created), counts[0], counts[1], tuple(reports),
                          tuple(errors))
    if created or any(counts) or reports or errors:
        log.info("%s", summary.line())
    return summary
