"""A labelled fleet month, written from the payload contract (ledwatch.telemetry/1) alone.

`plan_fleet(params)` draws everything from the seed: sites and time zones, screens
(indoor/outdoor, cabinet layout on 2-4 output ports, agents), the weather, the
operating schedules, the incidents and the harmless look-alikes, each as a `Label` plus
the `Effect`s it has on the readings. `write_fleet(fleet, out)` renders the polls day
by day with numpy (noise-free model + noise + effects) and writes:

- telemetry.jsonl.gz: one line a snapshot, all screens interleaved in `ts` order, mostly
  `{"topic": ..., "payload": {...}}` and some bare documents, plus the agents' status
  lines (births at the start, will and re-birth around an agent outage);
- incidents.json: the labels (incidents and non-incidents);
- collector.toml: the replay config (no InfluxDB, SQLite tickets, the screens' time
  zones and operating schedules);
- fleet.json: the fleet and the month (what the scorer needs: screen-days).

What a snapshot looks like in each situation follows the agent (agent/snapshot.py, the
NovaStar driver): a card that does not answer is `online: false` with its readings and
its PSU rows null; a controller that does not answer is `online: false`, link down, and
every card unreadable; env aggregates the cards (max humidity, any smoke/door, min fan).
"""

from __future__ import annotations

import functools
import gzip
import math
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np
import orjson

from ledwatch.bench.detection.labels import (
    DAY_MS,
    GLITCH_KINDS,
    HOUR_MS,
    INCIDENT_KINDS,
    MINUTE_MS,
    NO_SCREEN,
    Label,
)
from ledwatch.contract import SCHEMA_STATUS, SCHEMA_TELEMETRY, status_topic, telemetry_topic

GENERATOR_VERSION: Final = 1
DEFAULT_START: Final = "2026-10-01T00:00Z"
TELEMETRY_FILE: Final = "telemetry.jsonl.gz"
INCIDENTS_FILE: Final = "incidents.json"
CONFIG_FILE: Final = "collector.toml"
FLEET_FILE: Final = "fleet.json"
TICKETS_FILE: Final = "tickets.json"

PSU_OK_MIN_V: Final = 4.5  # the agent's `ok` = vout >= psu_ok_min_v (driver default)
MAX_NORMAL_TEMP_C: Final = 70.0  # normal afternoon heat stays below this (75 °C rules)
SCREEN_HOT_C: Final = 75.0
OVER_TEMP_C: Final = 80.0
BARE_SHARE: Final = 0.15  # share of snapshot lines written as bare documents
DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# (site id, IANA zone); 3-4 are drawn per fleet.
SITE_POOL: Final = (
    ("berlin-mitte", "Europe/Berlin"),
    ("newyork-midtown", "America/New_York"),
    ("tokyo-shibuya", "Asia/Tokyo"),
    ("lab-utc", "UTC"),
    ("sydney-harbour", "Australia/Sydney"),
    ("london-soho", "Europe/London"),
)
OUTDOOR_NAMES: Final = ("facade", "billboard", "plaza", "stadium")
INDOOR_NAMES: Final = ("lobby", "atrium", "studio", "hall")
CONTROLLER_MODELS: Final = ("MCTRL660 PRO", "MCTRL4K", "MSD600")
# Operating schedules (local time); no boundary falls in 02:00-03:00, where a DST change
# makes local times ambiguous or missing.
SCHEDULES: Final = (
    ({"days": list(DAYS), "off": "01:00-06:00"},),
    ({"days": list(DAYS), "off": "23:30-07:00"},),
    ({"days": list(DAYS[:5]), "off": "00:00-05:30"},
     {"days": ["sat", "sun"], "off": "00:30-08:00"}),
    ({"days": list(DAYS), "off": "22:00-06:00"},),
    ({"days": list(DAYS[:6]), "off": "01:30-06:30"},),
)
SCHEDULE_JITTER_MS: Final = 10 * MINUTE_MS

# Incidents per kind in a default month (12 screens x 30 days), drawn uniformly in the
# range and scaled by screen-days / 360.
INCIDENT_COUNTS: Final[dict[str, tuple[int, int]]] = {
    "psu_death": (3, 6), "psu_sag_recovers": (3, 6), "card_offline": (3, 6),
    "port_break": (2, 4), "screen_dark": (2, 4), "controller_lost": (2, 4),
    "signal_lost": (2, 4), "module_fault": (2, 5), "over_temp": (2, 4), "screen_hot": (1, 3),
    "fan_stopped": (2, 4), "door_open": (2, 5), "smoke": (1, 3), "flapping": (2, 4),
    "running_hot": (1, 3), "agent_offline": (2, 4),
}  # fmt: skip
GLITCH_COUNT: Final = (2, 5)  # per glitch kind
NULL_SENSOR_KINDS: Final = ("card_temp", "card_fan", "psu_vout", "screen_temps")
NULL_SENSOR_COUNT: Final = (1, 3)  # per null-sensor variant


def parse_start(text: str) -> int:
    """ISO 8601 (a `Z` or offset; naive means UTC) -> ms since the epoch."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class FleetParams:
    seed: int = 1
    screens: int = 12
    cards: int = 30
    psus: int = 2
    days: float = 30.0
    interval_s: int = 120
    start_ms: int = parse_start(DEFAULT_START)

    @property
    def interval_ms(self) -> int:
        return self.interval_s * 1000

    @property
    def n_polls(self) -> int:
        return int(self.days * 86400 // self.interval_s)

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.n_polls * self.interval_ms

    @property
    def polls_per_hour(self) -> int:
        return max(1, round(3600 / self.interval_s))

    def check(self) -> None:
        if self.screens < 1 or self.cards < 2 or not 1 <= self.psus <= 4:
            raise ValueError("need --screens >= 1, --cards >= 2 and 1..4 PSUs per cabinet")
        if self.interval_s < 10 or self.n_polls < 24 * 3600 // self.interval_s:
            raise ValueError("need --interval-s >= 10 and at least one day of polls")


# -- the plan -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Effect:
    """What a label does to one screen's readings over polls [k0, k1).

    ops: temp_blend (temps -> values, ramped over `rise` polls before k0 and `fall`
    after k1), temp_add (temps + value, same ramps), set (column := value), null (column
    := null), vout_decline (vout - value * frac**power), vout_level (vout := value +
    noise), vout_shift (vout + value), offline (cards do not answer), ctrl_offline,
    signal_lost. `sensor` effects change a reading, not the thing measured (the monitor
    temperature and a card's supply voltage do not follow them).
    """

    op: str
    k0: int
    k1: int
    cards: tuple[int, ...] = ()
    psus: tuple[int, ...] = ()
    column: str = ""
    value: float = 0.0
    values: tuple[float, ...] = ()
    rise: int = 0
    fall: int = 0
    power: float = 1.0
    sensor: bool = False

    @property
    def span(self) -> tuple[int, int]:
        return self.k0 - self.rise, self.k1 + self.fall


@dataclass(slots=True)
class Screen:
    idx: int
    site: str
    screen: str
    agent: str
    tz: str
    outdoor: bool
    model: str
    port: np.ndarray  # per card
    index: np.ndarray
    row: np.ndarray
    col: np.ndarray
    card_ids: list[str]
    psu_ids: list[str]
    psu_card: np.ndarray  # card index of each PSU
    ports_expected: list[int]
    ts: np.ndarray  # int64, every poll of the month
    # the noise-free model
    temp_base: float
    card_temp_off: np.ndarray
    pos: np.ndarray  # spatial position -0.5 (bottom) .. 0.5 (top)
    drift_amp: float
    drift_period_ms: float
    drift_phase: float
    bright_heat: float
    grad_c: float
    exposure: float
    heat_cap: float
    fan_base: np.ndarray
    hum_base: float
    hum_off: np.ndarray
    card_v_nom: np.ndarray
    vout_nom: np.ndarray
    vout_sigma: np.ndarray
    swing: float
    bright_day: float
    bright_night: float
    poll_ms: float
    tz_table0: int = 0
    tz_offsets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    schedule: list[dict[str, Any]] = field(default_factory=list)
    signal_off: bool = False
    off_ranges: list[tuple[int, int]] = field(default_factory=list)  # polls, cabinets off
    effects: list[Effect] = field(default_factory=list)
    published: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    @property
    def n_cards(self) -> int:
        return len(self.card_ids)

    def psus_of(self, card: int) -> tuple[int, ...]:
        return tuple(int(j) for j in np.flatnonzero(self.psu_card == card))

    def offset_near(self, ms: int) -> int:
        """The UTC offset (ms) around `ms` (UTC or local: only DST nights differ)."""
        hour = min(len(self.tz_offsets) - 1, max(0, (ms - self.tz_table0) // HOUR_MS))
        return int(self.tz_offsets[hour])

    def local_ms(self, ts: np.ndarray) -> np.ndarray:
        hours = np.clip((ts - self.tz_table0) // HOUR_MS, 0, len(self.tz_offsets) - 1)
        return ts + self.tz_offsets[hours]


@dataclass(slots=True)
class Fleet:
    params: FleetParams
    screens: list[Screen]
    sites: dict[str, str]  # site -> tz
    agents: dict[str, tuple[str, list[int]]]  # agent -> (site, screen indices)
    weather: dict[str, dict[int, float]]  # site -> local day number -> heat bump °C
    labels: list[Label]
    statuses: list[tuple[int, str, str, str]]  # (ts, site, agent, state)
    boots: dict[str, list[int]]  # agent -> boot times

    @property
    def screen_days(self) -> float:
        return len(self.screens) * self.params.n_polls * self.params.interval_s / 86400


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-x))
    return out


def _layout(n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Cabinet grid and chains: serpentine rows, cut into 2-4 output ports."""
    cols = max(1, round(math.sqrt(n * 16 / 9)))
    while n % cols and cols < n:
        cols += 1
    rows = math.ceil(n / cols)
    grid = []
    for r in range(rows):
        line = [(r, c) for c in range(cols)]
        grid += line if r % 2 == 0 else line[::-1]
    grid = grid[:n]
    n_ports = int(rng.integers(2, 5)) if n >= 4 else 1
    n_ports = min(n_ports, max(1, n // 2))
    sizes = [n // n_ports + (1 if p < n % n_ports else 0) for p in range(n_ports)]
    port = np.repeat(np.arange(n_ports), sizes)
    index = np.concatenate([np.arange(s) for s in sizes])
    row = np.array([rows - 1 - g[0] for g in grid])  # row 0 at the bottom
    col = np.array([g[1] for g in grid])
    return port, index, row, col, np.array(sizes)


def _tz_table(tz: str, t0: int, t1: int) -> np.ndarray:
    """UTC offset (ms) at each whole hour from t0 (every zone used changes on the hour)."""
    zone = ZoneInfo(tz)
    hours = (t1 - t0) // HOUR_MS + 2
    out = np.empty(hours, np.int64)
    for h in range(hours):
        dt = datetime.fromtimestamp((t0 + h * HOUR_MS) / 1000, zone)
        off = dt.utcoffset()
        out[h] = int(off.total_seconds() * 1000) if off is not None else 0
    return out


def base_readings(
    s: Screen, ts: np.ndarray, weather: dict[int, float]
) -> dict[str, np.ndarray]:
    """The noise-free model at polls `ts`: temps (K,C), fan, hum, card_v, vout (K,P),
    brightness and the load fraction (K,)."""
    local = s.local_ms(ts)
    hour = (local % DAY_MS) / HOUR_MS
    if s.outdoor:
        light = _sigmoid((hour - 6.75) / 0.4) * _sigmoid((18.75 - hour) / 0.4)
    else:
        light = _sigmoid((hour - 7.0) / 0.15) * _sigmoid((22.0 - hour) / 0.15)
    bright = s.bright_night + (s.bright_day - s.bright_night) * light
    drift = s.drift_amp * np.sin(2 * np.pi * ts / s.drift_period_ms + s.drift_phase)
    temps = s.temp_base + s.card_temp_off[None, :] + drift[:, None]
    if s.outdoor:
        days = local // DAY_MS
        amp = np.array([min(weather.get(int(d), 0.0) * s.exposure, s.heat_cap) for d in days])
        bump = amp * np.exp(-0.5 * ((hour - 14.5) / 2.3) ** 2)
        ambient = 3.0 * np.sin(2 * np.pi * (hour - 9.0) / 24)
        temps = temps + (ambient + bump)[:, None] + (bump / 20.0)[:, None] * s.grad_c * s.pos
        hum_cycle = 6.0 * np.cos(2 * np.pi * (hour - 4.0) / 24)
    else:
        temps = temps + (s.bright_heat * light)[:, None]
        hum_cycle = 2.0 * np.sin(2 * np.pi * ts / (5.3 * DAY_MS))
    fan = np.clip(s.fan_base[None, :] + 8.0 * np.maximum(temps - 40.0, 0), 1200, 2000)
    hum = np.clip(s.hum_base + s.hum_off[None, :] + hum_cycle[:, None], 30, 60)
    load = -s.swing * (2 * light - 1)
    card_v = s.card_v_nom[None, :] + 0.5 * load[:, None]
    vout = s.vout_nom[None, :] + load[:, None]
    return {"temp": temps, "fan": fan, "hum": hum, "card_v": card_v, "vout": vout,
            "bright": bright, "light": light}  # fmt: skip


def _ramp(e: Effect, ks: np.ndarray) -> np.ndarray:
    """Weight 0..1 of a ramped effect at polls `ks` (1 inside [k0, k1))."""
    w = np.ones(len(ks))
    if e.rise:
        up = ks < e.k0
        w[up] = (ks[up] - (e.k0 - e.rise) + 1) / (e.rise + 1)
    if e.fall:
        down = ks >= e.k1
        w[down] = 1 - (ks[down] - e.k1 + 1) / (e.fall + 1)
    return np.clip(w, 0, 1)


def apply_temp_effects(s: Screen, k0: int, temps: np.ndarray, sensor: bool) -> None:
    """Apply the temp_blend/temp_add (sensor=False) or temp set/null (sensor=True)
    effects of `s` to `temps` (polls k0..k0+len)."""
    k1 = k0 + len(temps)
    for e in s.effects:
        a, b = e.span
        if b <= k0 or a >= k1 or e.sensor != sensor:
            continue
        lo, hi = max(a, k0), min(b, k1)
        ks = np.arange(lo, hi)
        rows = slice(lo - k0, hi - k0)
        cards = list(e.cards)
        if e.op == "temp_blend":
            w = _ramp(e, ks)[:, None]
            temps[rows, cards] = (1 - w) * temps[rows, cards] + w * np.array(e.values)[None, :]
        elif e.op == "temp_add":
            temps[rows, cards] += _ramp(e, ks)[:, None] * e.value
        elif e.op == "set" and e.column == "temp":
            temps[rows, cards] = e.value
        elif e.op == "null" and e.column in ("temp", "screen_temps"):
            temps[rows, cards] = np.nan


def true_temps(fleet: Fleet, s: Screen, k0: int, k1: int) -> np.ndarray:
    """Noise-free card temperatures with the physical effects (labels are cut on these)."""
    temps = base_readings(s, s.ts[k0:k1], fleet.weather[s.site])["temp"]
    apply_temp_effects(s, k0, temps, sensor=False)
    return temps


class _Occupancy:
    """Which components of which screen are taken when, so labels do not overlap."""

    def __init__(self) -> None:
        self._taken: dict[int, list[tuple[int, int, frozenset[str] | None]]] = defaultdict(list)

    def free(self, s: int, a: int, b: int, comps: frozenset[str] | None) -> bool:
        for x, y, c in self._taken[s]:
            if a < y and x < b and (c is None or comps is None or c & comps):
                return False
        return True

    def take(self, s: int, a: int, b: int, comps: frozenset[str] | None) -> None:
        self._taken[s].append((a, b, comps))


_Make = Callable[["Screen", int, int, int], tuple[list[Effect], str]]


class _Planner:
    def __init__(self, params: FleetParams) -> None:
        params.check()
        self.p = params
        self.rng = np.random.default_rng(params.seed)
        self.M = params.polls_per_hour
        self.N = params.n_polls
        self.occ = _Occupancy()
        self.labels: list[Label] = []
        self.statuses: list[tuple[int, str, str, str]] = []
        self.screens: list[Screen] = []
        self.sites: dict[str, str] = {}
        self.agents: dict[str, tuple[str, list[int]]] = {}
        self.weather: dict[str, dict[int, float]] = {}
        self.boots: dict[str, list[int]] = {}
        self.heat_days: set[tuple[int, int]] = set()  # (screen, local day) with screen_hot
        self.psu_phase = int(self.rng.integers(2))
        span = params.n_polls
        self.warm = min(24 * self.M, span // 8)  # no incident in the detector's warm-up
        self.scale = params.screens * params.days / 360.0

    # -- random helpers --
    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def i(self, lo: int, hi: int) -> int:
        """Integer in [lo, hi]."""
        return int(self.rng.integers(lo, hi + 1))

    def hours(self, lo: float, hi: float) -> int:
        return max(1, round(self.u(lo, hi) * self.M))

    def ts_of(self, s: Screen, k: int) -> int:
        if k < self.N:
            return int(s.ts[k])
        return int(s.ts[-1]) + (k - self.N + 1) * self.p.interval_ms

    def count(self, lo: int, hi: int) -> int:
        return max(1, round(self.i(lo, hi) * self.scale))

    # -- the fleet --
    def fleet(self) -> None:
        p, rng = self.p, self.rng
        n_sites = min(p.screens, self.i(3, 4))
        picks = rng.choice(len(SITE_POOL), n_sites, replace=False)
        site_list = [SITE_POOL[int(k)] for k in picks]
        self.sites = dict(site_list)
        # every site gets a screen, the rest are spread at random
        extra = rng.integers(0, n_sites, p.screens - n_sites)
        owners = list(range(n_sites)) + [int(x) for x in extra]
        owners.sort()
        outdoor = rng.random(p.screens) < 0.5
        if p.screens >= 2:
            outdoor[0], outdoor[-1] = True, False
        t_lo, t_hi = p.start_ms - 2 * DAY_MS, p.end_ms + 2 * DAY_MS
        per_site: dict[str, list[int]] = defaultdict(list)
        names_used: dict[str, int] = defaultdict(int)
        for idx, o in enumerate(owners):
            site, tz = site_list[o]
            is_out = bool(outdoor[idx])
            pool = OUTDOOR_NAMES if is_out else INDOOR_NAMES
            name = pool[int(rng.integers(len(pool)))]
            names_used[f"{site}/{name}"] += 1
            screen_id = f"{name}-{names_used[f'{site}/{name}']}"
            self.screens.append(self._screen(idx, site, screen_id, tz, is_out, t_lo, t_hi))
            per_site[site].append(idx)
        for site, idxs in per_site.items():
            n_agents = 1 if len(idxs) == 1 else self.i(1, 2)
            short = site.split("-")[0]
            for a in range(n_agents):
                agent = f"{short}-pc{a + 1}"
                mine = idxs[a::n_agents]
                self.agents[agent] = (site, mine)
                for k in mine:
                    self.screens[k].agent = agent
                self.boots[agent] = [p.start_ms - int(self.u(1, 30) * DAY_MS)]
                self.statuses.append((p.start_ms - 1000, site, agent, "online"))
        for site, tz in self.sites.items():
            self.weather[site] = self._weather(tz, t_lo, t_hi)

    def _screen(self, idx: int, site: str, screen: str, tz: str, outdoor: bool,
                t_lo: int, t_hi: int) -> Screen:  # fmt: skip
        p, rng = self.p, self.rng
        C = p.cards
        port, index, row, col, sizes = _layout(C, rng)
        ids = [f"p{int(a)}c{int(b)}" for a, b in zip(port, index, strict=True)]
        psu_ids = [f"{c}-psu{k}" for c in ids for k in range(1, p.psus + 1)]
        psu_card = np.repeat(np.arange(C), p.psus)
        offset = int(rng.integers(0, p.interval_ms - 1500))
        jitter = rng.integers(0, 800, self.N)
        ts = p.start_ms + offset + np.arange(self.N, dtype=np.int64) * p.interval_ms + jitter
        n_rows = int(row.max()) + 1
        pos = (row / max(1, n_rows - 1) - 0.5) if n_rows > 1 else np.zeros(C)
        if outdoor:
            temp_base, spread = self.u(26, 32), 2.0
        else:
            temp_base, spread = self.u(34, 38), 2.5
        card_off = rng.uniform(-spread, spread, C) + 1.0 * pos
        drift_amp = self.u(1, 2)
        grad_c = self.u(2, 5)
        exposure = self.u(0.85, 1.1)
        # normal afternoon heat stays below MAX_NORMAL_TEMP_C on every card
        peak_base = temp_base + float(card_off.max()) + drift_amp + 3.0 + 1.0
        heat_cap = max(0.0, (MAX_NORMAL_TEMP_C - peak_base) / (1 + grad_c * 0.5 / 20))
        s = Screen(
            idx=idx, site=site, screen=screen, agent="", tz=tz, outdoor=outdoor,
            model=CONTROLLER_MODELS[int(rng.integers(len(CONTROLLER_MODELS)))],
            port=port, index=index, row=row, col=col, card_ids=ids, psu_ids=psu_ids,
            psu_card=psu_card, ports_expected=[int(x) for x in sizes], ts=ts,
            temp_base=temp_base, card_temp_off=card_off, pos=pos, drift_amp=drift_amp,
            drift_period_ms=self.u(3, 8) * DAY_MS, drift_phase=self.u(0, 2 * math.pi),
            bright_heat=self.u(1.0, 1.5), grad_c=grad_c, exposure=exposure, heat_cap=heat_cap,
            fan_base=rng.uniform(1300, 1800, C), hum_base=self.u(38, 52),
            hum_off=rng.uniform(-3, 3, C), card_v_nom=rng.uniform(4.97, 5.03, C),
            vout_nom=rng.uniform(4.9, 5.1, C * p.psus),
            vout_sigma=rng.uniform(0.01, 0.03, C * p.psus), swing=self.u(0.02, 0.05),
            bright_day=100.0 if outdoor else float(self.i(70, 85)),
            bright_night=float(self.i(30, 45)) if outdoor else float(self.i(45, 60)),
            poll_ms=self.u(150, 700),
        )  # fmt: skip
        s.tz_table0 = t_lo
        s.tz_offsets = _tz_table(tz, t_lo, t_hi)
        s.published = np.ones(self.N, bool)
        return s

    def _weather(self, tz: str, t_lo: int, t_hi: int) -> dict[int, float]:
        """Heat bump (°C at its 14:30 peak) per local day: sunny 10-25, else 2-7."""
        zone = ZoneInfo(tz)
        d0 = datetime.fromtimestamp(t_lo / 1000, zone).date()
        d1 = datetime.fromtimestamp(t_hi / 1000, zone).date()
        out = {}
        for n in range((d1 - d0).days + 1):
            day = (d0 + timedelta(days=n)) - date(1970, 1, 1)
            out[day.days] = self.u(10, 25) if self.rng.random() < 0.6 else self.u(2, 7)
        return out

    # -- schedules --
    def schedules(self) -> None:
        n = round(len(self.screens) / 3)
        if n == 0:
            return
        chosen = self.rng.choice(len(self.screens), n, replace=False)
        for k in sorted(int(x) for x in chosen):
            s = self.screens[k]
            s.schedule = [dict(e) for e in SCHEDULES[int(self.rng.integers(len(SCHEDULES)))]]
            s.signal_off = bool(self.rng.random() < 0.5)
            self._off_periods(s)

    def _off_periods(self, s: Screen) -> None:
        zone = ZoneInfo(s.tz)
        p = self.p
        d0 = datetime.fromtimestamp(p.start_ms / 1000, zone).date() - timedelta(days=1)
        d1 = datetime.fromtimestamp(p.end_ms / 1000, zone).date()
        periods: list[tuple[int, int]] = []
        for n in range((d1 - d0).days + 1):
            day = d0 + timedelta(days=n)
            for entry in s.schedule:
                if DAYS[day.weekday()] not in entry["days"]:
                    continue
                a_txt, b_txt = entry["off"].split("-")
                off = datetime.combine(day, datetime.strptime(a_txt, "%H:%M").time(), zone)
                b_day = day + timedelta(days=1) if b_txt <= a_txt else day
                on = datetime.combine(b_day, datetime.strptime(b_txt, "%H:%M").time(), zone)
                periods.append((int(off.timestamp() * 1000), int(on.timestamp() * 1000)))
        jit = SCHEDULE_JITTER_MS
        for a, b in sorted(periods):
            cab = (a + int(self.u(-jit, jit)), b + int(self.u(-jit, jit)))
            sig = (a + int(self.u(-jit, jit)), b + int(self.u(-jit, jit)))
            k0, k1 = (int(np.searchsorted(s.ts, t)) for t in cab)
            if k1 <= 0 or k0 >= self.N or k1 <= k0:
                continue
            s.off_ranges.append((k0, k1))
            s.effects.append(Effect("offline", k0, k1, cards=tuple(range(s.n_cards))))
            lo, hi = k0, k1
            if s.signal_off:
                q0, q1 = (int(np.searchsorted(s.ts, t)) for t in sig)
                s.effects.append(Effect("signal_lost", q0, q1))
                lo, hi = min(lo, q0), max(hi, q1)
            self._label("schedule_off", s, "screen", self._all(s, psus=True, env=True),
                        max(lo, 0), min(hi, self.N), hard=False, incident=False,
                        note=f"scheduled off {'/'.join(e['off'] for e in s.schedule)} "
                             f"{s.tz}; signal {'lost' if s.signal_off else 'kept'}")  # fmt: skip

    def off_conflict(self, s: Screen, a: int, b: int) -> bool:
        """[a, b) comes within 30 minutes of a scheduled off period of `s`."""
        m = max(1, self.M // 2)
        return any(a < y + m and x - m < b for x, y in s.off_ranges)

    # -- labels --
    def _all(self, s: Screen, psus: bool = True, env: bool = False) -> list[str]:
        comps = [f"card/{c}" for c in s.card_ids]
        if psus:
            comps += [f"psu/{q}" for q in s.psu_ids]
        return comps + (["env"] if env else [])

    @staticmethod
    def _layout(s: Screen, cards: Sequence[int]) -> list[str]:
        """["controller"] when a chain gets shorter (its last card goes): the controller
        then counts fewer cards on that port (`ports_found`, `layout_ok` false)."""
        last = any(int(s.index[c]) == s.ports_expected[int(s.port[c])] - 1 for c in cards)
        return ["controller"] if last else []

    def _card_comps(self, s: Screen, c: int, env: bool = False) -> list[str]:
        return [f"psu/{s.psu_ids[j]}" for j in s.psus_of(c)] + (["env"] if env else [])

    def _label(self, kind: str, s: Screen | None, root: str, effects: list[str], k0: int,
               k1: int, *, hard: bool, incident: bool = True, note: str = "",
               dark: int | None = None, site: str = "", start_ms: int | None = None,
               end_ms: int | None = None, screens: Sequence[str] = ()) -> Label:  # fmt: skip
        if s is not None:
            start_ms, end_ms = self.ts_of(s, k0), self.ts_of(s, k1)
        assert start_ms is not None and end_ms is not None
        lab = Label(
            id="",
            kind=kind,
            hard=hard,
            site=s.site if s is not None else site,
            screen=s.screen if s is not None else NO_SCREEN,
            root=root,
            effects=effects,
            start_ms=start_ms,
            end_ms=end_ms,
            dark_ms=dark,
            note=note,
            incident=incident,
            screens=list(screens),
        )
        self.labels.append(lab)
        return lab

    @staticmethod
    def _try(place: Callable[[], bool], attempts: int = 300) -> bool:
        return any(place() for _ in range(attempts))

    def _slot(self, s: Screen, dur: int, before: int = 0,
              comps: frozenset[str] | None = None) -> int | None:  # fmt: skip
        """A random start k0 with [k0 - before, k0 + dur) free on `s` (1 h around it too)."""
        lo, hi = self.warm, self.N - dur - self.M
        if hi <= lo:
            return None
        k0 = self.i(lo, hi)
        a, b = k0 - before, k0 + dur
        if not self.occ.free(s.idx, a - self.M, b + self.M, comps):
            return None
        return k0

    def _card_keys(self, s: Screen, c: int, env: bool) -> frozenset[str]:
        keys = {f"card/{s.card_ids[c]}", *self._card_comps(s, c)}
        return frozenset(keys | ({"env"} if env else set()))

    def _pick_card(self, s: Screen) -> int:
        return int(self.rng.integers(s.n_cards))

    def _screen_pick(self, pred: Callable[[Screen], bool] = lambda s: True) -> Screen | None:
        pool = [s for s in self.screens if pred(s)]
        return pool[int(self.rng.integers(len(pool)))] if pool else None

    def place_card_fault(self, kind: str, dur: int, env: bool, make: _Make, *,
                         hard: bool = True, persistent: bool = False, indoor_only: bool = False,
                         before: int = 0) -> bool:  # fmt: skip
        """A fault on one card over polls [k0, k0 + dur): `make` gives its effects."""
        s = self._screen_pick((lambda x: not x.outdoor) if indoor_only else (lambda x: True))
        if s is None:
            return False
        c = self._pick_card(s)
        keys = self._card_keys(s, c, env)
        k0 = self._slot(s, dur, before=before, comps=keys)
        if k0 is None:
            return False
        k1 = k0 + dur
        if persistent:  # onset and repair are visible; the nights between may be off
            if self.off_conflict(s, k0 - 1, k0 + 1) or self.off_conflict(s, k1 - 1, k1 + 1):
                return False
        elif self.off_conflict(s, k0, k1):
            return False
        effects, note = make(s, c, k0, k1)
        self.occ.take(s.idx, k0 - before - self.M, k1 + self.M, keys)
        s.effects += effects
        span_lo = min(e.span[0] for e in effects) if effects else k0
        span_hi = max(e.span[1] for e in effects) if effects else k1
        start, end = self._cut(kind, s, c, k0, k1, span_lo, span_hi)
        comps = self._card_comps(s, c, env)
        if any(e.op == "offline" for e in effects):
            comps += self._layout(s, (c,))
        self._label(kind, s, f"card/{s.card_ids[c]}", comps, start, end, hard=hard, note=note)
        return True

    def _cut(self, kind: str, s: Screen, c: int, k0: int, k1: int, lo: int, hi: int
             ) -> tuple[int, int]:  # fmt: skip
        """Label bounds for threshold kinds: the polls the hot card is above 80 °C."""
        if kind != "over_temp":
            return k0, k1
        temps = true_temps(self._fleet_view(), s, lo, hi)[:, c]
        above = np.flatnonzero(temps > OVER_TEMP_C)
        return lo + int(above[0]), lo + int(above[-1]) + 1

    def _fleet_view(self) -> Fleet:
        return Fleet(self.p, self.screens, self.sites, self.agents, self.weather, [], [], {})

    # -- incident kinds --
    def psu_death(self, n: int) -> bool:
        s = self._screen_pick()
        if s is None:
            return False
        M = self.M
        j = int(self.rng.integers(len(s.psu_ids)))
        c = int(s.psu_card[j])
        decline = self.hours(36, 120)
        die = self.i(1, 2)
        dark = self.hours(2, 8)
        nom = float(s.vout_nom[j])
        shallow = (n + self.psu_phase) % 2 == 0  # both kinds in every month
        final = self.u(4.65, nom - 0.15) if shallow else self.u(max(nom - 0.8, 4.2), 4.55)
        depth = nom - final
        power = self.u(1.0, 2.2)
        frac = max(0.0, (decline - 24 * M) / decline)
        if depth * frac**power < 0.05:  # the warning must be in the data 24 h ahead
            power = 1.0
            if depth * frac < 0.05:
                return False
        keys = self._card_keys(s, c, env=False)
        k_on = self._slot(s, decline + die + dark, before=24 * M, comps=keys)
        if k_on is None:
            return False
        k_die = k_on + decline
        k_dark = k_die + die
        k_rep = k_dark + dark
        if self.off_conflict(s, k_die - M, k_rep + M):
            return False
        self.occ.take(s.idx, k_on - 24 * M, k_rep + M, keys)
        new_nom = self.u(4.95, 5.05)
        s.effects += [
            Effect("vout_decline", k_on, k_die, psus=(j,), value=depth, power=power),
            Effect("vout_level", k_die, k_dark, psus=(j,), value=self.u(0.0, 3.0)),
            Effect("offline", k_dark, k_rep, cards=(c,)),
            Effect("vout_shift", k_rep, self.N, psus=(j,), value=new_nom - nom),
        ]
        sibling = [f"psu/{s.psu_ids[q]}" for q in s.psus_of(c) if q != j]
        note = (f"{'shallow' if final > 4.6 else 'deep'} {nom:.3f}->{final:.3f} V "
                f"{decline / M:.0f} h p{power:.1f}, dark {dark / M:.1f} h")  # fmt: skip
        effects = [f"card/{s.card_ids[c]}", *sibling, *self._layout(s, (c,))]
        self._label("psu_death", s, f"psu/{s.psu_ids[j]}", effects, k_on, k_rep, hard=True,
                    note=note, dark=self.ts_of(s, k_dark))  # fmt: skip
        return True

    def psu_sag(self) -> bool:
        s = self._screen_pick()
        if s is None:
            return False
        j = int(self.rng.integers(len(s.psu_ids)))
        c = int(s.psu_card[j])
        dur = max(10, self.hours(1 / 3, 3))
        keys = self._card_keys(s, c, env=False)
        k0 = self._slot(s, dur, comps=keys)
        if k0 is None or self.off_conflict(s, k0, k0 + dur):
            return False
        level = self.u(4.3, 4.55)
        self.occ.take(s.idx, k0 - self.M, k0 + dur + self.M, keys)
        s.effects.append(Effect("vout_level", k0, k0 + dur, psus=(j,), value=level))
        note = f"{level:.2f} V for {dur / self.M:.1f} h"
        self._label("psu_sag_recovers", s, f"psu/{s.psu_ids[j]}", [f"card/{s.card_ids[c]}"],
                    k0, k0 + dur, hard=True, note=note)  # fmt: skip
        return True

    def screen_fault(self, kind: str) -> bool:
        """screen_dark, controller_lost, signal_lost: the whole screen, one root."""
        s = self._screen_pick()
        if s is None:
            return False
        lo, hi = {"screen_dark": (1 / 3, 4), "controller_lost": (0.25, 3),
                  "signal_lost": (1 / 6, 2)}[kind]  # fmt: skip
        dur = max(5, self.hours(lo, hi))
        k0 = self._slot(s, dur)
        if k0 is None or self.off_conflict(s, k0 - self.M, k0 + dur + self.M):
            return False
        k1 = k0 + dur
        self.occ.take(s.idx, k0 - self.M, k1 + self.M, None)
        if kind == "screen_dark":
            s.effects.append(Effect("offline", k0, k1, cards=tuple(range(s.n_cards))))
            root, effects = "screen", self._all(s, env=True)
        elif kind == "controller_lost":
            s.effects.append(Effect("ctrl_offline", k0, k1))
            root, effects = "controller", ["screen", *self._all(s, env=True)]
        else:
            s.effects.append(Effect("signal_lost", k0, k1))
            root, effects = "controller", ["screen"]
        self._label(kind, s, root, effects, k0, k1, hard=True,
                    note=f"{dur / self.M:.1f} h")  # fmt: skip
        return True

    def port_break(self) -> bool:
        s = self._screen_pick()
        if s is None:
            return False
        ports = [p for p, n in enumerate(s.ports_expected) if n >= 3]
        if not ports:
            return False
        port = ports[int(self.rng.integers(len(ports)))]
        first = self.i(1, s.ports_expected[port] - 2)
        cards = tuple(int(c) for c in np.flatnonzero((s.port == port) & (s.index >= first)))
        keys = frozenset(k for c in cards for k in self._card_keys(s, c, env=False))
        dur = self.hours(1, 6)
        k0 = self._slot(s, dur, comps=keys)
        if k0 is None or self.off_conflict(s, k0, k0 + dur):
            return False
        self.occ.take(s.idx, k0 - self.M, k0 + dur + self.M, keys)
        s.effects.append(Effect("offline", k0, k0 + dur, cards=cards))
        effects = [f"card/{s.card_ids[c]}" for c in cards]
        effects += [p for c in cards for p in self._card_comps(s, c)] + self._layout(s, cards)
        note = f"port {port} from index {first}: {len(cards)} cards"
        self._label("port_break", s, f"link/{s.card_ids[cards[0]]}", effects, k0, k0 + dur,
                    hard=True, note=note)  # fmt: skip
        return True

    def screen_hot(self) -> bool:
        s = self._screen_pick(lambda x: x.outdoor and x.heat_cap > 0)
        if s is None:
            return False
        M = self.M
        sunny = [d for d, a in sorted(self.weather[s.site].items()) if a >= 12]
        if not sunny:
            return False
        day = sunny[int(self.rng.integers(len(sunny)))]
        zone_start = day * DAY_MS + int(self.u(12.5, 14.5) * HOUR_MS)  # local ms
        offset = s.offset_near(zone_start)
        k0 = int(np.searchsorted(s.ts, zone_start - offset))
        rise, plateau, fall = self.hours(0.5, 0.75), self.hours(1, 2), self.hours(0.6, 0.9)
        if k0 - rise < self.warm or k0 + plateau + fall + M >= self.N:
            return False
        if self.off_conflict(s, k0 - rise, k0 + plateau + fall):
            return False
        if not self.occ.free(s.idx, k0 - rise - M, k0 + plateau + fall + M, None):
            return False
        level = self.u(79, 84)
        values = tuple(float(v) for v in level + self.u(2, 4) * s.pos)
        eff = Effect("temp_blend", k0, k0 + plateau, cards=tuple(range(s.n_cards)),
                     values=values, rise=rise, fall=fall)  # fmt: skip
        s.effects.append(eff)
        lo, hi = eff.span
        temps = true_temps(self._fleet_view(), s, lo, hi)
        above = np.flatnonzero(temps.max(axis=1) > SCREEN_HOT_C)
        if len(above) == 0:
            s.effects.pop()
            return False
        self.occ.take(s.idx, lo - M, hi + M, None)
        self.heat_days.add((s.idx, day))
        self._label("screen_hot", s, "screen", [*self._all(s, psus=False), "env"],
                    lo + int(above[0]), lo + int(above[-1]) + 1, hard=True,
                    note=f"heat wave, cards at {min(values):.0f}-{max(values):.0f} °C")  # fmt: skip
        return True

    def flapping(self) -> bool:
        s = self._screen_pick()
        if s is None:
            return False
        c = self._pick_card(s)
        total = self.hours(1, 3)
        keys = self._card_keys(s, c, env=False)
        k0 = self._slot(s, total, comps=keys)
        if k0 is None or self.off_conflict(s, k0, k0 + total):
            return False
        effects, k, drops = [], k0, 0
        while k < k0 + total:
            off = self.i(2, 4)
            effects.append(Effect("offline", k, k + off, cards=(c,)))
            drops += 1
            k += off + self.i(2, 5)
        k1 = effects[-1].k1
        self.occ.take(s.idx, k0 - self.M, k1 + self.M, keys)
        s.effects += effects
        comps = self._card_comps(s, c) + self._layout(s, (c,))
        self._label("flapping", s, f"card/{s.card_ids[c]}", comps, k0, k1, hard=True,
                    note=f"{drops} drop-outs of 2-4 polls")  # fmt: skip
        return True

    def agent_outage(self, kind: str) -> bool:
        names = sorted(self.agents)
        agent = names[int(self.rng.integers(len(names)))]
        site, idxs = self.agents[agent]
        first = self.screens[idxs[0]]
        dur = self.hours(0.5, 1.5) if kind == "agent_offline" else 1
        k0 = self._slot(first, dur)
        if k0 is None:
            return False
        t0 = int(first.ts[k0]) - self.p.interval_ms // 2
        t1 = t0 + dur * self.p.interval_ms
        spans = []
        for i in idxs:
            s = self.screens[i]
            a, b = (int(np.searchsorted(s.ts, t)) for t in (t0, t1))
            if not self.occ.free(i, a - self.M, b + self.M, None) or self.off_conflict(s, a, b):
                return False
            spans.append((s, a, b))
        for s, a, b in spans:
            self.occ.take(s.idx, a - self.M, b + self.M, None)
            s.published[a:b] = False
        start = min(int(s.ts[a]) for s, a, b in spans if b > a)
        end = min(self.ts_of(s, b) for s, a, b in spans)
        screens = [self.screens[i].screen for i in idxs]
        if kind == "agent_offline":
            self.statuses.append((start + 90_000, site, agent, "offline"))
            self.statuses.append((end - 500, site, agent, "online"))
            self.boots[agent].append(end - 2000)
            note = f"agent down {(end - start) / 60000:.0f} min, {len(idxs)} screen(s)"
        else:
            note = "one poll not published"
        self._label(kind, None, f"agent/{agent}", [], 0, 0, hard=kind == "agent_offline",
                    incident=kind == "agent_offline", note=note, site=site, start_ms=start,
                    end_ms=end, screens=screens)  # fmt: skip
        return True

    def incidents(self) -> None:
        M = self.M
        u, i = self.u, self.i

        def offline(s: Screen, c: int, k0: int, k1: int) -> tuple[list[Effect], str]:
            return [Effect("offline", k0, k1, cards=(c,))], f"{(k1 - k0) / M:.1f} h"

        def module(s: Screen, c: int, k0: int, k1: int) -> tuple[list[Effect], str]:
            n = i(1, 4)
            return ([Effect("set", k0, k1, cards=(c,), column="module", value=n)],
                    f"{n} module group(s) for {(k1 - k0) / M:.0f} h")  # fmt: skip

        def over_temp(s: Screen, c: int, k0: int, k1: int) -> tuple[list[Effect], str]:
            level = u(82, 95)
            return ([Effect("temp_blend", k0, k1, cards=(c,), values=(level,), rise=2, fall=3)],
                    f"{level:.0f} °C")  # fmt: skip

        def fan(s: Screen, c: int, k0: int, k1: int) -> tuple[list[Effect], str]:
            rpm = float(round(u(0, 250)))
            return ([Effect("set", k0, k1, cards=(c,), column="fan", value=rpm)],
                    f"{rpm:.0f} rpm for {(k1 - k0) / M:.0f} h")  # fmt: skip

        def flag(column: str) -> Callable[[Screen, int, int, int], tuple[list[Effect], str]]:
            def make(s: Screen, c: int, k0: int, k1: int) -> tuple[list[Effect], str]:
                return ([Effect("set", k0, k1, cards=(c,), column=column, value=1.0)],
                        f"{(k1 - k0) * self.p.interval_s / 60:.0f} min")  # fmt: skip
            return make

        def running_hot(s: Screen, c: int, k0: int, k1: int) -> tuple[list[Effect], str]:
            dt = u(8, 15)
            eff = Effect("temp_add", k0 + 2 * M, k1, cards=(c,), value=dt, rise=2 * M, fall=M)
            return [eff], f"+{dt:.1f} °C for {(k1 - k0) / M / 24:.1f} days"

        def minutes(lo: float, hi: float) -> int:
            return max(2, self.hours(lo / 60, hi / 60))

        plans: dict[str, Callable[[int], bool]] = {
            "psu_death": self.psu_death,
            "psu_sag_recovers": lambda n: self.psu_sag(),
            "card_offline": lambda n: self.place_card_fault(
                "card_offline", self.hours(1, 8), False, offline),
            "port_break": lambda n: self.port_break(),
            "screen_dark": lambda n: self.screen_fault("screen_dark"),
            "controller_lost": lambda n: self.screen_fault("controller_lost"),
            "signal_lost": lambda n: self.screen_fault("signal_lost"),
            "module_fault": lambda n: self.place_card_fault(
                "module_fault", self.hours(6, 72), False, module, persistent=True),
            "over_temp": lambda n: self.place_card_fault(
                "over_temp", self.hours(0.5, 3), True, over_temp),
            "screen_hot": lambda n: self.screen_hot(),
            "fan_stopped": lambda n: self.place_card_fault(
                "fan_stopped", self.hours(6, 72), True, fan, persistent=True),
            "door_open": lambda n: self.place_card_fault(
                "door_open", minutes(15, 90), True, flag("door")),
            "smoke": lambda n: self.place_card_fault("smoke", minutes(5, 30), True, flag("smoke")),
            "flapping": lambda n: self.flapping(),
            "running_hot": lambda n: self.place_card_fault(
                "running_hot", self.hours(48, 144), True, running_hot, hard=False,
                persistent=True, indoor_only=True, before=24 * M),
            "agent_offline": lambda n: self.agent_outage("agent_offline"),
        }  # fmt: skip
        assert set(plans) == set(INCIDENT_KINDS)
        # the long ones first, while the month is still empty
        for kind in INCIDENT_KINDS:
            place = plans[kind]
            for n in range(self.count(*INCIDENT_COUNTS[kind])):
                self._try(functools.partial(place, n))

    # -- non-incidents --
    def glitches(self) -> None:
        for kind in GLITCH_KINDS:
            for _ in range(self.count(*GLITCH_COUNT)):
                self._try(functools.partial(self._glitch, kind))
        for variant in NULL_SENSOR_KINDS:
            for _ in range(self.count(*NULL_SENSOR_COUNT)):
                self._try(functools.partial(self._null_sensor, variant))

    def _glitch(self, kind: str) -> bool:
        if kind == "glitch_agent":
            return self.agent_outage(kind)
        s = self._screen_pick()
        if s is None:
            return False
        c = self._pick_card(s)
        screen_wide = kind in ("glitch_screen_dark", "glitch_controller", "glitch_signal")
        cards: tuple[int, ...] = (c,)
        root, env = f"card/{s.card_ids[c]}", True
        if kind == "glitch_port":
            ports = [p for p, n in enumerate(s.ports_expected) if n >= 2]
            port = ports[int(self.rng.integers(len(ports)))]
            first = self.i(1, s.ports_expected[port] - 1)
            cards = tuple(int(x) for x in np.flatnonzero((s.port == port) & (s.index >= first)))
            root = f"link/{s.card_ids[cards[0]]}"
        keys = None if screen_wide else frozenset(
            k for x in cards for k in self._card_keys(s, x, env=True))  # fmt: skip
        k0 = self._slot(s, 1, comps=keys)
        if k0 is None or self.off_conflict(s, k0, k0 + 1):
            return False
        k1 = k0 + 1
        self.occ.take(s.idx, k0 - self.M, k1 + self.M, keys)
        j = s.psus_of(c)[0]
        effect, effects = {
            "glitch_temp": (Effect("set", k0, k1, cards=cards, column="temp", value=120.0,
                                   sensor=True), None),
            "glitch_card_offline": (Effect("offline", k0, k1, cards=cards), None),
            "glitch_port": (Effect("offline", k0, k1, cards=cards), None),
            "glitch_screen_dark": (Effect("offline", k0, k1, cards=tuple(range(s.n_cards))),
                                   self._all(s, env=True)),
            "glitch_controller": (Effect("ctrl_offline", k0, k1),
                                  ["screen", *self._all(s, env=True)]),
            "glitch_signal": (Effect("signal_lost", k0, k1), ["screen"]),
            "glitch_vout": (Effect("set", k0, k1, psus=(j,), column="vout", value=0.0,
                                   sensor=True), [f"card/{s.card_ids[c]}"]),
            "glitch_door": (Effect("set", k0, k1, cards=cards, column="door", value=1.0), None),
            "glitch_smoke": (Effect("set", k0, k1, cards=cards, column="smoke", value=1.0), None),
            "glitch_module": (Effect("set", k0, k1, cards=cards, column="module",
                                     value=float(self.i(1, 3))), None),
            "glitch_fan": (Effect("set", k0, k1, cards=cards, column="fan", value=0.0,
                                  sensor=True), None),
            "glitch_humidity": (Effect("set", k0, k1, cards=cards, column="hum", value=97.0,
                                       sensor=True), None),
        }[kind]  # fmt: skip
        s.effects.append(effect)
        if kind == "glitch_vout":
            root = f"psu/{s.psu_ids[j]}"
        elif kind in ("glitch_screen_dark",):
            root = "screen"
        elif kind in ("glitch_controller", "glitch_signal"):
            root = "controller"
        if effects is None:
            effects = [f"card/{s.card_ids[x]}" for x in cards if f"card/{s.card_ids[x]}" != root]
            effects += [p for x in cards for p in self._card_comps(s, x)] + ["env"] * env
            if kind in ("glitch_card_offline", "glitch_port"):
                effects += self._layout(s, cards)
        self._label(kind, s, root, effects, k0, k1, hard=False, incident=False,
                    note="one poll")  # fmt: skip
        return True

    def _null_sensor(self, variant: str) -> bool:
        s = self._screen_pick()
        if s is None:
            return False
        c = self._pick_card(s)
        dur = self.hours(0.75, 1.25)
        keys = None if variant == "screen_temps" else self._card_keys(s, c, env=False)
        k0 = self._slot(s, dur, comps=keys)
        if k0 is None or self.off_conflict(s, k0, k0 + dur):
            return False
        k1 = k0 + dur
        self.occ.take(s.idx, k0 - self.M, k1 + self.M, keys)
        card = f"card/{s.card_ids[c]}"
        if variant == "card_temp":
            s.effects.append(Effect("null", k0, k1, cards=(c,), column="temp", sensor=True))
            root, effects = card, []
        elif variant == "card_fan":
            s.effects.append(Effect("null", k0, k1, cards=(c,), column="fan", sensor=True))
            root, effects = card, ["env"]
        elif variant == "psu_vout":
            j = s.psus_of(c)[-1]
            s.effects.append(Effect("null", k0, k1, psus=(j,), column="vout", sensor=True))
            root, effects = f"psu/{s.psu_ids[j]}", [card]
        else:
            s.effects.append(Effect("null", k0, k1, cards=tuple(range(s.n_cards)),
                                    column="screen_temps", sensor=True))  # fmt: skip
            root, effects = "screen", [*self._all(s, psus=False), "env"]
        self._label("null_sensor", s, root, effects, k0, k1, hard=False, incident=False,
                    note=f"{variant} null for {dur / self.M:.1f} h")  # fmt: skip
        return True

    def heat(self) -> None:
        """Normal afternoon heat on outdoor screens: a label per sunny afternoon."""
        for s in self.screens:
            if not s.outdoor:
                continue
            for day, amp in sorted(self.weather[s.site].items()):
                if amp * s.exposure < 8 or (s.idx, day) in self.heat_days:
                    continue
                local0 = day * DAY_MS + int(10.5 * HOUR_MS)
                local1 = local0 + 8 * HOUR_MS
                offset = s.offset_near(local0)
                k0, k1 = (int(np.searchsorted(s.ts, t - offset)) for t in (local0, local1))
                if k1 <= k0 or k0 < 0 or k1 > self.N or k0 == 0 or k1 == self.N:
                    continue
                peak = min(amp * s.exposure, s.heat_cap)
                self._label("heat", s, "screen", [*self._all(s, psus=False), "env"], k0, k1,
                            hard=False, incident=False, note=f"sunny, +{peak:.0f} °C")  # fmt: skip

    def finish(self) -> Fleet:
        self.labels.sort(key=lambda lab: (lab.start_ms, lab.kind, lab.site, lab.screen))
        n_inc = n_non = 0
        for lab in self.labels:
            if lab.incident:
                n_inc += 1
                lab.id = f"I{n_inc:03d}"
            else:
                n_non += 1
                lab.id = f"N{n_non:04d}"
        self.statuses.sort()
        for s in self.screens:
            s.effects.sort(key=lambda e: (e.k0, e.op))
        return Fleet(self.p, self.screens, self.sites, self.agents, self.weather, self.labels,
                     self.statuses, self.boots)  # fmt: skip


def plan_fleet(params: FleetParams) -> Fleet:
    """Everything about the month, drawn from `params.seed`; nothing rendered yet."""
    pl = _Planner(params)
    pl.fleet()
    pl.schedules()
    pl.incidents()
    pl.glitches()
    pl.heat()
    return pl.finish()


# -- rendering ------------------------------------------------------------------------------
@dataclass(slots=True)
class Chunk:
    """One screen's readings over polls k0..k1, ready to encode."""

    k0: int
    ts: np.ndarray
    online: np.ndarray
    ctrl_online: np.ndarray
    signal: np.ndarray  # 1 / 0 / nan
    bright: np.ndarray
    temp: np.ndarray
    card_v: np.ndarray
    fan: np.ndarray
    hum: np.ndarray
    module: np.ndarray
    door: np.ndarray
    smoke: np.ndarray
    vout: np.ndarray
    env_temp: np.ndarray
    ports_found: np.ndarray


def render_chunk(fleet: Fleet, s: Screen, k0: int, k1: int) -> Chunk:
    """The readings of screen `s` at polls [k0, k1): model + noise + every effect."""
    p = fleet.params
    ts = s.ts[k0:k1]
    K, C = len(ts), s.n_cards
    rng = np.random.default_rng([p.seed, s.idx, k0, 99])
    base = base_readings(s, ts, fleet.weather[s.site])
    temp = base["temp"].copy()
    apply_temp_effects(s, k0, temp, sensor=False)
    # the monitoring card's sensor: ~6 °C below the receiving card, and it follows half of
    # what a fault or the sun adds (the emulator: +25 °C at an 85 °C over-temperature)
    monitor = base["temp"] - 6.0 + 0.5 * (temp - base["temp"])
    temp += rng.normal(0, 0.3, (K, C))
    fan = base["fan"] + rng.normal(0, 12, (K, C))
    hum = base["hum"] + rng.normal(0, 0.4, (K, C))
    card_v = base["card_v"] + rng.normal(0, 0.008, (K, C))
    vout = base["vout"] + rng.normal(0, 1, (K, len(s.psu_ids))) * s.vout_sigma[None, :]
    module = np.zeros((K, C))
    door = np.zeros((K, C))
    smoke = np.zeros((K, C))
    online = np.ones((K, C), bool)
    ctrl_online = np.ones(K, bool)
    signal = np.ones(K)
    columns = {"fan": fan, "hum": hum, "door": door, "smoke": smoke, "module": module,
               "vout": vout}  # fmt: skip
    active = [e for e in s.effects if e.span[1] > k0 and e.span[0] < k1]
    for e in active:
        lo, hi = max(e.span[0], k0), min(e.span[1], k1)
        rows = slice(lo - k0, hi - k0)
        if e.op == "offline":
            online[rows, list(e.cards)] = False
        elif e.op == "ctrl_offline":
            ctrl_online[rows] = False
        elif e.op == "signal_lost":
            signal[rows] = 0.0
        elif e.op == "vout_decline":
            ks = np.arange(lo, hi)
            frac = (ks - e.k0 + 1) / (e.k1 - e.k0)
            vout[rows, list(e.psus)] -= (e.value * frac**e.power)[:, None]
        elif e.op == "vout_level":
            noise = rng.normal(0, 0.02, (hi - lo, len(e.psus)))
            vout[rows, list(e.psus)] = np.maximum(e.value + noise, 0.0)
        elif e.op == "vout_shift":
            vout[rows, list(e.psus)] += e.value
        elif e.op == "set" and not e.sensor and e.column in columns:
            columns[e.column][rows, list(e.cards or e.psus)] = e.value
        if e.op in ("vout_decline", "vout_level"):  # the card hangs on the sagging 5 V bus
            for j in e.psus:
                c = int(s.psu_card[j])
                card_v[rows, c] = np.minimum(card_v[rows, c], vout[rows, j])
    seen = online & ctrl_online[:, None]
    hottest = np.where(seen, monitor, -np.inf).max(axis=1)
    env_temp = np.where(seen.any(axis=1), hottest, np.nan)
    apply_temp_effects(s, k0, temp, sensor=True)
    for e in active:
        lo, hi = max(e.span[0], k0), min(e.span[1], k1)
        rows = slice(lo - k0, hi - k0)
        if e.sensor and e.column in columns:
            columns[e.column][rows, list(e.cards or e.psus)] = (
                np.nan if e.op == "null" else e.value)
        if e.op == "null" and e.column == "screen_temps":
            env_temp[rows] = np.nan
    hidden = ~seen
    for arr in (temp, card_v, fan, hum, module, door, smoke):
        arr[hidden] = np.nan
    vout[hidden[:, s.psu_card]] = np.nan
    signal[~ctrl_online] = np.nan
    bright = np.where(seen.any(axis=1), base["bright"], np.nan)
    found = np.zeros((K, len(s.ports_expected)), np.int64)
    for port, n in enumerate(s.ports_expected):
        on = seen[:, s.port == port]  # in chain order (index 0..n-1)
        last = n - np.argmax(on[:, ::-1], axis=1)
        found[:, port] = np.where(on.any(axis=1), last, 0)
    found[~ctrl_online] = -1
    return Chunk(k0, ts, seen, ctrl_online, signal, bright, temp, card_v, fan, hum, module,
                 door, smoke, vout, env_temp, found)  # fmt: skip


def _bools(row: list[float]) -> list[bool | None]:
    return [None if v != v else v > 0.5 for v in row]


def _any(row: list[bool | None]) -> bool | None:
    known = [v for v in row if v is not None]
    return any(known) if known else None


class _ScreenEncoder:
    """Turns a `Chunk` into snapshot documents; constant columns are built once."""

    def __init__(self, fleet: Fleet, s: Screen) -> None:
        C, P = s.n_cards, len(s.psu_ids)
        self.s = s
        self.topic = telemetry_topic(s.site, s.screen).encode()
        self.consts = {
            "id": s.card_ids, "port": s.port.tolist(), "index": s.index.tolist(),
            "row": s.row.tolist(), "col": s.col.tolist(),
        }  # fmt: skip
        self.true_c: list[bool] = [True] * C
        self.false_c: list[bool | None] = [False] * C
        self.zero_c = [0] * C
        self.true_p, self.null_p = [True] * P, [None] * P
        self.psu_card = [s.card_ids[int(c)] for c in s.psu_card]
        seq0 = 1 + (fleet.params.seed * 7919 + s.idx * 104729) % 900_000
        self.seq = seq0 + np.cumsum(s.published) - 1
        boots = np.array(sorted(fleet.boots[s.agent]), np.int64)
        self.boot = boots[np.searchsorted(boots, s.ts, side="right") - 1]

    def docs(self, ch: Chunk) -> Iterator[tuple[int, dict[str, Any]]]:
        s = self.s
        # numpy rows go to orjson as they are (OPT_SERIALIZE_NUMPY; nan is written null)
        temp = np.round(ch.temp, 1)
        card_v = np.round(ch.card_v, 2)
        fan = np.round(ch.fan, 0)
        hum = np.round(ch.hum, 1)
        vout_r = np.round(ch.vout, 3)
        module, door, smoke = ch.module, ch.door, ch.smoke
        all_on: list[bool] = np.asarray(ch.online.all(axis=1)).tolist()
        mod_clean: list[bool] = (ch.module == 0).all(axis=1).tolist()
        door_clean: list[bool] = (ch.door == 0).all(axis=1).tolist()
        smoke_clean: list[bool] = (ch.smoke == 0).all(axis=1).tolist()
        ok_clean: list[bool] = np.asarray((vout_r >= PSU_OK_MIN_V).all(axis=1)).tolist()
        with np.errstate(all="ignore"):
            env_hum = np.round(np.nanmax(np.where(np.isnan(ch.hum), -np.inf, ch.hum), axis=1), 1)
            env_fan = np.round(np.nanmin(np.where(np.isnan(ch.fan), np.inf, ch.fan), axis=1), 0)
        env_hum_l = np.where(np.isfinite(env_hum), env_hum, np.nan).tolist()
        env_fan_l = np.where(np.isfinite(env_fan), env_fan, np.nan).tolist()
        env_temp = np.round(ch.env_temp, 1).tolist()
        bright = np.round(ch.bright, 1).tolist()
        found = ch.ports_found.tolist()
        online = ch.online
        published = s.published[ch.k0:ch.k0 + len(ch.ts)]
        seq = self.seq[ch.k0:ch.k0 + len(ch.ts)].tolist()
        uptime = ((ch.ts - self.boot[ch.k0:ch.k0 + len(ch.ts)]) / 1000).round(1).tolist()
        ts_l = ch.ts.tolist()
        ctrl_online: list[bool] = np.asarray(ch.ctrl_online).tolist()
        signal: list[float] = np.asarray(ch.signal).tolist()
        expected = s.ports_expected
        for r in range(len(ts_l)):
            if not published[r]:
                continue
            ctrl_on = ctrl_online[r]
            sig = signal[r]
            smoke_row = self.false_c if smoke_clean[r] else _bools(smoke[r].tolist())
            door_row = self.false_c if door_clean[r] else _bools(door[r].tolist())
            pf = found[r] if ctrl_on else None
            cards = {
                **self.consts,
                "online": self.true_c if all_on[r] else online[r].tolist(),
                "temp_c": temp[r],
                "voltage_v": card_v[r],
                "module_faults": self.zero_c if mod_clean[r] else [
                    None if v != v else int(v) for v in module[r].tolist()],
                "monitor": self.true_c,
                "humidity_pct": hum[r],
                "smoke": smoke_row,
                "door_open": door_row,
                "fan_rpm": fan[r],
            }
            psus = {
                "id": s.psu_ids,
                "card": self.psu_card,
                "ok": self.true_p if ok_clean[r] else [
                    None if v != v else v >= PSU_OK_MIN_V for v in vout_r[r].tolist()],
                "vout_v": vout_r[r],
                "iout_a": self.null_p,
                "temp_c": self.null_p,
                "fan_rpm": self.null_p,
            }
            yield ts_l[r], {
                "schema": SCHEMA_TELEMETRY,
                "site": s.site,
                "screen": s.screen,
                "agent": s.agent,
                "seq": seq[r],
                "ts": ts_l[r],
                "controller": {
                    "online": ctrl_on,
                    "link": "up" if ctrl_on else "down",
                    "model": s.model if ctrl_on else None,
                    "signal_ok": None if sig != sig else sig > 0.5,
                    "brightness_pct": bright[r],
                    "temp_c": None,
                    "ports_expected": expected,
                    "ports_found": pf,
                    "layout_ok": None if pf is None else pf == expected,
                },
                "cards": cards,
                "psus": psus,
                "env": {
                    "temp_c": env_temp[r],
                    "humidity_pct": env_hum_l[r],
                    "smoke": _any(smoke_row) if not smoke_clean[r] else False,
                    "door_open": _any(door_row) if not door_clean[r] else False,
                    "fan_rpm": env_fan_l[r],
                },
                "stats": {"queue_depth": 0, "poll_ms": s.poll_ms, "poll_errors": 0,
                          "uptime_s": uptime[r], "dropped": 0},
            }


def status_doc(ts: int, site: str, agent: str, state: str) -> dict[str, Any]:
    return {"schema": SCHEMA_STATUS, "state": state, "site": site, "agent": agent, "ts": ts}


def iter_docs(fleet: Fleet, chunk_polls: int = 720
              ) -> Iterator[tuple[int, list[tuple[int, str | None, dict[str, Any]]]]]:  # fmt: skip
    """Per chunk of polls: (polls done, [(ts, topic or None for a bare line, doc)]) in
    global ts order; statuses go out with the topic form."""
    p = fleet.params
    encoders = [_ScreenEncoder(fleet, s) for s in fleet.screens]
    statuses = list(fleet.statuses)
    rng = np.random.default_rng([p.seed, 4242])
    for k0 in range(0, p.n_polls, chunk_polls):
        k1 = min(p.n_polls, k0 + chunk_polls)
        rows: list[tuple[int, int, str | None, dict[str, Any]]] = []
        for enc in encoders:
            ch = render_chunk(fleet, enc.s, k0, k1)
            topic = telemetry_topic(enc.s.site, enc.s.screen)
            bare = rng.random(k1 - k0) < BARE_SHARE
            for n, (ts, doc) in enumerate(enc.docs(ch)):
                rows.append((ts, 1, None if bare[n % len(bare)] else topic, doc))
        limit = p.start_ms + k1 * p.interval_ms if k1 < p.n_polls else None
        while statuses and (limit is None or statuses[0][0] < limit):
            ts, site, agent, state = statuses.pop(0)
            rows.append((ts, 0, status_topic(site, agent), status_doc(ts, site, agent, state)))
        rows.sort(key=lambda r: (r[0], r[1]))
        yield k1, [(ts, topic, doc) for ts, _, topic, doc in rows]


class _GzipWriter:
    """gzip in a thread (zlib lets go of the GIL): encoding and compression overlap."""

    def __init__(self, path: Path, level: int) -> None:
        self._raw = path.open("wb")
        self._gz = gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=self._raw,
                                 mtime=0)  # fmt: skip
        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="gzip-writer", daemon=True)
        self._thread.start()
        self.bytes_in = 0

    def _run(self) -> None:
        try:
            while (data := self._q.get()) is not None:
                self._gz.write(data)
        except BaseException as exc:  # handed to the caller in close()
            self._error = exc

    def write(self, data: bytes) -> None:
        self.bytes_in += len(data)
        self._q.put(data)

    def close(self) -> None:
        self._q.put(None)
        self._thread.join()
        self._gz.close()
        self._raw.close()
        if self._error is not None:
            raise self._error


def encode_line(topic: str | None, doc: dict[str, Any]) -> bytes:
    payload = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if topic is None:
        return payload
    return b'{"topic":"' + topic.encode() + b'","payload":' + payload + b"}"


def collector_toml(fleet: Fleet, out: Path) -> str:
    """The replay config: only public keys (influx output, database url, schedules)."""
    db = (out.resolve() / "tickets.db").as_posix()
    lines = [
        f"# Written by `ledwatch bench detection` (seed {fleet.params.seed}): replay config",
        "# of this generated fleet month. Schedules are local time in each screen's zone.",
        "",
        "[influx]",
        'output = "none"',
        "",
        "[database]",
        f'url = "sqlite:///{db}"',
    ]
    for site, tz in sorted(fleet.sites.items()):
        lines += ["", f"[detect.sites.{site}]", f'timezone = "{tz}"']
        for s in fleet.screens:
            if s.site != site or not s.schedule:
                continue
            lines += ["", f"[detect.sites.{site}.screens.{s.screen}]", f'timezone = "{s.tz}"']
            for entry in s.schedule:
                days = ", ".join(f'"{d}"' for d in entry["days"])
                lines += ["", f"[[detect.sites.{site}.screens.{s.screen}.schedule]]",
                          f"days = [{days}]", f'off = "{entry["off"]}"']  # fmt: skip
    return "\n".join(lines) + "\n"


def fleet_summary(fleet: Fleet, snapshots: int, lines: int) -> dict[str, Any]:
    p = fleet.params
    return {
        "generator": {"version": GENERATOR_VERSION, "seed": p.seed, "screens": p.screens,
                      "cards": p.cards, "psus": p.psus, "days": p.days,
                      "interval_s": p.interval_s, "start_ms": p.start_ms},
        "start_ms": p.start_ms,
        "end_ms": p.end_ms,
        "screen_days": fleet.screen_days,
        "snapshots": snapshots,
        "lines": lines,
        "incidents": sum(1 for lab in fleet.labels if lab.incident),
        "non_incidents": sum(1 for lab in fleet.labels if not lab.incident),
        "sites": fleet.sites,
        "agents": {a: {"site": site, "screens": [fleet.screens[i].screen for i in idxs]}
                   for a, (site, idxs) in sorted(fleet.agents.items())},
        "screens": [
            {"site": s.site, "screen": s.screen, "agent": s.agent, "timezone": s.tz,
             "outdoor": s.outdoor, "ports": s.ports_expected, "cards": s.n_cards,
             "psus": len(s.psu_ids), "schedule": s.schedule, "signal_off": s.signal_off}
            for s in fleet.screens
        ],
    }


@dataclass(slots=True)
class WriteResult:
    snapshots: int
    lines: int
    raw_bytes: int
    file_bytes: int
    seconds: float


def write_fleet(
    fleet: Fleet,
    out: Path,
    *,
    level: int = 1,
    progress: Callable[[str], None] | None = None,
) -> WriteResult:
    """Render and write the month into `out` (see the module docstring)."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    path = out / TELEMETRY_FILE
    writer = _GzipWriter(path, level)
    snapshots = lines = 0
    n = fleet.params.n_polls
    try:
        for done, rows in iter_docs(fleet):
            data = b"\n".join(encode_line(topic, doc) for _, topic, doc in rows) + b"\n"
            writer.write(data)
            lines += len(rows)
            snapshots += sum(1 for _, _, doc in rows if doc.get("schema") == SCHEMA_TELEMETRY)
            if progress is not None:
                dt = time.perf_counter() - t0
                progress(f"generate: {done / n:6.1%} of the polls, {snapshots:,} snapshots, "
                         f"{dt:5.1f} s")  # fmt: skip
    finally:
        writer.close()
    (out / INCIDENTS_FILE).write_bytes(
        orjson.dumps([lab.to_json() for lab in fleet.labels], option=orjson.OPT_INDENT_2))
    (out / CONFIG_FILE).write_text(collector_toml(fleet, out), "utf-8")
    (out / FLEET_FILE).write_bytes(
        orjson.dumps(fleet_summary(fleet, snapshots, lines), option=orjson.OPT_INDENT_2))
    return WriteResult(snapshots, lines, writer.bytes_in, path.stat().st_size,
                       time.perf_counter() - t0)  # fmt: skip


def read_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The documents of a telemetry file, each as {"topic": str | None, "payload": doc}."""
    with gzip.open(path, "rb") as fh:
        for line in fh:
            doc = orjson.loads(line)
            if "payload" in doc and "topic" in doc:
                yield doc
            else:
                yield {"topic": None, "payload": doc}
