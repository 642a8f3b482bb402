"""`ledwatch report inspection --site S --screen X --quarter 2026-Q4 [--pdf F] [--html F]
--config collector.toml`, and `ledwatch report due --config F` (what the schedule writes).

Reads the collector config for the ticket database and InfluxDB; never migrates or
creates a ticket database (a wrong path must not leave an empty one behind). Every
failure is one line on stderr: exit 2 for a bad argument or config, 1 for a server
that cannot be reached.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledwatch.errors import ConfigError, LedwatchError

if TYPE_CHECKING:  # the real imports wait until the arguments are checked (fast --help)
    from collector.reports.quarter import Quarter
    from collector.reports.source import ReportSource
    from collector.settings import CollectorSettings
    from collector.tickets.service import TicketService

PROG = "ledwatch report"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse's default is usage plus the message; one line is the contract here.
        self.exit(2, f"{self.prog}: {message} (--help for the options)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Quarterly remote inspection reports (docs/reports.md).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    one = sub.add_parser("inspection", help="one screen's report for one quarter")
    one.add_argument("--site", required=True)
    one.add_argument("--screen", required=True)
    one.add_argument("--quarter", required=True, help="YYYY-Qn, e.g. 2026-Q4 (UTC quarters)")
    one.add_argument("--pdf", type=Path, help="write the PDF here")
    one.add_argument("--html", type=Path, help="write the HTML here")
    one.add_argument("--config", "-c", type=Path, required=True, help="collector TOML file")
    due = sub.add_parser("due", help="write every due report into [reports] folder")
    due.add_argument("--quarter", help="YYYY-Qn (default: the last quarter that ended)")
    due.add_argument("--folder", type=Path, help="write here instead of [reports] folder")
    due.add_argument("--config", "-c", type=Path, required=True, help="collector TOML file")
    return p


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return code


def _open_tickets(url: str, contracts: dict[str, Any]) -> TicketService:
    from collector.tickets.service import TicketService

    if url.startswith("sqlite:///") and ":memory:" not in url:
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            raise ConfigError(f"database.url: no ticket database at {str(path)!r}")
    # auto_upgrade off: a report reads; migrating is `ledwatch collector db upgrade`.
    return TicketService(url, contracts, auto_upgrade=False)


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # --help (0) or a bad argument (2): a code, not an exit
        return int(exc.code or 0)
    from collector.reports.errors import HistoryUnavailable, ReportError
    from collector.reports.quarter import Quarter
    from collector.settings import load_settings

    try:
        quarter = None if args.quarter is None else Quarter.parse(args.quarter)
        if args.command == "inspection":
            from ledwatch.contract import check_id

            check_id(args.site, "--site")
            check_id(args.screen, "--screen")
    except LedwatchError as exc:
        return _fail(str(exc), 2)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        return _fail(f"{args.config}: {exc}", 2)
    from collector.reports.source import ReportSource

    try:
        source = ReportSource.from_settings(settings)
        svc = _open_tickets(settings.database.url, settings.contracts)
    except ConfigError as exc:
        # A database server that does not answer is "unreachable", not a bad argument.
        code = 1 if "cannot open the ticket database" in str(exc) else 2
        return _fail(str(exc), code)
    try:
        if args.command == "due":
            return _due(svc, source, settings, quarter, args.folder)
        if quarter is None:  # argparse requires it for `inspection`
            return _fail("--quarter is required", 2)
        return _inspection(svc, source, args, quarter)
    except HistoryUnavailable as exc:
        return _fail(str(exc), 1)
    except (ReportError, LedwatchError) as exc:
        return _fail(str(exc), 2)
    except OSError as exc:
        return _fail(f"cannot write {exc.filename}: {exc.strerror}", 1)
    finally:
        svc.close()


def _inspection(
    svc: TicketService, source: ReportSource, args: argparse.Namespace, quarter: Quarter
) -> int:
    from collector.reports.build import build_report
    from collector.reports.render import render_html, render_pdf
    from collector.reports.schedule import summary_line

    report = build_report(svc, source, args.site, args.screen, quarter)
    html = render_html(report)
    pdf_path, html_path = args.pdf, args.html
    if pdf_path is None and html_path is None:
        pdf_path = Path(f"inspection-{args.site}-{args.screen}-{quarter}.pdf")
    if html_path is not None:
        html_path.write_text(html, "utf-8")
        print(f"wrote {html_path}")
    if pdf_path is not None:
        pdf = render_pdf(html)
        pdf_path.write_bytes(pdf.data)
        print(f"wrote {pdf_path} ({pdf.pages} page{'s' if pdf.pages != 1 else ''})")
    print(summary_line(report))
    return 0


def _due(
    svc: TicketService, source: ReportSource, settings: CollectorSettings,
    quarter: Quarter | None, folder: Path | None,
) -> int:
    from collector.reports.schedule import ReportSettings, generate_due

    # `[reports]` once the lead adds ReportSettings to CollectorSettings; defaults until then.
    report_settings: ReportSettings = getattr(settings, "reports", None) or ReportSettings()
    # From the command line, write them all: the per-call cap protects the collector.
    update: dict[str, Any] = {"max_per_call": 10_000, "enabled": True}
    if folder is not None:
        update["folder"] = folder
    everything = report_settings.model_copy(update=update)
    written = generate_due(svc, source, everything, quarter, contracts=settings.contracts)
    for item in written:
        print(f"{item.summary} -> {', '.join(str(p) for p in item.paths)}")
    print(f"{len(written)} report{'s' if len(written) != 1 else ''} written")
    return 0
