"""Per-contract service terms: every figure of DOMAIN.md is a default here and a setting.

Config layout (TOML, under `[contracts]` of the collector config):
```
[contracts.default]            # overrides of the shipped defaults for every site
response_min = 30
[contracts.sites.acme]         # one site's contract
onsite_h = 24
resolve_h = { P1 = 4 }         # unnamed priorities keep their default
[contracts.sites.acme.screens.lobby]
acceptance_date = 2026-01-15
[[contracts.sites.acme.screens.lobby.major_events]]
name = "launch" ; start = 2026-03-01T18:00:00Z ; end = 2026-03-01T23:00:00Z
```
Layers apply in order default -> site -> screen; a key set in a layer replaces the whole
value below it (except `resolve_h`, whose missing priorities fall back to the defaults).
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any, Final, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from collector.detect.findings import DEFAULT_PRIORITY, Fault, Priority
from collector.tickets.calendar import Calendar, parse_hours
from ledwatch.contract import check_id
from ledwatch.errors import ConfigError

MS_PER_MIN: Final = 60_000
MS_PER_H: Final = 3_600_000
MS_PER_DAY: Final = 86_400_000

DEFAULT_RESOLVE_H: Final[dict[Priority, float]] = {
    Priority.P1: 8.0,
    Priority.P2: 24.0,
    Priority.P3: 48.0,
    Priority.P4: 120.0,
}


def _utc(value: datetime) -> datetime:
    """TOML local date-times carry no offset; LEDwatch reads them as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_ms(value: datetime) -> int:
    return int(_utc(value).timestamp() * 1000)


def date_ms(value: date) -> int:
    return to_ms(datetime(value.year, value.month, value.day, tzinfo=UTC))


def add_months_ms(ts_ms: int, months: int) -> int:
    """`ts_ms` plus whole calendar months (day clamped: Jan 31 + 1 month = Feb 28/29)."""
    dt = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    total = dt.month - 1 + months
    year, month = dt.year + total // 12, total % 12 + 1
    day = min(dt.day, calendar.monthrange(year, month)[1])
    return to_ms(dt.replace(year=year, month=month, day=day))


class MajorEvent(BaseModel):
    """A concert, launch or broadcast: any fault on the screen is P1 while it lasts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    screen: str | None = None  # None: every screen the layer applies to
    start: datetime
    end: datetime

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return _utc(value)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def covers(self, screen: str, ts_ms: int) -> bool:
        if self.screen is not None and self.screen != screen:
            return False
        return to_ms(self.start) <= ts_ms < to_ms(self.end)


OFFICE_HOURS: dict[str, tuple[str, ...]] = {
    d: ("08:00-18:00",) for d in ("mon", "tue", "wed", "thu", "fri")}


class BusinessHours(BaseModel):
    """Service hours: the SLA clocks of `priorities` run only in them (P1 stays 7 x 24)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "UTC"
    hours: dict[str, tuple[str, ...]] = Field(default_factory=lambda: dict(OFFICE_HOURS))
    holidays: tuple[date, ...] = ()
    priorities: frozenset[Priority] = frozenset({Priority.P2, Priority.P3, Priority.P4})

    @model_validator(mode="after")
    def _valid(self) -> Self:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone: unknown time zone {self.timezone!r}") from None
        parse_hours({k: list(v) for k, v in self.hours.items()})
        if not any(self.hours.values()):
            raise ValueError("hours: a calendar needs some service hours")
        return self

    def calendar(self) -> Calendar:
        return _calendar(self.timezone, tuple(sorted(self.hours.items())), self.holidays)


@lru_cache(maxsize=1024)
def _calendar(tz: str, hours: tuple[tuple[str, tuple[str, ...]], ...],
              holidays: tuple[date, ...]) -> Calendar:
    return Calendar(tz, parse_hours({k: list(v) for k, v in hours}), frozenset(holidays))


class ContractTerms(BaseModel):
    """One contract's service terms; the defaults are the figures of DOMAIN.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    response_min: float = Field(default=20.0, gt=0, description="first offered solution")
    onsite_h: float = Field(default=48.0, gt=0, description="engineer on site (2 days)")
    repair_h: float = Field(default=48.0, gt=0, description="from arrival; past it a spare is lent")
    resolve_h: dict[Priority, float] = Field(default_factory=lambda: dict(DEFAULT_RESOLVE_H))
    warranty_months: int = Field(default=12, ge=0)
    acceptance_date: date | None = None
    warranty_restart_downtime_days: float = Field(default=30.0, gt=0)
    repeat_window_days: float = Field(default=30.0, ge=0)
    survey_satisfied_min: int = Field(default=4, ge=1, le=5)
    priority_overrides: dict[Fault, Priority] = Field(default_factory=dict)
    downtime_faults: frozenset[Fault] = frozenset({Fault.CONTROLLER_LOST, Fault.SIGNAL_LOST})
    major_events: tuple[MajorEvent, ...] = ()
    # Escalate a ticket to the next level of its notification route when these shares
    # of its response / on-site time are gone without the matching step.
    escalate_at: tuple[float, ...] = (0.5, 0.8)
    business_hours: BusinessHours | None = None
    # Proactive care (DOMAIN.md): a follow-up contact every `followup_months` and a remote
    # inspection every `inspection_months` after acceptance (0: none scheduled).
    followup_months: int = Field(default=2, ge=0, le=120)
    inspection_months: int = Field(default=3, ge=0, le=120)
    # Spare parts: the local stock promised, as a share of the installed quantity, and
    # the region whose stock serves the site ("" = the site is its own region).
    spares_min_pct: float = Field(default=3.0, ge=0, le=100)
    region: str = Field(default="", pattern=r"^([a-z0-9][a-z0-9_-]{0,63})?$")
    # Models the telemetry does not name: a PSU without a `model` reading, a cabinet's
    # LED modules (default: the receiving card's model, i.e. "modules of that cabinet").
    psu_model: str | None = Field(default=None, min_length=1, max_length=128)
    module_model: str | None = Field(default=None, min_length=1, max_length=128)
    resolve_h_named: frozenset[Priority] = Field(default=frozenset(), exclude=True, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _remember_named(cls, data: Any) -> Any:
        # Which priorities a config layer named itself (the rest inherit from below).
        if isinstance(data, dict) and isinstance(data.get("resolve_h"), dict):
            data = {**data, "resolve_h_named": frozenset(data["resolve_h"])}
        return data

    @field_validator("resolve_h")
    @classmethod
    def _fill_resolve(cls, value: dict[Priority, float]) -> dict[Priority, float]:
        for prio, hours in value.items():
            if hours <= 0:
                raise ValueError(f"{prio.value} must be > 0 hours")
        return {**DEFAULT_RESOLVE_H, **value}

    def priority_for(
        self, fault: Fault, screen: str, ts_ms: int, default: Priority | None = None
    ) -> Priority:
        """P1 during a major event; else the contract's override; else `default` (the
        detection rule's priority); else the fault's shipped default."""
        if self.in_major_event(screen, ts_ms):
            return Priority.P1
        return self.priority_overrides.get(fault) or default or DEFAULT_PRIORITY[fault]

    def in_major_event(self, screen: str, ts_ms: int) -> bool:
        return any(ev.covers(screen, ts_ms) for ev in self.major_events)

    @field_validator("escalate_at")
    @classmethod
    def _fractions(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 < f < 1 for f in value) or list(value) != sorted(set(value)):
            raise ValueError("escalate_at must be rising shares between 0 and 1, e.g. [0.5, 0.8]")
        return value

    def calendar(self, priority: Priority) -> Calendar | None:
        """The service hours `priority`'s clocks run in; None: around the clock."""
        bh = self.business_hours
        if bh is None or priority not in bh.priorities:
            return None
        return bh.calendar()

    def add_time(self, priority: Priority, start_ms: int, duration_ms: int) -> int:
        cal = self.calendar(priority)
        return start_ms + duration_ms if cal is None else cal.add(start_ms, duration_ms)

    def elapsed(self, priority: Priority, start_ms: int, end_ms: int) -> int:
        """Clock time between two moments (service time only, with a calendar)."""
        cal = self.calendar(priority)
        return max(0, end_ms - start_ms) if cal is None else cal.open_between(start_ms, end_ms)

    def deadlines(self, priority: Priority, start_ms: int) -> dict[str, int]:
        """SLA deadlines of a service cycle that starts at `start_ms` (column -> ms)."""
        return {
            "response_due_ms": self.add_time(priority, start_ms,
                                             round(self.response_min * MS_PER_MIN)),
            "onsite_due_ms": self.add_time(priority, start_ms, round(self.onsite_h * MS_PER_H)),
            "resolve_due_ms": self.add_time(priority, start_ms,
                                            round(self.resolve_h[priority] * MS_PER_H)),
        }

    def satisfied(self, score: int) -> bool:
        return score >= self.survey_satisfied_min

    def region_of(self, site: str) -> str:
        """The region whose spare-parts stock serves `site` (the site itself by default)."""
        return self.region or site


def _key_path(prefix: str, loc: tuple[int | str, ...]) -> str:
    return ".".join([prefix, *(str(p) for p in loc if p != "[key]")])


def _validate_layer(raw: Any, prefix: str) -> ContractTerms:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix}: must be a table, got {type(raw).__name__}")
    try:
        return ContractTerms.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{_key_path(prefix, first['loc'])}: {first['msg']}") from None


def _overlay(base: ContractTerms, layer: ContractTerms) -> ContractTerms:
    update = {k: getattr(layer, k) for k in layer.model_fields_set}
    if "resolve_h" in update:
        # The layer was filled with the shipped defaults; a lower layer's figures win over those.
        named = layer.resolve_h_named
        update["resolve_h"] = {
            p: (h if p in named else base.resolve_h[p]) for p, h in layer.resolve_h.items()
        }
    return base.model_copy(update=update)


class ContractBook:
    """Terms per (site, screen), merged and validated once at start."""

    def __init__(
        self,
        default: ContractTerms | None = None,
        sites: dict[str, ContractTerms] | None = None,
        screens: dict[tuple[str, str], ContractTerms] | None = None,
    ) -> None:
        self.default = default or ContractTerms()
        self._sites = dict(sites or {})
        self._screens = dict(screens or {})

    @classmethod
    def from_config(cls, raw: dict[str, Any] | None, prefix: str = "contracts") -> ContractBook:
        """Build from the `[contracts]` table; errors name the key (`contracts.sites.x.y`)."""
        raw = dict(raw or {})
        unknown = set(raw) - {"default", "sites"}
        if unknown:
            raise ConfigError(f"{prefix}.{sorted(unknown)[0]}: unknown key (use default, sites)")
        default_layer = _validate_layer(raw.get("default", {}), f"{prefix}.default")
        default = _overlay(ContractTerms(), default_layer)
        sites: dict[str, ContractTerms] = {}
        screens: dict[tuple[str, str], ContractTerms] = {}
        raw_sites = raw.get("sites", {})
        if not isinstance(raw_sites, dict):
            raise ConfigError(f"{prefix}.sites: must be a table")
        for site, site_raw in raw_sites.items():
            site_prefix = f"{prefix}.sites.{site}"
            check_id(site, site_prefix)
            site_raw = dict(site_raw) if isinstance(site_raw, dict) else site_raw
            screens_raw = site_raw.pop("screens", {}) if isinstance(site_raw, dict) else {}
            site_terms = _overlay(default, _validate_layer(site_raw, site_prefix))
            sites[site] = site_terms
            if not isinstance(screens_raw, dict):
                raise ConfigError(f"{site_prefix}.screens: must be a table")
            for screen, screen_raw in screens_raw.items():
                screen_prefix = f"{site_prefix}.screens.{screen}"
                check_id(screen, screen_prefix)
                screens[(site, screen)] = _overlay(
                    site_terms, _validate_layer(screen_raw, screen_prefix)
                )
        return cls(default, sites, screens)

    def named_screens(self, site: str) -> set[str]:
        """The screens of `site` that a contract names (`sites.<site>.screens.<screen>`)."""
        return {sc for si, sc in self._screens if si == site}

    def names_site(self, site: str) -> bool:
        """Whether a contract is written for `site`; the default layer covers every site
        but names none (a phone report for a site nobody names is refused: docs/api.md)."""
        return site in self._sites or bool(self.named_screens(site))

    def screens(self) -> set[tuple[str, str]]:
        """(site, screen) pairs the contracts name (a site layer alone names no screen)."""
        return set(self._screens)

    def terms(self, site: str, screen: str) -> ContractTerms:
        found = self._screens.get((site, screen))
        if found is not None:
            return found
        return self._sites.get(site, self.default)
