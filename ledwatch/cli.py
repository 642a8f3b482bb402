"""`ledwatch <command> ...`: one entry point, sub-commands imported lazily.

Each sub-command lives with the part it runs (agent/, collector/, firmware_protocols/)
and exposes `main(argv) -> int`; this file only dispatches, so `ledwatch agent` on a
display control PC never imports FastAPI or numpy.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "agent": ("agent.cli:main", "poll controllers and publish snapshots over MQTT"),
    "collector": ("collector.cli:main", "store telemetry, detect faults, run tickets and the API"),
    "emulate": ("firmware_protocols.emulators.cli:main", "run a device emulator (TCP or pty)"),
    "decode": ("firmware_protocols.cli:main", "dissect captured controller frames"),
    "demo": ("ledwatch.demo:main", "the whole chain with emulated screens, nothing to install"),
    "discover": ("agent.discover:main", "find controllers on the LAN, write a starter config"),
    "replay": ("collector.replay:main", "the collector's pipeline over recorded telemetry"),
    "bench": ("ledwatch.bench:main", "benchmarks that print ratios against a baseline"),
    "report": ("collector.reports.cli:main", "quarterly remote inspection reports (HTML, PDF)"),
    "schema": ("ledwatch.cli:print_schema", "print the JSON Schema of ledwatch.telemetry/1"),
}


def print_schema(argv: list[str]) -> int:
    import json

    from ledwatch.contract import telemetry_schema

    print(json.dumps(telemetry_schema(), indent=2))
    return 0


def _usage() -> str:
    lines = ["usage: ledwatch <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`ledwatch <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    if args[0] == "--version":
        from ledwatch import __version__

        print(__version__)
        return 0
    entry = COMMANDS.get(args[0])
    if entry is None:
        print(f"ledwatch: unknown command {args[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, _, attr = entry[0].partition(":")
    func = getattr(importlib.import_module(module_name), attr)
    try:
        return int(func(args[1:]) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
