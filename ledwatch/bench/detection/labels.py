"""The labels of a generated fleet month (DIR/incidents.json) and the matching constants.

Shared by the generator (which writes them) and the scorer (which reads them); nothing
here knows how the detector works. Component names are the ticket `component` field:
"controller", "screen", "env", "card/<card>", "psu/<psu>", "link/<card>" (the link into
the first unreachable card of a chain break), "agent/<agent>" (with screen "-").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final

MINUTE_MS: Final = 60_000
HOUR_MS: Final = 60 * MINUTE_MS
DAY_MS: Final = 24 * HOUR_MS

# Incident kinds (real faults). running_hot is predictive (hard=False); the rest are hard.
INCIDENT_KINDS: Final = (
    "psu_death", "psu_sag_recovers", "card_offline", "port_break", "screen_dark",
    "controller_lost", "signal_lost", "module_fault", "over_temp", "screen_hot",
    "fan_stopped", "door_open", "smoke", "flapping", "running_hot", "agent_offline",
)  # fmt: skip
# One-poll glitches of every kind (a single abnormal poll, or one missed snapshot).
GLITCH_KINDS: Final = (
    "glitch_temp", "glitch_card_offline", "glitch_port", "glitch_screen_dark",
    "glitch_controller", "glitch_signal", "glitch_vout", "glitch_door", "glitch_smoke",
    "glitch_module", "glitch_fan", "glitch_humidity", "glitch_agent",
)  # fmt: skip
# Non-incidents: each must give 0 tickets.
NON_INCIDENT_KINDS: Final = (*GLITCH_KINDS, "null_sensor", "schedule_off", "heat")

# Kinds with a slow onset: a warning up to a week before `start_ms` is a match.
SLOW_ONSET_KINDS: Final = frozenset({"psu_death", "running_hot"})
PREDICTIVE_LEAD_MS: Final = 7 * DAY_MS
DEFAULT_LEAD_MS: Final = 5 * MINUTE_MS
TAIL_MS: Final = 30 * MINUTE_MS  # an alert up to this long after end_ms still matches
RECALL_WITHIN_MS: Final = 10 * MINUTE_MS
SCREEN_LEVEL_ROOTS: Final = frozenset({"screen", "controller"})
NO_SCREEN: Final = "-"  # the screen of agent tickets


@dataclass(slots=True)
class Label:
    """One labelled incident or non-incident of the month.

    `start_ms`..`end_ms` is when the fault (or the harmless event) is in the data:
    `start_ms` the first abnormal poll, `end_ms` the first normal one again (for slow
    kinds, `start_ms` is the onset of the drift). `dark_ms` is when the cabinet went
    dark (psu_death only). `screens` lists the screens an agent incident silenced.
    """

    id: str
    kind: str
    hard: bool
    site: str
    screen: str
    root: str
    effects: list[str]
    start_ms: int
    end_ms: int
    dark_ms: int | None = None
    note: str = ""
    incident: bool = True
    screens: list[str] = field(default_factory=list)

    @property
    def components(self) -> frozenset[str]:
        """Ticket components that belong to this label (root, effects, and for a
        screen-level root both "screen" and "controller")."""
        comps = {self.root, *self.effects}
        if self.root in SCREEN_LEVEL_ROOTS:
            comps |= SCREEN_LEVEL_ROOTS
        return frozenset(comps)

    @property
    def lead_ms(self) -> int:
        return PREDICTIVE_LEAD_MS if self.kind in SLOW_ONSET_KINDS else DEFAULT_LEAD_MS

    @property
    def window(self) -> tuple[int, int]:
        """Alerts at times in this closed interval may match the label."""
        return self.start_ms - self.lead_ms, self.end_ms + TAIL_MS

    @property
    def hard_start_ms(self) -> int:
        """When the hard fault starts (the cabinet going dark for a dying PSU)."""
        return self.dark_ms if self.dark_ms is not None else self.start_ms

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        if not self.screens:
            del doc["screens"]
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Label:
        return cls(
            id=str(doc["id"]),
            kind=str(doc["kind"]),
            hard=bool(doc["hard"]),
            site=str(doc["site"]),
            screen=str(doc["screen"]),
            root=str(doc["root"]),
            effects=[str(e) for e in doc.get("effects") or []],
            start_ms=int(doc["start_ms"]),
            end_ms=int(doc["end_ms"]),
            dark_ms=None if doc.get("dark_ms") is None else int(doc["dark_ms"]),
            note=str(doc.get("note") or ""),
            incident=bool(doc.get("incident", doc["kind"] not in NON_INCIDENT_KINDS)),
            screens=[str(s) for s in doc.get("screens") or []],
        )
