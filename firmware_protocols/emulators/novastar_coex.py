"""A NovaStar COEX processor (MX40 Pro / MX30 kind) behind a real HTTP server.

`CoexEmulator` answers the read endpoints the COEX driver uses, in the envelope and
shapes `firmware_protocols.novastar_coex` decodes (those OBSERVED on an MX30, recorded
in `legofsalmon/novasun`'s fixtures): `monitor/info`, `screen/cabinet/count`,
`device/cabinet`, `device/input/sources`; `/api/v1/device` answers 404 as an MX40 Pro's
did; anything else 404. It serves over `serve_http` (stdlib, `http_base`), several
clients at once, and logs every request with its time so tests can check pacing.

Faults (`FamilyFault`, injectable clock) follow what a real unit shows:

- `psu_sag_then_die:p0c2`: the card's voltage sags, then the cabinet leaves
  `device/cabinet` and the count, while `monitor/info` goes on listing it (OBSERVED on
  an unplugged MX30);
- `over_temp[:p0c1]` (card, or the main board), `smoke:p0c1`, `fan_stop[:n]`
  (processor fan n), `signal_lost`, `link_drop` (connections reset);
- `held[:all|monitor]`: VMP holds the processor, every endpoint (or only monitor/info)
  answers `{"code": 1, "message": "device locked"}` (the message is what clients key
  on; the code a real unit sends is not published, 1 is this emulator's choice);
- `busy`: every endpoint answers code 5 "Busying".
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from firmware_protocols import novastar_coex as coex
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
    psu_volts,
)
from firmware_protocols.emulators.http_base import HttpReply, HttpRequest
from firmware_protocols.novastar_coex.records import OUTPUT_ID_BASE
from ledwatch.errors import UsageError

FAMILY: Final = "novastar-coex"
CABINET_ID_BASE: Final = 400_000_000_000_001  # large ids tied to the project, as observed
CARD_NOMINAL_V: Final = 4.3  # what an MX30's receiving cards read (OBSERVED)
LOCKED_CODE: Final = 1  # not published; the message is the signal
SCREEN_ID: Final = "{00000000-0000-0000-0000-000000000002}"
FAN_NAMES: Final = ("Chassis Fan 1", "FPGA Fan", "Chassis Fan 2")
# (id, groupId, name, type): an MX30's inputs; HDMI is the one fed.
SOURCES: Final = ((512, 25, "HDMI2.0 1", 3), (256, 32, "DP1.1", 4), (3, 57, "3G-SDI 1", 7),
                  (25856, 224, "internal-source", 224))  # fmt: skip
FED_SOURCE: Final = 512
RULES: Final[dict[str, FaultRule]] = {
    "psu_sag_then_die": FaultRule(Target.CARD, example="psu_sag_then_die@30:p0c2"),
    "over_temp": FaultRule(Target.CARD, optional=True, example="over_temp:p0c1"),
    "smoke": FaultRule(Target.CARD, example="smoke:p1c0"),
    "fan_stop": FaultRule(Target.NUMBER, optional=True, example="fan_stop:2"),
    **COMMON_RULES,
    "held": FaultRule(Target.WORD, optional=True, words=("all", "monitor"), example="held@20"),
    "busy": FaultRule(Target.NONE, example="busy@10+5"),
}
UNSUPPORTED: Final[dict[str, str]] = {
    "module_fail": "monitor/info's per-card errorBit and moduleInfos have no published meaning",
    "door_open": "monitor/info carries no door reading",
    "psu_drift": "monitor/info reports no PSU rail, only each receiving card's own voltage",
}


class CoexEmulator(HttpFamilyEmulator):
    """See the module docstring."""

    FAMILY = FAMILY
    RULES = RULES
    UNSUPPORTED = UNSUPPORTED

    def __init__(
        self,
        outputs: int = 2,
        cabinets: int | Sequence[int] = 4,
        name: str = "MX40 Pro_0001",
        faults: Iterable[FamilyFault] = (),
        clock: Clock = time.monotonic,
    ) -> None:
        per_output = [cabinets] * outputs if isinstance(cabinets, int) else list(cabinets)
        if not 1 <= outputs <= 32 or len(per_output) != outputs or any(n < 0 for n in per_output):
            raise UsageError("emulator: outputs 1..32 and one cabinet count >= 0 per output")
        self.outputs = outputs
        self.per_output = per_output
        self.name = name
        super().__init__(per_output, faults, clock)

    def check(self, f: FamilyFault) -> None:
        super().check(f)
        if f.kind == "fan_stop" and (f.number or 1) > len(FAN_NAMES):
            raise UsageError(f"fault fan_stop: fans are 1..{len(FAN_NAMES)}")

    def app(self, req: HttpRequest) -> HttpReply:
        active = self.faults.active()
        routes: dict[str, Callable[[list[tuple[float, FamilyFault]]], Any]] = {
            coex.PATH_MONITOR: self._monitor,
            coex.PATH_CABINET_COUNT: self._count,
            coex.PATH_CABINETS: self._cabinet_list,
            coex.PATH_SOURCES: self._sources,
        }
        route = routes.get(req.path)
        if req.method != "GET" or route is None:
            return HttpReply(404, b"404 page not found", "text/plain")
        for _, f in active:
            if f.kind == "busy":
                return HttpReply(body=coex.envelope(None, coex.ErrorCode.BUSYING, "Busying"))
            if f.kind == "held" and (f.target in (None, "all") or req.path == coex.PATH_MONITOR):
                return HttpReply(body=coex.envelope(None, LOCKED_CODE, coex.LOCKED_MESSAGE))
        return HttpReply(body=coex.envelope(route(active)))

    # -- the processor ---------------------------------------------------------------
    def _cards(self) -> list[tuple[int, int, int]]:
        """(output, index, cabinet id) of every cabinet in the project."""
        out, k = [], 0
        for p, n in enumerate(self.per_output):
            for i in range(n):
                out.append((p, i, CABINET_ID_BASE + k))
                k += 1
        return out

    def _connected(self, active: list[tuple[float, FamilyFault]]) -> list[tuple[int, int, int]]:
        dark = {f.card_key for e, f in active if f.kind == "psu_sag_then_die" and psu_dark(e)}
        return [c for c in self._cards() if (c[0], c[1]) not in dark]

    @staticmethod
    def _value(value: float, name: str = "") -> dict[str, Any]:
        return {"name": name, "nameEn": name, "status": 0, "value": value}

    def _monitor(self, active: list[tuple[float, FamilyFault]]) -> dict[str, Any]:
        hot_board = any(f.kind == "over_temp" and f.target is None for _, f in active)
        lost = any(f.kind == "signal_lost" for _, f in active)
        stopped = {f.number or 1 for _, f in active if f.kind == "fan_stop"}
        cabinets = []
        for p, i, cid in self._cards():
            key = (p, i)
            temp = self.wave(40.0, 2.0, 60.0, p * 1.7 + i)
            volts = self.wave(CARD_NOMINAL_V, 0.05, 45.0, p + i * 0.3)
            smoke = 0
            for e, f in active:
                if f.card_key != key:
                    continue
                if f.kind == "over_temp":
                    temp = OVER_TEMP_C
                elif f.kind == "psu_sag_then_die":
                    volts = round(psu_volts(e, CARD_NOMINAL_V), 2)
                elif f.kind == "smoke":
                    smoke = 1
            out_id = OUTPUT_ID_BASE + p
            card = {
                "cabinetID": cid, "cabinetIndex": i, "rvCardID": cid, "netPortIndex": out_id,
                "temperature": self._value(temp), "voltage": self._value(volts),
                "humidity": self._value(0), "runtime": 0, "totalRuntime": 0,
                "nextCabinetLinkStatus": {"linkStatus": True, "status": 0},
            }  # fmt: skip
            cabinets.append({
                "cabinetID": cid, "canvasID": 2048, "index": i, "outPutID": out_id,
                "outputCardID": 8, "rvCardID": cid, "rvCards": [card],
                "cabinet": {"cabinetID": 0, "temperature": self._value(0),
                            "humidity": self._value(0), "smoke": self._value(smoke),
                            "voltage": self._value(volts), "power": None},
            })  # fmt: skip
        cabinets.reverse()  # the order is not stable on a real unit either
        fans = [{"fanName": n, "fanNameEn": n, "fanShowType": 0, "fanType": k + 1,
                 "fanSpeed": 0 if k + 1 in stopped else round(self.wave(3700, 60, 30, k)),
                 "status": 1 if k + 1 in stopped else 0}
                for k, n in enumerate(FAN_NAMES)]  # fmt: skip
        connected_outputs = {p for p, _, _ in self._connected(active)}
        return {
            "name": self.name,
            "runtime": 60 * int(self.faults.elapsed() // 60) + 21000,
            "totalRuntime": 2052000,
            "mainBoardTemperature": self._value(
                OVER_TEMP_C if hot_board else self.wave(32.0, 1.0, 120.0, 0.0),
                "Main_board Temperature"),
            "mainBoardVoltage": self._value(11.56, "Main_board Voltage"),
            "fanInfos": fans,
            "cabinets": cabinets,
            "screenSourceStatus": [
                {"groupID": g, "portID": sid, "inputCardID": 0, "status": 0,
                 "linkStatus": (sid == FED_SOURCE and not lost) or t == 224}
                for sid, g, _, t in SOURCES
            ],
            "outputStatus": [
                {"outputCardID": 8, "outputID": OUTPUT_ID_BASE + p, "type": 0,
                 "status": 0, "linkStatus": p in connected_outputs}
                for p in range(self.outputs)
            ],
            "backupStatus": {"errCode": 108, "maxNormalValue": 0, "minNormalValue": 0,
                             "status": 0},
            "temperatureInfos": None, "voltageInfos": None,
        }  # fmt: skip

    def _count(self, active: list[tuple[float, FamilyFault]]) -> dict[str, Any]:
        return {"list": [{"ScreenID": SCREEN_ID, "CabinetCount": len(self._connected(active)),
                          "CabinetCountInBlackList": 0}]}  # fmt: skip

    def _cabinet_list(self, active: list[tuple[float, FamilyFault]]) -> list[dict[str, Any]]:
        return [
            {"id": cid, "index": i, "outputID": OUTPUT_ID_BASE + p,
             "outputIndex": p, "outputCardID": 8, "canvasID": 2048, "brightness": 0.5,
             "moduleCount": 4, "rvCardName": "A5sPlus",
             "rvCardInfo": {"firmware": "4.6.6.68", "mcuFirmWare": "4.6.6.68"},
             "resolution": {"height": 128, "width": 128}}
            for p, i, cid in self._connected(active)
        ]  # fmt: skip

    def _sources(self, active: list[tuple[float, FamilyFault]]) -> list[dict[str, Any]]:
        lost = any(f.kind == "signal_lost" for _, f in active)
        return [
            {"id": sid, "groupId": g, "name": name, "type": t,
             "sourceStatus": 1 if t == 224 or (sid == FED_SOURCE and not lost) else 0,
             "actualResolution": {"height": 1080, "width": 1920}}
            for sid, g, name, t in SOURCES
        ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """`ledwatch emulate novastar-coex --tcp HOST:PORT [--outputs N] [--cabinets N] ...`."""
    p = family_cli.parser(
        FAMILY, "A NovaStar COEX processor (MX40 Pro kind) answering its HTTP API (port 8001 "
        "on a real unit), with faults.", RULES,
    )  # fmt: skip
    p.add_argument("--outputs", type=int, default=2, help="outputs with cabinets (default 2)")
    p.add_argument("--cabinets", type=family_cli.counts, default=4,
                   help="cabinets per output: 4, or 4,3 per output (default 4)")
    p.add_argument("--name", default="MX40 Pro_0001", help="the controller's name label")
    return family_cli.http_main(
        p, argv, FAMILY, RULES, UNSUPPORTED,
        lambda a, found: CoexEmulator(a.outputs, a.cabinets, a.name, found),
        lambda emu: [f"cards {' '.join(emu.card_ids())}"],
    )  # fmt: skip

if __name__ == "__main__":
    sys.exit(main())


fault = CoexEmulator.fault
