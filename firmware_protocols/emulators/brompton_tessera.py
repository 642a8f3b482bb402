"""A Brompton Tessera processor (SX40 kind) behind a real HTTP server (IP Control API).

`TesseraEmulator` serves the `api` tree the Tessera codec reads, in the shape of an SX40
on firmware 3.5.2 (`sethdotfm/brompton_exporter`'s fixtures): `GET /api/` returns
`{"api": tree}`, `GET /api/<a>/<b>` the subtree `{"<b>": ...}`, anything else 404. Tiles
exist only as counts and a serial -> {firmware, type} list, as on the real API.

Faults (`FamilyFault`, injectable clock):

- `over_temp[:sensor]` (default `fpga`) reads 85 C; `fan_stop[:n]` stops processor fan n
  (1 `case/one`, 2 `case/two`, 3 `fpga`: speed 0, status false);
- `module_fail[:n]`: n tiles report errors (`error-count`); `psu_sag_then_die[:n]`: n
  tiles go offline once the PSU timeline says dark (`online-count` drops; a tile's
  voltage is not in the API, so the sag itself is invisible);
- `signal_lost`: the active input reads 0x0 at -1 Hz (the firmware's "no signal");
- `link_drop`: connections reset; `ip_control_off`: every answer is the `response-code`
  object a processor gives when IP control is disabled for the project (its other
  fields are not published; this one carries a code and a text).
"""

from __future__ import annotations

import copy
import json
import sys
import time
from collections.abc import Iterable
from typing import Any, Final

from firmware_protocols.emulators import family_cli
from firmware_protocols.emulators.family_base import HttpFamilyEmulator
from firmware_protocols.emulators.faults import (
    COMMON_RULES,
    OVER_TEMP_C,
    Clock,
    FamilyFault,
    FaultRule,
    Target,
    psu_dark,
)
from firmware_protocols.emulators.http_base import HttpReply, HttpRequest, json_reply
from ledwatch.errors import UsageError

FAMILY: Final = "brompton-tessera"
IP_CONTROL_OFF_ANSWER: Final = {"response-code": 403,
                                "response-text": "IP control is disabled for this project"}
NO_SIGNAL: Final = {"refresh-rate": -1, "resolution": {"height": 0, "width": 0}}
SENSORS: Final = ("ambient", "cpu", "dsp", "fpga", "front", "gpu", "main", "psu", "rear")
FANS: Final = (("case", "one"), ("case", "two"), ("fpga",))
RULES: Final[dict[str, FaultRule]] = {
    "over_temp": FaultRule(Target.WORD, optional=True, words=SENSORS, example="over_temp:fpga"),
    "fan_stop": FaultRule(Target.NUMBER, optional=True, example="fan_stop:3"),
    "module_fail": FaultRule(Target.NUMBER, optional=True, example="module_fail@10:2"),
    "psu_sag_then_die": FaultRule(Target.NUMBER, optional=True, example="psu_sag_then_die:4"),
    **COMMON_RULES,
    "ip_control_off": FaultRule(Target.NONE, example="ip_control_off@30+30"),
}
UNSUPPORTED: Final[dict[str, str]] = {
    "door_open": "the IP Control API has no per-panel telemetry",
    "smoke": "the IP Control API has no per-panel telemetry",
    "held": "no lock-out by another client is documented for Tessera",
    "psu_drift": "the IP Control API has no per-panel telemetry",
    "busy": "no busy answer is documented for Tessera",
}


class TesseraEmulator(HttpFamilyEmulator):
    """See the module docstring."""

    FAMILY = FAMILY
    RULES = RULES
    UNSUPPORTED = UNSUPPORTED

    def __init__(
        self,
        tiles: int = 24,
        processor_type: str = "sx40",
        name: str = "Studio A Main",
        faults: Iterable[FamilyFault] = (),
        clock: Clock = time.monotonic,
    ) -> None:
        if not 0 <= tiles <= 10_000:
            raise UsageError("emulator: tiles must be 0..10000")
        self.tiles = tiles
        self.processor_type = processor_type
        self.name = name
        super().__init__((), faults, clock)  # tiles are counts, not addressable cabinets

    def app(self, req: HttpRequest) -> HttpReply:
        if req.method != "GET":
            return HttpReply(405, b"", None)
        if self.faults.any("ip_control_off"):
            return json_reply(IP_CONTROL_OFF_ANSWER)
        parts = [p for p in req.path.split("/") if p]
        if not parts or parts[0] != "api":
            return HttpReply(404, b"not found", "text/plain")
        node: Any = self.tree()
        for part in parts[1:]:
            if not isinstance(node, dict) or part not in node:
                return HttpReply(404, b"not found", "text/plain")
            node = node[part]
        return HttpReply(body=json.dumps({parts[-1]: node}, separators=(",", ":")).encode())

    def tree(self) -> dict[str, Any]:
        """The processor's `api` tree now (a fresh copy per call)."""
        active = self.faults.active()
        temps: dict[str, Any] = {s: self.wave(30.0 + 3 * k, 1.5, 60.0, k)
                                 for k, s in enumerate(SENSORS)}  # fmt: skip
        temps["ethernet"] = {"copper": {"a": self.wave(36.0, 0.5, 80.0, 1.0),
                                        "b": self.wave(36.0, 0.5, 80.0, 2.0)}}  # fmt: skip
        stopped: set[int] = set()
        errors = offline = 0
        lost = False
        for e, f in active:
            if f.kind == "over_temp":
                temps[f.target or "fpga"] = OVER_TEMP_C
            elif f.kind == "fan_stop":
                stopped.add(f.number or 1)
            elif f.kind == "module_fail":
                errors = max(errors, f.number or 1)
            elif f.kind == "psu_sag_then_die" and psu_dark(e):
                offline += f.number or 1
            elif f.kind == "signal_lost":
                lost = True
        fans: dict[str, Any] = {}
        for k, path in enumerate(FANS, start=1):
            node = fans
            for part in path[:-1]:
                node = node.setdefault(part, {})
            speed = 0.0 if k in stopped else self.wave(1800 + 300 * k, 20, 40, k)
            node[path[-1]] = {"speed": speed, "status": k not in stopped}
        online = max(0, self.tiles - offline)
        fed = {"refresh-rate": 50.0, "resolution": {"height": 1080, "width": 1920}}
        meta = NO_SIGNAL if lost else fed
        return copy.deepcopy({
            "devices": {
                "items": {f"0A1B2C{k:06X}": {"firmware": "3.5.2", "type": "CLD27RS1.5"}
                          for k in range(self.tiles)},
                "statistics": {"associated-count": self.tiles, "online-count": online,
                               "error-count": min(errors, online)},
            },
            "input": {
                "active": {"source": {"port-number": 1, "port-type": "hdmi"}},
                "ports": {"hdmi": {"1": {"meta-data": meta}},
                          "sdi": {"1": {"meta-data": NO_SIGNAL}}},
            },
            "output": {"global-colour": {"brightness": 1200, "colour-temperature": 6500}},
            "override": {"blackout": {"enabled": False, "fade-time": 0.5},
                         "freeze": {"enabled": False}},
            "project": {"name": "LEDwatch demo"},
            "system": {
                "fan": fans,
                "processor-name": self.name,
                "processor-type": self.processor_type,
                "serial-number": "010127",
                "software-version": "3.5.2.15",
                "temperature": temps,
                "uptime": f"{int(self.faults.elapsed())}s",
            },
        })  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """`ledwatch emulate brompton-tessera --tcp HOST:PORT [--tiles N] [--fault SPEC]...`."""
    p = family_cli.parser(
        FAMILY, "A Brompton Tessera processor (SX40 kind) answering its IP Control HTTP API "
        "(port 80 on a real unit), with faults.", RULES,
    )  # fmt: skip
    p.add_argument("--tiles", type=int, default=24, help="tiles (panels) behind it (default 24)")
    p.add_argument("--type", default="sx40", help="processor type (default sx40)")
    return family_cli.http_main(
        p, argv, FAMILY, RULES, UNSUPPORTED,
        lambda a, found: TesseraEmulator(a.tiles, a.type, faults=found),
        lambda emu: [f"tiles {emu.tiles}"],
    )  # fmt: skip

if __name__ == "__main__":
    sys.exit(main())


fault = TesseraEmulator.fault
