"""Emulated smart PSUs: N units on one Modbus bus, served by pymodbus's real server.

One emulator is one bus: units answer at slave addresses 1..N, over Modbus TCP on
127.0.0.1 (a free port unless one is given) or Modbus RTU on a serial device (one end
of a socat pty pair, or a real RS-485 adapter). Register contents come from the same
register map and encoder (`firmware_protocols.modbus_psu`) the agent decodes with, so
the bytes on the wire are what a real unit of that map would send.

Readings drift slowly (a sine plus a little noise) so a dashboard looks alive, and
faults can be injected now (`inject`) or later (`schedule`):

| fault       | what the unit does                                                  |
| ----------- | ------------------------------------------------------------------- |
| sag         | output voltage drops ~10 %, no fault bit yet (the early warning)     |
| die         | output 0 V / 0 A, `output_off` bit                                  |
| over_temp   | 95 degC, output shut down: `over_temperature` + `output_off` bits     |
| fan_fail    | fan 0 rpm, temperature climbs, `fan_fail` + `high_temperature` bits |
| ac_fail     | mains lost: output 0 V, `ac_fail` + `output_off` bits                 |
| silent      | the unit stops answering (cable cut, unit unpowered, address wrong) |

The server runs on its own asyncio loop in a daemon thread: `start()` returns once it
listens, `stop()` shuts it down and joins the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from types import TracebackType
from typing import Any, Literal, Self

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusBaseServer, ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from firmware_protocols.modbus_psu import (
    RegisterMap,
    RegisterType,
    encode_registers,
    load_register_map,
)
from ledwatch.errors import UsageError

_HOLDING_FCS = frozenset({3, 6, 16, 22, 23})
_START_TIMEOUT_S = 10.0


class EmulatedFault(StrEnum):
    """Faults the emulator can inject (see the module docstring for their effect)."""

    SAG = "sag"
    DIE = "die"
    OVER_TEMP = "over_temp"
    FAN_FAIL = "fan_fail"
    AC_FAIL = "ac_fail"
    SILENT = "silent"


@dataclass(slots=True)
class UnitState:
    """One emulated PSU: its nominal operating point and the faults active on it."""

    slave: int
    vout_v: float = 5.10
    iout_a: float = 20.0
    temp_c: float = 40.0
    fan_rpm: float = 2400.0
    phase: float = 0.0
    faults: set[EmulatedFault] = field(default_factory=set)


def unit_values(unit: UnitState, t_s: float, noise: float = 0.0) -> tuple[
        dict[str, float], set[str]]:
    """The values and map fault names a unit shows `t_s` seconds after start.

    Pure, so tests can reason about what the unit reports. `noise` is a small number
    in [-1, 1] the caller draws, so the drift is not a perfect sine.
    """
    wobble = math.sin(t_s / 20.0 + unit.phase) + 0.2 * noise
    vout = unit.vout_v + 0.02 * wobble
    iout = unit.iout_a + 1.5 * wobble
    temp = unit.temp_c + 2.0 * wobble
    fan = unit.fan_rpm + 100.0 * wobble
    bits: set[str] = set()
    f = unit.faults
    if EmulatedFault.SAG in f:
        vout *= 0.9
    if EmulatedFault.FAN_FAIL in f:
        fan = 0.0
        temp += 25.0
        bits |= {"fan_fail", "high_temperature"}
    if EmulatedFault.OVER_TEMP in f:
        temp = 95.0
        bits |= {"over_temperature", "high_temperature", "output_off"}
    if EmulatedFault.AC_FAIL in f:
        bits |= {"ac_fail", "output_off"}
    if EmulatedFault.DIE in f:
        bits.add("output_off")
    if "output_off" in bits:
        vout = iout = 0.0
    return {"vout_v": vout, "iout_a": iout, "temp_c": temp, "fan_rpm": fan}, bits


def _runs(addresses: Iterable[int]) -> list[tuple[int, int]]:
    """Contiguous (start, count) runs of sorted addresses."""
    runs: list[tuple[int, int]] = []
    for a in sorted(set(addresses)):
        if runs and runs[-1][0] + runs[-1][1] == a:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((a, 1))
    return runs


class ModbusPsuEmulator:
    """N emulated PSUs (slaves 1..N) on one Modbus TCP or RTU bus.

    `transport="tcp"` listens on `host:port` (port 0 = a free one, see `.port` and
    `.url` after `start()`); `transport="rtu"` opens `serial_port` (e.g. the `.b` end of
    a socat pty pair; the agent opens the other end).
    """

    def __init__(
        self,
        units: int = 3,
        *,
        transport: Literal["tcp", "rtu"] = "tcp",
        register_map: str | RegisterMap = "meanwell_drs_npb",
        host: str = "127.0.0.1",
        port: int = 0,
        serial_port: str | None = None,
        baudrate: int = 19200,
        parity: Literal["N", "E", "O"] = "N",
        seed: int = 0,
    ) -> None:
        if not 1 <= units <= 247:
            raise UsageError(f"units: {units} is outside 1..247 (Modbus slave addresses)")
        if transport not in ("tcp", "rtu"):
            raise UsageError(f"transport: {transport!r} is not 'tcp' or 'rtu'")
        if transport == "rtu" and not serial_port:
            raise UsageError("serial_port: required for transport 'rtu'")
        self.map = (register_map if isinstance(register_map, RegisterMap)
                    else load_register_map(register_map))
        self.transport = transport
        self.host, self.port = host, port
        self.serial_port, self.baudrate, self.parity = serial_port, baudrate, parity
        self._rng = random.Random(seed)
        self.units: dict[int, UnitState] = {
            s: UnitState(
                slave=s,
                iout_a=round(16.0 + 4.0 * self._rng.random(), 2),
                temp_c=round(36.0 + 6.0 * self._rng.random(), 1),
                fan_rpm=float(round(2200 + 400 * self._rng.random())),
                phase=self._rng.uniform(0, 2 * math.pi),
            )
            for s in range(1, units + 1)
        }
        self._lock = threading.Lock()
        self._schedule: list[tuple[float, int, EmulatedFault, bool]] = []
        self._t0 = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: ModbusBaseServer | None = None
        self.requests = 0  # requests answered, for tests and the demo's health line

    # ----------------------------------------------------------------- fault control
    def _unit(self, slave: int) -> UnitState:
        unit = self.units.get(slave)
        if unit is None:
            raise UsageError(f"slave {slave} is not on this bus (1..{len(self.units)})")
        return unit

    def inject(self, slave: int, fault: EmulatedFault | str) -> None:
        """Make `fault` active on unit `slave` now."""
        unit, kind = self._unit(slave), EmulatedFault(fault)
        with self._lock:
            unit.faults.add(kind)

    def clear(self, slave: int, fault: EmulatedFault | str | None = None) -> None:
        """Repair unit `slave`: remove `fault`, or every fault when None."""
        unit = self._unit(slave)
        with self._lock:
            if fault is None:
                unit.faults.clear()
            else:
                unit.faults.discard(EmulatedFault(fault))

    def schedule(self, slave: int, fault: EmulatedFault | str, after_s: float,
                 clear: bool = False) -> None:
        """Inject (or, with `clear`, remove) `fault` on `slave` `after_s` seconds from now."""
        self._unit(slave)
        with self._lock:
            self._schedule.append((time.monotonic() + after_s, slave, EmulatedFault(fault),
                                   clear))

    def _apply_due(self, now: float) -> None:
        due = [item for item in self._schedule if item[0] <= now]
        if due:
            self._schedule = [item for item in self._schedule if item[0] > now]
            for _, slave, kind, clear in sorted(due, key=lambda item: item[0]):
                faults = self.units[slave].faults
                if clear:
                    faults.discard(kind)
                else:
                    faults.add(kind)

    def snapshot(self, slave: int) -> tuple[dict[str, float], set[str]]:
        """What unit `slave` would report right now (values without noise, fault bits)."""
        unit = self._unit(slave)
        now = time.monotonic()
        with self._lock:
            self._apply_due(now)
            return unit_values(unit, now - self._t0)

    def _answers(self, slave: int) -> bool:
        unit = self.units.get(slave)
        if unit is None:
            return False
        with self._lock:
            self._apply_due(time.monotonic())
            return EmulatedFault.SILENT not in unit.faults

    # ------------------------------------------------------------------ server side
    def _words(self, slave: int) -> dict[RegisterType, dict[int, int]]:
        now = time.monotonic()
        with self._lock:
            self._apply_due(now)
            values, bits = unit_values(self.units[slave], now - self._t0,
                                       self._rng.uniform(-1.0, 1.0))
        return encode_registers(self.map, values, bits)  # bits the map lacks are ignored

    async def _action(self, slave: int, func_code: int, start_address: int, _address: int,
                      _count: int, registers: list[int],
                      set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        """Refresh the addressed table from the unit's state just before pymodbus reads it."""
        if set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION  # read-only emulation
        table = RegisterType.HOLDING if func_code in _HOLDING_FCS else RegisterType.INPUT
        for address, word in self._words(slave).get(table, {}).items():
            registers[address - start_address] = word
        self.requests += 1
        return None

    def _devices(self) -> list[SimDevice]:
        layout = encode_registers(self.map, {})
        bits = [SimData(0, values=[False] * 16, datatype=SimType.BITS)]

        def table(kind: RegisterType) -> list[SimData]:
            words = layout.get(kind, {})
            if not words:
                return [SimData(0, datatype=SimType.INVALID)]
            return [SimData(start, values=[words[a] for a in range(start, start + n)],
                            datatype=SimType.REGISTERS, readonly=True)
                    for start, n in _runs(words)]

        return [
            SimDevice(slave, simdata=(list(bits), list(bits), table(RegisterType.HOLDING),
                                      table(RegisterType.INPUT)),
                      action=partial(self._action, slave))
            for slave in self.units
        ]

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU | None:
        """Drop requests for absent or silent slaves: on RS-485 nobody answers those."""
        if not sending and not self._answers(pdu.dev_id):
            return None
        return pdu

    async def _serve(self) -> ModbusBaseServer:
        server: ModbusBaseServer
        # pymodbus types trace_pdu as returning a PDU; it also accepts None ("drop it").
        if self.transport == "tcp":
            server = ModbusTcpServer(self._devices(), address=(self.host, self.port),
                                     trace_pdu=self._trace_pdu)  # type: ignore[arg-type]
        else:
            assert self.serial_port is not None
            server = ModbusSerialServer(self._devices(), port=self.serial_port,
                                        baudrate=self.baudrate, parity=self.parity,
                                        trace_pdu=self._trace_pdu)  # type: ignore[arg-type]
        await server.serve_forever(background=True)
        if self.transport == "tcp":
            sockets = getattr(server.transport, "sockets", None) or []
            self.port = int(sockets[0].getsockname()[1])
        return server

    def start(self) -> Self:
        """Start serving in a background thread; return once the server listens."""
        if self._thread is not None:
            raise UsageError("emulator already started")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(self._serve())
            except BaseException as exc:  # reported to start()'s caller below
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=run, name="modbus-psu-emulator", daemon=True)
        self._thread.start()
        if not ready.wait(_START_TIMEOUT_S) or failure:
            self._thread.join(1.0)
            self._thread = self._loop = None
            cause = failure[0] if failure else TimeoutError("server did not start")
            raise UsageError(f"modbus PSU emulator could not start: {cause}") from cause
        return self

    def stop(self) -> None:
        """Stop the server and its thread; safe to call twice."""
        loop, thread, server = self._loop, self._thread, self._server
        self._loop = self._thread = self._server = None
        if loop is None or thread is None:
            return
        if server is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(server.shutdown(), loop).result(5.0)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5.0)

    @property
    def url(self) -> str:
        """The agent's `psus.url` for a TCP emulator (RTU: the caller knows its pty end)."""
        if self.transport != "tcp":
            raise UsageError("url: only a TCP emulator has one; give the agent the other pty")
        return f"modbus-tcp://{self.host}:{self.port}"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        where: Any = f"{self.host}:{self.port}" if self.transport == "tcp" else self.serial_port
        return f"ModbusPsuEmulator({len(self.units)} units, {self.transport} {where})"
