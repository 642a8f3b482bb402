"""Nothing lost, nothing sent twice that was delivered: the collector process killed in
the middle of sending its notifications, restarted, and every notification arrives.

Real parts: Mosquitto, the `ledwatch collector` process with its SQLite ticket database
and outbox, a slow signed-webhook receiver on 127.0.0.1. Faults arrive as telemetry; the
collector opens tickets and queues one notification per ticket in the same transaction.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import create_engine, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "collector"))
sys.path.insert(0, str(ROOT / "tests" / "collector" / "notify"))
from datapath_helpers import make_snapshot  # noqa: E402
from notify_helpers import HttpReceiver, Reply, Request  # noqa: E402

from collector.notify.webhook import verify  # noqa: E402
from collector.tickets import db  # noqa: E402
from ledwatch.contract import telemetry_topic  # noqa: E402

pytestmark = pytest.mark.services
SECRET = "e2e-webhook-secret-0123456789"
SCREENS = 12


def slow_ok(request: Request) -> Reply:
    time.sleep(0.25)  # a slow receiver: the kill lands while rows are in flight
    return 200, {}, b"{}"


def collector(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LW_E2E_SECRET": SECRET}
    return subprocess.Popen([sys.executable, "-m", "ledwatch.cli", "collector", "--config",
                             str(cfg)], cwd=ROOT, env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT)


def test_a_collector_killed_mid_send_loses_no_notification(
    fresh_mosquitto: Any, tmp_path: Path
) -> None:
    # A private broker: the shared one keeps other tests' retained statuses, whose
    # agent_offline tickets would be notified too.
    mosquitto = fresh_mosquitto()
    receiver = HttpReceiver(respond=slow_ok).start()
    site = f"notify-{os.getpid()}"
    url = f"sqlite:///{tmp_path / 'tickets.db'}"
    cfg = tmp_path / "collector.toml"
    cfg.write_text(f'''status_interval_s = 1.0
[mqtt]
host = "{mosquitto.host}"
port = {mosquitto.port}
client_id = "notify-e2e-{os.getpid()}"
share_group = "ne2e"
[influx]
output = "none"
[database]
url = "{url}"
[api]
enabled = false
[notify]
retry_min_s = 0.5
retry_max_s = 2.0
batch = 2
[notify.channels.hook]
type = "webhook"
url = "{receiver.url}/ledwatch"
secret_env = "LW_E2E_SECRET"
[[notify.routes]]
levels = [["hook"]]
''')
    log = tmp_path / "collector.log"
    proc = collector(cfg, log)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.connect(mosquitto.host, mosquitto.port)
    pub.loop_start()
    try:
        deadline = time.monotonic() + 60  # start-up (migrations) is slow on a busy machine
        while "MQTT connected" not in log.read_text():
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.1)
        time.sleep(0.5)  # the SUBSCRIBE follows the CONNACK
        now = int(time.time() * 1000)  # deadlines ahead: only the openings are sent
        for screen in range(SCREENS):  # one module fault per screen: 12 tickets
            for seq in range(1, 5):
                doc = make_snapshot(site=site, screen=f"s{screen}", seq=seq,
                                    ts=now - 300_000 + seq * 60_000)
                doc["cards"]["module_faults"][1] = 2
                pub.publish(telemetry_topic(site, f"s{screen}"), orjson.dumps(doc),
                            qos=1).wait_for_publish(10)
        deadline = time.monotonic() + 30
        while sum(r.method == "POST" for r in receiver.requests) < 3:  # sending has begun
            assert time.monotonic() < deadline, log.read_text()
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # ... and the collector dies in the middle of it
        proc.wait(10)
        before_restart = sum(r.method == "POST" for r in receiver.requests)
        assert before_restart < SCREENS, "the kill came too late to test anything"
        proc = collector(cfg, log)
        engine = create_engine(url)
        deadline = time.monotonic() + 60
        while True:
            with engine.connect() as conn:
                rows = conn.execute(select(db.notifications)).all()
            if len(rows) == SCREENS and all(r.delivered_ms is not None for r in rows):
                break
            assert time.monotonic() < deadline, (rows, log.read_text()[-3000:])
            time.sleep(0.2)
        engine.dispose()
    finally:
        pub.loop_stop()
        pub.disconnect()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
        receiver.stop()
    posts = [r for r in receiver.requests if r.method == "POST"]  # not the start-up checks
    ids = [r.headers["x-ledwatch-notification-id"] for r in posts]
    assert {r.id for r in rows} == set(ids)  # every notification arrived
    # at least once: only what was in flight at the kill may come twice
    assert len(ids) - len(set(ids)) <= 2, ids
    for r in posts:  # and each is signed as documented
        assert verify(SECRET, r.headers["x-ledwatch-timestamp"], r.body,
                      r.headers["x-ledwatch-signature"], now=time.time())
        body = json.loads(r.body)
        assert body["event"] == "opened" and body["ticket"]["fault"] == "module_fault"
