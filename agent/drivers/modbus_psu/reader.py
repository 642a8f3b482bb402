"""Reads a cabinet bus of smart PSUs over Modbus and returns the snapshot's `psus` columns.

The reader owns the port (a TCP socket or a serial line, through pymodbus's sync
clients); register maps, read plans and decoding are the pure functions of
`firmware_protocols.modbus_psu`. Call order: `open()` once, `read()` once per poll
(never concurrently), `close()` once. A unit that does not answer is data, not an
error: its row is nulls with `ok` null, and `read()` never raises for anything the
bus does. Only bad options raise, at construction, as `ConfigError` naming
`psus.<key>`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from agent.drivers import PsuSourceFamily
from firmware_protocols.modbus_psu import (
    PsuReading,
    ReadBlock,
    RegisterMap,
    RegisterType,
    decode_reading,
    load_register_map,
    plan_reads,
    registers_from_blocks,
)
from ledwatch.contract import ID_PATTERN
from ledwatch.errors import ConfigError, UsageError

CARD_PATTERN = re.compile(r"^p\d{1,3}c\d{1,4}$")  # receiving card id: p<port>c<index>
COLUMNS = ("id", "card", "ok", "vout_v", "iout_a", "temp_c", "fan_rpm", "faults", "model")
MODEL_MAX = 128


@dataclass(frozen=True, slots=True)
class TcpEndpoint:
    host: str
    port: int = 502


@dataclass(frozen=True, slots=True)
class RtuEndpoint:
    device: str
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: int = 1
    bytesize: int = 8


def parse_url(url: str) -> TcpEndpoint | RtuEndpoint:
    """`modbus-tcp://host[:port]` or `modbus-rtu:///dev/ttyUSB1?baud=9600&parity=N`.

    A Windows port goes in the host part: `modbus-rtu://COM3?baud=19200`. Raises
    ValueError with a message that says what is wrong.
    """
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if parts.scheme == "modbus-tcp":
        if query or parts.path not in ("", "/"):
            raise ValueError("modbus-tcp URLs take no path or query (modbus-tcp://host:502)")
        if not parts.hostname:
            raise ValueError("missing host (modbus-tcp://host:502)")
        try:
            port = parts.port or 502
        except ValueError:
            raise ValueError("port must be a number 1..65535") from None
        return TcpEndpoint(parts.hostname, port)
    if parts.scheme == "modbus-rtu":
        device = parts.netloc or parts.path
        if not device or device == "/":
            raise ValueError("missing serial device (modbus-rtu:///dev/ttyUSB1?baud=9600)")
        unknown = set(query) - {"baud", "parity", "stopbits", "bytesize"}
        if unknown:
            raise ValueError(f"unknown query parameter(s) {sorted(unknown)} "
                             "(known: baud, parity, stopbits, bytesize)")
        try:
            baud = int(query.get("baud", "9600"))
            stopbits = int(query.get("stopbits", "1"))
            bytesize = int(query.get("bytesize", "8"))
        except ValueError:
            raise ValueError("baud, stopbits and bytesize must be integers") from None
        parity = query.get("parity", "N").upper()
        if parity not in ("N", "E", "O"):
            raise ValueError(f"parity must be N, E or O, not {parity!r}")
        if not 300 <= baud <= 921600 or stopbits not in (1, 2) or bytesize not in (7, 8):
            raise ValueError("baud must be 300..921600, stopbits 1 or 2, bytesize 7 or 8")
        return RtuEndpoint(device, baud, parity, stopbits, bytesize)  # type: ignore[arg-type]
    raise ValueError(f"scheme must be modbus-tcp or modbus-rtu, not {parts.scheme!r}")


class PsuUnit(BaseModel):
    """One PSU on the bus: its slave address, its id, and the receiving card it feeds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slave: int = Field(ge=1, le=247)
    id: str
    card: str | None = None
    # The unit's model for the installed base and spare parts (telemetry `psus.model`);
    # default: the bus's `model`, else the register map's (see `ModbusPsuReader.models`).
    model: str | None = Field(default=None, min_length=1, max_length=MODEL_MAX)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not ID_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid id (lower-case letters, digits, "
                             "'_' or '-', at most 64 characters)")
        return value

    @field_validator("card")
    @classmethod
    def _card(cls, value: str | None) -> str | None:
        if value is not None and not CARD_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not a receiving card id like 'p1c4' "
                             "(p<port>c<index>)")
        return value


class ModbusPsuOptions(BaseModel):
    """The `[psus]` table of a screen (see sample.toml for every key and its default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    map: str = "meanwell_drs_npb"
    units: list[PsuUnit] = Field(min_length=1, max_length=247)
    timeout_ms: int = Field(default=500, ge=10, le=60_000)
    retries: int = Field(default=1, ge=0, le=10)
    model: str | None = Field(default=None, min_length=1, max_length=MODEL_MAX)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parse_url(value)
        return value

    @field_validator("units")
    @classmethod
    def _unique(cls, units: list[PsuUnit]) -> list[PsuUnit]:
        for attr in ("slave", "id"):
            seen: dict[Any, int] = {}
            for i, unit in enumerate(units):
                key = getattr(unit, attr)
                if key in seen:
                    raise ValueError(f"[{i}].{attr}: duplicate {key!r} "
                                     f"(already units[{seen[key]}].{attr})")
                seen[key] = i
        return units

    @property
    def endpoint(self) -> TcpEndpoint | RtuEndpoint:
        return parse_url(self.url)

    def psu_ids(self) -> list[tuple[str, str]]:
        """(key in the table, PSU id) of every unit, for the agent's duplicate check."""
        return [(f"units[{u}].id", unit.id) for u, unit in enumerate(self.units)]


def _dotted(prefix: str, loc: tuple[int | str, ...]) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def parse_options(options: Mapping[str, Any], prefix: str = "psus") -> ModbusPsuOptions:
    """Validate the `[psus]` table once; raise `ConfigError` naming `<prefix>.<key>`."""
    try:
        return ModbusPsuOptions.model_validate(dict(options))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = _dotted(prefix, tuple(err["loc"]))
            if err["type"] == "extra_forbidden":
                msg = "unknown key (see agent/drivers/modbus_psu/sample.toml)"
            elif err["type"] == "missing":
                msg = "required key is missing"
            else:
                msg = str(err["msg"]).removeprefix("Value error, ")
            if msg.startswith("[") and "]." in msg:  # a list check naming its own element
                idx, _, msg = msg.partition(": ")
                key += idx
            problems.append(f"{key}: {msg}")
        raise ConfigError("; ".join(problems)) from None


def parse_table(table: Mapping[str, Any], prefix: str, base_dir: Path | None = None
                ) -> ModbusPsuOptions:  # fmt: skip
    """The PSU-source registry's `parse`: validate a `[[screens.psus]]` table and load its
    register map now (a bad map must stop the start, not the first poll); a `map` path
    is taken relative to the config file's folder."""
    opts = parse_options(table, prefix)
    if opts.map.endswith(".toml") and base_dir is not None and not Path(opts.map).is_absolute():
        opts = opts.model_copy(update={"map": str(base_dir / opts.map)})
    try:
        load_register_map(opts.map)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}.map: {exc}") from None
    return opts


class ModbusPsuReader:
    """Polls every configured PSU of one bus; see the module docstring for the contract."""

    def __init__(self, options: Mapping[str, Any] | ModbusPsuOptions,
                 prefix: str = "psus") -> None:
        self.options = (options if isinstance(options, ModbusPsuOptions)
                        else parse_options(options, prefix))
        try:
            self.map: RegisterMap = load_register_map(self.options.map)
        except ConfigError as exc:
            raise ConfigError(f"{prefix}.map: {exc}") from None
        self.plan: list[ReadBlock] = plan_reads(self.map)
        # A map that names one model is that model; one for a family names the family.
        info = self.map.map
        default = self.options.model or (info.models[0] if len(info.models) == 1 else info.name)
        self.models: list[str] = [(u.model or default)[:MODEL_MAX] for u in self.options.units]
        self.endpoint = self.options.endpoint
        self._client: ModbusTcpClient | ModbusSerialClient | None = None
        self.errors_total = 0  # failed requests since open(), for the agent's poll_errors
        self.last_errors = 0  # failed requests during the last read()
        self.last_answered = 0  # units that answered at least one request in the last read()

    @property
    def ids(self) -> list[str]:
        return [u.id for u in self.options.units]

    @property
    def cards(self) -> list[str | None]:
        return [u.card for u in self.options.units]

    @property
    def columns(self) -> tuple[str, ...]:
        return COLUMNS

    def describe(self) -> str:
        return self.options.url

    def open(self) -> None:
        """Create the client and try to connect; an unreachable bus is retried each read."""
        if self._client is not None:
            raise UsageError("ModbusPsuReader.open() called twice")
        # pymodbus logs every timeout at ERROR with a frame dump: a dead unit would flood
        # the agent's log each poll. Failures are counted here and reported in the
        # snapshot's stats instead.
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        timeout_s = self.options.timeout_ms / 1000.0
        ep = self.endpoint
        if isinstance(ep, TcpEndpoint):
            self._client = ModbusTcpClient(ep.host, port=ep.port, timeout=timeout_s,
                                           retries=self.options.retries)
        else:
            self._client = ModbusSerialClient(ep.device, baudrate=ep.baudrate, parity=ep.parity,
                                              stopbits=ep.stopbits, bytesize=ep.bytesize,
                                              timeout=timeout_s, retries=self.options.retries)
        self._client.connect()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> ModbusPsuReader:
        self.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _read_block(self, client: ModbusTcpClient | ModbusSerialClient, slave: int,
                    block: ReadBlock) -> list[int] | None:
        read = (client.read_holding_registers if block.register is RegisterType.HOLDING
                else client.read_input_registers)
        response = read(block.address, count=block.count, device_id=slave)
        if response.isError() or len(response.registers) < block.count:
            return None  # exception response (e.g. illegal address): the unit is there
        return list(response.registers)

    def read_unit(self, slave: int) -> PsuReading | None:
        """Read and decode one unit; None if it did not answer at all."""
        return self._read_unit(slave)[0]

    def _read_unit(self, slave: int) -> tuple[PsuReading | None, bool]:
        """(reading or None if silent, whether the link itself is down)."""
        client = self._client
        if client is None:
            raise UsageError("ModbusPsuReader.read() before open()")
        results: list[tuple[ReadBlock, list[int]]] = []
        answered = link_down = False
        for block in self.plan:
            try:
                words = self._read_block(client, slave, block)
            except ModbusIOException:
                # No answer after pymodbus's own retries: the unit is silent; skip its
                # other blocks instead of waiting for each to time out as well.
                self.last_errors += 1
                break
            except (ConnectionException, ModbusException, OSError):
                # Connection refused/lost or the port vanished: reconnect on the next read.
                self.last_errors += 1
                client.close()
                link_down = True
                break
            answered = True
            if words is None:
                self.last_errors += 1
            else:
                results.append((block, words))
        if not answered:
            return None, link_down
        return decode_reading(self.map, registers_from_blocks(results)), link_down

    def read(self) -> dict[str, list[Any]]:
        """One poll of every unit, as the telemetry `psus` columns (one element per unit)."""
        self.last_errors = 0
        self.last_answered = 0
        cols: dict[str, list[Any]] = {name: [] for name in COLUMNS}
        link_down = False
        for unit, model in zip(self.options.units, self.models, strict=True):
            reading: PsuReading | None = None
            if not link_down:  # a dead link would only make every other unit time out too
                reading, link_down = self._read_unit(unit.slave)
            if reading is not None:
                self.last_answered += 1
            cols["id"].append(unit.id)
            cols["card"].append(unit.card)
            cols["ok"].append(None if reading is None else reading.ok)
            for name in ("vout_v", "iout_a", "temp_c", "fan_rpm"):
                cols[name].append(None if reading is None else getattr(reading, name))
            # Comma-separated map fault names ("" = none, null = unknown): a string keeps
            # the column a plain field for InfluxDB.
            known = reading is not None and (reading.ok is not None or bool(reading.faults))
            cols["faults"].append(",".join(sorted(reading.faults)) if known and reading else None)
            # A silent unit's row stays all nulls; the collector keeps the model it knew.
            cols["model"].append(None if reading is None else model)
        self.errors_total += self.last_errors
        return cols


# The registry line in agent/drivers/__init__.py points here.
SOURCE = PsuSourceFamily(parse=parse_table, create=ModbusPsuReader, options_type=ModbusPsuOptions)
