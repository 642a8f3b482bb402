"""What detection hands to the ticket service: a finding is one fault on one component.

The fault key `site/screen/component/fault` is the unit of de-duplication: at most one
open ticket exists per key. `active=False` means the fault cleared; the ticket service
then marks the ticket for verification instead of closing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# Agent-level findings (agent offline) concern no single screen; this placeholder can
# never collide with a real screen id, which must start with a letter or digit.
AGENT_SCREEN = "-"


class Fault(StrEnum):
    """Fault kinds; values are stored in tickets and InfluxDB, so never rename one."""

    CONTROLLER_LOST = "controller_lost"
    SIGNAL_LOST = "signal_lost"
    LAYOUT_MISMATCH = "layout_mismatch"
    REDUNDANCY_BACKUP = "redundancy_backup"  # an output port runs on its backup cable
    CARD_OFFLINE = "card_offline"
    MODULE_FAULT = "module_fault"
    PSU_FAILED = "psu_failed"
    VOLTAGE_LOW = "voltage_low"
    TEMP_HIGH = "temp_high"
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


# Default priority per fault (a contract may override it). P1: the screen is dark or
# endangered; P2: a cabinet is dark; P3: a part degrades; P4: needs a look.
DEFAULT_PRIORITY: dict[Fault, Priority] = {
    Fault.CONTROLLER_LOST: Priority.P1,
    Fault.SIGNAL_LOST: Priority.P1,
    Fault.SMOKE: Priority.P1,
    Fault.CARD_OFFLINE: Priority.P2,
    Fault.PSU_FAILED: Priority.P2,
    Fault.TEMP_HIGH: Priority.P2,
    Fault.AGENT_OFFLINE: Priority.P2,
    Fault.MODULE_FAULT: Priority.P3,
    Fault.VOLTAGE_LOW: Priority.P3,
    Fault.FAN_STOPPED: Priority.P3,
    Fault.HUMIDITY_HIGH: Priority.P3,
    Fault.DOOR_OPEN: Priority.P4,
    Fault.LAYOUT_MISMATCH: Priority.P3,
    Fault.REDUNDANCY_BACKUP: Priority.P3,
    Fault.MANUAL: Priority.P3,
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One fault state on one component at one time.

    component: "controller", "card/<card id>", "psu/<psu id>", "env", "agent/<agent id>".
    """

    site: str
    screen: str
    component: str
    fault: Fault
    active: bool
    ts_ms: int
    detail: str = ""
    value: float | None = None

    @property
    def key(self) -> str:
        return f"{self.site}/{self.screen}/{self.component}/{self.fault.value}"

    @property
    def priority(self) -> Priority:
        return DEFAULT_PRIORITY[self.fault]
