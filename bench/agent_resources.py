#!/usr/bin/env python3
"""What `ledwatch agent` costs on a display control PC: RSS, CPU and poll time.

An installation of 1,000 receiving cards (4 screens x 4 ports x 62/63 cards, each screen
a NovaStar emulator in its own process, so the emulators do not count) is polled every
5 s by `ledwatch agent`, a real process publishing to a real Mosquitto (started here on a
free loopback port). Every second the agent's VmRSS (/proc/<pid>/status) and its CPU
time (utime + stime, /proc/<pid>/stat) are sampled; a subscriber reads every snapshot
back, for `stats.poll_ms` per screen and to check nothing is missing.

    .venv/bin/python bench/agent_resources.py [--minutes 3] [--interval 5]

Targets (printed with the ratio measured/target): peak and median RSS <= 60 MB,
CPU <= 3 % of one core averaged over the run (after start-up).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
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

RSS_TARGET_MB = 60.0
CPU_TARGET_PCT = 3.0
SCREENS = 4
PORTS = 4
CARDS_PER_PORT = [63, 63, 62, 62]  # 250 per screen, 1,000 in all
CLK_TCK = os.sysconf("SC_CLK_TCK")
SITE = "bench-res"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def cpu_s(pid: int) -> float:
    """utime + stime of the process (all its threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def start_emulator(cards: list[int]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ledwatch.cli", "emulate", "novastar", "--tcp", "127.0.0.1:0",
         "--ports", str(PORTS), "--cards", ",".join(map(str, cards)), "--psus", "2"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if not line or line[0] != "tcp":
        raise SystemExit(f"emulator did not start: {line}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
    return proc, f"tcp://{line[1]}"


def write_config(folder: Path, urls: list[str], broker: Mosquitto, interval_s: float) -> Path:
    lines = [
        "[agent]", 'id = "pc1"', f'site = "{SITE}"', f"poll_interval_s = {interval_s}",
        'data_dir = "data"', "status_interval_s = 3600",
        "[mqtt]", f'host = "{broker.host}"', f"port = {broker.port}",
    ]  # fmt: skip
    for i, url in enumerate(urls):
        lines += [
            "[[screens]]", f'id = "wall{i}"', "[screens.controller]", 'driver = "novastar"',
            f'url = "{url}"', f"ports = {PORTS}", f"cards_per_port = {CARDS_PER_PORT}",
            "psus_per_cabinet = 2", "timeout_ms = 500",
        ]  # fmt: skip
    path = folder / "agent.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Snapshots:
    """Subscriber: per screen, the seqs and poll_ms of every snapshot the broker delivers."""

    def __init__(self, broker: Mosquitto) -> None:
        self.poll_ms: dict[str, list[float]] = {}
        self.seqs: dict[str, set[int]] = {}
        self.cards: dict[str, int] = {}
        self.bytes: list[int] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-res-sub")
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(f"ledwatch/v1/{SITE}/screen/+/telemetry", qos=1)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        doc = orjson.loads(msg.payload)
        screen = doc["screen"]
        self.poll_ms.setdefault(screen, []).append(doc["stats"]["poll_ms"])
        self.seqs.setdefault(screen, set()).add(doc["seq"])
        self.cards[screen] = sum(1 for v in doc["cards"]["online"] if v)
        self.bytes.append(len(msg.payload))

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def verdict(value: float, target: float) -> str:
    return f"{value / target:.2f} x target ({'OK' if value <= target else 'MISSED'})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=3.0, help="how long the agent runs")
    ap.add_argument("--interval", type=float, default=5.0, help="agent poll interval, s")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ledwatch-bench-") as tmp:
        folder = Path(tmp)
        emulators: list[subprocess.Popen[str]] = []
        broker = Mosquitto(folder / "mosquitto").start()
        agent: subprocess.Popen[bytes] | None = None
        try:
            urls = []
            for _ in range(SCREENS):
                proc, url = start_emulator(CARDS_PER_PORT)
                emulators.append(proc)
                urls.append(url)
            config = write_config(folder, urls, broker, args.interval)
            subs = Snapshots(broker)
            log = (folder / "agent.log").open("wb")
            t_start = time.monotonic()
            agent = subprocess.Popen(
                [sys.executable, "-m", "ledwatch.cli", "agent", "--config", str(config)],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            )  # fmt: skip
            pid = agent.pid
            # Start-up (imports, first connect, first poll) is reported on its own; the
            # steady state starts once the first poll of every screen has been published.
            while len(subs.seqs) < SCREENS:
                if agent.poll() is not None or time.monotonic() - t_start > 60:
                    raise SystemExit((folder / "agent.log").read_text())
                time.sleep(0.05)
            t0, c0 = time.monotonic(), cpu_s(pid)
            startup_s, startup_cpu = t0 - t_start, c0
            rss: list[float] = []
            end = t0 + args.minutes * 60
            while time.monotonic() < end:
                rss.append(rss_mb(pid))
                time.sleep(1.0)
            t1, c1 = time.monotonic(), cpu_s(pid)
            rss.append(rss_mb(pid))
            agent.terminate()
            agent.wait(30)
            time.sleep(0.5)
            subs.stop()
        finally:
            if agent is not None and agent.poll() is None:
                agent.kill()
            for proc in emulators:
                proc.terminate()
                proc.wait(10)
            broker.stop()

    cpu_pct = 100.0 * (c1 - c0) / (t1 - t0)
    polls = sum(len(v) for v in subs.poll_ms.values())
    print(f"installation: {SCREENS} screens x {PORTS} ports x {CARDS_PER_PORT} cards = "
          f"{SCREENS * sum(CARDS_PER_PORT)} receiving cards; poll every {args.interval:g} s; "
          f"{args.minutes:g} min steady state")  # fmt: skip
    print(f"start-up: {startup_s:.2f} s to the first published poll of every screen, "
          f"{startup_cpu:.2f} s CPU")  # fmt: skip
    print(f"RSS peak   {max(rss):6.1f} MB  {verdict(max(rss), RSS_TARGET_MB)}")
    print(f"RSS median {statistics.median(rss):6.1f} MB  "
          f"{verdict(statistics.median(rss), RSS_TARGET_MB)}")  # fmt: skip
    print(f"CPU        {cpu_pct:6.2f} %  of one core over {t1 - t0:.0f} s "
          f"({c1 - c0:.2f} s CPU)  {verdict(cpu_pct, CPU_TARGET_PCT)}")  # fmt: skip
    per_poll_ms = 1000.0 * (c1 - c0) / max(1, polls)
    print(f"CPU per screen poll (read + snapshot + outbox + publish): {per_poll_ms:.1f} ms; "
          f"snapshot {statistics.median(subs.bytes) / 1024:.0f} KiB")  # fmt: skip
    for screen in sorted(subs.poll_ms):
        ms = subs.poll_ms[screen]
        seqs = subs.seqs[screen]
        gap = "no gap" if seqs == set(range(1, max(seqs) + 1)) else "GAP"
        print(f"  {screen}: {len(ms)} snapshots ({gap}), {subs.cards[screen]} cards online, "
              f"poll_ms median {statistics.median(ms):.0f} max {max(ms):.0f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
