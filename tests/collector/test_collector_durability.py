"""At-least-once, proven on real servers: nothing a collector took from the broker is lost
when the collector is killed or the database goes away, and nothing is stored twice.

Snapshots are numbered (`seq`) and built like the agent's (ledwatch.bench's
synthetic_snapshot); storage is checked through the `controller` point's `seq` field:
exactly one point per snapshot timestamp, carrying that snapshot's seq.
VictoriaMetrics runs with `-dedup.minScrapeInterval=1ms` (scripts/services.py), so, as in
InfluxDB, a re-written point replaces itself and exactly-once shows as one sample per ts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from test_service import wait_for

from collector.service import Collector
from collector.settings import CollectorSettings
from ledwatch.bench import synthetic_snapshot
from ledwatch.contract import telemetry_topic, validate_telemetry

ROOT = Path(__file__).resolve().parents[2]
# Mosquitto drops QoS 1 messages past max_queued_messages (default 1000) for a session
# that is offline or has a full in-flight window: the same raise as deploy/mosquitto.
BROKER_CONF = "max_queued_messages 1000000\n"
N_CARDS = 10
VIEWER = {"Authorization": "Bearer viewer-token-0001"}


def numbered(site: str, seq: int) -> tuple[int, bytes]:
    """(ts, payload) of snapshot `seq` of screen scr1 of `site` (ts = base + seq * 5 s)."""
    doc = synthetic_snapshot(N_CARDS, seq=seq) | {"site": site, "screen": "scr1", "agent": "pc1"}
    return doc["ts"], orjson.dumps(validate_telemetry(doc))


class Publisher:
    """A paho client publishing numbered snapshots at QoS 1, as fast as the broker acks
    or at `rate_per_s`, in a thread; `done` is set when every PUBACK came back."""

    def __init__(self, broker: Any, site: str) -> None:
        self.site = site
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{site}")
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.done = threading.Event()
        self._thread: threading.Thread | None = None

    def publish(self, seqs: range, rate_per_s: float | None = None) -> None:
        """Publish in a thread; returns at once."""
        self.done.clear()

        def run() -> None:
            infos = []
            start = time.monotonic()
            for k, seq in enumerate(seqs):
                if rate_per_s is not None:
                    delay = start + k / rate_per_s - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                _, payload = numbered(self.site, seq)
                infos.append(self.client.publish(telemetry_topic(self.site, "scr1"), payload, 1))
            for info in infos:
                info.wait_for_publish(30)
            self.done.set()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def wait(self, timeout_s: float = 60) -> None:
        assert self.done.wait(timeout_s), "publisher did not get every PUBACK"

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def broker(fresh_mosquitto: Callable[..., Any]) -> Any:
    return fresh_mosquitto(extra_conf=BROKER_CONF)


@pytest.fixture
def publisher_for(broker: Any) -> Iterator[Callable[[str], Publisher]]:
    made: list[Publisher] = []

    def make(site: str) -> Publisher:
        made.append(Publisher(broker, site))
        return made[-1]

    yield make
    for p in made:
        p.close()


def stored(vm: Any, site: str) -> list[tuple[int, int]]:
    """Every stored (ts, seq) of the site's controller points, duplicates included."""
    vm.flush()
    return [
        (ts, int(v))
        for s in vm.export(f'controller_seq{{site="{site}"}}')
        for ts, v in zip(s["timestamps"], s["values"], strict=True)
    ]


def expected(site: str, n: int) -> list[tuple[int, int]]:
    return sorted((numbered(site, seq)[0], seq) for seq in range(1, n + 1))


def metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(f"ledwatch_collector_{name}") and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


# -- the collector process killed mid-stream -------------------------------------------------


class CollectorProcess:
    """`python -m ledwatch.cli collector --config <toml>` as a real child process."""

    def __init__(self, config: Path, log: Path, api_port: int) -> None:
        self.config, self.log_path, self.api = config, log, f"http://127.0.0.1:{api_port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> CollectorProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ledwatch.cli", "collector", "--config", str(self.config)],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

        def up() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log()
            try:
                health = httpx.get(f"{self.api}/api/v1/health", timeout=1).json()
            except httpx.HTTPError:
                return False
            return bool(health["parts"]["broker"]["ok"])

        wait_for(up, timeout_s=30, what="the collector process connected")
        time.sleep(0.3)  # its SUBSCRIBE follows the CONNACK
        return self

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.api}{path}", headers=VIEWER, timeout=5)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.terminate()
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise

    def log(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-40:])


def collector_toml(broker: Any, vm_url: str, tag: str, tmp: Path, api_port: int) -> Path:
    path = tmp / "collector.toml"
    path.write_text(f"""
log_level = "INFO"
status_interval_s = 1
[mqtt]
host = "{broker.host}"
port = {broker.port}
client_id = "durable-{tag}"
share_group = "g{tag}"
protocol = "5"
clean_start = false
reconnect_min_s = 1
reconnect_max_s = 2
[influx]
output = "v2"
url = "{vm_url}"
org = "ledwatch"
bucket = "ledwatch"
batch_size = 400
flush_interval_ms = 100
max_pending = 100
retry_max_s = 0.5
timeout_ms = 3000
[database]
url = "sqlite:///{tmp}/tickets.db"
[api]
enabled = true
host = "127.0.0.1"
port = {api_port}
tokens = [{{ token = "viewer-token-0001", role = "viewer" }}]
""")
    return path


def test_collector_killed_mid_stream_loses_nothing_stores_once(
    broker: Any,
    fresh_victoria: Callable[[], Any],
    publisher_for: Callable[[str], Publisher],
    free_port: Callable[[], int],
    tmp_path: Path,
) -> None:
    n = 3000
    tag = uuid.uuid4().hex[:8]
    site = f"kill-{tag}"
    vm = fresh_victoria()
    port = free_port()
    coll = CollectorProcess(
        collector_toml(broker, vm.url, tag, tmp_path, port), tmp_path / "collector.log", port
    )
    pub = publisher_for(site)
    coll.start()
    try:
        pub.publish(range(1, n // 2 + 1))
        wait_for(lambda: len(stored(vm, site)) >= n // 6, timeout_s=60, what="some stored")
        pub.wait()
        pub.publish(range(n // 2 + 1, n + 1))  # still arriving when the collector dies
        before = len(stored(vm, site))
        coll.kill()
        at_kill = len(stored(vm, site))
        assert 0 < before <= at_kill < n, (before, at_kill)
        pub.wait()  # the broker took them all: queued for the dead collector's session

        coll.start()  # same client id: the broker resumes the session and redelivers
        wait_for(lambda: len(stored(vm, site)) >= n, timeout_s=90, what=f"{n} stored")
        rows = stored(vm, site)
        assert sorted(rows) == expected(site, n)  # every seq, once, at its own ts
        metrics = coll.get("/metrics").text
        received = metric(metrics, 'received_total{kind="telemetry"}')
        assert received >= n - at_kill
        wait_for(lambda: metric(coll.get("/metrics").text, "pending") == 0, what="all acked")
        body = coll.get(f"/api/v1/delivery?site={site}").json()
        (s,) = body["streams"]
        assert (s["last"], s["missing"], s["gaps"]) == (n, 0, [])
    finally:
        code = coll.terminate()
    assert code == 0, coll.log()
    assert "stopped:" in coll.log()


# -- the database stopped and started again under load ---------------------------------------


def settings_v2(broker: Any, url: str, tag: str, **influx: Any) -> CollectorSettings:
    return CollectorSettings.model_validate({
        "mqtt": {"host": broker.host, "port": broker.port, "client_id": f"coll-{tag}",
                 "share_group": f"g{tag}", "reconnect_min_s": 1, "reconnect_max_s": 2},
        "influx": {"output": "v2", "url": url, "org": "ledwatch", "bucket": "ledwatch",
                   "flush_interval_ms": 100, "retry_max_s": 0.3, "timeout_ms": 2000, **influx},
        "api": {"enabled": False},
    })


def test_database_outage_backpressure_then_everything_arrives(
    broker: Any, fresh_victoria: Callable[[], Any], publisher_for: Callable[[str], Publisher]
) -> None:
    n, window = 600, 20
    tag = uuid.uuid4().hex[:8]
    site = f"outage-{tag}"
    vm = fresh_victoria()
    coll = Collector(settings_v2(broker, vm.url, tag, max_pending=window))
    coll.start()
    pub = publisher_for(site)
    try:
        assert coll.wait_connected(10)
        time.sleep(0.3)
        pub.publish(range(1, n + 1), rate_per_s=200)  # ~3 s of steady inflow
        wait_for(lambda: len(stored(vm, site)) >= 40, what="some stored")
        vm.stop()

        def failing() -> bool:
            errors = coll.metrics.snapshot()["write_errors"]
            assert isinstance(errors, dict)
            return errors.get("retryable", 0) >= 2

        wait_for(failing, what="failed writes being retried")
        # Backpressure: nothing more comes in while the database is down; the broker
        # holds the rest. Mosquitto 2.0.11 lets a whole Receive-Maximum window through
        # per PUBACK (measured), so the bound that holds is the collector's: the batches
        # being retried plus its full queue, at most 2 * max_pending + 1 messages. The
        # second failed attempt can come while the ingest thread still fills its last
        # batch (up to 4 are in flight), so first let intake reach that bound and stop.
        received = coll.metrics.snapshot()["received"]
        deadline = time.monotonic() + 10
        while True:
            time.sleep(0.3)
            now_received = coll.metrics.snapshot()["received"]
            if now_received == received:
                break
            assert time.monotonic() < deadline, "intake did not stop while the database is down"
            received = now_received
        time.sleep(0.5)
        snap = coll.metrics.snapshot()
        assert isinstance(snap["pending"], int) and window <= snap["pending"] <= 2 * window + 1
        assert snap["received"] == received
        assert not pub.done.is_set(), "the outage must happen while snapshots keep coming"
        assert coll.health()["influx"]["ok"] is False
        assert "write_errors_total{kind=\"retryable\"}" in coll.metrics_text()

        vm.start()  # same port, same data
        pub.wait()
        wait_for(lambda: len(stored(vm, site)) >= n, timeout_s=60, what=f"{n} stored")
        assert sorted(stored(vm, site)) == expected(site, n)
        wait_for(lambda: coll.metrics.snapshot()["pending"] == 0, what="all acked")
        totals = coll.delivery.totals()
        assert (totals.missing, totals.gaps) == (0, 0)
        (s,) = coll.delivery.streams(site=site)
        assert (s.first, s.last, s.received) == (1, n, n)
    finally:
        coll.stop()


# -- InfluxDB 1.x: a re-delivered snapshot is stored once ------------------------------------


def test_redelivered_snapshot_stored_once_in_influxdb1(
    mosquitto: Any, influxdb1: Any, publisher_for: Callable[[str], Publisher], tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    site = f"dup-{tag}"
    secret = tmp_path / "influx-password"
    secret.write_text(influxdb1.password)
    settings = CollectorSettings.model_validate({
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "client_id": f"coll-{tag}",
                 "share_group": f"g{tag}"},
        "influx": {"output": "v1", "url": influxdb1.url, "database": influxdb1.database,
                   "username": influxdb1.username, "password_file": str(secret),
                   "flush_interval_ms": 50},
        "api": {"enabled": False},
    })
    coll = Collector(settings)
    coll.start()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{tag}")
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        assert coll.wait_connected(10)
        time.sleep(0.3)
        topic = telemetry_topic(site, "scr1")
        for seq in (1, 2):
            _, payload = numbered(site, seq)
            client.publish(topic, payload, qos=1).wait_for_publish(10)
            wait_for(lambda: coll.metrics.snapshot()["pending"] == 0, what="stored and acked")
            time.sleep(0.2)  # the second copy comes in a later batch: a true re-delivery
            client.publish(topic, payload, qos=1).wait_for_publish(10)  # the same bytes again
        wait_for(lambda: coll.delivery.totals().duplicates == 2, what="both copies stored")
        wait_for(lambda: coll.metrics.snapshot()["pending"] == 0, what="all acked")

        rows = influxdb1.rows(f"SELECT seq, online FROM controller WHERE site = '{site}'")
        assert [(r["time"], r["seq"]) for r in rows] == [(numbered(site, s)[0], s) for s in (1, 2)]
        cards = influxdb1.rows(
            f"SELECT count(voltage_v) FROM card WHERE site = '{site}' GROUP BY card"
        )
        assert len(cards) == N_CARDS and {r["count"] for r in cards} == {2}
        # The check docs/delivery.md gives for storage itself: missing = max - min + 1 - count.
        (check,) = influxdb1.rows(
            f"SELECT count(seq), min(seq), max(seq) FROM controller WHERE site = '{site}'"
        )
        assert (check["count"], check["min"], check["max"]) == (2, 1, 2)
        series = influxdb1.query(f"SHOW SERIES FROM controller WHERE site = '{site}'")
        assert len(series["results"][0]["series"][0]["values"]) == 1
    finally:
        client.loop_stop()
        client.disconnect()
        coll.stop()
