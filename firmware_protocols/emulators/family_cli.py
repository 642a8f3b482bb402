"""Command-line plumbing shared by the emulators' `main()` functions.

Every family's emulator has `main(argv) -> int` taking the arguments after the family
name, so `ledwatch emulate <family> ...` is one line in `EMULATORS` (cli.py). They print
one line per endpoint they serve (`tcp 127.0.0.1:8001`, `udp 127.0.0.1:9099`), so
scripts can read the port picked for port 0. The argument types and the run-until-stopped
loop here serve NovaStar's and Modbus's `main` in cli.py too; the fault parsing and the
HTTP serving below are the newer families' (NovaStar has its own fault kinds).
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol, TypeVar

from firmware_protocols.emulators.faults import (
    FamilyFault,
    FaultRule,
    make_fault,
    parse_fault_spec,
)
from ledwatch.errors import ConfigError, UsageError


def host_port(text: str) -> tuple[str, int]:
    """An argparse type: `HOST:PORT` (port 0 = any free one)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:5200)")
    return host, int(port)


def counts(text: str) -> int | tuple[int, ...]:
    """An argparse type: `8` or `8,6`, the cards (cabinets) of every port/output, or one
    count per port."""
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a card count or a comma list of them (8 or 8,6)"
        ) from None
    if any(n < 0 for n in values):
        raise argparse.ArgumentTypeError("card counts must be >= 0")
    return values[0] if len(values) == 1 else values


def parser(
    family: str, description: str, rules: Mapping[str, FaultRule], udp: bool = False
) -> argparse.ArgumentParser:
    """The arguments every family shares: where to serve, faults, a hidden --duration."""
    p = argparse.ArgumentParser(prog=f"ledwatch emulate {family}", description=description)
    where = p.add_argument_group("where to serve")
    where.add_argument("--tcp", type=host_port, metavar="HOST:PORT",
                       help="listen on TCP (HTTP for HTTP families); port 0 = any free port")
    if udp:
        where.add_argument("--udp", type=host_port, metavar="HOST:PORT",
                           help="listen on UDP (the family's own transport); port 0 = any")
    examples = ", ".join(r.example for r in rules.values() if r.example)
    p.add_argument("--scenario", metavar="FILE.toml",
                   help="[[fault]] tables (kind, at_s, target, duration_s) to schedule too")
    p.add_argument("--fault", action="append", default=[], metavar="SPEC",
                   help=f"kind[@at_s][+duration_s][:target]; kinds: {', '.join(rules)}; "
                   f"e.g. {examples}")
    p.add_argument("--duration", type=float, help=argparse.SUPPRESS)  # tests: stop after N s
    return p  # fmt: skip


def faults(
    p: argparse.ArgumentParser,
    family: str,
    rules: Mapping[str, FaultRule],
    specs: list[str],
    unsupported: Mapping[str, str],
) -> list[FamilyFault]:
    """Parse every `--fault`; a bad one ends the program with the parser's error."""
    try:
        return [parse_fault_spec(family, rules, s, unsupported) for s in specs]
    except UsageError as exc:
        p.error(str(exc))


def scenario_faults(
    path: str | Path, family: str, rules: Mapping[str, FaultRule], unsupported: Mapping[str, str]
) -> list[FamilyFault]:
    """The `[[fault]]` tables of a scenario file; `ConfigError` names the bad key."""
    try:
        raw = tomllib.loads(Path(path).read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read scenario: {exc}") from None
    tables = raw.get("fault", [])
    if not isinstance(tables, list) or set(raw) - {"fault"}:
        raise ConfigError(f"{path}: only [[fault]] tables belong in a {family} scenario")
    out = []
    for i, t in enumerate(tables):
        extra = set(t) - {"kind", "at_s", "target", "duration_s"}
        if extra or "kind" not in t:
            raise ConfigError(f"{path}: fault.{i}: needs kind; unknown keys {sorted(extra)}")
        try:
            dur = t.get("duration_s")
            out.append(make_fault(family, rules, t["kind"], float(t.get("at_s", 0)),
                                  t.get("target"), None if dur is None else float(dur),
                                  unsupported))  # fmt: skip
        except (UsageError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: fault.{i}: {exc}") from None
    return out


def all_faults(
    p: argparse.ArgumentParser,
    args: argparse.Namespace,
    family: str,
    rules: Mapping[str, FaultRule],
    unsupported: Mapping[str, str],
) -> list[FamilyFault]:
    """`--scenario`'s faults, then every `--fault`."""
    try:
        base = scenario_faults(args.scenario, family, rules, unsupported) if args.scenario else []
    except ConfigError as exc:
        p.error(str(exc))
    return base + faults(p, family, rules, args.fault, unsupported)


def run_until_stopped(stop: Callable[[], None], duration_s: float | None) -> int:
    """Block until Ctrl-C (or `duration_s`), then `stop()`."""
    try:
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
    return 0


def print_faults(found: list[FamilyFault]) -> None:
    for f in found:
        print(f"fault {f.kind} at {f.at_s:g}s target={f.target} duration={f.duration_s}",
              flush=True)  # fmt: skip


class HttpEmulator(Protocol):
    def serve_http(self, host: str = ..., port: int = ...) -> tuple[str, int]: ...

    def stop(self) -> None: ...


E = TypeVar("E", bound=HttpEmulator)


def http_main(
    p: argparse.ArgumentParser,
    argv: list[str] | None,
    family: str,
    rules: Mapping[str, FaultRule],
    unsupported: Mapping[str, str],
    build: Callable[[argparse.Namespace, list[FamilyFault]], E],
    lines: Callable[[E], list[str]],
) -> int:
    """`main()` of an HTTP family: parse, build the emulator, serve until stopped."""
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if not args.tcp:
        p.error("say where to serve: --tcp HOST:PORT")
    found = all_faults(p, args, family, rules, unsupported)
    try:
        emu = build(args, found)
    except UsageError as exc:
        p.error(str(exc))
    return run_http(family, emu, args.tcp, found, lines(emu), args.duration)


def run_http(
    family: str,
    emu: HttpEmulator,
    tcp: tuple[str, int],
    found: list[FamilyFault],
    lines: list[str],
    duration_s: float | None,
) -> int:
    """Serve an HTTP family's emulator until stopped, printing its endpoint first."""
    try:
        host, port = emu.serve_http(*tcp)
    except OSError as exc:
        emu.stop()
        print(f"ledwatch emulate {family}: {exc}", file=sys.stderr)
        return 1
    print(f"tcp {host}:{port}", flush=True)
    print(f"url http://{host}:{port}", flush=True)
    for line in lines:
        print(line, flush=True)
    print_faults(found)
    return run_until_stopped(emu.stop, duration_s)
