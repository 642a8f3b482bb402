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
from collector.detect.debounce import Carry, debounce, debounce_loop
from collector.detect.emit import Emitter, Report
from collector.detect.findings import AGENT_SCREEN, Fault, Finding
from collector.detect.frames import ScreenBatch, build_batches
from collector.detect.plan import ORDER, Plan
from collector.detect.predict import Judgement, Series, judge_psus, judge_temps
from collector.detect.rules import Rule, Section
from collector.detect.schedule import Schedule
from collector.detect.stacked import Prepared, judge_stacked

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

STATE_VERSION: Final = 3
HISTORY_SLOTS: Final = 160  # buckets of predictive history (26.7 h of 10 min)


def _component(section: Section, ident: str) -> str:
    if section in (Section.CONTROLLER, Section.ENV):
        return section.value
    return f"{section.value}/{ident}"


def _num(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


@dataclass(slots=True)
class _Screen:
    site: str
    screen: str
    emit: Emitter
    plan: Plan | None = None
    layout: tuple[Any, ...] = ()
    carry: Carry | None = None
    parked: dict[tuple[Section, str, str], Carry] = field(default_factory=dict)
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
    # Its screens' poll intervals and their smallest (> 0), kept up to date per batch:
    # an agent may serve hundreds of screens, and every batch asks for its silence limit.
    intervals: dict[tuple[str, str], float] = field(default_factory=dict)
    fastest_ms: float = 0.0

    def set_interval(self, key: tuple[str, str], interval_ms: float) -> None:
        old = self.intervals.get(key)
        if old == interval_ms:
            return
        self.intervals[key] = interval_ms
        if interval_ms > 0 and (self.fastest_ms <= 0 or interval_ms < self.fastest_ms):
            self.fastest_ms = interval_ms
        elif old is not None and old == self.fastest_ms:  # the fastest slowed: look again
            self.fastest_ms = min((v for v in self.intervals.values() if v > 0), default=0.0)


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
    errors: int = 0  # screen batches detection failed on (logged with the traceback)
    forecasts: list[Forecast] = field(default_factory=list)  # drained by the caller
    _screens: dict[tuple[str, str], _Screen] = field(default_factory=dict)
    _agents: dict[tuple[str, str], _Agent] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.book = RuleBook(self.settings)

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
        alike: dict[int, list[Prepared]] = {}  # one poll each, by plan shape
        for batch in batches:
            try:
                prep = self._prepare(batch)
                if prep is not None:
                    if self.vectorised and len(prep.batch) == 1:
                        alike.setdefault(id(prep.plan.shape), []).append(prep)
                    else:
                        out += self._judge_prepared(prep)
            except Exception:  # one screen's odd payload must not blind the others
                self._failed(batch)
            out += self._agents_seen(batch)
        for group in alike.values():
            out += self._judge_alike(group)
        out.sort(key=lambda f: f.ts_ms)
        return out

    def _failed(self, batch: ScreenBatch) -> None:
        self.errors += 1
        log.exception("detection failed on %s/%s (%d snapshots); its state is kept",
                      batch.site, batch.screen, len(batch))

    def _judge_alike(self, group: list[Prepared]) -> list[Finding]:
        """Screens of one shape with one poll each, judged as one matrix (stacked.py);
        if that fails, each on its own, so one odd screen costs only itself."""
        if len(group) == 1:
            try:
                return self._judge_prepared(group[0])
            except Exception:
                self._failed(group[0].batch)
                return []
        try:
            judged = judge_stacked(group)
        except Exception:
            log.exception("stacked detection failed on %d screens; judging each alone",
                          len(group))
            judged = None
        out: list[Finding] = []
        for i, prep in enumerate(group):
            try:
                if judged is None:
                    out += self._judge_prepared(prep)
                    continue
                states, before, smoothed, dark, carry = judged[i]
                prep.st.carry = carry
                out += self._report(prep.st, prep.batch, prep.sr, prep.plan, states, before,
                                    smoothed, dark)
            except Exception:
                self._failed(prep.batch)
        return out

    # -- one screen ---------------------------------------------------------------------

    def _screen(self, site: str, screen: str) -> _Screen:
        st = self._screens.get((site, screen))
        if st is None:
            s = self.settings
            emit = Emitter(site, screen, int(s.flap_window_s * 1000), int(s.flap_clear_s * 1000))
            st = self._screens[(site, screen)] = _Screen(site, screen, emit)
        return st

    def _plan(self, st: _Screen, sr: ScreenRules, batch: ScreenBatch) -> Plan:
        """The screen's column layout; on a new layout each column keeps its state by
        (section, rule, element id), and columns of elements that left are parked."""
        layout = (id(sr), batch.layout)
        if st.plan is not None and st.layout == layout:
            return st.plan
        plan = Plan(sr.rules, batch)
        p = plan.params
        old, carry = st.plan, st.carry
        if old is None or carry is None or not carry.fits(old.m, p.history_len, p.window_len):
            st.carry = Carry.fresh(plan.m, p.history_len, p.window_len)
        else:
            kept = set(plan.keys)
            for i, key in enumerate(old.keys):
                if key not in kept:
                    st.parked[key] = carry.take(np.array([i]))
            pool_keys, pools = list(old.keys), [carry]
            known = set(old.keys)
            for key in plan.keys:
                if key not in known and key in st.parked:
                    pool_keys.append(key)
                    pools.append(st.parked.pop(key))
            pool = pools[0] if len(pools) == 1 else Carry.concat(pools)
            where = {key: i for i, key in enumerate(pool_keys)}
            st.carry = pool.take(np.array([where.get(k, -1) for k in plan.keys], np.int64))
        st.plan, st.layout = plan, layout
        return plan

    def _prepare(self, batch: ScreenBatch) -> Prepared | None:
        """The screen's state brought up to this batch (poll interval, plan); None when
        every snapshot in it is older than one already judged."""
        st = self._screen(batch.site, batch.screen)
        if len(batch) == 1:
            keep = batch.ts > st.last_ts
        else:
            keep = batch.ts > np.maximum.accumulate(
                np.concatenate([[st.last_ts], batch.ts[:-1]]))
        if not keep.all():
            # A re-delivered or late backlog snapshot must not take a screen back in time
            # (a cleared fault would open again), nor count twice towards a hold time.
            self.stale += int((~keep).sum())
            if not keep.any():
                return None
            batch = batch.rows(keep)
        ts = batch.ts
        # The screen's poll interval: the median of its last gaps, so an outage (one long
        # gap) does not make the agent's silence limit long.
        if len(ts) == 1:  # live: one poll, plain ints
            new = [int(ts[0]) - st.last_ts] if st.last_ts >= 0 else []
        else:
            gaps = np.diff(np.concatenate([[st.last_ts], ts]) if st.last_ts >= 0 else ts)
            new = [int(g) for g in gaps[-9:]]
        st.gaps = (st.gaps + new)[-9:]
        if st.gaps:
            st.interval_ms = float(sorted(st.gaps)[len(st.gaps) // 2])
        st.last_ts = int(ts[-1])
        sr = self.book.for_screen(batch.site, batch.screen)
        return Prepared(st, batch, sr, self._plan(st, sr, batch))

    def _judge(self, batch: ScreenBatch) -> list[Finding]:
        prep = self._prepare(batch)
        return [] if prep is None else self._judge_prepared(prep)

    def _judge_prepared(self, prep: Prepared) -> list[Finding]:
        st, batch, sr, plan = prep.st, prep.batch, prep.sr, prep.plan
        ts = batch.ts
        raw = plan.values(batch)
        hide, _lost, dark = plan.hidden(batch, raw, sr.schedule.off_mask(ts))
        machine = debounce if self.vectorised else debounce_loop
        assert st.carry is not None
        before = st.carry.state
        states, smoothed, st.carry = machine(plan.params, st.carry,
                                             np.where(hide, np.nan, raw), ts)
        return self._report(st, batch, sr, plan, states, before, smoothed, dark)

    def _report(
        self,
        st: _Screen,
        batch: ScreenBatch,
        sr: ScreenRules,
        plan: Plan,
        states: npt.NDArray[np.int8],
        before: npt.NDArray[np.int8],
        smoothed: FloatArray,
        dark: BoolArray,
    ) -> list[Finding]:
        emit = st.emit
        emit.out = []
        ts = batch.ts
        t = len(ts)
        vout = self._columns(plan, "voltage_low", smoothed, t, len(batch.layout[1]))
        temps = self._columns(plan, "card_temp_high", smoothed, t, len(batch.layout[0]))
        events: list[tuple[int, tuple[int, ...], Any]] = []
        prev = np.concatenate([before[np.newaxis], states[:-1]], axis=0)
        rows, cols = np.nonzero(states != prev)
        for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
            block = plan.blocks[int(plan.block_of[col])]
            n = int(plan.element[col])
            act = self._rule_action(block.section, block.rule, plan.ids[block.section][n], n,
                                    bool(states[row, col]), float(smoothed[row, col]))
            # a short chain is judged after the cabinets that made it short
            rank = len(ORDER) if block.rule.name == "layout_mismatch" else int(plan.rank[col])
            events.append((row, (1, rank, n, col), act))
        events += self._predictions(st, batch, vout, temps)
        if events or emit.flaps:
            known_vout = _ffill(vout, st.psu_vout)
            st.psu_vout = known_vout[-1].copy()
            low_v = sr.by_name["voltage_low"].threshold if "voltage_low" in sr.by_name else 4.6
            hot = sr.by_name.get("card_temp_high")
            s = self.settings
            corr = Correlator(batch, emit, dark, temps, known_vout,
                              np.full(len(batch.layout[1]), low_v), s.screen_dark_fraction,
                              s.screen_hot_margin_c, 75.0 if hot is None else hot.threshold,
                              s.min_cards_for_screen)
            events.sort(key=lambda e: (e[0], e[1]))
            for row, _order, apply in events:
                self._release_flaps(emit, ts, int(ts[row]))
                apply(row, corr)
            self._release_flaps(emit, ts, int(ts[-1]))
        elif vout.shape[1]:
            last = vout[-1]
            if st.psu_vout.shape == last.shape:  # the last known value of each PSU
                st.psu_vout = np.where(np.isnan(last), st.psu_vout, last)
            else:
                st.psu_vout = _ffill(vout[-1:], st.psu_vout)[-1].copy()
        out, emit.out = emit.out, []
        return out

    @staticmethod
    def _columns(plan: Plan, rule: str, values: FloatArray, t: int, n: int) -> FloatArray:
        block = plan.block(rule)
        if block is None:
            return np.full((t, n), np.nan)
        return values[:, block.start:block.stop]

    def _release_flaps(self, emit: Emitter, ts: IntArray, now_ms: int) -> None:
        for key, due in emit.due_clears(now_ms):
            row = min(int(np.searchsorted(ts, due)), len(ts) - 1)
            emit.release_flap(key, Report(int(ts[row])))

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
        return max(s.agent_silence_s * 1000, s.agent_silence_polls * agent.fastest_ms)

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
            screen_key = (batch.site, batch.screen)
            ag.screens.add(screen_key)
            st = self._screens.get(screen_key)
            if st is not None:
                ag.set_interval(screen_key, st.interval_ms)
            limit = self._silence_ms(ag)
            # Only what came after the last snapshot seen counts towards a silence: a late
            # one (older than that) in the same batch must not open a gap behind it.
            if len(seen) == 1:  # live: one poll, plain ints
                times = [ag.last_seen, max(ag.last_seen, int(seen[0]))]
                silences = [0] if times[1] - times[0] > limit else []
            else:
                later = np.concatenate([[ag.last_seen], np.sort(seen[seen >= ag.last_seen])])
                times = later.tolist()
                silences = np.flatnonzero(np.diff(later) > limit).tolist()
            for i in silences:
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
