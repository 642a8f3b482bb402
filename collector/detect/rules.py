"""Every threshold-and-hold rule, written once, as data.

A rule compares one reading of one section (controller, card, psu, env) with a level:

```
 score = sign x value            (sign -1 for "below" rules, so every rule reads "above")
 bad   = score >  sign x threshold       held for hold_polls polls and hold_s seconds -> opens
 good  = score <  sign x clear           held for clear_polls polls and clear_s seconds -> clears
 in between (hysteresis band) or unknown (null): nothing changes, pending counts restart
```
Analog readings go through a rolling median of `smooth_polls` first: a one-poll spike
never reaches the comparison, and with an even window (4: the mean of the middle two) a
rail that dithers around a threshold (4.5, 4.6, 4.5, ...) reads as the 4.55 V it is
instead of flipping across it every poll. Flags use 0.5 as both levels.

Everything in `Rule` except the identity fields (name, fault, section, reading, op,
dark, hides) is a default that the collector config overrides per fleet, site or screen
(`[detect.rules.<name>]`, `[detect.sites.<site>.rules.<name>]`, ...). The defaults:
single-poll glitches never open (flags hold >= 2 polls; analog readings open when their
4-poll median is past the threshold, which one poll cannot move); smoke, signal loss and a
dark cabinet open on their second poll; analog faults clear only past a clearing level
(4.6 V opens voltage_low, it clears above 4.7 V, not at 4.61).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Final

from collector.detect.findings import DEFAULT_PRIORITY, Fault, Priority


class Section(StrEnum):
    CONTROLLER = "controller"
    CARD = "card"
    PSU = "psu"
    ENV = "env"


class Op(StrEnum):
    ABOVE = "above"  # bad when the reading is above the threshold
    BELOW = "below"  # bad when the reading is below the threshold
    TRUE = "true"  # a flag: bad when true
    FALSE = "false"  # a flag: bad when false


# Parameters a config layer may set for a rule (all others are the rule's identity).
TUNABLE: Final = (
    "enabled",
    "threshold",
    "clear",
    "hold_polls",
    "hold_of",
    "hold_s",
    "clear_polls",
    "clear_s",
    "smooth_polls",
    "priority",
)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str  # unique; the config key under [detect.rules]
    fault: Fault
    section: Section
    reading: str  # key in the section (see frames.py for the derived ones)
    op: Op
    threshold: float = 0.5
    clear: float | None = None  # None: the threshold itself (no hysteresis band)
    hold_polls: int = 3
    hold_of: int | None = None  # hold_polls bad polls among this many (None: in a row)
    hold_s: float = 0.0
    clear_polls: int = 3
    clear_s: float = 0.0
    smooth_polls: int = 1  # rolling median window; 1 = off
    priority: Priority | None = None  # None: DEFAULT_PRIORITY of the fault
    enabled: bool = True
    # A switched-off screen shows this fault: not judged during its scheduled off time.
    dark: bool = False
    # When bad, the element's other readings (and a card's PSUs) are unknown.
    hides: bool = False
    # env rules: judged only when no card reports this column itself (else one open
    # door would be two tickets: the cabinet's and the screen aggregate's).
    unless_cards: str | None = None

    @property
    def sign(self) -> float:
        return -1.0 if self.op in (Op.BELOW, Op.FALSE) else 1.0

    @property
    def clear_level(self) -> float:
        return self.threshold if self.clear is None else self.clear

    @property
    def effective_priority(self) -> Priority:
        return self.priority or DEFAULT_PRIORITY[self.fault]

    def check(self) -> str | None:
        """Why this parameter set is inconsistent, or None."""
        if self.hold_polls < 1 or self.clear_polls < 1:
            return "hold_polls and clear_polls must be at least 1"
        if self.hold_of is not None and self.hold_of < self.hold_polls:
            return f"hold_of ({self.hold_of}) must be at least hold_polls ({self.hold_polls})"
        if self.hold_s < 0 or self.clear_s < 0:
            return "hold_s and clear_s must be >= 0"
        if not 1 <= self.smooth_polls <= 15:
            return "smooth_polls must be 1..15"
        if self.op is Op.ABOVE and self.clear_level > self.threshold:
            return f"clear ({self.clear_level}) must not be above threshold ({self.threshold})"
        if self.op is Op.BELOW and self.clear_level < self.threshold:
            return f"clear ({self.clear_level}) must not be below threshold ({self.threshold})"
        return None

    def overridden(self, params: dict[str, Any]) -> Rule:
        return replace(self, **params)

    def describe(self, value: Any) -> str:
        """The detail text of an opening finding."""
        if self.op is Op.ABOVE:
            return f"{self.reading} {value} > {self.threshold:g}"
        if self.op is Op.BELOW:
            return f"{self.reading} {value} < {self.threshold:g}"
        return f"{self.reading} {str(self.op is Op.TRUE).lower()}"


_C, _K, _P, _E = Section.CONTROLLER, Section.CARD, Section.PSU, Section.ENV
_A, _B, _T, _F = Op.ABOVE, Op.BELOW, Op.TRUE, Op.FALSE

RULES: Final[tuple[Rule, ...]] = (
    # -- controller (one element per screen) ---------------------------------------------
    Rule("controller_lost", Fault.CONTROLLER_LOST, _C, "online", _F, hold_polls=2,
         clear_polls=2, dark=True, hides=True),
    # The vendor's software holds the link: not lost, but a ticket if it lasts.
    Rule("controller_held", Fault.CONTROLLER_HELD, _C, "held", _T, hold_polls=2,
         hold_s=1800.0, clear_polls=2),
    Rule("signal_lost", Fault.SIGNAL_LOST, _C, "signal_ok", _F, hold_polls=2,
         clear_polls=2, dark=True),
    Rule("redundancy_backup", Fault.REDUNDANCY_BACKUP, _C, "on_backup", _T),
    # Longer than card_offline: a chain that answers short is usually dark cabinets,
    # whose root cause (correlate.py) then takes the mismatch as an effect.
    Rule("layout_mismatch", Fault.LAYOUT_MISMATCH, _C, "layout_ok", _F, hold_polls=4,
         dark=True),
    Rule("controller_temp_high", Fault.TEMP_HIGH, _C, "temp_c", _A, 75.0, 70.0,
         smooth_polls=4, hold_polls=1),
    # -- receiving cards (one element per cabinet) ---------------------------------------
    # A cabinet missing 2 polls in a row, or 2 of 5 (a cable that keeps dropping out).
    Rule("card_offline", Fault.CARD_OFFLINE, _K, "online", _F, hold_polls=2, hold_of=5,
         dark=True, hides=True),
    Rule("module_fault", Fault.MODULE_FAULT, _K, "module_faults", _A, 0.5),
    Rule("card_temp_high", Fault.TEMP_HIGH, _K, "temp_c", _A, 75.0, 70.0, smooth_polls=4,
         hold_polls=1),
    Rule("card_fan_stopped", Fault.FAN_STOPPED, _K, "fan_rpm", _B, 300.0, 500.0,
         smooth_polls=4, hold_polls=1),
    Rule("door_open", Fault.DOOR_OPEN, _K, "door_open", _T, hold_polls=2, clear_polls=2),
    Rule("smoke", Fault.SMOKE, _K, "smoke", _T, hold_polls=2),
    Rule("card_humidity_high", Fault.HUMIDITY_HIGH, _K, "humidity_pct", _A, 90.0, 85.0,
         smooth_polls=4, hold_polls=1),
    # -- power supplies (one element per PSU; unknown while their cabinet is dark) -------
    Rule("psu_failed", Fault.PSU_FAILED, _P, "vout_ok", _B, 3.5, 4.5, hold_polls=1,
         smooth_polls=4, dark=True),
    Rule("voltage_low", Fault.VOLTAGE_LOW, _P, "vout_v", _B, 4.6, 4.7, smooth_polls=4,
         hold_polls=1, dark=True),
    Rule("psu_temp_high", Fault.TEMP_HIGH, _P, "temp_c", _A, 75.0, 70.0, smooth_polls=4,
         hold_polls=1),
    Rule("psu_fan_stopped", Fault.FAN_STOPPED, _P, "fan_rpm", _B, 300.0, 500.0,
         smooth_polls=4, hold_polls=1),
    # -- the screen's own sensors (judged only for what no cabinet reports) --------------
    Rule("env_temp_high", Fault.TEMP_HIGH, _E, "temp_c", _A, 75.0, 70.0, smooth_polls=4,
         hold_polls=1),
    Rule("env_fan_stopped", Fault.FAN_STOPPED, _E, "fan_rpm", _B, 300.0, 500.0,
         smooth_polls=4, hold_polls=1, unless_cards="fan_rpm"),
    Rule("env_door_open", Fault.DOOR_OPEN, _E, "door_open", _T, hold_polls=2,
         clear_polls=2, unless_cards="door_open"),
    Rule("env_smoke", Fault.SMOKE, _E, "smoke", _T, hold_polls=2, unless_cards="smoke"),
    Rule("env_humidity_high", Fault.HUMIDITY_HIGH, _E, "humidity_pct", _A, 90.0, 85.0,
         smooth_polls=4, hold_polls=1, unless_cards="humidity_pct"),
)

RULES_BY_NAME: Final[dict[str, Rule]] = {r.name: r for r in RULES}
assert len(RULES_BY_NAME) == len(RULES), "rule names must be unique"


def section_rules(rules: tuple[Rule, ...], section: Section) -> tuple[Rule, ...]:
    return tuple(r for r in rules if r.section is section)


def readings(section: Section) -> tuple[str, ...]:
    """Every reading any rule of `section` needs, in table order (no repeats)."""
    return tuple(dict.fromkeys(r.reading for r in RULES if r.section is section))


def defaults_table() -> list[str]:
    """One line per rule with its defaults: the table in collector/sample.toml and
    docs/detection.md (a test keeps both equal to this)."""
    lines = []
    for r in RULES:
        parts = [f"threshold = {r.threshold:g}"]
        if r.clear is not None:
            parts.append(f"clear = {r.clear:g}")
        parts += [
            f"hold_polls = {r.hold_polls}",
            *([f"hold_of = {r.hold_of}"] if r.hold_of else []),
            f"hold_s = {r.hold_s:g}",
            f"clear_polls = {r.clear_polls}",
            f"smooth_polls = {r.smooth_polls}",
            f"priority = {r.effective_priority.value}",
        ]
        extra = " (not during scheduled off)" if r.dark else ""
        lines.append(f"{r.name:<21} {r.section.value:<10} {r.reading:<13} {r.op.value:<5} "
                     + ", ".join(parts) + extra)
    return lines
