"""Detection settings: the `[detect]` table of the collector config, validated once.

Layers apply fleet -> site -> screen, each a sparse override of the one below:
```
[detect]                                   # fleet-wide
agent_silence_s = 60
[detect.rules.voltage_low]                 # any parameter of a rule in rules.py
threshold = 4.5
clear = 4.65
[detect.sites.acme]                        # a site's contract
timezone = "Europe/Berlin"
[detect.sites.acme.rules.card_temp_high]
threshold = 80
[detect.sites.acme.screens.facade]         # one screen
[[detect.sites.acme.screens.facade.schedule]]
days = ["mon", "tue", "wed", "thu", "fri"]
off = "23:30-06:00"                        # local time; wraps midnight
```
Errors name the dotted key (`detect.sites.acme.rules.card_temp_hgh: unknown rule ...`).
`RuleBook.for_screen` merges the layers once per screen and caches the result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from collector.detect.findings import Priority
from collector.detect.rules import RULES, RULES_BY_NAME, TUNABLE, Rule
from collector.detect.schedule import Schedule, parse_span

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ALL_DAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleParams(_Section):
    """A sparse override of one rule's parameters (unset fields keep the layer below)."""

    enabled: bool | None = None
    threshold: float | None = None
    clear: float | None = None
    hold_polls: int | None = Field(default=None, ge=1, le=1000)
    hold_of: int | None = Field(default=None, ge=1, le=1000)
    hold_s: float | None = Field(default=None, ge=0)
    clear_polls: int | None = Field(default=None, ge=1, le=1000)
    clear_s: float | None = Field(default=None, ge=0)
    smooth_polls: int | None = Field(default=None, ge=1, le=15)
    priority: Priority | None = None

    def values(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in TUNABLE if getattr(self, k) is not None}


class ScheduleEntry(_Section):
    """An off period on some weekdays, in the screen's local time ("01:00-06:00")."""

    days: tuple[Weekday, ...] = ALL_DAYS
    off: str

    @field_validator("off")
    @classmethod
    def _span(cls, value: str) -> str:
        parse_span(value)  # raises ValueError with the reason
        return value


def _check_rules(rules: dict[str, RuleParams]) -> dict[str, RuleParams]:
    for name in rules:
        if name not in RULES_BY_NAME:
            near = ", ".join(sorted(RULES_BY_NAME))
            raise ValueError(f"{name}: unknown rule (rules: {near})")
    return rules


def _check_tz(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (an IANA name like 'Europe/Berlin')"
        ) from None
    return value


class _WithRules(_Section):
    rules: dict[str, RuleParams] = Field(default_factory=dict)

    @field_validator("rules")
    @classmethod
    def _rules(cls, rules: dict[str, RuleParams]) -> dict[str, RuleParams]:
        return _check_rules(rules)


class Layer(_WithRules):
    """What a site or a screen may override."""

    timezone: str | None = None
    schedule: tuple[ScheduleEntry, ...] | None = None
    schedule_grace_min: float | None = Field(default=None, ge=0, le=720)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return _check_tz(value)


class SiteLayer(Layer):
    screens: dict[str, Layer] = Field(default_factory=dict)

    @field_validator("screens")
    @classmethod
    def _ids(cls, screens: dict[str, Layer]) -> dict[str, Layer]:
        from ledwatch.contract import ID_PATTERN

        for screen in screens:
            if not ID_PATTERN.match(screen):
                raise ValueError(f"{screen!r} is not a valid screen id")
        return screens


class PredictSettings(_Section):
    """Peer comparison and trend (predict.py); see docs/detection.md for the reasoning."""

    enabled: bool = True
    bucket_s: float = Field(default=600.0, ge=1, le=3600)
    judge_every: int = Field(default=6, ge=1, le=1000)  # buckets between two judgements
    min_peers: int = Field(default=4, ge=2)
    # PSU output voltage (psu_degrading)
    psu_fail_v: float = 4.6  # the level whose crossing the trend predicts
    psu_min_drop_v: float = Field(default=0.06, gt=0)
    psu_drop_z: float = Field(default=5.0, gt=0)
    psu_min_slope_v_per_h: float = Field(default=0.002, gt=0)
    psu_horizon_h: float = Field(default=168.0, gt=0)
    psu_baseline_h: float = Field(default=72.0, gt=0)  # time constant of a PSU's usual level
    reset_after_dark_h: float = Field(default=1.0, gt=0)  # dark alone this long: replaced
    psu_trend_window_h: float = Field(default=24.0, gt=0)
    # cabinet temperature (running_hot)
    hot_min_delta_c: float = Field(default=6.0, gt=0)
    hot_z: float = Field(default=4.0, gt=0)
    # how long a condition must hold / be gone, in hours
    recent_h: float = Field(default=2.0, gt=0)
    hold_h: float = Field(default=1.0, ge=0)
    clear_h: float = Field(default=2.0, ge=0)


class DetectSettings(_WithRules):
    agent_silence_s: float = Field(default=60.0, gt=0)
    # ... or this many of the agent's own poll intervals, whichever is longer.
    agent_silence_polls: float = Field(default=3.0, ge=1)
    timezone: str = "UTC"
    schedule_grace_min: float = Field(default=15.0, ge=0, le=720)
    # A fault that opens again this soon after it cleared is flapping: its ticket is
    # marked and stays open until the fault has been gone for flap_clear_s.
    flap_window_s: float = Field(default=3600.0, ge=0)
    flap_clear_s: float = Field(default=1800.0, ge=0)
    # Root causes (correlate.py): share of cabinets dark at once that makes the whole
    # screen dark; a whole screen within this many degrees of the threshold is hot as
    # a whole (sun, air conditioning), not cabinet by cabinet.
    screen_dark_fraction: float = Field(default=0.9, gt=0, le=1)
    screen_hot_margin_c: float = Field(default=5.0, ge=0)
    min_cards_for_screen: int = Field(default=4, ge=2)
    predict: PredictSettings = Field(default_factory=PredictSettings)
    sites: dict[str, SiteLayer] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _check_tz(value) or value

    @field_validator("sites")
    @classmethod
    def _site_ids(cls, sites: dict[str, SiteLayer]) -> dict[str, SiteLayer]:
        from ledwatch.contract import ID_PATTERN

        for site in sites:
            if not ID_PATTERN.match(site):
                raise ValueError(f"{site!r} is not a valid site id")
        return sites

    @model_validator(mode="after")
    def _consistent(self) -> DetectSettings:
        # Merge every layer now so that a bad combination fails at start, naming the layer.
        book = RuleBook(self)
        for where, _site, _screen, rules in book.layers():
            for rule in rules:
                problem = rule.check()
                if problem:
                    raise ValueError(f"{where}rules.{rule.name}: {problem}")
        return self


@dataclass(frozen=True, slots=True)
class ScreenRules:
    """Everything detection needs to judge one screen, merged from the layers."""

    rules: tuple[Rule, ...]
    schedule: Schedule
    by_name: dict[str, Rule]


_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class RuleBook:
    """Merges fleet, site and screen layers once per screen (cached)."""

    def __init__(self, settings: DetectSettings) -> None:
        self.settings = settings
        self._cache: dict[tuple[str, str], ScreenRules] = {}

    @staticmethod
    def _apply(rules: tuple[Rule, ...], layer: dict[str, RuleParams]) -> tuple[Rule, ...]:
        if not layer:
            return rules
        return tuple(r.overridden(layer[r.name].values()) if r.name in layer else r for r in rules)

    def layers(self) -> list[tuple[str, str | None, str | None, tuple[Rule, ...]]]:
        """(key prefix, site, screen, merged rules) for every configured layer."""
        s = self.settings
        fleet = self._apply(RULES, s.rules)
        out: list[tuple[str, str | None, str | None, tuple[Rule, ...]]] = [("", None, None, fleet)]
        for site, layer in s.sites.items():
            site_rules = self._apply(fleet, layer.rules)
            out.append((f"sites.{site}.", site, None, site_rules))
            for screen, sl in layer.screens.items():
                rules = self._apply(site_rules, sl.rules)
                out.append((f"sites.{site}.screens.{screen}.", site, screen, rules))
        return out

    def for_screen(self, site: str, screen: str) -> ScreenRules:
        found = self._cache.get((site, screen))
        if found is not None:
            return found
        s = self.settings
        site_layer = s.sites.get(site)
        screen_layer = site_layer.screens.get(screen) if site_layer else None
        rules = self._apply(RULES, s.rules)
        tz, grace = s.timezone, s.schedule_grace_min
        entries: tuple[ScheduleEntry, ...] = ()
        for layer in (site_layer, screen_layer):
            if layer is None:
                continue
            rules = self._apply(rules, layer.rules)
            tz = layer.timezone or tz
            grace = grace if layer.schedule_grace_min is None else layer.schedule_grace_min
            entries = entries if layer.schedule is None else layer.schedule
        schedule = Schedule(tz, tuple((e.days, e.off) for e in entries), grace * 60_000)
        found = ScreenRules(rules, schedule, {r.name: r for r in rules})
        if len(self._cache) < 1_000_000 and _KEY.match(site) and _KEY.match(screen):
            self._cache[(site, screen)] = found
        return found
