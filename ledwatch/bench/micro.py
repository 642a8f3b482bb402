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


def bench_detect(args: argparse.Namespace) -> int:
    """Detection over many cards: numpy columns vs the plain per-row loop."""
    from collector.detect.engine import Detector

    docs = [synthetic_snapshot(args.cards, seq) for seq in range(1, args.snapshots + 1)]
    for d in docs[len(docs) // 2:]:  # half the snapshots carry faults, so findings flow
        d["cards"]["temp_c"][3] = 90.0
        d["psus"]["vout_v"][5] = 2.0

    def run(vectorised: bool) -> Callable[[], Any]:
        def go() -> None:
            det = Detector()
            det.vectorised = vectorised
            det.process(docs)
        return go

    t_np = _median_s(run(True), args.repeat)
    t_py = _median_s(run(False), args.repeat)
    n_cards = args.cards * args.snapshots
    print(f"detect: {args.snapshots} snapshots x {args.cards} cards, median of {args.repeat}")
    print(f"  numpy:  {t_np / n_cards * 1e6:6.2f} us/card")
    print(f"  python: {t_py / n_cards * 1e6:6.2f} us/card")
    print(f"  ratio python/numpy: {t_py / t_np:.1f}x")
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
