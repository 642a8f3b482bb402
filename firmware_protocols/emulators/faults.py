"""Fault schedules for the emulators of the newer families (Colorlight, COEX, Tessera).

The spec syntax is NovaStar's, `kind[@at_s][+duration_s][:target]`, parsed with the same
regular expression (`firmware_protocols.emulators.novastar.FAULT_SPEC_RE`), and the kinds
keep NovaStar's names and timelines (the PSU sag-then-die constants are imported too).
NovaStar's `parse_fault` itself does not fit: it validates targets the NovaStar way (a
fan is `p0c3/2`, a card fan) and knows no `held`/`busy`, whereas a COEX fan is a
processor fan (`fan_stop:2`) and a Tessera processor has no cards at all. So each family
declares a `FaultRule` per kind it can show, and a kind it cannot see is refused with a
message saying why, instead of being accepted and silently never showing.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from firmware_protocols.emulators.novastar import (
    FAULT_SPEC_RE,
    PSU_LOW_S,
    PSU_LOW_V,
    PSU_NOMINAL_V,
    PSU_SAG_S,
    PSU_SAGGED_V,
    ManualClock,
)
from ledwatch.errors import UsageError

__all__ = [
    "COMMON_RULES",
    "PSU_LOW_S",
    "PSU_SAG_S",
    "FamilyFault",
    "FaultRule",
    "FaultSchedule",
    "ManualClock",
    "Target",
    "make_fault",
    "parse_fault_spec",
    "psu_dark",
    "psu_volts",
]

Clock = Callable[[], float]
CARD_TARGET_RE = re.compile(r"^p(\d+)c(\d+)(?:/(\d+))?$")
NUMBER_RE = re.compile(r"^[1-9]\d{0,3}$")
OVER_TEMP_C = 85.0  # what an over_temp fault makes a sensor read, as on NovaStar


class Target(StrEnum):
    """What follows the `:` of a fault spec."""

    NONE = "none"  # nothing: the fault is screen- or processor-wide
    CARD = "card"  # a cabinet `p<port>c<index>`, optionally `/n` (count or sub-part)
    NUMBER = "number"  # 1, 2, ...: a fan, a number of tiles
    WORD = "word"  # one of `FaultRule.words`


@dataclass(frozen=True, slots=True)
class FaultRule:
    """How one family accepts one fault kind. `optional`: the target may be left out."""

    target: Target
    optional: bool = False
    words: tuple[str, ...] = ()
    example: str = ""


# The kinds every family can show, with the same meaning everywhere.
COMMON_RULES: dict[str, FaultRule] = {
    "signal_lost": FaultRule(Target.NONE, example="signal_lost@5"),
    "link_drop": FaultRule(Target.NONE, example="link_drop@60+20"),
}


@dataclass(frozen=True, slots=True)
class FamilyFault:
    """One scheduled fault: `kind` from `at_s` seconds for `duration_s` (None = for good)."""

    kind: str
    at_s: float = 0.0
    target: str | None = None
    duration_s: float | None = None

    @property
    def card(self) -> str | None:
        """`p0c3` of a card target (without its `/n`), else None."""
        m = CARD_TARGET_RE.fullmatch(self.target or "")
        return f"p{m[1]}c{m[2]}" if m else None

    @property
    def card_key(self) -> tuple[int, int] | None:
        m = CARD_TARGET_RE.fullmatch(self.target or "")
        return (int(m[1]), int(m[2])) if m else None

    @property
    def number(self) -> int | None:
        """The `/n` of a card target or a bare number target."""
        m = CARD_TARGET_RE.fullmatch(self.target or "")
        if m:
            return int(m[3]) if m[3] else None
        return int(self.target) if self.target and NUMBER_RE.fullmatch(self.target) else None


def make_fault(
    family: str,
    rules: Mapping[str, FaultRule],
    kind: str,
    at_s: float = 0.0,
    target: str | None = None,
    duration_s: float | None = None,
    unsupported: Mapping[str, str] | None = None,
) -> FamilyFault:
    """A validated fault; `UsageError` says what is wrong (unknown kind, bad target, or
    a kind this family cannot see, with the reason from `unsupported`)."""
    rule = rules.get(kind)
    if rule is None:
        why = (unsupported or {}).get(kind)
        if why:
            raise UsageError(f"fault {kind}: {family} cannot show it ({why})")
        raise UsageError(f"unknown fault kind {kind!r} for {family} (known: {', '.join(rules)})")
    if at_s < 0 or (duration_s is not None and duration_s <= 0):
        raise UsageError(f"fault {kind}: at_s must be >= 0 and duration_s > 0")
    if target is None:
        if rule.target is Target.NONE or rule.optional:
            return FamilyFault(kind, at_s, None, duration_s)
        raise UsageError(f"fault {kind}: needs a target, e.g. {rule.example}")
    ok = {
        Target.NONE: False,
        Target.CARD: bool(CARD_TARGET_RE.fullmatch(target)),
        Target.NUMBER: bool(NUMBER_RE.fullmatch(target)),
        Target.WORD: target in rule.words,
    }[rule.target]
    if not ok:
        what = {
            Target.NONE: "takes no target",
            Target.CARD: "needs a card like p0c3 or p0c3/2",
            Target.NUMBER: "needs a number like 1",
            Target.WORD: f"needs one of {' | '.join(rule.words)}",
        }[rule.target]
        raise UsageError(f"fault {kind}: target {target!r}: {what}")
    return FamilyFault(kind, at_s, target, duration_s)


def parse_fault_spec(
    family: str,
    rules: Mapping[str, FaultRule],
    spec: str,
    unsupported: Mapping[str, str] | None = None,
) -> FamilyFault:
    """Parse `kind[@at_s][+duration_s][:target]` (NovaStar's syntax) for one family."""
    m = FAULT_SPEC_RE.fullmatch(spec.strip())
    if not m:
        examples = ", ".join(r.example for r in rules.values() if r.example)
        raise UsageError(
            f"fault {spec!r}: expected kind[@at_s][+duration_s][:target], e.g. {examples}"
        )
    return make_fault(
        family,
        rules,
        m["kind"],
        float(m["at"] or 0),
        m["target"],
        float(m["dur"]) if m["dur"] else None,
        unsupported,
    )


class FaultSchedule:
    """Faults on an injectable clock; thread-safe (every transport thread asks it)."""

    def __init__(self, clock: Clock = time.monotonic, faults: Iterable[FamilyFault] = ()) -> None:
        self.clock = clock
        self.t0 = clock()
        self._lock = threading.Lock()
        self._faults: list[tuple[float, FamilyFault]] = []
        for f in faults:
            self.schedule(f)

    def elapsed(self) -> float:
        return self.clock() - self.t0

    def schedule(self, fault: FamilyFault) -> None:
        """Start `fault` `fault.at_s` seconds after the emulator started."""
        with self._lock:
            self._faults.append((self.t0 + fault.at_s, fault))

    def inject(self, fault: FamilyFault) -> None:
        """Start `fault` `fault.at_s` seconds from now (0 = at once)."""
        with self._lock:
            self._faults.append((self.clock() + fault.at_s, fault))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def active(self) -> list[tuple[float, FamilyFault]]:
        """(seconds since it started, fault) for every fault active now."""
        now = self.clock()
        with self._lock:
            return [
                (now - start, f)
                for start, f in self._faults
                if start <= now and (f.duration_s is None or now < start + f.duration_s)
            ]

    def faults(self) -> list[FamilyFault]:
        with self._lock:
            return [f for _, f in self._faults]

    def any(self, kind: str) -> bool:
        return any(f.kind == kind for _, f in self.active())


def psu_volts(elapsed_s: float, nominal_v: float = PSU_NOMINAL_V) -> float:
    """The supply of a cabinet `elapsed_s` into `psu_sag_then_die` (NovaStar's timeline,
    scaled to `nominal_v`): 5.0 V sagging to 4.3 V over PSU_SAG_S, then ~2.5 V until the
    cabinet goes dark."""
    if elapsed_s < PSU_SAG_S:
        v = PSU_NOMINAL_V - (PSU_NOMINAL_V - PSU_SAGGED_V) * elapsed_s / PSU_SAG_S
    else:
        v = PSU_LOW_V
    return v * nominal_v / PSU_NOMINAL_V


def psu_dark(elapsed_s: float) -> bool:
    """Has the cabinet gone dark (PSU_SAG_S + PSU_LOW_S into `psu_sag_then_die`)?"""
    return elapsed_s >= PSU_SAG_S + PSU_LOW_S
