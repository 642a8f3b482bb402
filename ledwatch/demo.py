"""`ledwatch demo`: the whole chain in one process tree, nothing to install.

embedded MQTT broker (amqtt) <- agent <- three emulated NovaStar controllers (TCP, real
bytes through the codec) ; broker -> collector -> telemetry store (a local SQLite store,
or InfluxDB when `--influx-url` is given) -> detection -> tickets (SQLite) -> REST API.

Faults are scheduled over about four minutes, the first at 15 s; the agent polls every
2 s, so each fault's ticket opens a few seconds after the fault starts. The timeline is
data (`SCENARIO`), printed at start.
"""

from __future__ import annotations

import argparse
import logging
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

SITE = "acme-arena"
AGENT = "control-pc-1"
DEMO_TOKEN = "demo-admin-token-change-me"
POLL_INTERVAL_S = 2.0


@dataclass(frozen=True)
class DemoScreen:
    id: str
    ports: int
    cards: int
    psus: int
    faults: tuple[str, ...]  # emulator fault specs: kind[@at_s][+duration_s][:target]
    smart_psus: tuple[str, ...] = ()  # Modbus PSUs replacing rails p0c0-psu1, -psu2, ...
    smart_psu_faults: tuple[tuple[int, str, float], ...] = ()  # (slave, fault, at_s)


SCENARIO: tuple[DemoScreen, ...] = (
    DemoScreen("lobby", ports=1, cards=4, psus=1,
               faults=("module_fail@15:p0c2", "door_open@120+60:p0c1")),
    DemoScreen("stage", ports=2, cards=8, psus=2,
               faults=("psu_sag_then_die@40:p1c3/1", "redundancy_backup@100+60:p1",
                       "signal_lost@150+30")),
    DemoScreen("facade", ports=4, cards=12, psus=2,
               faults=("over_temp@70:p2c5", "fan_stop@95:p0c7/2", "sensor_fail@130:light",
                       "link_drop@190+30", "smoke@230+20:p3c0"),
               smart_psus=("p0c0-psu1", "p0c0-psu2"), smart_psu_faults=((2, "die", 110.0),)),
)


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
    return p


class Demo:
    """Starts and stops every part in order; usable in-process (the demo test does)."""

    def __init__(self, data_dir: Path, api_port: int = 8000,
                 influx: dict[str, Any] | None = None) -> None:
        self.data_dir = data_dir
        self.api_port = api_port
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
        from firmware_protocols.emulators.novastar import NovastarEmulator, parse_fault

        self.broker.start()
        self.started = time.monotonic()
        screens = []
        for screen in SCENARIO:
            emu = NovastarEmulator(ports=screen.ports, cards=screen.cards, psus=screen.psus,
                                   faults=[parse_fault(f) for f in screen.faults])
            host, port = emu.serve_tcp("127.0.0.1", 0)
            self.emulators.append(emu)
            entry: dict[str, Any] = {}
            if screen.smart_psus:
                entry["psus"] = [self._smart_psu_bus(screen)]
            screens.append({**entry, "id": screen.id, "controller": {
                "driver": "novastar", "url": f"tcp://{host}:{port}", "ports": screen.ports,
                "cards_per_port": screen.cards, "psus_per_cabinet": screen.psus,
                # A dropped link is retried at most every 4 s (default ceiling: 60 s), so
                # the demo shows the controller come back soon after its outage ends.
                "reconnect_max_s": 4.0}})

        mqtt = {"host": self.broker.host, "port": self.broker.port, "protocol": "3.1.1"}
        collector_settings = settings_from_dict({
            "mqtt": {**mqtt, "share_group": "", "client_id": "ledwatch-demo-collector"},
            "influx": self.influx,
            "database": {"url": f"sqlite:///{self.data_dir / 'tickets.db'}"},
            "api": {"host": "127.0.0.1", "port": self.api_port,
                    "tokens": [{"token": DEMO_TOKEN, "role": "admin"}]},
        })
        self.tickets = TicketService(collector_settings.database.url,
                                     collector_settings.contracts)
        self.tickets.add_listener(self._on_ticket)
        self.collector = Collector(collector_settings, tickets=self.tickets)
        self.collector.start()
        self.collector.wait_connected(10)
        ctx = ApiContext(tickets=self.tickets, screens=self.collector.screens,
                         health=self.collector.health,
                         metrics_text=self.collector.metrics_text,
                         tokens=collector_settings.api.resolve_tokens(),
                         delivery=self.collector.delivery)
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
            _print_line(f"{t} ticket #{change.ticket_id} -> {change.state} "
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
    demo = Demo(data_dir, api_port=args.api_port, influx=influx)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print("LEDwatch demo: embedded broker, 3 emulated NovaStar screens, agent, collector, API")
    for screen in SCENARIO:
        print(f"  screen {SITE}/{screen.id}: {screen.ports} port(s) x {screen.cards} cards; "
              f"faults: {', '.join(screen.faults)}")
        if screen.smart_psus:
            faults = ", ".join(f"{k}@{t:g}:slave {n}" for n, k, t in screen.smart_psu_faults)
            print(f"    smart Modbus PSUs {', '.join(screen.smart_psus)}; faults: {faults}")
    try:
        demo.start()
    except (LedwatchError, OSError) as exc:
        print(f"ledwatch demo: could not start: {exc}", file=sys.stderr)
        demo.stop()
        return 1
    print(f"  API: http://127.0.0.1:{args.api_port}/api/v1/tickets  (OpenAPI: "
          f"http://127.0.0.1:{args.api_port}/docs), header 'Authorization: Bearer "
          f"{DEMO_TOKEN}'")
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
