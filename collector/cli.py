"""`ledwatch collector --config collector.toml [--check-config]`.

Starts the collector service, the ticket service and the REST API in one process, logs
a one-line status every `status_interval_s`, and stops cleanly (store, ack, disconnect)
on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from collector.settings import CollectorSettings, load_settings
from ledwatch import compiled
from ledwatch.errors import ConfigError, LedwatchError
from ledwatch.signals import set_from_handler

log = logging.getLogger("collector")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ledwatch collector",
        description="Store agent telemetry, detect faults, run service tickets and the API.",
        epilog="`ledwatch collector db upgrade --config FILE` migrates the ticket database.",
    )
    p.add_argument("--config", "-c", type=Path, required=True, help="collector TOML file")
    p.add_argument(
        "--check-config", action="store_true", help="validate the file (and secrets) and exit"
    )
    return p


def _ensure_sqlite_dir(url: str) -> None:
    # SQLite creates the file but not its folder; a fresh install has neither.
    if url.startswith("sqlite:///") and ":memory:" not in url:
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def check_folders(settings: CollectorSettings, create: bool) -> None:
    """Every folder the collector writes, checked at start with a message naming the key
    (a traceback from deep inside SQLite or the report writer helps nobody). The reports
    folder is only probed, never created here: reports are written into it when due."""
    from ledwatch.files import check_writable_dir

    url = settings.database.url
    if url.startswith("sqlite:///") and ":memory:" not in url:
        check_writable_dir(Path(url.removeprefix("sqlite:///")).parent, "database.url", create)
    if settings.influx.output == "local":
        check_writable_dir(settings.influx.local_path.parent, "influx.local_path", create)
    if settings.reports.enabled and settings.care.enabled:
        check_writable_dir(settings.reports.folder, "reports.folder", create=False)


# The collector's heap turns over as snapshot documents: lists of readings, acyclic,
# freed by reference counting once their batch is acknowledged. CPython's cyclic GC at
# its default thresholds (700, 10, 10) traversed each of them two or three times while it
# was alive: ~25 % of the collector's CPU while draining a backlog (docs/hot-path.md).
# Collecting young objects every 20,000 container allocations instead lets most of them
# go by reference counting first (a collection then pauses ~10 ms). The cycles the HTTP
# client leaves, one per write, wait a few writes longer; they no longer hold the body
# (influx/writers.py `_once`), so memory stays where it was.
GC_THRESHOLDS = (20_000, 10, 10)


def freeze_startup_heap() -> None:
    """Moves what start-up left alive (modules, classes, settings, restored detection
    state) out of the GC's reach. A full collection then walks only
    what the running collector made (40-80 ms instead of ~140 ms here); each one stalls
    ingest and the API while it runs (fault -> ticket tail, docs/hot-path.md item 12).
    Collected first, so start-up's own garbage is not kept for good."""
    gc.collect()
    gc.freeze()


def run(settings: CollectorSettings, stop: threading.Event, freeze_heap: bool = False) -> int:
    """Run until `stop` is set; used by `main` and usable in-process (where the heap is
    not the collector's alone, so `freeze_heap` is for `main`)."""
    from collector.service import Collector, serve_api
    from collector.tickets.service import TicketService

    if settings.api.enabled:  # imported before the heap is frozen, with the rest
        from collector.api.app import ApiContext
        from collector.reports.source import ReportSource

    _ensure_sqlite_dir(settings.database.url)
    tickets = TicketService(settings.database.url, settings.contracts,
                            auto_upgrade=settings.database.auto_upgrade)
    collector = Collector(settings, tickets=tickets)
    if missing := compiled.missing():  # it runs, with ~15-20 % more CPU a point (hot-path.md)
        log.warning("%s not built (no C compiler at install?): their Python path is used",
                    ", ".join(missing))
    if freeze_heap:
        freeze_startup_heap()
    api = None
    try:
        collector.start()
        if settings.api.enabled:
            ctx = ApiContext(
                tickets=tickets,
                screens=collector.screens,
                health=collector.health,
                metrics_text=collector.metrics_text,
                tokens=settings.api.resolve_tokens(),
                delivery=collector.delivery,
                reports=ReportSource.from_settings(settings),
                care=settings.care,
            )
            api = serve_api(ctx, settings.api.host, settings.api.port)
            log.info("API on %s (OpenAPI at /docs)", api.url)
        log.info("collector started: %s", collector.status_line())
        while not stop.wait(settings.status_interval_s):
            log.info("status: %s", collector.status_line())
    finally:
        log.info("stopping: storing and acknowledging what was received")
        if api is not None:
            api.stop()
        collector.stop()
        tickets.close()
        log.info("stopped: %s", collector.status_line())
    return 0


def db_main(argv: list[str]) -> int:
    """`ledwatch collector db upgrade|current --config FILE`."""
    from sqlalchemy.exc import SQLAlchemyError

    from collector.tickets import db, schema

    p = argparse.ArgumentParser(prog="ledwatch collector db",
                                description="The ticket database's schema (Alembic migrations).")
    p.add_argument("action", choices=["upgrade", "current"],
                   help="upgrade: migrate to this release's schema; current: show revisions")
    p.add_argument("--config", "-c", type=Path, required=True, help="collector TOML file")
    args = p.parse_args(argv)
    try:
        settings = load_settings(args.config)
        _ensure_sqlite_dir(settings.database.url)
        engine = db.make_engine(settings.database.url)
        try:
            if args.action == "current":
                with engine.connect() as conn:
                    now = schema.current(conn)
                print(f"database: {now or 'empty'}; this release: {schema.head()}")
                return 0
            before, after = schema.upgrade(engine)
        finally:
            engine.dispose()
    except ConfigError as exc:
        print(f"ledwatch collector db: {args.config}: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        first = str(exc).splitlines()[0]
        print(f"ledwatch collector db: cannot use the ticket database: {first}", file=sys.stderr)
        return 1
    if before == after:
        print(f"database already at revision {after}")
    else:
        print(f"database upgraded from revision {before or 'empty'} to {after}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["db"]:
        return db_main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"ledwatch collector: {args.config}: {exc}", file=sys.stderr)
        return 2
    try:
        check_folders(settings, create=not args.check_config)
    except ConfigError as exc:
        print(f"ledwatch collector: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        print(
            f"{args.config}: OK (output {settings.influx.output}, "
            f"broker {settings.mqtt.host}:{settings.mqtt.port})"
        )
        return 0
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # One line per write request ("HTTP Request: POST ...") says nothing the write
    # metrics do not, 20 times a second under load; its warnings and errors still show.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    gc.set_threshold(*GC_THRESHOLDS)  # a process of its own: the GC is ours to tune
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s received", signal.Signals(signum).name)
        set_from_handler(stop)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        return run(settings, stop, freeze_heap=True)
    except LedwatchError as exc:
        log.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
