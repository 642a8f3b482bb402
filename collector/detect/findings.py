"""What detection hands to the ticket service: a finding is one fault on one component.

The fault key `site/screen/component/fault` names a finding. A finding is either a root
cause (`root is None`: it opens or updates a ticket) or an effect of another finding
(`root` = that finding's key: it is recorded on the root's ticket, never a ticket of its
own). `active=False` means the fault cleared; the ticket service then marks the ticket
for verification instead of closing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# Agent-level findings (agent offline) concern no single screen; this placeholder can
# never collide with a real screen id, which must start with a letter or digit.
AGENT_SCREEN = "-"


class Fault(StrEnum):
    """Fault kinds; values are stored in tickets and InfluxDB, so never rename one."""

    CONTROLLER_LOST = "controller_lost"
    CONTROLLER_HELD = "controller_held"  # the vendor's own software holds the link
    SIGNAL_LOST = "signal_lost"
    LAYOUT_MISMATCH = "layout_mismatch"
    REDUNDANCY_BACKUP = "redundancy_backup"  # an output port runs on its backup cable
    SCREEN_DARK = "screen_dark"  # every cabinet dark at once, controller still answering
    LINK_BREAK = "link_break"  # every card after a position on an output port gone
    CARD_OFFLINE = "card_offline"
    MODULE_FAULT = "module_fault"
    PSU_FAILED = "psu_failed"
    VOLTAGE_LOW = "voltage_low"
    PSU_DEGRADING = "psu_degrading"  # predictive: drifting away from its peers / trend
    TEMP_HIGH = "temp_high"
    RUNNING_HOT = "running_hot"  # predictive: persistently hotter than its peers
    FAN_STOPPED = "fan_stopped"
    DOOR_OPEN = "door_open"
    SMOKE = "smoke"
    HUMIDITY_HIGH = "humidity_high"
    AGENT_OFFLINE = "agent_offline"
    MANUAL = "manual"  # reported by phone or e-mail through the API


class Priority(StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"

    @property
    def rank(self) -> int:
        """1 for P1 (most urgent) .. 4 for P4."""
        return int(self.value[1])


# Default priority per fault (a rule or a contract may override it). P1: the screen is
# dark or endangered; P2: a cabinet is dark; P3: a part degrades; P4: needs a look.
DEFAULT_PRIORITY: dict[Fault, Priority] = {
    Fault.CONTROLLER_LOST: Priority.P1,
    Fault.SIGNAL_LOST: Priority.P1,
    Fault.SCREEN_DARK: Priority.P1,
    Fault.SMOKE: Priority.P1,
    Fault.LINK_BREAK: Priority.P2,
    Fault.CARD_OFFLINE: Priority.P2,
    Fault.PSU_FAILED: Priority.P2,
    Fault.TEMP_HIGH: Priority.P2,
    Fault.AGENT_OFFLINE: Priority.P2,
    Fault.CONTROLLER_HELD: Priority.P3,
    Fault.MODULE_FAULT: Priority.P3,
    Fault.VOLTAGE_LOW: Priority.P3,
    Fault.PSU_DEGRADING: Priority.P3,
    Fault.FAN_STOPPED: Priority.P3,
    Fault.HUMIDITY_HIGH: Priority.P3,
    Fault.LAYOUT_MISMATCH: Priority.P3,
    Fault.REDUNDANCY_BACKUP: Priority.P3,
    Fault.MANUAL: Priority.P3,
    Fault.RUNNING_HOT: Priority.P4,
    Fault.DOOR_OPEN: Priority.P4,
}

# Faults of one component that are stages of one root cause, mildest first: a later
# stage joins the ticket of an earlier one (and raises it) instead of opening another.
# A PSU that drifts, then sags, then fails is one ticket from first warning to repair.
FAMILIES: tuple[tuple[Fault, ...], ...] = (
    (Fault.PSU_DEGRADING, Fault.VOLTAGE_LOW, Fault.PSU_FAILED),
    (Fault.RUNNING_HOT, Fault.TEMP_HIGH),
)
_FAMILY: dict[Fault, tuple[Fault, ...]] = {f: fam for fam in FAMILIES for f in fam}
# Forecasts rather than faults (predict.py): they open tickets, but never re-open one
# whose worse stage was just fixed.
PREDICTIVE: frozenset[Fault] = frozenset({Fault.PSU_DEGRADING, Fault.RUNNING_HOT})


def family(fault: Fault) -> tuple[Fault, ...]:
    """The stages `fault` belongs to (itself alone when it has no family)."""
    return _FAMILY.get(fault, (fault,))


def stage(fault: Fault) -> int:
    """How far along its family `fault` is (0 for the mildest)."""
    return family(fault).index(fault)


@dataclass(frozen=True, slots=True)
class Finding:
    """One fault state on one component at one time.

    component: "controller", "screen", "card/<card id>", "psu/<psu id>", "link/<card id>"
    (the link into that card), "env", "agent/<agent id>".
    """

    site: str
    screen: str
    component: str
    fault: Fault
    active: bool
    ts_ms: int
    detail: str = ""
    value: float | None = None
    root: str | None = None  # key of the root-cause finding this one is an effect of
    rule_priority: Priority | None = None  # the rule's (or screen's) priority, if set
    flapping: bool = False  # came and went repeatedly: one ticket, marked, no re-opening
    predicted_failure_ms: int | None = None
    evidence: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        return f"{self.site}/{self.screen}/{self.component}/{self.fault.value}"

    @property
    def priority(self) -> Priority:
        return self.rule_priority or DEFAULT_PRIORITY[self.fault]


def split_key(key: str) -> tuple[str, str, str, Fault]:
    """`site/screen/component.../fault` -> its parts (components may contain '/')."""
    site, screen, rest = key.split("/", 2)
    component, _, fault = rest.rpartition("/")
    return site, screen, component, Fault(fault)
