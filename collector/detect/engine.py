"""Snapshots and times in, findings out: the detector of one collector (pure, no clock).

```
 snapshots ─frames.py─> per-screen batches (T polls x N elements per reading)
   per section (controller, psu, card, env), all rules at once:
     hide what cannot be read (controller lost, cabinet dark, scheduled off)
     debounce.py: rolling median, hold / clear times, hysteresis -> per-poll states
   state changes, in time order:
     emit.py: flapping filter, one report per change of a finding key
     correlate.py: is a new fault an effect of a root cause (screen dark, link break,
                   the PSU that took its cabinet dark, a hot screen)?
   predict.py: bucketed history -> psu_degrading, running_hot, failure forecasts
 agents: silence (gaps between their snapshots, or `check_agents(now)`), will / birth
```
Times come in as arguments (snapshot `ts`, the caller's `now_ms`), so a replayed month
gives exactly the findings the live month gave. The state that carries between batches
(pending counts, smoothing windows, bucketed history, flapping) is plain data:
`dump_state`/`load_state` persist it across restarts (docs/detection.md says why).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from collector.detect.config import DetectSettings, RuleBook, ScreenRules
from collector.detect.correlate import Correlator
from collector.detect.debounce import Carry, Params, debounce, debounce_loop
from collector.detect.emit import Emitter, Report
from collector.detect.findings import AGENT_SCREEN, Fault, Finding
from collector.detect.frames import ScreenBatch, build_batches
from collector.detect.predict import Judgement, Series, judge_psus, judge_temps
from collector.detect.rules import Rule, Section
from collector.detect.schedule import Schedule

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

STATE_VERSION: Final = 1
# Within one poll, PSUs are judged before their cabinets (a PSU failure is the root of
# its dark cabinet) and the screen's own sensors last.
ORDER: Final = (Section.CONTROLLER, Section.PSU, Section.CARD, Section.ENV)
HISTORY_SLOTS: Final = 160  # buckets of predictive history (26.7 h of 10 min)


def _component(section: Section, ident: str) -> str:
    if section in (Section.CONTROLLER, Section.ENV):
        return section.value
    return f"{section.value}/{ident}"


def _num(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


# Per section: its rules, states (T, R, N), states before the batch (R, N), smoothed values.
_Result = tuple[tuple[Rule, ...], npt.NDArray[np.int8], npt.NDArray[np.int8], FloatArray]


@dataclass(slots=True)
class _SectionState:
    ids: tuple[str, ...]
    carry: Carry
    parked: dict[str, Carry] = field(default_factory=dict)


@dataclass(slots=True)
class _Screen:
    site: str
    screen: str
    emit: Emitter
    sections: dict[Section, _SectionState] = field(default_factory=dict)
    last_ts: int = -1
    interval_ms: float = 0.0  # typical time between two polls
    gaps: list[int] = field(default_factory=list)  # the last few times between polls
    psus: Series | None = None
    temps: Series | None = None
    series_ids: dict[str, tuple[str, ...]] = field(default_factory=dict)
    psu_vout: FloatArray = field(default_factory=lambda: np.zeros(0))  # last known vout


@dataclass(slots=True)
class _Agent:
    last_seen: int
    screens: set[tuple[str, str]] = field(default_factory=set)
    will_offline: bool = False
    offline: bool = False  # what was last reported


@dataclass(frozen=True, slots=True)
class Forecast:
    """A PSU's predicted failure time at one judgement (also written to InfluxDB)."""

    site: str
    screen: str
    psu: str
    ts_ms: int
    predicted_failure_ms: int
    slope_v_per_h: float | None
    level_v: float | None


@dataclass
class Detector:
    """Holds per-screen detection state between batches; one instance per collector."""

    settings: DetectSettings = field(default_factory=DetectSettings)
    vectorised: bool = True  # False: the poll-by-poll reference machine (tests)
    stale: int = 0  # snapshots not newer than one already judged: stored, not judged
    forecasts: list[Forecast] = field(default_factory=list)  # drained by the caller
    _screens: dict[tuple[str, str], _Screen] = field(default_factory=dict)
    _agents: dict[tuple[str, str], _Agent] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.book = RuleBook(self.settings)
        self._params: dict[tuple[str, str, Section], tuple[tuple[Rule, ...], Params]] = {}

    # -- telemetry ----------------------------------------------------------------------

    def process(
        self, docs: Iterable[Mapping[str, Any]], now_ms: int | None = None
    ) -> list[Finding]:
        """Findings for a batch of validated snapshots, in time order.

        `now_ms` is when the batch was received (for agent silence); default: each
        snapshot's own `ts`.
        """
        return self.process_batches(build_batches(docs, now_ms))

    def process_batches(self, batches: Iterable[ScreenBatch]) -> list[Finding]:
        out: list[Finding] = []
        for batch in batches:
            out += self._judge(batch)
            out += self._agents_seen(batch)
        out.sort(key=lambda f: f.ts_ms)
        return out

    # -- one screen ---------------------------------------------------------------------

    def _screen(self, site: str, screen: str) -> _Screen:
        st = self._screens.get((site, screen))
        if st is None:
            s = self.settings
            emit = Emitter(site, screen, int(s.flap_window_s * 1000), int(s.flap_clear_s * 1000))
            st = self._screens[(site, screen)] = _Screen(site, screen, emit)
        return st

    def _section_params(
        self, site: str, screen: str, sr: ScreenRules, section: Section
    ) -> tuple[tuple[Rule, ...], Params]:
        key = (site, screen, section)
        found = self._params.get(key)
        if found is None:
            rules = tuple(r for r in sr.rules if r.section is section)
            found = self._params[key] = (rules, Params.of(rules))
        return found

    def _carry(
        self, st: _Screen, section: Section, ids: tuple[str, ...], p: Params
    ) -> _SectionState:
        sec = st.sections.get(section)
        r, h, w = p.set_level.shape[0], p.history_len, p.window_len
        if sec is None or not sec.carry.fits(r, h, w):
            sec = st.sections[section] = _SectionState(ids, Carry.fresh(r, len(ids), h, w))
            return sec
        if sec.ids == ids:
            return sec
        # A new layout: keep each element's state by id; park the ones that left.
        kept = set(ids)
        for i, ident in enumerate(sec.ids):
            if ident not in kept:
                sec.parked[ident] = sec.carry.take(np.array([i]))
        pool_ids = list(sec.ids)
        pools = [sec.carry]
        for ident in ids:
            if ident not in sec.ids and ident in sec.parked:
                pool_ids.append(ident)
                pools.append(sec.parked.pop(ident))
        pool = pools[0] if len(pools) == 1 else Carry.concat(pools)
        where = {ident: i for i, ident in enumerate(pool_ids)}
        index = np.array([where.get(ident, -1) for ident in ids], dtype=np.int64)
        sec.ids, sec.carry = ids, pool.take(index)
        return sec

    def _judge(self, batch: ScreenBatch) -> list[Finding]:
        st = self._screen(batch.site, batch.screen)
        keep = batch.ts > np.maximum.accumulate(np.concatenate([[st.last_ts], batch.ts[:-1]]))
        if not keep.all():
            # A re-delivered or late backlog snapshot must not take a screen back in time
            # (a cleared fault would open again), nor count twice towards a hold time.
            self.stale += int((~keep).sum())
            if not keep.any():
                return []
            batch = _rows(batch, keep)
        t = len(batch)
        ts = batch.ts
        # The screen's poll interval: the median of its last gaps, so an outage (one long
        # gap) does not make the agent's silence limit long.
        gaps = np.diff(np.concatenate([[st.last_ts], ts]) if st.last_ts >= 0 else ts)
        st.gaps = (st.gaps + [int(g) for g in gaps[-9:]])[-9:]
        if st.gaps:
            st.interval_ms = float(sorted(st.gaps)[len(st.gaps) // 2])
        st.last_ts = int(ts[-1])
        sr = self.book.for_screen(batch.site, batch.screen)
        off = sr.schedule.off_mask(ts)
        machine = debounce if self.vectorised else debounce_loop
        results: dict[Section, _Result] = {}
        lost = np.zeros(t, dtype=bool)
        card_dark = np.zeros((t, len(batch.layout[0])), dtype=bool)
        for section in ORDER:
            frame = batch.sections[section]
            rules, params = self._section_params(batch.site, batch.screen, sr, section)
            n = len(frame.ids)
            raw = np.stack([frame.values[r.reading] for r in rules], axis=1) if rules else (
                np.zeros((t, 0, n)))
            hide = self._hidden(section, rules, raw, off, lost, card_dark, batch)
            values = np.where(hide, np.nan, raw)
            sec = self._carry(st, section, frame.ids, params)
            prev = sec.carry.state
            states, smoothed, sec.carry = machine(params, sec.carry, values, ts)
            results[section] = (rules, states, prev, smoothed)
            if section is Section.CONTROLLER:
                i = _index(rules, "controller_lost")
                lost = raw[:, i, 0] == 0 if i is not None else lost
            elif section is Section.CARD:
                i = _index(rules, "card_offline")
                card_dark = values[:, i, :] == 0 if i is not None else card_dark
        return self._report(st, batch, sr, results, card_dark)

    def _hidden(
        self,
        section: Section,
        rules: tuple[Rule, ...],
        raw: FloatArray,
        off: BoolArray,
        lost: BoolArray,
        card_dark: BoolArray,
        batch: ScreenBatch,
    ) -> BoolArray:
        t, r, n = raw.shape
        hide = np.zeros((t, r, n), dtype=bool)
        dark = np.array([rule.dark for rule in rules], dtype=bool).reshape(1, r, 1)
        if off.any():
            hide |= off.reshape(t, 1, 1) & dark
        if section is Section.CONTROLLER:
            i = _index(rules, "controller_lost")
            if i is not None:  # behind a lost controller nothing else is readable
                gone = (raw[:, i, 0] == 0).reshape(t, 1, 1)
                others = np.ones((1, r, 1), dtype=bool)
                others[0, i, 0] = False
                hide |= gone & others
            return hide
        hide |= lost.reshape(t, 1, 1)
        if section is Section.CARD:
            i = _index(rules, "card_offline")
            if i is not None:
                others = np.ones((1, r, 1), dtype=bool)
                others[0, i, 0] = False
                hide |= (raw[:, i, :] == 0)[:, np.newaxis, :] & others
        elif section is Section.PSU:
            # A PSU's readings behind a dark cabinet are stale or bogus: unknown.
            has = batch.psu_card >= 0
            if has.any():
                behind = np.zeros((t, n), dtype=bool)
                behind[:, has] = card_dark[:, batch.psu_card[has]]
                hide |= behind[:, np.newaxis, :]
        elif section is Section.ENV:
            cards = batch.sections[Section.CARD].values
            for i, rule in enumerate(rules):
                col = cards.get(rule.unless_cards) if rule.unless_cards else None
                if col is not None and col.shape[1]:
                    hide[:, i, :] |= (~np.isnan(col)).any(axis=1).reshape(t, 1)
        return hide

    def _report(
        self,
        st: _Screen,
        batch: ScreenBatch,
        sr: ScreenRules,
        results: dict[Section, _Result],
        card_dark: BoolArray,
    ) -> list[Finding]:
        emit = st.emit
        emit.out = []
        ts = batch.ts
        psu_rules, _, _, psu_sm = results[Section.PSU]
        card_rules, _, _, card_sm = results[Section.CARD]
        vl = _index(psu_rules, "voltage_low")
        vout = psu_sm[:, vl, :] if vl is not None else np.full((len(ts), len(batch.layout[1])),
                                                                np.nan)
        known_vout = _ffill(vout, st.psu_vout)
        st.psu_vout = known_vout[-1].copy()
        th = _index(card_rules, "card_temp_high")
        temps = card_sm[:, th, :] if th is not None else np.full(card_dark.shape, np.nan)
        low_v = sr.by_name["voltage_low"].threshold if "voltage_low" in sr.by_name else 4.6
        hot_c = sr.by_name["card_temp_high"].threshold if "card_temp_high" in sr.by_name else 75.0
        s = self.settings
        corr = Correlator(batch, emit, card_dark, temps, known_vout,
                          np.full(len(batch.layout[1]), low_v), s.screen_dark_fraction,
                          s.screen_hot_margin_c, hot_c, s.min_cards_for_screen)
        events = self._events(batch, results)
        events += self._predictions(st, batch, vout, temps)
        events.sort(key=lambda e: (e[0], e[1]))
        for row, _order, apply in events:
            self._release_flaps(emit, ts, int(ts[row]))
            apply(row, corr)
        self._release_flaps(emit, ts, int(ts[-1]))
        out, emit.out = emit.out, []
        return out

    def _release_flaps(self, emit: Emitter, ts: IntArray, now_ms: int) -> None:
        for key, due in emit.due_clears(now_ms):
            row = min(int(np.searchsorted(ts, due)), len(ts) - 1)
            emit.release_flap(key, Report(int(ts[row])))

    def _events(
        self,
        batch: ScreenBatch,
        results: dict[Section, _Result],
    ) -> list[tuple[int, tuple[int, ...], Any]]:
        """State changes of every rule as (row, ordering key, action) triples."""
        events: list[tuple[int, tuple[int, ...], Any]] = []
        for rank, section in enumerate(ORDER):
            rules, states, prev, smoothed = results[section]
            if not rules:
                continue
            before = np.concatenate([prev[np.newaxis], states[:-1]], axis=0)
            rows, rs, ns = np.nonzero(states != before)
            ids = batch.sections[section].ids
            for row, r, n in zip(rows.tolist(), rs.tolist(), ns.tolist(), strict=True):
                rule = rules[r]
                value = float(smoothed[row, r, n])
                active = bool(states[row, r, n])
                act = self._rule_action(section, rule, ids[n], n, active, value)
                # a short chain is judged after the cabinets that made it short
                order = len(ORDER) if rule.name == "layout_mismatch" else rank
                events.append((row, (1, order, n, r), act))
        return events

    def _rule_action(
        self, section: Section, rule: Rule, ident: str, n: int, active: bool, value: float
    ) -> Any:
        def apply(row: int, corr: Correlator) -> None:
            emit = corr.emit
            ts = int(corr.batch.ts[row])
            key = emit.key(_component(section, ident), rule.fault)
            shown = _num(value)
            if not active:
                detail = f"cleared: {rule.reading} {shown}" if shown is not None else "cleared"
                emit.rule_cleared(key, Report(ts, detail, shown))
                return
            evidence = {"rule": rule.name, "reading": rule.reading, "value": shown,
                        "threshold": rule.threshold, "hold_polls": rule.hold_polls}
            rep = Report(ts, rule.describe(shown), shown, rule.priority, evidence)
            if rule.name == "card_offline":
                emit.rule_opened(key, rep, lambda: corr.card_offline(row, n))
            elif rule.name == "card_temp_high":
                emit.rule_opened(key, rep, lambda: corr.card_hot(row, n))
            elif rule.name == "layout_mismatch":
                emit.rule_opened(key, rep, lambda: corr.dark_root(row))
            else:
                emit.rule_opened(key, rep, lambda: None)

        return apply

    def _predictions(
        self, st: _Screen, batch: ScreenBatch, vout: FloatArray, temps: FloatArray
    ) -> list[tuple[int, tuple[int, ...], Any]]:
        p = self.settings.predict
        if not p.enabled:
            return []
        card_ids, psu_ids = batch.layout
        events: list[tuple[int, tuple[int, ...], Any]] = []
        for attr, ids, values, judge, section, fault in (
            ("psus", psu_ids, vout, judge_psus, Section.PSU, Fault.PSU_DEGRADING),
            ("temps", card_ids, temps, judge_temps, Section.CARD, Fault.RUNNING_HOT),
        ):
            series: Series | None = getattr(st, attr)
            before = st.series_ids.get(attr)
            if series is None:
                series = Series.fresh(len(ids), HISTORY_SLOTS)
            elif before != ids:
                where = {ident: i for i, ident in enumerate(before or ())}
                series = series.take(np.array([where.get(i, -1) for i in ids], dtype=np.int64))
            setattr(st, attr, series)
            st.series_ids[attr] = ids
            judged = series.add(batch.ts, values, p, partial(judge, p=p))
            for row, j in judged:
                events.append((row, (0, j.index), self._predict_action(
                    section, ids[j.index], fault, j)))
        return events

    def _predict_action(self, section: Section, ident: str, fault: Fault, j: Judgement) -> Any:
        def apply(row: int, corr: Correlator) -> None:
            emit = corr.emit
            key = emit.key(_component(section, ident), fault)
            if j.predicted_failure_ms is not None and section is Section.PSU:
                ev = j.evidence
                self.forecasts.append(Forecast(emit.site, emit.screen, ident, j.ts_ms,
                                               j.predicted_failure_ms, ev.get("slope_v_per_h"),
                                               ev.get("level_v")))
            if j.active is None:
                return
            detail = j.detail if j.active else f"back with its peers: {j.detail}"
            emit.predict(key, j.active, Report(j.ts_ms, detail, j.value, None, j.evidence,
                                               j.predicted_failure_ms))

        return apply

    # -- agents --------------------------------------------------------------------------

    def _silence_ms(self, agent: _Agent) -> float:
        s = self.settings
        polls = [self._screens[k].interval_ms for k in agent.screens if k in self._screens]
        interval = min((p for p in polls if p > 0), default=0.0)
        return max(s.agent_silence_s * 1000, s.agent_silence_polls * interval)

    def _all_off_until(self, agent: _Agent, ts_ms: int) -> int:
        """`ts_ms`, or later if every screen of the agent is switched off on schedule."""
        schedules: list[Schedule] = [
            self.book.for_screen(site, screen).schedule for site, screen in agent.screens
        ]
        if not schedules or any(not s.is_off(ts_ms) for s in schedules):
            return ts_ms
        return min(s.on_again(ts_ms) for s in schedules)

    def _agents_seen(self, batch: ScreenBatch) -> list[Finding]:
        out: list[Finding] = []
        for name in dict.fromkeys(batch.agents):
            rows = np.array([a == name for a in batch.agents]) if len(set(batch.agents)) > 1 \
                else slice(None)
            seen = batch.seen_ms[rows]
            key = (batch.site, name)
            ag = self._agents.get(key)
            if ag is None:
                ag = self._agents[key] = _Agent(last_seen=int(seen[0]))
            ag.screens.add((batch.site, batch.screen))
            limit = self._silence_ms(ag)
            times = np.concatenate([[ag.last_seen], np.sort(seen)])
            for i in np.flatnonzero(np.diff(times) > limit):
                start = self._all_off_until(ag, int(times[i] + limit))
                if start < times[i + 1] and not ag.offline:
                    silent = (start - times[i]) / 1000
                    out.append(self._agent_finding(batch.site, name, True, start,
                                                   f"no telemetry for {silent:.0f} s"))
                    ag.offline = True
                if ag.offline and not ag.will_offline:
                    out.append(self._agent_finding(batch.site, name, False, int(times[i + 1]),
                                                   "telemetry again"))
                    ag.offline = False
            if ag.offline and not ag.will_offline:
                out.append(self._agent_finding(batch.site, name, False, int(seen[0]),
                                               "telemetry again"))
                ag.offline = False
            ag.last_seen = max(ag.last_seen, int(seen.max()))
        return out

    def process_status(
        self, site: str, agent: str, doc: Mapping[str, Any], now_ms: int
    ) -> list[Finding]:
        """An agent's birth (`online`) or will / clean stop (`offline`) message."""
        ag = self._agents.setdefault((site, agent), _Agent(last_seen=now_ms))
        offline = doc.get("state") == "offline"
        ag.will_offline = offline
        if offline and not ag.offline:
            ag.offline = True
            return [self._agent_finding(site, agent, True, now_ms, "agent reported offline")]
        if not offline:
            ag.last_seen = max(ag.last_seen, now_ms)
            if ag.offline:
                ag.offline = False
                return [self._agent_finding(site, agent, False, now_ms, "agent online again")]
        return []

    def check_agents(self, now_ms: int) -> list[Finding]:
        """Agents silent for longer than their limit (see DetectSettings); call
        periodically with the current time."""
        out: list[Finding] = []
        for (site, name), ag in self._agents.items():
            if ag.offline:
                continue
            limit = self._silence_ms(ag)
            if now_ms - ag.last_seen <= limit:
                continue
            # Reported at the moment the silence passed the limit (or the agent's screens
            # came back on schedule), which live is about now and in a replay exact.
            start = self._all_off_until(ag, int(ag.last_seen + limit))
            if start <= now_ms:
                ag.offline = True
                silent_s = (start - ag.last_seen) / 1000
                out.append(self._agent_finding(site, name, True, start,
                                               f"no telemetry for {silent_s:.0f} s"))
        return out

    @staticmethod
    def _agent_finding(site: str, agent: str, active: bool, ts: int, detail: str) -> Finding:
        return Finding(
            site, AGENT_SCREEN, f"agent/{agent}", Fault.AGENT_OFFLINE, active, ts, detail
        )

    # -- persistence --------------------------------------------------------------------

    def dump_state(self) -> bytes:
        """Everything that carries between batches, for a restart (not the settings)."""
        return pickle.dumps(
            {"version": STATE_VERSION, "screens": self._screens, "agents": self._agents,
             "stale": self.stale},
            protocol=pickle.HIGHEST_PROTOCOL,
        )

    def load_state(self, blob: bytes) -> bool:
        """Restore `dump_state` output; False (and a fresh state) if it does not fit."""
        try:
            data = pickle.loads(blob)  # our own table, written by dump_state
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"state version {data.get('version')} != {STATE_VERSION}")
            screens, agents = data["screens"], data["agents"]
        except Exception as exc:
            log.warning("detector state not restored (%s); starting fresh", exc)
            return False
        self._screens, self._agents = screens, agents
        self.stale = int(data.get("stale", 0))
        s = self.settings
        for st in self._screens.values():  # settings may have changed since
            st.emit.flap_window_ms = int(s.flap_window_s * 1000)
            st.emit.flap_clear_ms = int(s.flap_clear_s * 1000)
        return True

    @property
    def screens_tracked(self) -> int:
        return len(self._screens)


def _index(rules: tuple[Rule, ...], name: str) -> int | None:
    for i, rule in enumerate(rules):
        if rule.name == name:
            return i
    return None


def _ffill(values: FloatArray, start: FloatArray) -> FloatArray:
    """Each column's last known value at each row (carrying `start` in)."""
    t, n = values.shape
    if t == 0 or n == 0:
        return values
    base = start if start.shape == (n,) else np.full(n, np.nan)
    full = np.concatenate([base[np.newaxis], values], axis=0)
    idx = np.where(~np.isnan(full), np.arange(t + 1).reshape(t + 1, 1), 0)
    idx = np.maximum.accumulate(idx, axis=0)
    return np.take_along_axis(full, idx, axis=0)[1:]


def _rows(batch: ScreenBatch, keep: BoolArray) -> ScreenBatch:
    from collector.detect.frames import SectionFrame

    return ScreenBatch(
        site=batch.site,
        screen=batch.screen,
        ts=batch.ts[keep],
        seen_ms=batch.seen_ms[keep],
        agents=tuple(a for a, k in zip(batch.agents, keep, strict=True) if k),
        sections={
            s: SectionFrame(f.ids, {r: v[keep] for r, v in f.values.items()})
            for s, f in batch.sections.items()
        },
        psu_card=batch.psu_card,
        card_port=batch.card_port,
        card_index=batch.card_index,
    )
