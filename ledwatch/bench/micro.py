"""`ledwatch bench ingest|detect|poll`: micro-benchmarks, ratios against a baseline run alongside.

Absolute times on a shared 2-core machine are noise; a ratio between two code paths
measured in the same process, same data, same minute, is not. Each benchmark repeats
its measurement and reports the median.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from typing import Any, ClassVar

from ledwatch.contract import SCHEMA_TELEMETRY


def synthetic_snapshot(n_cards: int, seq: int = 1, psus_per_card: int = 2) -> dict[str, Any]:
    """A valid columnar snapshot of `n_cards` cabinets (the shape the agent publishes)."""
    rnd = random.Random(seq)
    ids = [f"p{i // 50}c{i % 50}" for i in range(n_cards)]
    psu_ids = [f"{c}-psu{k}" for c in ids for k in range(1, psus_per_card + 1)]
    return {
        "schema": SCHEMA_TELEMETRY,
        "site": "bench-site",
        "screen": "wall",
        "agent": "pc1",
        "seq": seq,
        "ts": 1_760_000_000_000 + seq * 5000,
        "controller": {"online": True, "link": "up", "model": "MCTRL660", "signal_ok": True,
                       "brightness_pct": 80.0, "temp_c": None},
        "cards": {
            "id": ids,
            "port": [i // 50 for i in range(n_cards)],
            "index": [i % 50 for i in range(n_cards)],
            "online": [True] * n_cards,
            "temp_c": [round(35 + rnd.random() * 10, 1) for _ in ids],
            "voltage_v": [round(4.9 + rnd.random() * 0.2, 1) for _ in ids],
            "module_faults": [0] * n_cards,
            "monitor": [True] * n_cards,
            "humidity_pct": [40.0] * n_cards,
            "smoke": [False] * n_cards,
            "door_open": [False] * n_cards,
            "fan_rpm": [1500.0] * n_cards,
        },
        "psus": {
            "id": psu_ids,
            "card": [p.split("-")[0] for p in psu_ids],
            "ok": [True] * len(psu_ids),
            "vout_v": [round(4.95 + rnd.random() * 0.1, 2) for _ in psu_ids],
            "iout_a": [None] * len(psu_ids),
            "temp_c": [None] * len(psu_ids),
            "fan_rpm": [None] * len(psu_ids),
        },
        "env": {"temp_c": 41.0, "humidity_pct": 40.0, "smoke": False, "door_open": False,
                "fan_rpm": 1500.0},
        "stats": {"queue_depth": 0, "poll_ms": 120.0, "poll_errors": 0, "uptime_s": 3600.0,
                  "dropped": 0},
    }


def _median_s(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_ingest(args: argparse.Namespace) -> int:
    """Collector hot path: JSON bytes -> validated doc -> line protocol, vs Point objects."""
    import orjson
    from influxdb_client import Point, WritePrecision

    from collector.influx.lineproto import snapshots_lines
    from collector.ingest.decode import decode_telemetry
    from ledwatch.contract import telemetry_topic

    docs = [synthetic_snapshot(args.cards, seq) for seq in range(1, args.snapshots + 1)]
    payloads = [orjson.dumps(d) for d in docs]
    topic = telemetry_topic("bench-site", "wall")
    n_points = len(snapshots_lines(docs))

    def ours() -> None:
        snapshots_lines([decode_telemetry(topic, p) for p in payloads])

    def points() -> None:  # the baseline DESIGN.md measured at ~17 us/point
        for p in payloads:
            d = orjson.loads(p)
            ts = d["ts"]
            cards = d["cards"]
            for i, cid in enumerate(cards["id"]):
                pt = Point("card").tag("site", d["site"]).tag("screen", d["screen"])
                pt = pt.tag("card", cid).field("online", cards["online"][i])
                pt = pt.field("temp_c", cards["temp_c"][i])
                pt = pt.field("voltage_v", cards["voltage_v"][i])
                pt.time(ts, WritePrecision.MS).to_line_protocol()
            psus = d["psus"]
            for i, pid in enumerate(psus["id"]):
                pt = Point("psu").tag("site", d["site"]).tag("screen", d["screen"]).tag("psu", pid)
                pt = pt.field("ok", psus["ok"][i]).field("vout_v", psus["vout_v"][i])
                pt.time(ts, WritePrecision.MS).to_line_protocol()

    t_ours = _median_s(ours, args.repeat)
    t_base = _median_s(points, args.repeat)
    us_ours = t_ours / n_points * 1e6
    us_base = t_base / n_points * 1e6
    print(f"ingest: {args.snapshots} snapshots x {args.cards} cards = {n_points} points, "
          f"median of {args.repeat}")
    print(f"  decode+validate+line protocol (ours): {us_ours:6.2f} us/point "
          f"({n_points / t_ours:,.0f} points/s)")
    print(f"  influxdb-client Point objects (baseline, encode only): {us_base:6.2f} us/point")
    print(f"  ratio baseline/ours: {t_base / t_ours:.1f}x")
    return 0


# The detector before issue 7 (no debounce, schedules, root causes or prediction): the
# baseline the live path's cost is held to (at most 2x per card). Loaded from git so
# that it runs beside today's code in the same process, not copied into the tree.
BASELINE_COMMIT = "8687d09"
BASELINE_FIGURES = {30: 4.62, 200: 1.54}  # us/card measured at that commit, for no git


def _baseline_detector() -> Any:
    """An instance of the pre-issue-7 Detector, or None when git cannot show it."""
    import subprocess
    import types
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    try:
        source = subprocess.run(
            ["git", "show", f"{BASELINE_COMMIT}:collector/detect/engine.py"],
            cwd=root, capture_output=True, text=True, check=True, timeout=20,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    import sys

    module = types.ModuleType("ledwatch_baseline_engine")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{BASELINE_COMMIT}:collector/detect/engine.py", "exec"),
         module.__dict__)
    thresholds = types.SimpleNamespace(card_temp_high_c=75.0, psu_fail_v=3.5, psu_low_v=4.6,
                                       fan_min_rpm=300.0, agent_silence_s=60.0,
                                       humidity_high_pct=90.0)
    return module.Detector(thresholds)


def bench_detect(args: argparse.Namespace) -> int:
    """Detection per card on the live path (one snapshot per call, as the collector
    feeds a screen's polls) against the detector before issue 7, and batched (replay)."""
    from collector.detect.engine import Detector

    docs = [synthetic_snapshot(args.cards, seq) for seq in range(1, args.snapshots + 1)]
    for d in docs[len(docs) // 2:]:  # half the snapshots carry faults, so findings flow
        d["cards"]["temp_c"][3] = 90.0
        d["psus"]["vout_v"][5] = 2.0

    def live(make: Callable[[], Any]) -> Callable[[], Any]:
        def go() -> None:
            det = make()
            for doc in docs:
                det.process([doc])
        return go

    def batched() -> None:
        Detector().process(docs)

    n_cards = args.cards * args.snapshots
    t_new = _median_s(live(Detector), args.repeat)
    t_batch = _median_s(batched, args.repeat)
    t_loop = _median_s(live(lambda: Detector(vectorised=False)), max(1, args.repeat // 2))
    print(f"detect: {args.snapshots} snapshots x {args.cards} cards, median of {args.repeat}")
    us_new = t_new / n_cards * 1e6
    print(f"  live path, numpy (one snapshot per call): {us_new:6.2f} us/card")
    print(f"  replay path (all snapshots in one call):  {t_batch / n_cards * 1e6:6.2f} us/card "
          f"({t_new / t_batch:.1f}x cheaper)")
    print(f"  live path, poll-by-poll reference machine: {t_loop / n_cards * 1e6:6.2f} us/card")
    old = _baseline_detector()
    if old is not None:
        t_old = _median_s(live(lambda: _baseline_detector()), args.repeat)
        us_old = t_old / n_cards * 1e6
        source = f"measured now, detector of {BASELINE_COMMIT} loaded from git"
    else:
        nearest = min(BASELINE_FIGURES, key=lambda c: abs(c - args.cards))
        us_old = BASELINE_FIGURES[nearest]
        source = f"recorded at {BASELINE_COMMIT} for {nearest} cards (git not available)"
    ratio = us_new / us_old
    verdict = "ok" if ratio <= 2.0 else "MISSED"
    print(f"  before issue 7 (no debounce, schedules, roots, prediction): {us_old:6.2f} us/card "
          f"({source})")
    print(f"  ratio live/before: {ratio:.2f}x (target <= 2x: {verdict})")
    return 0


class _CountingTransport:
    """Wraps a driver transport and counts the bytes that crossed it, both ways."""

    may_be_held: ClassVar[bool] = False  # it wraps the serial transport (bench_poll)

    def __init__(self, inner: Any) -> None:
        self.inner, self.sent, self.received = inner, 0, 0

    def open(self) -> None:
        self.inner.open()

    def write(self, data: bytes) -> None:
        self.sent += len(data)
        self.inner.write(data)

    def read(self, timeout_s: float) -> bytes:
        data: bytes = self.inner.read(timeout_s)
        self.received += len(data)
        return data

    def close(self) -> None:
        self.inner.close()


def bench_poll(args: argparse.Namespace) -> int:
    """NovaStar poll cycle: over a pty paced like a 115200 baud UART, against the wire
    time of the bytes exchanged (median of 3), and over TCP (median of --repeat)."""
    from agent.drivers.novastar.driver import NovastarDriver, parse_options
    from agent.drivers.novastar.transport import BAUD_300, SerialTransport, wire_time_s
    from firmware_protocols.emulators.novastar import NovastarEmulator

    ports = 4
    per_port = max(1, args.cards // ports)
    baud = BAUD_300
    emu = NovastarEmulator(ports=ports, cards=per_port, psus=2)
    base = {"ports": ports, "cards_per_port": per_port}
    print(
        f"poll: NovaStar emulator, {ports} ports x {per_port} receiving cards; driver "
        "defaults (timeout_ms 300, retries 2), extended reads at their defaults "
        "(inputs, redundancy, light sensor, card info; no smart modules, no function card)"
    )
    try:
        path = emu.serve_pty(baudrate=baud, pace=True)
        print(f"  serial: pty paced as a {baud} baud 8N1 UART (10 bits a byte), median of 3")
        for depth in (1, 8):
            t = _CountingTransport(SerialTransport(path, baud))
            opts = parse_options({"url": f"serial://{path}?baud={baud}", "pipeline_depth": depth,
                                  **base})  # fmt: skip
            drv = NovastarDriver(opts, t)
            drv.open()
            drv.poll()  # warm-up: opens the port and counts the chains once
            rows = []
            for _ in range(3):
                sent, received = t.sent, t.received
                t0 = time.perf_counter()
                reading = drv.poll()
                rows.append((time.perf_counter() - t0, t.sent - sent, t.received - received))
                if reading.errors or not reading.controller["online"]:
                    print(f"  ! poll had {reading.errors} errors, link {reading.link}")
            drv.close()
            cycle, sent, received = sorted(rows)[1]
            wire = wire_time_s(sent + received, baud)
            duplex = wire_time_s(max(sent, received), baud)
            verdict = "ok" if cycle <= 1.25 * wire else "MISSED"
            print(f"  pipeline_depth {depth}: cycle {cycle * 1e3:7.1f} ms; bytes {sent} out + "
                  f"{received} in = wire {wire * 1e3:7.1f} ms; ratio {cycle / wire:.3f}x "
                  f"(target <= 1.25x: {verdict}); vs the busier direction alone "
                  f"({duplex * 1e3:.1f} ms, full duplex): {cycle / duplex:.3f}x")  # fmt: skip
        host, port = emu.serve_tcp()
        drv = NovastarDriver(parse_options({"url": f"tcp://{host}:{port}", **base}))
        drv.open()
        drv.poll()
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            drv.poll()
            times.append(time.perf_counter() - t0)
        drv.close()
        tcp = statistics.median(times)
        verdict = "ok" if tcp < 0.2 else "MISSED"
        print(
            f"  tcp (loopback, no pacing), median of {args.repeat}: {tcp * 1e3:.1f} ms per "
            f"full poll (target < 200 ms: {verdict})"
        )
    finally:
        emu.stop()
    return 0


BENCHES: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "ingest": (bench_ingest, "collector decode + validate + line protocol vs Point objects"),
    "detect": (bench_detect, "detection: numpy over columns vs a plain loop"),
    "poll": (bench_poll, "NovaStar poll cycle vs wire time at 115200 baud (pty), and over TCP"),
}
