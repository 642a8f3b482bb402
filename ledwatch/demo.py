"""`ledwatch demo`: the whole chain in one process tree, nothing to install.

embedded MQTT broker (amqtt) <- agent <- three emulated NovaStar controllers (TCP, real
bytes through the codec) and one NovaStar COEX processor (its HTTP API) ; broker ->
collector -> telemetry store (a local SQLite store, or InfluxDB when `--influx-url` is
given) -> detection -> tickets (SQLite) -> REST API.

Faults are scheduled over about four minutes, the first at 15 s; the agent polls every
2 s, so each fault's ticket opens a few seconds after the fault starts. Two show no
ticket on purpose: a PSU rail that drifts slowly down but stays above the voltage_low
level (only the prediction can see it coming), and the COEX processor locked by
NovaStar's VMP for 40 s (the link reads `held`, not lost; a ticket only if it lasted
past `controller_held`'s 30 min). The timeline is data (`SCENARIO`), printed at start.

Notifications: `--webhook URL` sends every ticket change as a signed JSON POST (the
secret from `--webhook-secret-env NAME`, else one made up and printed), `--smtp
HOST:PORT` as e-mail; both are checked at start, so an unreachable receiver is an error.
The service desk page is at http://127.0.0.1:<api-port>/desk (log in with the token).
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from ledwatch.broker import EmbeddedBroker
from ledwatch.errors import LedwatchError
from ledwatch.signals import set_from_handler

SITE = "acme-arena"
H = 1 / 3600  # one second, in the hours the prediction settings count in
# The demo's four minutes stand for the product's days: prediction judges 2-second
# buckets against a PSU's usual level of the last ~3 minutes. The trend is off (its slope
# limit is huge): at this time scale any healthy wander is steep.
DEMO_PREDICT = {"bucket_s": 2, "judge_every": 5, "recent_h": 20 * H, "psu_baseline_h": 200 * H,
                "psu_min_drop_v": 0.1, "psu_min_slope_v_per_h": 1e6, "hold_h": 10 * H,
                "clear_h": 120 * H, "reset_after_dark_h": 20 * H}
AGENT = "control-pc-1"
DEMO_TOKEN = "demo-admin-token-change-me"
POLL_INTERVAL_S = 2.0


@dataclass(frozen=True)
class DemoScreen:
    id: str
    ports: int  # output ports (COEX: outputs)
    cards: int  # receiving cards (cabinets) per port
    psus: int  # PSU rails per cabinet (NovaStar monitoring cards; 0 for COEX)
    faults: tuple[str, ...]  # emulator fault specs: kind[@at_s][+duration_s][:target]
    smart_psus: tuple[str, ...] = ()  # Modbus PSUs replacing rails p0c0-psu1, -psu2, ...
    smart_psu_faults: tuple[tuple[int, str, float], ...] = ()  # (slave, fault, at_s)
    driver: str = "novastar"  # the agent driver, and so the emulator (FAMILIES)


SCENARIO: tuple[DemoScreen, ...] = (
    DemoScreen("lobby", ports=1, cards=4, psus=1,
               faults=("module_fail@15:p0c2", "door_open@120+60:p0c1")),
    DemoScreen("stage", ports=2, cards=8, psus=2,
               faults=("psu_sag_then_die@40:p1c3/1", "redundancy_backup@100+60:p1",
                       "signal_lost@150+30")),
    DemoScreen("facade", ports=4, cards=12, psus=2,
               faults=("psu_drift@20:p2c1/1", "over_temp@70:p2c5", "fan_stop@95:p0c7/2",
                       "sensor_fail@130:light", "link_drop@190+30", "smoke@230+20:p3c0"),
               smart_psus=("p0c0-psu1", "p0c0-psu2"), smart_psu_faults=((2, "die", 110.0),)),
    # A second family beside NovaStar: a COEX processor that NovaStar's VMP locks for
    # 40 s (link `held`, no ticket), then smoke in one of its cabinets. COEX reports no
    # PSU; the first cabinet's supply is a smart Modbus PSU, as on the facade.
    DemoScreen("control-room", ports=2, cards=4, psus=0,
               faults=("held@60+40", "smoke@160+20:p1c2"), smart_psus=("p0c0-psu1",),
               driver="novastar-coex"),
)
FAMILIES = {"novastar": "NovaStar", "novastar-coex": "NovaStar COEX"}  # driver -> name


def _emulate_novastar(screen: DemoScreen) -> tuple[Any, dict[str, Any]]:
    """A NovaStar emulator on TCP and the agent's `[screens.controller]` for it."""
    from firmware_protocols.emulators.novastar import NovastarEmulator, parse_fault

    emu = NovastarEmulator(ports=screen.ports, cards=screen.cards, psus=screen.psus,
                           faults=[parse_fault(f) for f in screen.faults])
    host, port = emu.serve_tcp("127.0.0.1", 0)
    return emu, {
        "driver": "novastar", "url": f"tcp://{host}:{port}", "ports": screen.ports,
        "cards_per_port": screen.cards, "psus_per_cabinet": screen.psus,
        # A dropped link is retried at most every 4 s (default ceiling: 60 s), so
        # the demo shows the controller come back soon after its outage ends.
        "reconnect_max_s": 4.0}


def _emulate_coex(screen: DemoScreen) -> tuple[Any, dict[str, Any]]:
    """A COEX emulator on HTTP and the agent's `[screens.controller]` for it."""
    from firmware_protocols.emulators.novastar_coex import CoexEmulator

    emu = CoexEmulator(outputs=screen.ports, cabinets=screen.cards,
                       faults=[CoexEmulator.parse_fault(f) for f in screen.faults])
    host, port = emu.serve_http("127.0.0.1", 0)
    return emu, {
        "driver": "novastar-coex", "url": f"http://{host}:{port}", "model": "MX40 Pro",
        "cabinets": screen.ports * screen.cards,
        # A lock is retried after 5 s, doubling up to 10 s (default ceiling: 60 s), so
        # the demo shows the link released soon after VMP lets go.
        "held_backoff_max_s": 10.0, "reconnect_max_s": 4.0}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ledwatch demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=0,
                   help="stop by itself after this many seconds (default: run until Ctrl-C)")
    p.add_argument("--api-port", type=int, default=8000, help="REST API port on 127.0.0.1")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="keep outbox, tickets and telemetry here (default: a temp folder)")
    p.add_argument("--influx-url", default=None,
                   help="write telemetry to this InfluxDB 2.x/3.x (v2 API) instead of the "
                        "local store; token from LEDWATCH_INFLUX_TOKEN")
    p.add_argument("--influx-bucket", default="ledwatch")
    p.add_argument("--influx-org", default="")
    p.add_argument("--quiet", action="store_true", help="no live status line")
    n = p.add_argument_group("notifications (docs/notifications.md)")
    n.add_argument("--webhook", metavar="URL", default=None,
                   help="POST every ticket change to this URL, signed with HMAC-SHA256")
    n.add_argument("--webhook-secret-env", metavar="NAME", default=None,
                   help="environment variable holding the webhook's signing secret (at "
                        "least 16 characters; default: a random secret, printed at start)")
    n.add_argument("--smtp", metavar="HOST:PORT", default=None, type=_host_port,
                   help="e-mail every ticket change through this SMTP server (no TLS/login)")
    n.add_argument("--smtp-to", metavar="ADDRESS", action="append", default=None,
                   help="recipient of the e-mails (repeatable; default: desk@example.com)")
    n.add_argument("--smtp-from", metavar="ADDRESS", default="ledwatch-demo@example.com",
                   help="sender of the e-mails (default: %(default)s)")
    return p


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, e.g. 127.0.0.1:1025, got {text!r}")
    return host.strip("[]"), int(port)


WEBHOOK_SECRET_ENV = "LEDWATCH_DEMO_WEBHOOK_SECRET"  # where a made-up secret is put


def notify_section(webhook: str | None = None, webhook_secret_env: str | None = None,
                   smtp: tuple[str, int] | None = None, smtp_to: list[str] | None = None,
                   smtp_from: str = "ledwatch-demo@example.com") -> dict[str, Any]:
    """The collector's `[notify]` for the demo's flags: one route to every channel given."""
    channels: dict[str, Any] = {}
    if webhook:
        channels["webhook"] = {"type": "webhook", "url": webhook,
                               "secret_env": webhook_secret_env or WEBHOOK_SECRET_ENV}
    if smtp:
        channels["mail"] = {"type": "smtp", "host": smtp[0], "port": smtp[1],
                            "sender": smtp_from, "to": smtp_to or ["desk@example.com"]}
    if not channels:
        return {}
    return {"retry_min_s": 1.0, "retry_max_s": 30.0, "channels": channels,
            "routes": [{"levels": [list(channels)]}]}


class Demo:
    """Starts and stops every part in order; usable in-process (the demo test does)."""

    def __init__(self, data_dir: Path, api_port: int = 8000,
                 influx: dict[str, Any] | None = None,
                 notify: dict[str, Any] | None = None) -> None:
        self.data_dir = data_dir
        self.api_port = api_port
        self.notify = notify or {}
        self.influx = influx or {"output": "local",
                                 "local_path": str(data_dir / "telemetry.db")}
        self.broker = EmbeddedBroker()
        self.emulators: list[Any] = []
        self.psu_buses: list[Any] = []
        self.agent: Any = None
        self.collector: Any = None
        self.tickets: Any = None
        self.api: Any = None
        self.opened: list[Any] = []
        self._lock = threading.Lock()
        self.started = time.monotonic()

    # -- start ----------------------------------------------------------------------------

    def start(self) -> None:
        """Broker, emulators (their fault clocks start now), collector + API, then the agent."""
        from agent.runtime import Agent
        from agent.settings import parse_settings
        from collector.api.app import ApiContext
        from collector.service import Collector, serve_api
        from collector.settings import settings_from_dict
        from collector.tickets.service import TicketService

        self.broker.start()
        self.started = time.monotonic()
        emulate = {"novastar": _emulate_novastar, "novastar-coex": _emulate_coex}
        screens = []
        for screen in SCENARIO:
            emu, controller = emulate[screen.driver](screen)
            self.emulators.append(emu)
            entry: dict[str, Any] = {}
            if screen.smart_psus:
                entry["psus"] = [self._smart_psu_bus(screen)]
            screens.append({**entry, "id": screen.id, "controller": controller})

        mqtt = {"host": self.broker.host, "port": self.broker.port, "protocol": "3.1.1"}
        collector_settings = settings_from_dict({
            "mqtt": {**mqtt, "share_group": "", "client_id": "ledwatch-demo-collector"},
            "influx": self.influx,
            "database": {"url": f"sqlite:///{self.data_dir / 'tickets.db'}"},
            "api": {"host": "127.0.0.1", "port": self.api_port,
                    "tokens": [{"token": DEMO_TOKEN, "role": "admin"}]},
            "detect": {"predict": DEMO_PREDICT},
            "notify": {"desk_url": f"http://127.0.0.1:{self.api_port}/desk", **self.notify},
            "reports": {"folder": str(self.data_dir / "reports")},
        })
        self.tickets = TicketService(collector_settings.database.url,
                                     collector_settings.contracts)
        self.tickets.add_listener(self._on_ticket)
        self.collector = Collector(collector_settings, tickets=self.tickets)
        self.collector.start(check_channels=bool(self.notify))
        self.collector.wait_connected(10)
        ctx = ApiContext(tickets=self.tickets, screens=self.collector.screens,
                         health=self.collector.health,
                         metrics_text=self.collector.metrics_text,
                         tokens=collector_settings.api.resolve_tokens(),
                         delivery=self.collector.delivery, care=collector_settings.care)
        self.api = serve_api(ctx, "127.0.0.1", self.api_port)

        agent_settings = parse_settings({
            "agent": {"id": AGENT, "site": SITE, "poll_interval_s": POLL_INTERVAL_S,
                      "data_dir": str(self.data_dir / "agent")},
            "mqtt": mqtt,
            "screens": screens,
        })
        self.agent = Agent(agent_settings)
        self.agent.start()

    def _smart_psu_bus(self, screen: DemoScreen) -> dict[str, Any]:
        """A Modbus TCP bus of smart PSUs (pymodbus server) feeding the first cabinet."""
        from firmware_protocols.emulators.modbus_psu import ModbusPsuEmulator

        bus = ModbusPsuEmulator(len(screen.smart_psus), seed=7).start()
        for slave, fault, at_s in screen.smart_psu_faults:
            bus.schedule(slave, fault, at_s)
        self.psu_buses.append(bus)
        units = [{"slave": i, "id": psu_id, "card": psu_id.split("-")[0]}
                 for i, psu_id in enumerate(screen.smart_psus, start=1)]
        return {"url": bus.url, "map": "meanwell_drs_npb", "units": units}

    def _on_ticket(self, change: Any) -> None:
        t = f"t+{time.monotonic() - self.started:5.1f}s"
        if change.opened:
            with self._lock:
                self.opened.append(change)
            _print_line(f"{t} TICKET #{change.ticket_id} {change.priority} opened: "
                        f"{change.site}/{change.screen} {change.component} {change.fault}")
        else:
            what = change.step or change.state
            note = f": {change.note}" if change.note else ""
            _print_line(f"{t} ticket #{change.ticket_id} {what}{note} [{change.state}] "
                        f"({change.site}/{change.screen} {change.component} {change.fault})")

    # -- status / stop --------------------------------------------------------------------

    def status_line(self) -> str:
        agent = self.agent.status() if self.agent else {}
        screens = agent.get("screens", {})
        links = " ".join(f"{name}:{s.get('link', '?')}" for name, s in screens.items())
        open_tickets = len(self.opened)
        return (f"t+{time.monotonic() - self.started:5.0f}s | {links} | outbox "
                f"{agent.get('queue_depth', 0)} | collector {self.collector.status_line()} | "
                f"tickets opened {open_tickets}")

    def stop(self) -> None:
        # Collector first: the agent's clean stop publishes "offline", which would
        # otherwise open an agent_offline ticket on the way out.
        for name, part in (("api", self.api), ("collector", self.collector),
                           ("agent", self.agent)):
            if part is None:
                continue
            try:
                part.stop()
            except Exception:  # keep stopping the rest
                logging.getLogger(__name__).exception("stopping %s", name)
        if self.tickets is not None:
            self.tickets.close()
        for emu in self.emulators:
            emu.stop()
        for bus in self.psu_buses:
            bus.stop()
        self.broker.stop()


_status_visible = False


def _screens_summary() -> str:
    """"3 emulated NovaStar screens and 1 NovaStar COEX screen" (from SCENARIO)."""
    counts: dict[str, int] = {}
    for screen in SCENARIO:
        counts[screen.driver] = counts.get(screen.driver, 0) + 1
    parts = [f"{n} {FAMILIES[d]} screen{'s' if n > 1 else ''}" for d, n in counts.items()]
    return " and ".join(parts).replace(" ", " emulated ", 1)


def _print_line(text: str) -> None:
    """Print a line above the live status line (which is redrawn on the next tick)."""
    global _status_visible
    if _status_visible:
        sys.stdout.write("\r\033[K")
        _status_visible = False
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    global _status_visible
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tmp = None
    if args.data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="ledwatch-demo-")
        data_dir = Path(tmp.name)
    else:
        data_dir = args.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
    influx = None
    if args.influx_url:
        influx = {"output": "v2", "url": args.influx_url, "bucket": args.influx_bucket,
                  "org": args.influx_org, "token_env": "LEDWATCH_INFLUX_TOKEN"}
    made_secret = None
    if args.webhook and not args.webhook_secret_env:
        made_secret = os.environ[WEBHOOK_SECRET_ENV] = secrets.token_urlsafe(24)
    notify = notify_section(args.webhook, args.webhook_secret_env, args.smtp, args.smtp_to,
                            args.smtp_from)
    demo = Demo(data_dir, api_port=args.api_port, influx=influx, notify=notify)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        set_from_handler(stop)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"LEDwatch demo: embedded broker, {_screens_summary()}, agent, collector, API")
    for screen in SCENARIO:
        family = "" if screen.driver == "novastar" else f"{FAMILIES[screen.driver]}, "
        print(f"  screen {SITE}/{screen.id}: {family}{screen.ports} port(s) x {screen.cards} "
              f"cards; faults: {', '.join(screen.faults)}")
        if screen.smart_psus:
            faults = ", ".join(f"{k}@{t:g}:slave {n}"
                               for n, k, t in screen.smart_psu_faults) or "none"
            print(f"    smart Modbus PSUs {', '.join(screen.smart_psus)}; faults: {faults}")
    try:
        demo.start()
    except (LedwatchError, OSError) as exc:
        print(f"ledwatch demo: could not start: {exc}", file=sys.stderr)
        demo.stop()
        return 1
    base = f"http://127.0.0.1:{args.api_port}"
    print(f"  service desk: {base}/desk  (log in with the token {DEMO_TOKEN})")
    print(f"  API: {base}/api/v1/tickets  (OpenAPI: {base}/docs), header "
          f"'Authorization: Bearer {DEMO_TOKEN}'")
    if args.webhook:
        how = (f"secret {made_secret} (made up; give --webhook-secret-env NAME to choose)"
               if made_secret else f"secret from ${args.webhook_secret_env}")
        print(f"  webhook: every ticket change POSTed to {args.webhook}, signed with {how}")
    if args.smtp:
        print(f"  e-mail: every ticket change via {args.smtp[0]}:{args.smtp[1]} to "
              f"{', '.join(args.smtp_to or ['desk@example.com'])}")
    print(f"  data: {data_dir}   Ctrl-C stops everything.")
    tty = sys.stdout.isatty() and not args.quiet
    last_plain = 0.0
    try:
        while not stop.wait(1.0):
            elapsed = time.monotonic() - demo.started
            if args.duration and elapsed >= args.duration:
                break
            if tty:
                sys.stdout.write("\r\033[K" + demo.status_line()[:200])
                sys.stdout.flush()
                _status_visible = True
            elif not args.quiet and elapsed - last_plain >= 10:
                print(demo.status_line(), flush=True)
                last_plain = elapsed
    finally:
        _print_line("stopping ...")
        demo.stop()
        print(f"stopped. {len(demo.opened)} ticket(s) opened.")
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
