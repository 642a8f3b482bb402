"""Draining a backlog: k collectors of one cluster, their sessions full, started together.

1. Start the k collectors once (each subscribes: the broker now has k persistent
   sessions), stop them (SIGTERM, a clean stop). With k > 1 they are the `[cluster]
   members` of each other (docs/scaling.md, route "filter"): each session gets the whole
   backlog, and each collector stores the agents it owns and acknowledges the rest.
2. Publish the backlog at QoS 1 and wait for every PUBACK: Mosquitto queues it for the
   offline sessions.
3. Start them again and watch /metrics every `POLL_S`: from the moment every API answers
   (a sample of stored points and CPU) until every share is received and nothing is
   pending (everything stored and acknowledged).

Rate = stored points between two samples / the time between them, timed from the first
sample to the first in which one collector is done with its share (`measured_window`:
for one collector that is the end; for k it is the span in which all k work, since a
collector that starts late or finishes early would otherwise count as k); CPU = the
processes' utime + stime over the same span. A drain so short that most of it was done
before the APIs answered is measured from the spawn instead (start-up included, said so).
Then: snapshots in the database for the backlog's time window (nothing lost?) and the
tickets of the shared ticket database against the faults the fleet carries (each fault
once: no duplicate, no miss).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ledwatch.bench.fleet.collectors import CollectorProc, Sample, member_id
from ledwatch.bench.fleet.payloads import Fleet, InjectedFault
from ledwatch.bench.fleet.publisher import FleetClient, publish_fleet_backlog
from ledwatch.bench.fleet.servers import BenchError, Stack

POLL_S = 0.1


@dataclass
class TicketCheck:
    expected: int  # faults injected
    tickets: int  # tickets of the injected kinds in the window's ticket database
    duplicates: int  # tickets beyond the first for one (screen, component, fault)
    missing: int  # injected faults without a ticket
    other: int  # tickets of other faults (not injected: a false alarm or a side effect)
    ticket_errors: float  # ledwatch_collector_ticket_errors_total, summed
    other_kinds: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.duplicates == 0 and self.missing == 0


def check_tickets(tickets: list[dict[str, object]], faults: list[InjectedFault],
                  ticket_errors: float = 0.0) -> TicketCheck:  # fmt: skip
    wanted = {f.key for f in faults}
    kinds = {f.fault for f in faults}
    seen = Counter((str(t["screen"]), str(t["component"]), str(t["fault"])) for t in tickets)
    injected = {k: n for k, n in seen.items() if k in wanted}
    other = [k for k in seen if k not in wanted]
    return TicketCheck(
        expected=len(wanted),
        tickets=sum(n for k, n in seen.items() if k[2] in kinds),
        duplicates=sum(n - 1 for n in injected.values()),
        missing=len(wanted - set(injected)),
        other=sum(seen[k] for k in other),
        ticket_errors=ticket_errors,
        other_kinds=sorted({f"{k[2]} on {k[1]}" for k in other})[:5],
    )


@dataclass
class DrainResult:
    collectors: int
    snapshots: int
    points: float
    seconds: float
    cpu_s: float
    rss_peak_mb: float
    stored_snapshots: int
    shares: list[int]
    tickets: TicketCheck
    dead_letters: float
    startup_included: bool = False
    window_share: float = 1.0  # share of the stored points inside the timed window
    # The whole drain, first look to last (the makespan): with k collectors it is set by
    # the one with the largest share, which the agents' hash decides.
    whole_points: float = 0.0
    whole_seconds: float = 0.0
    db_cores: float | None = None  # the database server's CPU over the timed span

    @property
    def whole_rate(self) -> float:
        return self.whole_points / self.whole_seconds if self.whole_seconds > 0 else 0.0

    @property
    def rate(self) -> float:
        return self.points / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_1000(self) -> float | None:
        return self.cpu_s * 1000 / (self.points / 1000) if self.points > 0 else None

    @property
    def lost(self) -> int:
        return self.snapshots - self.stored_snapshots


def measured_window(rounds: list[list[Sample]]) -> tuple[int, int]:
    """The rounds of samples (one Sample per collector each, the first taken when every
    API answered, the last when all is stored) to time the drain between: from the first
    round to the first round in which some collector has received its whole share and
    holds nothing pending. Until then all k are up and busy, so the rate is that of k
    collectors at work, not of k minus the ones already done (and for k = 1 it is the
    whole drain). Falls back to the whole span if that window holds no progress."""
    final = rounds[-1]
    for i, row in enumerate(rounds):
        done = any(s.received >= f.received and s.pending == 0
                   for s, f in zip(row, final, strict=True))  # fmt: skip
        if done and i > 0:
            progress = sum(s.stored_points for s in row) - sum(s.stored_points for s in rounds[0])
            return (0, i) if progress > 0 else (0, len(rounds) - 1)
    return 0, len(rounds) - 1


def _all(procs: list[CollectorProc], fn: Callable[[CollectorProc], None]) -> None:
    for p in procs:
        fn(p)


def run_drain(stack: Stack, client: FleetClient, fleet: Fleet, *, n: int, end_ms: int,
              k: int, name: str, workdir: Path, timeout_s: float,
              before_stop: Callable[[list[CollectorProc]], None] | None = None,
              log: Callable[[str], None] = print,
              influx_extra: str = "") -> DrainResult:  # fmt: skip
    """One drain of `n` snapshots (the fleet's backlog ending at `end_ms`) by `k` collectors."""
    db_url = stack.ticket_db_url(f"tickets_{name.replace('-', '_')}")
    names = [f"{name}-c{i}" for i in range(k)]
    members = tuple(member_id(n) for n in names) if k > 1 else ()
    procs = [CollectorProc(stack, workdir, n, f"g-{name}", db_url, members, influx_extra)
             for n in names]
    try:
        _all(procs, CollectorProc.spawn)
        _all(procs, CollectorProc.wait_up)
        time.sleep(0.5)  # the SUBSCRIBE follows the CONNACK the health check saw
        if before_stop is not None:
            before_stop(procs)
        _stop_all(procs)

        backlog = publish_fleet_backlog(client, fleet, n, end_ms, f"drain {name}", log)
        expected, pps = backlog.sent, backlog.points_per_snapshot
        log(f"    database server at rest after {stack.settle_db():.1f} s")

        t_spawn = time.monotonic()
        _all(procs, CollectorProc.spawn)
        _all(procs, CollectorProc.wait_up)
        rounds = [[p.sample() for p in procs]]
        db_cpu = [stack.db_cpu_s()]  # per round, beside the collectors' samples
        deadline = time.monotonic() + timeout_s
        while True:
            last = [p.sample() for p in procs]
            rounds.append(last)
            db_cpu.append(stack.db_cpu_s())
            if sum(s.received for s in last) >= expected and all(s.pending == 0 for s in last):
                break
            if time.monotonic() > deadline:
                got = sum(s.received for s in last)
                raise BenchError(f"drain {name}: {got:,.0f} of {expected:,} received within "
                                 f"{timeout_s:.0f} s:\n{procs[0].log_tail()}")  # fmt: skip
            time.sleep(POLL_S)
        stored_first = sum(s.stored_points for s in rounds[0])
        a, b = measured_window(rounds)
        t_base, t_end = min(s.t for s in rounds[a]), max(s.t for s in rounds[b])
        stored_base = sum(s.stored_points for s in rounds[a])
        stored_end = sum(s.stored_points for s in rounds[b])
        cpu = sum(s.cpu_s for s in rounds[b]) - sum(s.cpu_s for s in rounds[a])
        db_a, db_b = db_cpu[a], db_cpu[b]
        db_cores = (db_b - db_a) / (t_end - t_base) if (
            db_a is not None and db_b is not None and t_end > t_base) else None
        startup = stored_base > 0.5 * expected * pps
        if startup:  # too short to see: count from the spawn, start-up and all
            t_base, stored_base = t_spawn, 0.0
            t_end, stored_end = max(s.t for s in last), sum(s.stored_points for s in last)
            cpu = sum(s.cpu_s for s in last)
        rss = max(p.rss_peak_mb() for p in procs)
        tickets = procs[0].tickets(fleet.site)
        ticket_errors = sum(s.ticket_errors for s in last)
        stored = stack.stored_snapshots(fleet.site, backlog.start_ms, end_ms + 1)
        return DrainResult(
            collectors=k, snapshots=expected, points=stored_end - stored_base,
            seconds=t_end - t_base, cpu_s=cpu, rss_peak_mb=rss, stored_snapshots=stored,
            window_share=(stored_end - stored_base) / max(1.0, sum(s.stored_points for s in last)),
            shares=[int(s.received) for s in last],
            tickets=check_tickets(tickets, fleet.faults, ticket_errors),
            dead_letters=sum(s.dead_letters for s in last), startup_included=startup,
            whole_points=sum(s.stored_points for s in last) - stored_first,
            whole_seconds=max(s.t for s in last) - min(s.t for s in rounds[0]),
            db_cores=None if startup else db_cores,
        )  # fmt: skip
    finally:
        _stop_all(procs)
        for p in procs:
            p.close()
            stack.drop_session(p.client_id)


def _stop_all(procs: list[CollectorProc]) -> None:
    """SIGTERM to all first, then wait for each: k clean stops in parallel."""
    for p in procs:
        if p.proc is not None and p.proc.poll() is None:
            p.proc.terminate()
    for p in procs:
        p.stop()
