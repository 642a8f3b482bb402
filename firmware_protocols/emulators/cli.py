"""`ledwatch emulate <family> ...`: run a device emulator until Ctrl-C.

Examples::

    ledwatch emulate novastar --tcp 127.0.0.1:5200 --ports 2 --cards 8
    ledwatch emulate novastar --pty --link /tmp/ttyNOVA --fault psu_sag_then_die@30:p0c3/1
    ledwatch emulate novastar --device /dev/pts/7 --fault link_drop@60+20
    ledwatch emulate novastar --tcp 127.0.0.1:0 --scenario demo.toml
    ledwatch emulate novastar --tcp 127.0.0.1:5200 --discovery 127.0.0.1:3800
    ledwatch emulate modbus-psu --tcp 127.0.0.1:5020 --units 4 --fault die@30:2
    ledwatch emulate modbus-psu --device /dev/pts/7 --baud 9600 --units 3
    ledwatch emulate colorlight --udp 127.0.0.1:9099 --cards 4 --fault module_fail@10:p0c1/2
    ledwatch emulate novastar-coex --tcp 127.0.0.1:8001 --outputs 2 --cabinets 4 --fault held@20+60
    ledwatch emulate brompton-tessera --tcp 127.0.0.1:8080 --tiles 24 --fault fan_stop@30:3

It prints one line per endpoint it serves (`tcp 127.0.0.1:5200`, `pty /dev/pts/5`), so
scripts can read the port or path it picked. Families are registered in `EMULATORS`
(one line each, imported lazily), like the agent's drivers.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from firmware_protocols.emulators.family_cli import counts, host_port, run_until_stopped
from firmware_protocols.emulators.novastar import (
    NovastarEmulator,
    Scenario,
    load_scenario,
    parse_fault,
)
from ledwatch.errors import ConfigError, UsageError

# family -> "module:main"; `main(argv)` gets the arguments after the family name.
EMULATORS: dict[str, str] = {
    "novastar": "firmware_protocols.emulators.cli:novastar_main",
    "modbus-psu": "firmware_protocols.emulators.cli:modbus_main",
    "colorlight": "firmware_protocols.emulators.colorlight:main",
    "novastar-coex": "firmware_protocols.emulators.novastar_coex:main",
    "brompton-tessera": "firmware_protocols.emulators.brompton_tessera:main",
}


def _family_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ledwatch emulate",
        description="Run a device emulator that speaks the real protocol bytes.",
    )
    p.add_argument("family", choices=sorted(EMULATORS),
                   help="device family to emulate; each has its own options: "
                   "`ledwatch emulate FAMILY --help`")
    return p


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ledwatch emulate novastar",
        description="A NovaStar sending card and its screen, speaking the real bytes.",
    )
    where = p.add_argument_group("where to serve (at least one)")
    where.add_argument("--tcp", type=host_port, metavar="HOST:PORT",
                       help="listen on TCP like the controller's LAN port (5200); port 0 = any")
    where.add_argument("--pty", action="store_true", help="open a pty and print its slave path")
    where.add_argument("--link", metavar="PATH", help="with --pty: symlink PATH to the pty")
    where.add_argument("--device", metavar="PATH",
                       help="answer on an existing serial device, e.g. one end of socat")
    where.add_argument("--baud", type=int, default=115200, help="baud rate for --device")
    where.add_argument("--discovery", type=host_port, metavar="HOST:PORT",
                       help="also answer NovaStar's LAN search (UDP; 3800 on a real "
                       "controller) so `ledwatch discover` finds this emulator")
    screen = p.add_argument_group("the emulated screen")
    screen.add_argument("--scenario", metavar="FILE.toml",
                        help="screen layout and [[fault]] tables; flags below override it")
    screen.add_argument("--ports", type=int, help="output ports (default 2)")
    screen.add_argument("--cards", type=counts, help="cards per port: 8, or 8,6 per port")
    screen.add_argument("--psus", type=int, help="PSU rails per cabinet, 0..8 (default 2)")
    screen.add_argument("--modules", type=int, help="modules per cabinet, 0..16 (default 12)")
    screen.add_argument("--fault", action="append", default=[], metavar="SPEC",
                        help="kind[@at_s][+duration_s][:target], e.g. "
                        "psu_sag_then_die@30:p0c3/1, psu_drift@20:p2c1/1 (a rail easing "
                        "0.25 V down over 90 s), module_fail@10:p1c0, link_drop@60+20, "
                        "held@30+60 (another client holds the TCP link)")
    p.add_argument("--duration", type=float, help=argparse.SUPPRESS)  # tests: stop after N s
    return p  # fmt: skip


def _modbus_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ledwatch emulate modbus-psu",
        description="Smart power supplies on one Modbus bus (slave addresses 1..N).",
    )
    where = p.add_argument_group("where to serve (one)")
    where.add_argument("--tcp", type=host_port, metavar="HOST:PORT",
                       help="Modbus TCP; port 0 = any")
    where.add_argument("--device", metavar="PATH",
                       help="Modbus RTU on an existing serial device, e.g. one end of socat")
    p.add_argument("--baud", type=int, default=19200, help="RTU baud rate (default 19200)")
    p.add_argument("--units", type=int, default=3, help="PSUs on the bus (default 3)")
    p.add_argument("--map", default="meanwell_drs_npb", help="register map name or .toml path")
    p.add_argument("--fault", action="append", default=[], metavar="KIND[@AT_S]:SLAVE",
                   help="sag, die, over_temp, fan_fail, ac_fail or silent, e.g. die@30:2")
    p.add_argument("--duration", type=float, help=argparse.SUPPRESS)  # tests: stop after N s
    return p


def modbus_main(argv: list[str]) -> int:
    from firmware_protocols.emulators.modbus_psu import EmulatedFault, ModbusPsuEmulator

    parser = _modbus_parser()
    args = parser.parse_args(argv)
    if bool(args.tcp) == bool(args.device):
        parser.error("say where to serve: --tcp HOST:PORT or --device PATH (one of them)")
    faults: list[tuple[int, EmulatedFault, float]] = []
    for spec in args.fault:
        kind_at, _, slave = spec.partition(":")
        kind, _, at = kind_at.partition("@")
        try:
            faults.append((int(slave), EmulatedFault(kind), float(at or 0)))
        except ValueError:
            known = ", ".join(k.value for k in EmulatedFault)
            parser.error(f"fault {spec!r}: expected KIND[@AT_S]:SLAVE with KIND one of {known}")
    try:
        if args.tcp:
            emu = ModbusPsuEmulator(args.units, transport="tcp", register_map=args.map,
                                    host=args.tcp[0], port=args.tcp[1])
        else:
            emu = ModbusPsuEmulator(args.units, transport="rtu", register_map=args.map,
                                    serial_port=args.device, baudrate=args.baud)
        for slave, kind, at_s in faults:
            emu.schedule(slave, kind, at_s)
    except (UsageError, ConfigError) as exc:
        parser.error(str(exc))
    try:
        emu.start()
    except OSError as exc:
        print(f"ledwatch emulate: {exc}", file=sys.stderr)
        return 1
    print(f"tcp {emu.host}:{emu.port}" if args.tcp else f"device {args.device}", flush=True)
    print(f"units 1..{args.units} map {args.map}", flush=True)
    return run_until_stopped(emu.stop, args.duration)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in EMULATORS:
        module_name, _, attr = EMULATORS[argv[0]].partition(":")
        family_main: Callable[[list[str]], int] = getattr(
            importlib.import_module(module_name), attr
        )
        return family_main(argv[1:])
    _family_parser().parse_args(argv[:1])  # prints usage and exits 2 for anything else
    return 2


def novastar_main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not (args.tcp or args.pty or args.device):
        parser.error("say where to serve: --tcp HOST:PORT, --pty or --device PATH")
    if args.link and not args.pty:
        parser.error("--link needs --pty")
    try:
        base = load_scenario(args.scenario) if args.scenario else Scenario()
        faults = list(base.faults) + [parse_fault(s) for s in args.fault]
        emu = NovastarEmulator(
            ports=args.ports if args.ports is not None else base.ports,
            cards=args.cards if args.cards is not None else base.cards,
            psus=args.psus if args.psus is not None else base.psus,
            modules=args.modules if args.modules is not None else base.modules,
            model_id=base.model_id,
            faults=faults,
        )
    except UsageError as exc:
        parser.error(str(exc))
    try:
        if args.tcp:
            host, port = emu.serve_tcp(*args.tcp)
            print(f"tcp {host}:{port}", flush=True)
        if args.pty:
            print(f"pty {emu.serve_pty(link=args.link)}", flush=True)
            if args.link:
                print(f"link {args.link}", flush=True)
        if args.device:
            print(f"device {emu.serve_serial(args.device, args.baud)}", flush=True)
        if args.discovery:
            host, port = emu.serve_discovery(*args.discovery)
            print(f"discovery udp {host}:{port}", flush=True)
    except OSError as exc:
        emu.stop()
        print(f"ledwatch emulate: {exc}", file=sys.stderr)
        return 1
    print(f"cards {' '.join(emu.card_ids())}", flush=True)
    for f in faults:
        print(f"fault {f.kind.value} at {f.at_s:g}s target={f.target} "
              f"duration={f.duration_s}", flush=True)  # fmt: skip
    return run_until_stopped(emu.stop, args.duration)


if __name__ == "__main__":
    sys.exit(main())
