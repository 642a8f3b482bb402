"""Live: the highest paced rate one collector holds, and fault -> ticket latency under it.

A step publishes `rate` snapshots/s (screens in turn, `ts` = now) for some seconds while
/metrics is sampled every `SAMPLE_S`; lag = published - stored (received minus pending:
stored and acknowledged) counts everything not yet stored, whether it waits at the
broker, in flight or in the collector. `stats.judge_hold` says whether it stayed
bounded. `RateSearch` picks the rates: doubling from half the drain rate, then
bisection, in short probes (`probe_s`); the best is then confirmed for the full
`live_s`, with faults injected, and lowered by 25 % if it does not hold (twice at most).

Latency: during the confirming step a dead module is added on one healthy card every
`fault_every_s` (screens in turn). The collector's `module_fault` rule opens after
`fault_polls` consecutive bad polls (3 by default), so the clock starts when the poll
that completes the hold is published and stops when GET /api/v1/tickets (polled every
`TICKET_POLL_S` for that screen) first answers with a `module_fault` ticket on that card:
an upper bound, by up to one polling interval plus one API round trip (reported).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ledwatch.bench.fleet.collectors import ADMIN_TOKEN, CollectorProc, Sample
from ledwatch.bench.fleet.payloads import MODULE_FAULT, Fleet
from ledwatch.bench.fleet.publisher import FleetClient, Injection, Paced
from ledwatch.bench.fleet.servers import BenchError, Stack
from ledwatch.bench.fleet.stats import HoldVerdict, RateSearch, judge_hold, median, percentile

SAMPLE_S = 0.5
TICKET_POLL_S = 0.05  # finer polling would load the API (and the collector) measurably
PUBLISHER_SLACK_S = 1.0  # behind its own schedule by more: the publisher, not the collector


@dataclass
class Step:
    rate: float
    seconds: float
    sent: int
    verdict: HoldVerdict
    publisher_behind_s: float
    broker_store_max: int  # most messages the broker held above its level at the start

    @property
    def publisher_bound(self) -> bool:
        return self.publisher_behind_s > PUBLISHER_SLACK_S

    @property
    def held(self) -> bool:
        return self.verdict.held and not self.publisher_bound


@dataclass
class LatencyStep:
    """Fault -> ticket over one step with faults injected: the confirming step (under
    the load searched for) or the one at the fixed `--latency-rate`."""

    rate: float
    held: bool
    injected: int  # faults whose hold completed within the step
    latencies_ms: list[float]
    api_rtt_ms: float | None  # median round trip of the GETs that saw a ticket

    def latency(self, q: float) -> float | None:
        return percentile(self.latencies_ms, q) if self.latencies_ms else None


@dataclass
class LiveResult:
    rate: float | None  # snapshots/s held for live_s (None: none confirmed)
    live_s: float
    steps: list[Step] = field(default_factory=list)
    under_load: LatencyStep | None = None  # the latest confirming step's
    publisher_bound: bool = False
    note: str = ""
    reference: LatencyStep | None = None


class TicketWatcher:
    """Polls the API for the tickets of injected faults, in a thread."""

    def __init__(self, url: str, site: str) -> None:
        self.site = site
        self.http = httpx.Client(base_url=url, timeout=5.0,
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})  # fmt: skip
        self.pending: list[Injection] = []
        self.done: list[Injection] = []
        self.rtts_ms: list[float] = []  # round trips of the answers that showed a ticket
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ticket-watcher", daemon=True)
        self._thread.start()

    def watch(self, inj: Injection) -> None:
        with self._lock:
            self.pending.append(inj)

    def _run(self) -> None:
        while not self._stop.wait(TICKET_POLL_S):
            with self._lock:
                todo = list(self.pending)
            for screen in {inj.screen_name for inj in todo}:
                sent = time.time()
                try:
                    resp = self.http.get("/api/v1/tickets", params={
                        "site": self.site, "screen": screen, "limit": 1000})  # fmt: skip
                    resp.raise_for_status()
                    seen = {t["component"] for t in resp.json()["data"]
                            if t["fault"] == MODULE_FAULT}  # fmt: skip
                except (httpx.HTTPError, ValueError, KeyError):
                    continue
                now = time.time()
                with self._lock:
                    for inj in [i for i in self.pending if i.screen_name == screen]:
                        if inj.component in seen:
                            inj.seen_at = now
                            self.pending.remove(inj)
                            self.done.append(inj)
                            self.rtts_ms.append((now - sent) * 1000)

    def wait_empty(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self.pending:
                    return
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.http.close()


class LiveBench:
    def __init__(self, stack: Stack, client: FleetClient, fleet: Fleet, workdir: Path, *,
                 fault_polls: int, fault_every_s: float, seed: int,
                 log: Callable[[str], None] = print, influx_extra: str = "") -> None:  # fmt: skip
        self.stack, self.client, self.fleet, self.log = stack, client, fleet, log
        self.fault_polls, self.fault_every_s = fault_polls, fault_every_s
        self.rng = random.Random(seed)
        self.proc = CollectorProc(stack, workdir, "live", "g-live",
                                  stack.ticket_db_url("tickets_live"),
                                  influx_extra=influx_extra)  # fmt: skip
        self.paced = Paced(client, fleet)

    def _stored(self, s: Sample) -> float:
        return s.received - s.pending

    def step(self, rate: float, seconds: float, watcher: TicketWatcher | None = None) -> Step:
        stop = threading.Event()
        base = self.proc.sample()
        sent0 = self.paced.sent
        store0 = self.client.broker_store or 0  # retained ($SYS) and idle in-flight
        self.client.broker_store_max = store0
        on_inj = watcher.watch if watcher is not None else None
        thread = threading.Thread(target=self.paced.run, args=(rate, seconds, stop, on_inj),
                                  name="paced-publisher", daemon=True)  # fmt: skip
        t0 = time.monotonic()
        thread.start()
        samples: list[tuple[float, float]] = []
        next_fault = t0 + self.fault_every_s / 2
        per_poll_s = self.fleet.spec.screens / rate
        fault_screen = 0
        try:
            while thread.is_alive():
                thread.join(SAMPLE_S)
                s = self.proc.sample()
                lag = (self.paced.sent - sent0) - (self._stored(s) - self._stored(base))
                samples.append((s.t - t0, lag))
                now = time.monotonic()
                room = seconds - (now - t0) - (self.fault_polls + 1) * per_poll_s
                if watcher is not None and now >= next_fault and room > 1.0:
                    next_fault = now + self.fault_every_s
                    fault_screen = self._inject(fault_screen)
        finally:
            stop.set()
            thread.join(10)
        verdict = judge_hold(samples, rate)
        return Step(rate, seconds, self.paced.sent - sent0, verdict, self.paced.behind_s,
                    self.client.broker_store_max - store0)  # fmt: skip

    def _inject(self, screen: int) -> int:
        """A dead module on a healthy card of the next screen without one pending."""
        n = self.fleet.spec.screens
        busy = {i.screen for i in self.paced.injections if i.completed_at is None}
        for k in range(n):
            cand = (screen + k) % n
            cards = self.fleet.healthy_cards(cand)
            if cand not in busy and cards:
                self.paced.inject(cand, self.rng.choice(cards), self.fault_polls)
                return (cand + 1) % n
        return screen

    def wait_drained(self, timeout_s: float) -> bool:
        """Until everything published is stored (lag 0), or the timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            s = self.proc.sample()
            if s.received >= self.paced.sent and s.pending == 0:
                return True
            time.sleep(0.2)
        return False

    def _latency_step(self, rate: float, seconds: float) -> tuple[Step, LatencyStep]:
        """A step with faults injected, and the latencies of its faults."""
        # Latency counts in the step that is reported: a fresh watcher per step.
        watcher = TicketWatcher(self.proc.url, self.fleet.site)
        first = len(self.paced.injections)
        try:
            st = self.step(rate, seconds, watcher)
            watcher.wait_empty(10.0)
        finally:
            watcher.close()
        mine = self.paced.injections[first:]
        latencies = sorted((i.seen_at - i.completed_at) * 1000 for i in mine
                           if i.completed_at is not None and i.seen_at is not None)
        injected = sum(1 for i in mine if i.completed_at is not None)
        return st, LatencyStep(rate, st.held, injected, latencies, median(watcher.rtts_ms))

    def run(self, *, start: float, max_rate: float, probe_s: float, live_s: float,
            budget_s: float, max_probes: int = 8, reference_rate: float = 0.0,
            reference_s: float = 30.0) -> LiveResult:  # fmt: skip
        """The rate search and its confirmation; then, with `reference_rate`, one more
        step at that fixed rate for the latency the issue's baseline was taken at."""
        t_begin = time.monotonic()
        self.proc.start()
        time.sleep(0.5)
        result = LiveResult(None, live_s)
        try:
            search = RateSearch(start=max(1.0, start), max_rate=max(max_rate, start),
                                min_rate=1.0, precision=0.1, max_probes=max_probes)  # fmt: skip
            # Kept for the confirmations: two of them and the drain of a failed one. A
            # probe costs itself and, if it fails, about as long again to drain.
            confirm_drain_s = max(30.0, live_s)  # the longest wait after a confirmation
            reserve_s = 2 * live_s + confirm_drain_s
            while (rate := search.next_rate()) is not None:
                if time.monotonic() - t_begin + 2 * probe_s + reserve_s > budget_s:
                    self.log("    live: time budget reached, probing stops")
                    break
                st = self.step(rate, probe_s)
                result.steps.append(st)
                search.record(rate, st.held)
                self._say("probe", st)
                if not self.wait_drained(max(30.0, 3 * probe_s)):
                    result.note = "the backlog of a probe did not drain"
                    self.log(f"    live: {result.note}; search stops")
                    break
            candidate = search.best
            tries = 0
            while candidate is not None and tries < 3:
                if tries and time.monotonic() - t_begin + live_s > budget_s:
                    self.log("    live: time budget reached, no further confirmation")
                    break
                tries += 1
                st, result.under_load = self._latency_step(candidate, live_s)
                result.steps.append(st)
                self._say("confirm", st)
                if st.held:
                    result.rate = candidate
                    break
                result.publisher_bound = st.publisher_bound
                if not self.wait_drained(confirm_drain_s):
                    break
                candidate *= 0.75
            if search.best is None and not result.note:
                result.note = "no probed rate held"
            if reference_rate > 0 and self.wait_drained(confirm_drain_s):
                st, result.reference = self._latency_step(reference_rate, reference_s)
                self._say("reference", st)
            return result
        except httpx.HTTPError as exc:
            raise BenchError(f"live: the collector's API failed: {exc}\n"
                             f"{self.proc.log_tail()}") from exc  # fmt: skip
        finally:
            self.proc.close()
            self.stack.drop_session(self.proc.client_id)

    def _say(self, what: str, st: Step) -> None:
        v = st.verdict
        extra = f", publisher {st.publisher_behind_s:.1f} s behind" if st.publisher_bound else ""
        self.log(f"    live {what}: {st.rate:,.1f} snapshots/s for {st.seconds:.0f} s: "
                 f"{'HELD' if st.held else 'not held'} ({v.why}; lag at end {v.lag_end:,.0f}, "
                 f"growth {v.growth_per_s:+.1f}/s, broker queue <= {st.broker_store_max}"
                 f"{extra})")  # fmt: skip
