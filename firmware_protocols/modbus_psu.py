"""Smart power supplies on Modbus: register maps, read plans and decoding (no I/O).

A PSU model is described by a TOML register map under `firmware_protocols/registermaps/`
(one file per model family, so a new model is a data file, not code). This module:

- loads and validates a map (`load_register_map`, `parse_register_map`); errors are
  `ConfigError`s that name the bad key, e.g. `values.vout_v.scale`;
- plans the reads (`plan_reads`): the fewest Modbus requests that cover every register
  the map uses, merging only registers that are contiguous (a read across a gap hits
  an address the unit may not implement and fails with "illegal data address");
- decodes the words read (`decode_reading`) into a `PsuReading`, with `None` for every
  value whose registers did not arrive, and encodes values back into words
  (`encode_registers`) for the emulator.

Register words are 16-bit unsigned integers as Modbus carries them. Addresses are the
0-based protocol addresses sent on the wire (a manual's "40097" or "register 97" must
be converted when writing a map).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ledwatch.errors import ConfigError

MAX_READ_WORDS: Final = 125  # Modbus limit for one read holding/input registers request
MEASUREMENTS: Final = ("vout_v", "iout_a", "temp_c", "fan_rpm")


class RegisterType(StrEnum):
    """Which Modbus table a value lives in (function code 0x03 or 0x04)."""

    HOLDING = "holding"
    INPUT = "input"


class DataType(StrEnum):
    """How the words of one value are read as a number."""

    UINT16 = "uint16"
    INT16 = "int16"
    UINT32 = "uint32"
    INT32 = "int32"

    @property
    def words(self) -> int:
        return 2 if self in (DataType.UINT32, DataType.INT32) else 1

    @property
    def signed(self) -> bool:
        return self in (DataType.INT16, DataType.INT32)


class PsuFault(StrEnum):
    """Fault and status conditions a map may report; downstream detection keys on these."""

    OVER_TEMPERATURE = "over_temperature"
    HIGH_TEMPERATURE = "high_temperature"  # early warning, before the unit shuts down
    OVER_VOLTAGE = "over_voltage"
    OVER_CURRENT = "over_current"
    SHORT_CIRCUIT = "short_circuit"
    FAN_FAIL = "fan_fail"
    AC_FAIL = "ac_fail"
    OUTPUT_OFF = "output_off"


class Severity(StrEnum):
    """A `fault` makes the PSU not ok; a `warning` is reported but leaves `ok` alone."""

    FAULT = "fault"
    WARNING = "warning"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValueSpec(_Strict):
    """One value: where its words are and how they become a number in `unit`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    address: int = Field(ge=0, le=0xFFFF)
    # `register` in TOML; renamed here because pydantic models already have `.register`.
    table: RegisterType = Field(default=RegisterType.HOLDING, alias="register")
    words: int = Field(default=1, ge=1, le=2)
    type: DataType = DataType.UINT16
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    # A raw value the unit uses for "not available" (e.g. 0xFFFF); decodes to None.
    not_available: int | None = None

    @model_validator(mode="after")
    def _check(self) -> ValueSpec:
        if self.words != self.type.words:
            raise ValueError(f"words = {self.words} does not fit type {self.type.value!r} "
                             f"(needs {self.type.words})")
        if self.address + self.words - 1 > 0xFFFF:
            raise ValueError("address + words runs past register 65535")
        if not math.isfinite(self.scale) or self.scale == 0:
            raise ValueError("scale must be a finite, non-zero number")
        return self


class FaultSpec(_Strict):
    """One fault/status bit inside a value (usually a status register)."""

    value: str = Field(min_length=1)
    bit: int = Field(ge=0, le=31)
    severity: Severity = Severity.FAULT


class MapInfo(_Strict):
    name: str = Field(min_length=1)
    vendor: str = ""
    models: list[str] = Field(default_factory=list)
    manual: str = ""
    # Order of the two words of a 32-bit value: "big" = high word first (Modbus custom).
    word_order: Literal["big", "little"] = "big"


class RegisterMap(_Strict):
    """A validated register map; build it with `parse_register_map`."""

    map: MapInfo
    values: dict[str, ValueSpec]
    faults: dict[PsuFault, FaultSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> RegisterMap:
        if "vout_v" not in self.values:
            raise ValueError("values.vout_v: missing (every PSU map must read the output voltage)")
        for name, fault in self.faults.items():
            spec = self.values.get(fault.value)
            if spec is None:
                raise ValueError(f"faults.{name.value}.value: {fault.value!r} is not a key of "
                                 f"[values] (known: {sorted(self.values)})")
            if fault.bit >= 16 * spec.words:
                raise ValueError(f"faults.{name.value}.bit: {fault.bit} is outside "
                                 f"values.{fault.value} ({16 * spec.words} bits)")
        return self


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One Modbus read request: `count` words from `address` in table `register`."""

    register: RegisterType
    address: int
    count: int


# Words read from one unit: table -> address -> 16-bit word.
Registers = Mapping[RegisterType, Mapping[int, int]]


@dataclass(slots=True)
class PsuReading:
    """One PSU's state. None means unreadable; `ok` is None when no status was read."""

    vout_v: float | None = None
    iout_a: float | None = None
    temp_c: float | None = None
    fan_rpm: float | None = None
    faults: set[str] = field(default_factory=set)
    ok: bool | None = None


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc if p != "[key]")


def parse_register_map(doc: Mapping[str, Any], source: str = "register map") -> RegisterMap:
    """Validate an already-parsed TOML document; raise `ConfigError` naming the bad key."""
    try:
        return RegisterMap.model_validate(doc)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = str(err["msg"]).removeprefix("Value error, ")
            loc = _loc(err["loc"])
            if "[key]" in err["loc"]:
                msg = f"{err['input']!r} is not an allowed name here ({msg})"
            # A model-level check names its own key in the message; avoid saying it twice.
            problems.append(msg if not loc or msg.startswith(loc) else f"{loc}: {msg}")
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None


def available_maps() -> list[str]:
    """Names of the register maps shipped with the package."""
    folder = resources.files("firmware_protocols.registermaps")
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir()
                  if p.name.endswith(".toml"))


def load_register_map(name_or_path: str | Path) -> RegisterMap:
    """Load a shipped map by name (`meanwell_drs_npb`) or any map file by path."""
    text: str
    if isinstance(name_or_path, Path) or str(name_or_path).endswith(".toml"):
        path = Path(name_or_path)
        source = str(path)
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read register map ({exc.strerror})") from None
    else:
        name = str(name_or_path)
        if name not in available_maps():
            raise ConfigError(f"unknown register map {name!r} (known: {available_maps()})")
        source = f"{name}.toml"
        folder = resources.files("firmware_protocols.registermaps")
        text = folder.joinpath(source).read_text("utf-8")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from None
    return parse_register_map(doc, source)


def _spans(regmap: RegisterMap) -> Iterable[tuple[RegisterType, int]]:
    for spec in regmap.values.values():
        for i in range(spec.words):
            yield spec.table, spec.address + i


def plan_reads(regmap: RegisterMap, max_words: int = MAX_READ_WORDS) -> list[ReadBlock]:
    """The fewest reads covering every register of the map, merging contiguous runs only."""
    if not 1 <= max_words <= MAX_READ_WORDS:
        raise ValueError(f"max_words must be 1..{MAX_READ_WORDS}")
    blocks: list[ReadBlock] = []
    for register, address in sorted(set(_spans(regmap))):
        last = blocks[-1] if blocks else None
        if (last is not None and last.register == register
                and last.address + last.count == address and last.count < max_words):
            blocks[-1] = ReadBlock(register, last.address, last.count + 1)
        else:
            blocks.append(ReadBlock(register, address, 1))
    return blocks


def registers_from_blocks(results: Iterable[tuple[ReadBlock, list[int]]]) -> dict[
        RegisterType, dict[int, int]]:
    """Turn (block, words read) pairs into the table -> address -> word mapping."""
    out: dict[RegisterType, dict[int, int]] = {}
    for block, words in results:
        table = out.setdefault(block.register, {})
        for i, word in enumerate(words[: block.count]):
            table[block.address + i] = word
    return out


def _ndigits(scale: float) -> int:
    exponent = Decimal(repr(scale)).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 6


def _raw(spec: ValueSpec, registers: Registers, word_order: str) -> int | None:
    table = registers.get(spec.table, {})
    words = [table.get(spec.address + i) for i in range(spec.words)]
    if any(w is None for w in words):
        return None
    ws = [int(w) & 0xFFFF for w in words if w is not None]
    if word_order == "little":
        ws.reverse()
    raw = 0
    for w in ws:
        raw = (raw << 16) | w
    return raw


def _signed(raw: int, spec: ValueSpec) -> int:
    bits = 16 * spec.words
    if spec.type.signed and raw >= 1 << (bits - 1):
        return raw - (1 << bits)
    return raw


def decode_value(regmap: RegisterMap, name: str, registers: Registers) -> float | None:
    """One value in its unit, or None if its words are missing or say "not available"."""
    spec = regmap.values[name]
    raw = _raw(spec, registers, regmap.map.word_order)
    if raw is None or raw == spec.not_available:
        return None
    value = _signed(raw, spec) * spec.scale + spec.offset
    return round(value, max(_ndigits(spec.scale), _ndigits(spec.offset)))


def decode_reading(regmap: RegisterMap, registers: Registers) -> PsuReading:
    """Decode one unit's words; anything unreadable stays None.

    `ok` is False when a fault-severity bit is set, True when every status value the
    faults live in was read and none is set, and None when a status value is missing
    (the unit did not answer, or the map has no faults).
    """
    reading = PsuReading()
    for name in MEASUREMENTS:
        if name in regmap.values:
            setattr(reading, name, decode_value(regmap, name, registers))
    status_missing = not regmap.faults
    failing = False
    for fault, fspec in regmap.faults.items():
        vspec = regmap.values[fspec.value]
        raw = _raw(vspec, registers, regmap.map.word_order)
        if raw is None or raw == vspec.not_available:
            status_missing = True
            continue
        if raw >> fspec.bit & 1:
            reading.faults.add(fault.value)
            failing = failing or fspec.severity is Severity.FAULT
    reading.ok = False if failing else (None if status_missing else True)
    return reading


def encode_registers(
    regmap: RegisterMap,
    values: Mapping[str, float | None],
    faults: Iterable[str] = (),
) -> dict[RegisterType, dict[int, int]]:
    """The inverse of `decode_reading`, for emulators and tests.

    `values` maps value names to numbers in their unit (None or absent: 0, or the
    value's `not_available` raw code if it has one); fault names set their bits, which
    are OR-ed into the status values. Out-of-range numbers saturate at the type's limits.
    """
    active = {PsuFault(f) for f in faults}
    raws: dict[str, int] = {}
    for name, spec in regmap.values.items():
        number = values.get(name)
        if number is None:
            raws[name] = spec.not_available if spec.not_available is not None else 0
            continue
        bits = 16 * spec.words
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if spec.type.signed else (
            0, (1 << bits) - 1)
        raw = min(hi, max(lo, round((number - spec.offset) / spec.scale)))
        raws[name] = raw & ((1 << bits) - 1)
    for fault, fspec in regmap.faults.items():
        if fault in active:
            raws[fspec.value] |= 1 << fspec.bit
    out: dict[RegisterType, dict[int, int]] = {}
    for name, spec in regmap.values.items():
        raw = raws[name]
        words = [(raw >> (16 * i)) & 0xFFFF for i in reversed(range(spec.words))]
        if regmap.map.word_order == "little":
            words.reverse()
        table = out.setdefault(spec.table, {})
        for i, word in enumerate(words):
            table[spec.address + i] = word
    return out
