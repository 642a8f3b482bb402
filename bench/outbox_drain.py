#!/usr/bin/env python3
"""How fast the agent empties a big outbox backlog (a long outage), against raw paho.

An outbox is filled with `--snapshots` (default 100,000) telemetry snapshots of
`--cards` (default 200) receiving cards each, then `agent.publisher.Publisher` drains it
to a real Mosquitto (started here on a free loopback port), first at the default
`drain_rate_per_s` for `--default-seconds` (the time to empty at that rate is computed),
then with the rate set high until the outbox is empty (measured). The baseline, in the
same run and against the same broker: a bare paho client publishing the same payloads at
QoS 1 with the same in-flight window, waiting for every PUBACK (DESIGN.md measured
~19k msg/s with small payloads). Printed: messages/s, MB/s, time to empty, the ratio.
Both run with a QoS 0 subscriber on the topics, as in production: the agent keeps a
message the broker routed to nobody (PUBACK 0x10), and routing is part of the cost.

    .venv/bin/python bench/outbox_drain.py [--snapshots 100000] [--cards 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from services import Mosquitto  # noqa: E402  (scripts/services.py)

from agent.outbox import Kind, SqliteOutbox  # noqa: E402
from agent.publisher import Publisher  # noqa: E402
from agent.settings import AgentSettings, parse_settings  # noqa: E402
from ledwatch import contract  # noqa: E402
from ledwatch.bench import synthetic_snapshot  # noqa: E402

SITE = "bench-drain"
HIGH_RATE = 1_000_000.0


def settings(broker: Mosquitto, rate: float | None) -> AgentSettings:
    agent: dict[str, Any] = {"id": "pc1", "site": SITE}
    if rate is not None:
        agent["drain_rate_per_s"] = rate
    return parse_settings(
        {
            "agent": agent,
            "mqtt": {"host": broker.host, "port": broker.port},
            "screens": [{"id": "wall", "controller": {"driver": "novastar"}}],
        }
    )


def fill(path: Path, n: int, template: bytes, quota: int) -> float:
    """Put n snapshots through the outbox API (put_seq); returns seconds taken."""
    box = SqliteOutbox(path, quota)
    # Filling is not what is measured: skip the per-commit fsync while filling (the
    # publisher below reopens the file with the agent's own settings, synchronous=FULL).
    box._conn().execute("PRAGMA synchronous=OFF")
    head, tail = template.split(b'"seq":1,', 1)
    topic = contract.telemetry_topic(SITE, "wall")
    t0 = time.perf_counter()
    for _ in range(n):
        box.put_seq(Kind.TELEMETRY, topic, "wall", lambda s: b'%s"seq":%d,%s' % (head, s, tail))
    took = time.perf_counter() - t0
    box.close()
    return took


def drain(box: SqliteOutbox, s: AgentSettings, seconds: float | None) -> tuple[int, float]:
    """Run a Publisher until the outbox is empty (or `seconds` passed); (acked, seconds)."""
    pub = Publisher(s, box)
    pub._live = 0  # a backlog from before the start earns no live-data credit
    start_depth = box.depth()
    pub.start()
    if not pub.wait_connected(10):
        raise SystemExit(f"publisher did not connect: {pub.last_error}")
    t0 = time.perf_counter()
    deadline = None if seconds is None else t0 + seconds
    while box.depth() > 0 and (deadline is None or time.perf_counter() < deadline):
        time.sleep(0.01)
    took = time.perf_counter() - t0
    pub.stop()
    return start_depth - box.depth(), took


class Sink:
    """A shared subscription like the collector's, at QoS 0 so that this subscriber's own
    speed does not limit the run; it discards what it gets."""

    def __init__(self, broker: Mosquitto) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-sink")
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.subscribe(f"$share/bench/{contract.telemetry_topic(SITE, '+')}", qos=0)
        if not subscribed.wait(10):
            raise SystemExit("sink: no SUBACK")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def raw_paho(broker: Mosquitto, payload: bytes, n: int, window: int) -> float:
    """Bare paho, QoS 1, `window` in flight, until every PUBACK is in; returns seconds."""
    done = threading.Event()
    acked = 0

    def on_publish(*_: Any) -> None:
        nonlocal acked
        acked += 1
        if acked == n:
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw")
    client.max_inflight_messages_set(window)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect(broker.host, broker.port)
    client.loop_start()
    topic = contract.telemetry_topic(SITE, "raw")
    t0 = time.perf_counter()
    for _ in range(n):
        client.publish(topic, payload, qos=1)
    if not done.wait(600):
        raise SystemExit(f"raw paho: only {acked}/{n} acked")
    took = time.perf_counter() - t0
    client.disconnect()
    client.loop_stop()
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--snapshots", type=int, default=100_000, help="backlog size")
    ap.add_argument("--cards", type=int, default=200, help="receiving cards per snapshot")
    ap.add_argument("--default-seconds", type=float, default=15.0,
                    help="how long to drain at the default rate")  # fmt: skip
    ap.add_argument("--raw", type=int, default=20_000, help="messages for the paho baseline")
    args = ap.parse_args()
    template = orjson.dumps(synthetic_snapshot(args.cards))
    size = len(template)
    with tempfile.TemporaryDirectory(prefix="ledwatch-drain-") as tmp:
        folder = Path(tmp)
        path = folder / "outbox.sqlite3"
        quota = int(args.snapshots * (size + 200) * 1.1)  # room for the whole backlog
        backlog_mib = args.snapshots * size / 2**20
        print(f"payload: {args.cards}-card snapshot, {size / 1024:.1f} KiB; backlog "
              f"{args.snapshots:,} snapshots = {backlog_mib:,.0f} MiB")  # fmt: skip
        fill_s = fill(path, args.snapshots, template, quota)
        print(f"fill (put_seq, fsync off): {fill_s:.1f} s, {args.snapshots / fill_s:,.0f} puts/s")
        with Mosquitto(folder / "mosquitto") as broker:
            sink = Sink(broker)
            raw_s = raw_paho(broker, template, args.raw, 100)
            raw_rate = args.raw / raw_s
            box = SqliteOutbox(path, quota)
            try:
                default = settings(broker, None)
                n_def, t_def = drain(box, default, args.default_seconds)
                n_high, t_high = drain(box, settings(broker, HIGH_RATE), None)
                assert box.depth() == 0
            finally:
                box.close()
                sink.close()
    rate_def = default.agent.drain_rate_per_s
    mib = size / 2**20
    print(f"raw paho QoS 1 (window 100, same payload, {args.raw:,} msgs): "
          f"{raw_rate:,.0f} msg/s, {raw_rate * mib:,.0f} MiB/s")  # fmt: skip
    print(f"drain at the default rate ({rate_def:g}/s): {n_def:,} in {t_def:.1f} s = "
          f"{n_def / t_def:,.0f} msg/s; time to empty {args.snapshots:,}: "
          f"{args.snapshots / (n_def / t_def) / 60:.1f} min")  # fmt: skip
    high = n_high / t_high
    print(f"drain at a high rate ({HIGH_RATE:g}/s): {n_high:,} in {t_high:.1f} s = "
          f"{high:,.0f} msg/s, {high * mib:,.0f} MiB/s; time to empty {args.snapshots:,}: "
          f"{args.snapshots / high:.0f} s")  # fmt: skip
    print(f"ratio outbox drain / raw paho: {high / raw_rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
