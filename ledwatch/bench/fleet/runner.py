"""`ledwatch bench fleet`: the phases of one run, in order, and the command line.

Every phase writes its own time window of the same site (one fleet, its series made
once, as in a real installation), so the database can be asked how many snapshots of a
phase it holds: windows lie one after the other in the recent past, the live phase
publishes at the wall clock after all of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from ledwatch.bench.fleet import report
from ledwatch.bench.fleet.collectors import CollectorProc, M
from ledwatch.bench.fleet.drain import DrainResult, run_drain
from ledwatch.bench.fleet.lineproto import (
    batches,
    by_screen,
    points_per_snapshot,
    snapshot_points,
)
from ledwatch.bench.fleet.live import LiveBench
from ledwatch.bench.fleet.nodered import NodeRedUnavailable, run_nodered_drain
from ledwatch.bench.fleet.payloads import Fleet, FleetSpec
from ledwatch.bench.fleet.publisher import FleetClient, publish_backlog
from ledwatch.bench.fleet.servers import BenchError, Stack, influx_write_url
from ledwatch.bench.fleet.stats import metric_sum
from ledwatch.bench.fleet.writers import write_all

HELP = "a fleet through the real servers: write ceiling, drain, live rate, latency, scale-out"
REPO = Path(__file__).resolve().parents[3]
ENCODER_TRIES = 3  # windows for the encoder check (see `_check_encoder`)


def _ints(text: str) -> list[int]:
    try:
        values = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a comma-separated list of numbers") \
            from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: numbers of at least 1")
    return values


ORDERS = ("arrival", "screen")


def _orders(text: str) -> list[str]:
    values = [x.strip() for x in text.split(",") if x.strip()]
    if not values or set(values) - set(ORDERS):
        raise argparse.ArgumentTypeError(
            f"{text!r}: a comma-separated list of {', '.join(ORDERS)}")
    return [o for o in ORDERS if o in values]


def _cpus(text: str) -> frozenset[int]:
    """CPU numbers this process may use, leaving at least one for everything else."""
    try:
        cpus = frozenset(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a comma-separated list of CPU numbers") \
            from None
    allowed = os.sched_getaffinity(0)
    if not cpus or not cpus <= allowed:
        raise argparse.ArgumentTypeError(
            f"{text!r}: CPUs among {sorted(allowed)} (the ones this process may use)")
    if not allowed - cpus:
        raise argparse.ArgumentTypeError(f"{text!r}: leave at least one CPU for the rest")
    return cpus


# What the bench writes into every collector's [influx] itself (collectors.py config_text):
# the server it started and how to log in to it, and the login's alternatives (an *_env
# beside the bench's *_file is refused by the collector as "not both").
_BENCH_INFLUX_KEYS = frozenset({
    "output", "url", "org", "bucket", "token_file", "token_env", "database", "username",
    "password_file", "password_env"})  # fmt: skip


def _setting(text: str) -> str:
    """`key=value`, the value a TOML literal: one line of the collectors' `[influx]`."""
    key, eq, value = (part.strip() for part in text.partition("="))
    try:
        if not eq or not key.isidentifier():
            raise ValueError
        tomllib.loads(f"{key} = {value}")
    except (ValueError, tomllib.TOMLDecodeError):
        raise argparse.ArgumentTypeError(
            f"{text!r}: key=value with a TOML value, e.g. max_in_flight=2") from None
    if key in _BENCH_INFLUX_KEYS:
        raise argparse.ArgumentTypeError(
            f"{key!r} is the bench's own (the server it started): choose it with --output")
    return f"{key} = {value}"


def add_arguments(p: argparse.ArgumentParser) -> None:
    f = p.add_argument_group("the fleet")
    f.add_argument("--output", choices=("v1", "v2"), default="v1",
                   help="v1: InfluxDB 1.x with auth on; v2: VictoriaMetrics (default v1)")
    f.add_argument("--screens", type=int, default=20, help="screens (20)")
    f.add_argument("--cards", type=int, default=100, help="receiving cards per screen (100)")
    f.add_argument("--interval-s", type=float, default=10.0,
                   help="poll interval: the spacing of a backlog's ts per screen (10)")
    f.add_argument("--snapshots", type=int, default=2000,
                   help="snapshots in each backlog (2,000)")
    f.add_argument("--site", default="bench-fleet", help="the fleet's site id (bench-fleet)")
    f.add_argument("--seed", type=int, default=1, help="readings follow it (1)")
    m = p.add_argument_group("what is measured")
    m.add_argument("--repeat", type=int, default=3,
                   help="rounds of ceiling + 1-collector drain; medians are reported (3)")
    m.add_argument("--writers", type=_ints, default=[1, 2, 4],
                   help="plain writers in flight for the ceiling (1,2,4)")
    m.add_argument("--batch-lines", type=_ints, default=[5000, 10000],
                   help="lines per request of the plain writers; the ceiling is the best "
                        "(5000,10000: the ends of InfluxData's advice; the collector's "
                        "batch_size is 10,000)")
    m.add_argument("--ceiling-orders", type=_orders, default=list(ORDERS),
                   help="the orders the plain writers send the lines in; the ceiling is "
                        "the best: arrival (as published) and screen (screen by screen "
                        "within each --screen-window-lines, as the collector's "
                        "influx.group_screens sends them) (arrival,screen)")
    m.add_argument("--screen-window-lines", type=int, default=80_000,
                   help="the lines the screen order groups at a time: one intake of the "
                        "collector at its defaults, intake_batches 8 x batch_size 10,000 "
                        "(80,000)")
    m.add_argument("--collectors", type=_ints, default=[1, 2, 4],
                   help="collector processes of one cluster; must include 1 (1,2,4)")
    m.add_argument("--scale-repeat", type=int, default=1,
                   help="drains with each collector count above 1 (1: they are the slow part)")
    m.add_argument("--live-s", type=float, default=60.0,
                   help="how long the live rate must hold; 0 skips live rate and latency (60)")
    m.add_argument("--probe-s", type=float, default=None,
                   help="length of a search probe (default live-s / 4, within 3..15 s)")
    m.add_argument("--live-budget-s", type=float, default=None,
                   help="time for the whole live search (default 5 x live-s + 60 s)")
    m.add_argument("--fault-every-s", type=float, default=1.0,
                   help="a new dead module every this many seconds while confirming (1)")
    m.add_argument("--latency-rate", type=float, default=100.0,
                   help="also time fault -> ticket at this fixed rate, snapshots/s, for "
                        "live-s / 2 (at least 20 s or live-s); 0 skips (100: the issue's "
                        "baseline)")
    m.add_argument("--db-cpus", type=_cpus, default=None, metavar="CPUS",
                   help="keep the database server to these CPUs (e.g. 0) and everything "
                        "else to the others, for the ceiling and the drains alike: the "
                        "collector's speed when it does not share the server's cores, "
                        "as on separate machines (default: all share all)")
    m.add_argument("--influx", type=_setting, action="append", default=[], metavar="KEY=VALUE",
                   help="a setting of the collectors' [influx] table, e.g. max_in_flight=2 "
                        "(repeatable; collector/settings.py checks it at start)")
    m.add_argument("--fault-polls", type=int, default=3,
                   help="bad polls the collector's module_fault rule holds for (its default 3)")
    n = p.add_argument_group("Node-RED")
    n.add_argument("--with-nodered", action="store_true",
                   help="also drain a backlog through Node-RED (v1 only; installs it from npm)")
    n.add_argument("--nodered-prefix", type=Path, default=None,
                   help="npm --prefix to install into or reuse (default: in the run's folder)")
    n.add_argument("--nodered-install-timeout-s", type=float, default=600.0,
                   help="give up on npm install after this long (600)")
    o = p.add_argument_group("output")
    o.add_argument("--doc", type=Path, default=REPO / "docs" / "performance.md",
                   help="the page that keeps the latest table (docs/performance.md)")
    o.add_argument("--no-doc", action="store_true", help="print the table only")
    o.add_argument("--workdir", type=Path, default=None,
                   help="servers' data, configs and logs (default: a new temp folder)")
    o.add_argument("--keep", action="store_true", help="keep the work folder afterwards")


class Timeline:
    """Disjoint ts windows in the recent past, handed out oldest first."""

    def __init__(self, spec: FleetSpec, snapshots: int, windows: int) -> None:
        polls = -(-snapshots // spec.screens)
        self.span_ms = (polls + 2) * spec.interval_ms + spec.screens * 3 + 1000
        self.next_end = int(time.time() * 1000) - (windows + 1) * self.span_ms
        self.left = windows

    def end(self) -> int:
        if self.left <= 0:
            raise BenchError("out of time windows (a bug in the phase count)")
        self.left -= 1
        self.next_end += self.span_ms
        return self.next_end


class Run:
    def __init__(self, args: argparse.Namespace, stack: Stack, workdir: Path) -> None:
        self.args, self.stack, self.workdir = args, stack, workdir
        self.spec = FleetSpec(args.screens, args.cards, args.interval_s, args.seed)
        # Node-RED's backlog, the encoder check's tries, each ceiling and drain
        windows = 1 + ENCODER_TRIES + args.repeat * (
            len(args.writers) * len(args.batch_lines) * len(args.ceiling_orders) + 1) + \
            args.scale_repeat * len(args.collectors)  # fmt: skip
        self.timeline = Timeline(self.spec, args.snapshots, windows)
        self.client = FleetClient(stack.broker.host, stack.broker.port, "bench-fleet-agents")
        self.pps = points_per_snapshot(Fleet(self.spec, args.site).snapshot(0, 0))
        self.res = report.Results(
            output=args.output, server="", screens=args.screens, cards=args.cards,
            snapshots=args.snapshots, points_per_snapshot=self.pps, repeat=args.repeat,
            live_s=args.live_s)  # fmt: skip
        self.drain_timeout_s = 120.0 + args.snapshots * self.pps / 2000
        self.influx_extra = "".join(line + "\n" for line in args.influx)

    def say(self, text: str) -> None:
        print(text, flush=True)

    def close(self) -> None:
        self.client.close()

    # -- phases ----------------------------------------------------------------------------

    def ceiling(self, rnd: int) -> None:
        url = influx_write_url(self.stack.db_url, self.args.output,
                               *(self.stack.credentials() if self.args.output == "v1" else ()))
        headers = {} if self.args.output == "v1" else {"Authorization": "Token unused"}
        window = max(1, self.args.screen_window_lines // self.pps)
        for w, size, order in itertools.product(self.args.writers, self.args.batch_lines,
                                                self.args.ceiling_orders):
            end = self.timeline.end()
            fleet = Fleet(self.spec, self.args.site)
            docs = [doc for _, _, doc in fleet.backlog(self.args.snapshots, end)]
            start = min(d["ts"] for d in docs)
            bodies = batches(by_screen(docs, window) if order == "screen" else docs, size)
            points = len(docs) * self.pps
            del docs
            settled = self.stack.settle_db()
            cpu0 = self.stack.db_cpu_s()
            r = write_all(url, bodies, points, w, headers)
            cpu1 = self.stack.db_cpu_s()
            if cpu0 is not None and cpu1 is not None and r.seconds > 0:
                r = dataclasses.replace(r, db_cores=(cpu1 - cpu0) / r.seconds)
            stored = self.stack.stored_snapshots(self.args.site, start, end + 1)
            if stored != self.args.snapshots:
                raise BenchError(f"ceiling: {stored} of {self.args.snapshots} snapshots "
                                 "stored")
            self.res.ceilings.setdefault((w, size, order), []).append(r)
            self.say(f"  ceiling, {w} writer(s), {size:,}-line requests in {order} order: "
                     f"{points:,} points "
                     f"in {r.seconds:.1f} s = {r.rate:,.0f} points/s ({len(bodies)} requests"
                     f"{report.db_cores_note(r.db_cores, self.res.db_cpus)}; "
                     f"server at rest after {settled:.1f} s)")

    def drain(self, k: int, label: str, check_encoder: bool = False) -> DrainResult:
        hook = None
        if check_encoder:  # its windows must come first: the detector judges ts forward only
            check_ends = [self.timeline.end() for _ in range(ENCODER_TRIES)]

            def hook(procs: list[CollectorProc]) -> None:
                self._check_encoder(procs, check_ends)

        end = self.timeline.end()
        fleet = Fleet(self.spec, self.args.site)

        self.say(f"  drain, {k} collector(s) [{label}]:")
        r = run_drain(self.stack, self.client, fleet, n=self.args.snapshots, end_ms=end, k=k,
                      name=label, workdir=self.workdir, timeout_s=self.drain_timeout_s,
                      before_stop=hook, log=self.say, influx_extra=self.influx_extra)  # fmt: skip
        self.res.drains.setdefault(k, []).append(r)
        t = r.tickets
        cpu = r.cpu_ms_per_1000
        db = report.db_cores_note(r.db_cores, self.res.db_cpus)
        self.say(f"    {r.points:,.0f} points in {r.seconds:.1f} s = {r.rate:,.0f} points/s"
                 f"{' (start-up included)' if r.startup_included else ''}; "
                 f"CPU {cpu:.2f} ms/1000 points{db}; "
                 f"RSS peak {r.rss_peak_mb:,.0f} MB; "
                 f"stored {r.stored_snapshots:,}/{r.snapshots:,}; shares {r.shares}; "
                 f"tickets {t.tickets}/{t.expected} ({t.duplicates} duplicates, {t.missing} "
                 f"missing, {t.other} other{': ' + ', '.join(t.other_kinds) if t.other else ''})"
                 if cpu is not None else f"    {r}")  # fmt: skip
        if k > 1:
            self.say(f"    whole drain: {r.whole_points:,.0f} points in {r.whole_seconds:.1f} s "
                     f"= {r.whole_rate:,.0f} points/s")
        if r.lost:
            self.say(f"    LOST {r.lost} snapshots (published, acknowledged, not stored)")
        return r

    def _check_encoder(self, procs: list[CollectorProc], ends: list[int]) -> None:
        """A poll of a healthy fleet through the running collector(s); what
        `stored_points_total` grew by must equal what our encoder makes of it. The
        collector's own series (a `collector` point every 10 s, DESIGN.md) can land in
        the same span, so a mismatch is tried again in a later window, up to
        `ENCODER_TRIES` times; the first exact match (or the last try) is reported."""
        healthy = Fleet(self.spec, self.args.site, faults=False)
        for attempt, end in enumerate(ends, 1):
            msgs = list(healthy.backlog(self.spec.screens, end))
            ours = sum(len(snapshot_points(doc)) for _, _, doc in msgs)
            before = sum(metric_sum(p.metrics(), M + "stored_points_total") for p in procs)
            recv0 = sum(p.sample().received for p in procs)
            publish_backlog(self.client, ((t, b) for t, b, _ in msgs))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                samples = [p.sample() for p in procs]
                if sum(s.received for s in samples) - recv0 >= len(msgs) and \
                        all(s.pending == 0 for s in samples):  # fmt: skip
                    break
                time.sleep(0.1)
            else:
                raise BenchError("encoder check: the collector did not store the check snapshots")
            theirs = sum(s.stored_points for s in samples) - before
            self.res.encoder = (len(msgs), ours, theirs)
            same = "same" if abs(ours - theirs) < 0.5 else "DIFFERENT"
            self.say(f"    encoder check (try {attempt}): {len(msgs)} snapshots, ours {ours:,} "
                     f"points, collector's stored_points_total +{theirs:,.0f}: {same}")
            if same == "same":
                return

    def live(self) -> None:
        a = self.args
        if a.live_s <= 0:
            self.res.live_skip = "--live-s 0"
            return
        probe_s = a.probe_s or min(15.0, max(3.0, a.live_s / 4))
        budget = a.live_budget_s or 5 * a.live_s + 60
        d1 = self.res.drain(1)
        est = d1 / self.pps if d1 else 50.0
        self.say(f"  live: 1 collector, probes of {probe_s:.0f} s from {est / 2:,.1f} "
                 f"snapshots/s (half the drain rate), then {a.live_s:.0f} s to confirm; "
                 f"budget {budget:.0f} s")  # fmt: skip
        fleet = Fleet(self.spec, a.site)
        bench = LiveBench(self.stack, self.client, fleet, self.workdir,
                          fault_polls=a.fault_polls, fault_every_s=a.fault_every_s,
                          seed=a.seed, log=self.say, influx_extra=self.influx_extra)  # fmt: skip
        # A live inflow is judged in smaller batches than a backlog, so it holds less than
        # the drain rate: probes above 1.25 x of it only spend the budget.
        self.res.live = bench.run(start=est / 2, max_rate=est * 1.25, probe_s=probe_s,
                                  live_s=a.live_s, budget_s=budget,
                                  reference_rate=a.latency_rate,
                                  reference_s=max(a.live_s / 2, min(a.live_s, 20.0)))
        lr = self.res.live
        for what, r in (("", lr.under_load), (f" at {a.latency_rate:g}/s", lr.reference)):
            if r is not None and r.latencies_ms:
                self.say(f"    fault -> ticket{what}: p50 {r.latency(50):,.0f} ms, p99 "
                         f"{r.latency(99):,.0f} ms over {len(r.latencies_ms)} of "
                         f"{r.injected} faults")  # fmt: skip

    def nodered(self) -> None:
        a = self.args
        if not a.with_nodered:
            return
        if a.output != "v1":
            self.res.nodered_skip = "Node-RED is benched on v1 (InfluxDB 1.x) only"
            self.say(f"  Node-RED: skipped: {self.res.nodered_skip}")
            return
        prefix = a.nodered_prefix or self.workdir / "nodered-npm"
        self.say("  Node-RED drain:")
        try:
            self.res.nodered = run_nodered_drain(
                self.stack, self.client, Fleet(self.spec, a.site), n=a.snapshots,
                end_ms=self.timeline.end(), prefix=prefix, workdir=self.workdir,
                install_timeout_s=a.nodered_install_timeout_s,
                timeout_s=self.drain_timeout_s, log=self.say)  # fmt: skip
        except NodeRedUnavailable as exc:
            self.res.nodered_skip = f"Node-RED unavailable: {str(exc).splitlines()[0]}"
            self.say(f"    {self.res.nodered_skip}")
            return
        nr = self.res.nodered
        self.say(f"    {nr.points:,} points in {nr.seconds:.1f} s = {nr.rate:,.0f} points/s; "
                 f"stored {nr.stored_snapshots:,} of {nr.snapshots:,} snapshots (lost "
                 f"{nr.lost:,}); {nr.write_errors} write errors in its log")  # fmt: skip


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if min(args.screens, args.cards, args.snapshots, args.repeat, args.scale_repeat,
           args.screen_window_lines) < 1:
        parser.error("--screens, --cards, --snapshots, --repeat, --scale-repeat and "
                     "--screen-window-lines must be >= 1")
    if args.interval_s <= 0 or args.live_s < 0 or args.fault_every_s <= 0:
        parser.error("--interval-s and --fault-every-s must be > 0, --live-s >= 0")
    if args.latency_rate < 0:
        parser.error("--latency-rate must be >= 0 (0 skips it)")
    if 1 not in args.collectors:
        parser.error("--collectors must include 1 (the baseline of the ratios)")
    influx_keys = [line.partition(" = ")[0] for line in args.influx]
    if len(set(influx_keys)) < len(influx_keys):
        parser.error("--influx: each key once (" + ", ".join(sorted(influx_keys)) + ")")
    if args.snapshots < args.screens * (args.fault_polls + 1):
        print(f"fleet: note: {args.snapshots} snapshots over {args.screens} screens is fewer "
              f"than {args.fault_polls + 1} polls a screen: the injected faults cannot all "
              "open tickets", file=sys.stderr)  # fmt: skip
    command = command_line(args)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ledwatch-bench-fleet-"))
    workdir.mkdir(parents=True, exist_ok=True)
    t_begin = time.monotonic()
    load_before = report.load_average()
    facts = report.machine_facts()
    code = report.code_state(REPO)
    print(f"fleet benchmark, output {args.output}: {args.screens} screens x {args.cards} cards, "
          f"backlogs of {args.snapshots:,} snapshots; work folder {workdir}; collector: {code}",
          flush=True)
    failed = True
    previous = _sigterm_as_interrupt()
    stack = Stack(workdir, args.output, max_queued=args.snapshots * 2,
                  postgres=max(args.collectors) > 1, db_cpus=args.db_cpus)  # fmt: skip
    versions: dict[str, str] = {}
    run_: Run | None = None
    try:
        stack.start()
        versions = stack.versions()
        print("  servers: " + "; ".join(f"{k} {v} ({'127.0.0.1'})" for k, v in versions.items()),
              flush=True)
        run_ = Run(args, stack, workdir)
        res = run_.res
        res.cpu_split = stack.cpu_note()
        if res.cpu_split:
            res.db_cpus = len(args.db_cpus)
            print(f"  CPUs: {res.cpu_split}", flush=True)
        res.server = versions.get("influxdb" if args.output == "v1" else "victoria-metrics", "")
        if max(args.collectors) > 1 and stack.postgres is None:
            for k in args.collectors:
                if k > 1:
                    res.skipped[f"drain, {k} collectors"] = "PostgreSQL is not installed"
        for rnd in range(1, args.repeat + 1):
            print(f" round {rnd} of {args.repeat}", flush=True)
            run_.ceiling(rnd)
            run_.drain(1, f"d1r{rnd}", check_encoder=rnd == 1)
        for k in args.collectors:
            if k == 1 or stack.postgres is None:
                continue
            for rnd in range(1, args.scale_repeat + 1):
                run_.drain(k, f"d{k}r{rnd}")
        run_.live()
        run_.nodered()
        failed = False
    except KeyboardInterrupt:
        print("\nfleet: interrupted; stopping every server and process it started",
              file=sys.stderr)  # fmt: skip
        return 130
    except BenchError as exc:
        print(f"fleet: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if run_ is not None:
            run_.close()
        stack.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if failed or args.keep:
            print(f"fleet: logs and data kept in {workdir}", file=sys.stderr)
        elif args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    assert run_ is not None
    wall = time.monotonic() - t_begin
    table = report.format_table(report.rows(run_.res))
    print()
    print(table)
    print(f"\n{wall / 60:.1f} min; {command}")
    if not args.no_doc:
        date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        load = f"{load_before} / {report.load_average()}"
        section = report.section_text(run_.res, command, date, facts, versions, table, wall,
                                      load, code)  # fmt: skip
        report.write_doc(args.doc, section, report.section_key(run_.res))
        print(f"written: {args.doc}")
    return 0


def _sigterm_as_interrupt() -> signal.Handlers | Callable[..., object] | int | None:
    """SIGTERM stops a run like Ctrl-C does (servers and collectors stopped, in finally
    blocks); returns the handler to put back, None off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, on_term)


def command_line(args: argparse.Namespace) -> str:
    """`ledwatch bench fleet` with the flags of this run that differ from the defaults."""
    p = argparse.ArgumentParser(add_help=False)
    add_arguments(p)
    words = ["ledwatch", "bench", "fleet"]
    for action in p._actions:
        value = getattr(args, action.dest, None)
        if not action.option_strings or value == action.default:
            continue
        flag = action.option_strings[0]
        if isinstance(action, argparse._StoreTrueAction):
            words.append(flag)
        elif isinstance(action, argparse._AppendAction):
            for item in value or ():
                words += [flag, item.replace(" = ", "=", 1)]  # as _setting wrote it
        elif isinstance(value, list | frozenset):
            words += [flag, ",".join(str(v) for v in sorted(value))]
        else:
            words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return shlex.join(words)
