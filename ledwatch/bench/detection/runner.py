"""`ledwatch bench detection`: generate a labelled month, replay it, score the tickets.

The benchmark shares nothing with what it measures beyond the public contracts: the
telemetry it writes follows ledwatch.telemetry/1, the replay runs as a subprocess
(`ledwatch replay --config ... --tickets-out ... FILE`), and the score is computed from
the ticket JSON of the REST API. docs/detection-bench.md has the rules and targets.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HELP = "detection quality: a labelled fleet month run through `ledwatch replay`, scored"


class ReplayError(RuntimeError):
    """`ledwatch replay` is missing, failed, or wrote no tickets file."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ledwatch.bench.detection.generator import DEFAULT_START

    g = p.add_argument_group("the generated month")
    g.add_argument("--seed", type=int, default=1, help="everything random follows it (1)")
    g.add_argument("--screens", type=int, default=12, help="screens in the fleet (12)")
    g.add_argument("--cards", type=int, default=30, help="receiving cards (cabinets) per screen")
    g.add_argument("--psus", type=int, default=2, help="PSUs per cabinet (2)")
    g.add_argument("--days", type=float, default=30.0, help="length of the month in days (30)")
    g.add_argument("--interval-s", type=int, default=120, help="poll interval (120 s)")
    g.add_argument("--start", default=DEFAULT_START, help=f"first poll, ISO 8601 ({DEFAULT_START})")
    g.add_argument("--gzip-level", type=int, default=1, choices=(1, 2, 3),
                   help="gzip level of telemetry.jsonl.gz (1: fastest)")  # fmt: skip
    r = p.add_argument_group("what to do")
    r.add_argument("--out", type=Path, default=None,
                   help="folder for the month, config, labels and tickets (default: "
                        "<tmp>/ledwatch-bench-detection-seed<N>)")  # fmt: skip
    r.add_argument("--generate-only", action="store_true", help="write the month and stop")
    r.add_argument("--reuse", action="store_true",
                   help="keep the month in --out if it has the same parameters")
    r.add_argument("--tickets", type=Path, default=None,
                   help="score this tickets JSON instead of running the replay")  # fmt: skip
    r.add_argument("--replay-timeout", type=float, default=3600.0,
                   help="seconds before the replay is stopped (3600)")  # fmt: skip
    r.add_argument("--max-rows", type=int, default=40, help="rows per list in the report")


def replay_command(config: Path, tickets: Path, telemetry: Path) -> list[str]:
    return [sys.executable, "-m", "ledwatch.cli", "replay", "--config", str(config),
            "--tickets-out", str(tickets), str(telemetry)]  # fmt: skip


def run_replay(cmd: list[str], tickets: Path, timeout_s: float) -> float:
    """Run the replay, echoing its output; return its wall time or raise ReplayError."""
    tail: collections.deque[str] = collections.deque(maxlen=25)
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)  # fmt: skip
    except OSError as exc:
        raise ReplayError(f"cannot start {cmd[0]}: {exc}") from None
    timer = threading.Timer(timeout_s, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip("\n"))
            print(f"  replay | {line.rstrip()}", flush=True)
        rc = proc.wait()
    finally:
        timer.cancel()
    wall = time.perf_counter() - t0
    if wall >= timeout_s:
        raise ReplayError(f"the replay did not finish within {timeout_s:.0f} s and was stopped")
    if rc != 0:
        last = "\n".join(f"    {x}" for x in tail) or "    (no output)"
        raise ReplayError(f"`{' '.join(cmd[2:5])} ...` failed with exit code {rc}; its last "
                          f"output:\n{last}")  # fmt: skip
    if not tickets.is_file():
        raise ReplayError(f"the replay exited 0 but wrote no {tickets}")
    return wall


def _have_replay() -> bool:
    from ledwatch.cli import COMMANDS

    return "replay" in COMMANDS


def _same_month(out: Path, wanted: dict[str, Any]) -> bool:
    from ledwatch.bench.detection.generator import FLEET_FILE, INCIDENTS_FILE, TELEMETRY_FILE

    try:
        have = json.loads((out / FLEET_FILE).read_text("utf-8"))["generator"]
    except (OSError, ValueError, KeyError):
        return False
    files = all((out / f).is_file() for f in (TELEMETRY_FILE, INCIDENTS_FILE))
    return files and have == wanted


def _describe(labels: list[Any]) -> list[str]:
    inc = collections.Counter(lab.kind for lab in labels if lab.incident)
    non = collections.Counter(lab.kind for lab in labels if not lab.incident)
    shallow = sum(1 for lab in labels if lab.kind == "psu_death" and lab.note.startswith("shallow"))
    lines = [f"  incidents: {sum(inc.values())} ("
             + ", ".join(f"{k} {v}" for k, v in inc.items()) + ")",
             f"    psu_death: {shallow} shallow (never below 4.6 V before dying), "
             f"{inc['psu_death'] - shallow} deep",
             f"  non-incidents: {sum(non.values())} ("
             + ", ".join(f"{k} {v}" for k, v in sorted(non.items())) + ")"]  # fmt: skip
    return lines


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ledwatch.bench.detection import generator as gen
    from ledwatch.bench.detection.labels import Label
    from ledwatch.bench.detection.scorer import format_report, score

    try:
        params = gen.FleetParams(seed=args.seed, screens=args.screens, cards=args.cards,
                                 psus=args.psus, days=args.days, interval_s=args.interval_s,
                                 start_ms=gen.parse_start(args.start))  # fmt: skip
        params.check()
    except ValueError as exc:
        parser.error(str(exc))
    default_out = Path(tempfile.gettempdir()) / f"ledwatch-bench-detection-seed{args.seed}"
    out: Path = args.out or default_out
    telemetry = out / gen.TELEMETRY_FILE
    wanted = {"version": gen.GENERATOR_VERSION, "seed": params.seed, "screens": params.screens,
              "cards": params.cards, "psus": params.psus, "days": params.days,
              "interval_s": params.interval_s, "start_ms": params.start_ms}  # fmt: skip
    print(f"detection benchmark: seed {params.seed}, {params.screens} screens x {params.cards} "
          f"cards x {params.psus} PSUs, {params.days:g} days every {params.interval_s} s, "
          f"from {args.start}; folder {out}")  # fmt: skip
    reuse = (args.reuse or args.tickets is not None) and _same_month(out, wanted)
    if reuse:
        labels = [Label.from_json(d) for d in json.loads((out / gen.INCIDENTS_FILE).read_text())]
        summary = json.loads((out / gen.FLEET_FILE).read_text())
        snapshots, screen_days = int(summary["snapshots"]), float(summary["screen_days"])
        print(f"generate: reusing the month in {out} ({snapshots:,} snapshots)")
    else:
        t0 = time.perf_counter()
        fleet = gen.plan_fleet(params)
        last = [0.0]

        def progress(msg: str) -> None:
            now = time.perf_counter()
            if now - last[0] >= 3 or msg.startswith("generate: 100.0%"):
                last[0] = now
                print(msg, flush=True)

        res = gen.write_fleet(fleet, out, level=args.gzip_level, progress=progress)
        labels, snapshots, screen_days = fleet.labels, res.snapshots, fleet.screen_days
        dt = time.perf_counter() - t0
        print(f"generate: {res.snapshots:,} snapshots ({res.lines:,} lines) in {dt:.1f} s "
              f"({res.snapshots / dt:,.0f} snapshots/s); {telemetry.name} "
              f"{res.file_bytes / 1e6:.1f} MB (gzip {args.gzip_level}, "
              f"{res.raw_bytes / 1e6:,.0f} MB of JSON)")  # fmt: skip
    for line in _describe(labels):
        print(line)
    print(f"  files: {out / gen.TELEMETRY_FILE}, {gen.INCIDENTS_FILE}, {gen.CONFIG_FILE}, "
          f"{gen.FLEET_FILE}")  # fmt: skip
    if args.generate_only:
        return 0

    wall: float | None = None
    tickets_path: Path = args.tickets
    if tickets_path is None:
        tickets_path = out / gen.TICKETS_FILE
        for stale in (tickets_path, *out.glob("tickets.db*")):
            stale.unlink(missing_ok=True)
        try:
            if not _have_replay():
                raise ReplayError("this ledwatch has no `replay` command (ledwatch/cli.py)")
            cmd = replay_command(out / gen.CONFIG_FILE, tickets_path, telemetry)
            print(f"replay: {' '.join(cmd)}", flush=True)
            wall = run_replay(cmd, tickets_path, args.replay_timeout)
        except ReplayError as exc:
            print(f"error: ledwatch replay: {exc}", file=sys.stderr)
            print("  (score a tickets file that exists with --tickets FILE; the month stays "
                  f"in {out})", file=sys.stderr)  # fmt: skip
            return 2
    try:
        tickets = json.loads(tickets_path.read_text("utf-8"))
        if not isinstance(tickets, list):
            raise ValueError("not a JSON list of tickets")
        report = score(tickets, labels, screen_days)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"error: cannot score {tickets_path}: {exc}", file=sys.stderr)
        return 2
    print()
    if wall is not None:
        print(f"replay: {wall:.1f} s wall, {snapshots / wall:,.0f} snapshots/s "
              f"({snapshots:,} snapshots)")  # fmt: skip
    else:
        print(f"replay: not run; scored {tickets_path}")
    print(format_report(report, max_rows=args.max_rows))
    sys.stdout.flush()
    return 0 if report.passed else 1


__all__ = ["HELP", "ReplayError", "add_arguments", "replay_command", "run", "run_replay"]
