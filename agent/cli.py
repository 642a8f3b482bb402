"""`ledwatch agent --config agent.toml [--check-config] [--once]`.

Exit codes: 0 ok, 1 a check or the final drain failed, 2 bad usage or configuration
(including a config file in an encoding other than UTF-8 / UTF-16, a data or log folder
that cannot be written, a metrics port that cannot be opened): one line on stderr that
names the file, folder or key and what to do, never a traceback.
Ctrl-C, SIGTERM (systemd) and SIGBREAK (a Windows console service) stop the agent
cleanly: polls end, the retained offline status is published, the outbox is closed.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
import time
from types import FrameType

from agent.drivers.base import LinkState, PsuSource
from agent.runtime import (
    Agent,
    build_drivers,
    build_psu_sources,
    cards_answering,
    check_folders,
    remove_logging,
    setup_logging,
    status_line,
    unreadable,
)
from agent.settings import AgentSettings, load_settings
from ledwatch.errors import ConfigError
from ledwatch.signals import set_from_handler

log = logging.getLogger("agent")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ledwatch agent",
        description="Poll LED screen controllers and publish one snapshot per screen per "
        "poll over MQTT, through a durable outbox.",
    )
    p.add_argument("--config", required=True, help="agent TOML file (see agent/sample.toml)")
    p.add_argument(
        "--check-config",
        action="store_true",
        help="validate the file, open every controller link and poll it once; publish nothing",
    )
    p.add_argument(
        "--once",
        action="store_true",
        help="poll every screen once, publish, wait for the broker's acknowledgements, exit",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds --once waits for acks")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def check_config(settings: AgentSettings) -> int:
    """Open each controller and poll it once; print one line per screen; 0 if all answer.

    A link held by another client (NovaLCT, say) is reported HELD and fails the check:
    the agent could not read the controller, though it is likely fine."""
    drivers = build_drivers(settings)
    psu_sources = build_psu_sources(settings)
    failed = 0
    for screen in settings.screens:
        driver = drivers[screen.id]
        error = ""
        try:
            driver.open()
            try:
                reading = driver.poll()
            finally:
                driver.close()
        except Exception as exc:  # report it like the poll loop would, then go on
            error = f" ({exc!r})"
            reading = unreadable(repr(exc))
        online, total = cards_answering(reading)
        ok = reading.link not in (LinkState.DOWN, LinkState.HELD)
        ok = ok and bool(reading.controller.get("online"))
        failed += not ok
        verdict = "OK" if ok else "HELD" if reading.link is LinkState.HELD else "FAIL"
        print(
            f"screen {screen.id}: {verdict} link {reading.link}, "
            f"{online}/{total} cards answering, {reading.errors} errors{error}"
        )
        for index, source in enumerate(psu_sources.get(screen.id, [])):
            bus_ok = _check_psu_bus(source)
            failed += not bus_ok
            print(f"  psus[{index}] {source.describe()}: {'OK' if bus_ok else 'FAIL'} "
                  f"{source.last_answered}/{len(source.ids)} units answering")
    verdict = "OK" if not failed else f"{failed} failing link(s)"
    print(f"config {verdict}: {len(settings.screens)} screen(s) checked, nothing published")
    return 1 if failed else 0


def _check_psu_bus(source: PsuSource) -> bool:
    """One read of a PSU bus; OK when every configured unit answered."""
    try:
        source.open()
        try:
            source.read()
        finally:
            source.close()
    except Exception:  # a bus that cannot even open is a failed check, not a crash
        log.debug("psu bus check failed", exc_info=True)
        return False
    return source.last_answered == len(source.ids)


def _install_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signum)
        set_from_handler(stop)

    for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
        sig = getattr(signal, name, None)
        if sig is not None:
            # ValueError: not the main thread; OSError: not settable on this platform
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"ledwatch agent: {exc}", file=sys.stderr)
        return 2
    try:
        # Before logging starts: the log file's folder is one of them.
        check_folders(settings, create=not args.check_config)
    except ConfigError as exc:
        print(f"ledwatch agent: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        handlers = setup_logging(None, logging.WARNING)
        try:
            return check_config(settings)
        except ConfigError as exc:
            print(f"ledwatch agent: {exc}", file=sys.stderr)
            return 2
        finally:
            remove_logging(handlers)
    handlers = setup_logging(settings, logging.DEBUG if args.verbose else logging.INFO)
    try:
        return _run(settings, args.once, args.timeout)
    except ConfigError as exc:
        print(f"ledwatch agent: {exc}", file=sys.stderr)
        return 2
    finally:
        remove_logging(handlers)


def _run(settings: AgentSettings, once: bool, timeout_s: float) -> int:
    agent = Agent(settings)
    if once:
        ok = agent.run_once(timeout_s)
        print(status_line(agent.status()), flush=True)
        why = agent.publisher.last_error if agent.publisher is not None else None
        agent.stop()
        if not ok:
            print(
                "ledwatch agent: not every message was acknowledged (kept in the outbox)"
                + (f": {why}" if why else ""),
                file=sys.stderr,
            )
        return 0 if ok else 1
    stop = threading.Event()
    _install_signals(stop)
    try:
        agent.start()
    except ConfigError:  # the metrics port could not be opened: nothing runs yet
        agent.stop()
        raise
    try:
        interval = settings.agent.status_interval_s
        next_status = time.monotonic() + min(5.0, interval)
        while not stop.is_set():
            # Short waits: on Windows a lock wait is not interrupted by Ctrl-C.
            stop.wait(min(1.0, max(0.0, next_status - time.monotonic())))
            if time.monotonic() >= next_status:
                print(status_line(agent.status()), flush=True)
                next_status += interval
    except KeyboardInterrupt:
        pass
    finally:
        agent.stop()
    return 0
