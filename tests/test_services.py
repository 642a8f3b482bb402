"""The test servers themselves: if these fail, every integration test's result is moot."""

from __future__ import annotations

import base64
import os
import queue
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
import serial
from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from paho.mqtt.enums import CallbackAPIVersion
from services import InfluxDB1, Mosquitto, PtyPair, ServiceError, VictoriaMetrics


def _client(broker: Mosquitto, client_id: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def test_mosquitto_qos1_publish_subscribe(mosquitto: Mosquitto) -> None:
    topic = "ledwatch/v1/svc-test/screen/s1/telemetry"
    got: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subscribed: queue.Queue[bool] = queue.Queue()
    sub = _client(mosquitto, "svc-test-sub")
    sub.on_message = lambda _c, _u, msg: got.put(msg)
    sub.on_subscribe = lambda *_a: subscribed.put(True)
    pub = _client(mosquitto, "svc-test-pub")
    try:
        sub.subscribe(topic, qos=1)
        assert subscribed.get(timeout=5)
        info = pub.publish(topic, b'{"seq":1}', qos=1)
        info.wait_for_publish(timeout=5)
        assert info.is_published()
        msg = got.get(timeout=5)
        assert (msg.topic, msg.payload, msg.qos) == (topic, b'{"seq":1}', 1)
    finally:
        for client in (sub, pub):
            client.disconnect()
            client.loop_stop()


def test_mosquitto_restart_keeps_port_and_retained(mosquitto: Mosquitto) -> None:
    topic = "ledwatch/v1/svc-test/agent/a1/status"
    pub = _client(mosquitto, "svc-test-retain")
    pub.publish(topic, b'{"state":"online"}', qos=1, retain=True).wait_for_publish(timeout=5)
    pub.disconnect()
    pub.loop_stop()
    port = mosquitto.port
    mosquitto.stop()
    assert not mosquitto.is_running()
    mosquitto.start()
    assert mosquitto.port == port
    got: queue.Queue[bytes] = queue.Queue()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="svc-test-retain-sub")
    sub.on_message = lambda _c, _u, msg: got.put(bytes(msg.payload))
    sub.on_connect = lambda c, *_a: c.subscribe(topic, qos=1)
    sub.connect(mosquitto.host, mosquitto.port)
    sub.loop_start()
    try:
        assert got.get(timeout=5) == b'{"state":"online"}'
    finally:
        sub.disconnect()
        sub.loop_stop()


def test_fresh_mosquitto_refuses_anonymous(fresh_mosquitto: Callable[..., Mosquitto]) -> None:
    broker = fresh_mosquitto(extra_conf="allow_anonymous false")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="svc-test-anon")
    codes: queue.Queue[mqtt.ReasonCode] = queue.Queue()
    client.on_connect = lambda _c, _u, _f, rc, _p: codes.put(rc)
    client.connect(broker.host, broker.port)
    deadline = time.monotonic() + 5
    while codes.empty() and time.monotonic() < deadline:
        client.loop(timeout=0.05)  # no background thread: it would retry the refused login
    rc = codes.get_nowait()
    assert rc.is_failure, rc
    assert rc == "Not authorized"


def test_victoria_write_via_influxdb_client_and_export(victoria: VictoriaMetrics) -> None:
    now_ms = int(time.time() * 1000)
    lines = [
        f"card,site=svc-test,screen=s1,card=p0c{i} temp_c={40 + i},voltage_v=5.{i} {now_ms + i}"
        for i in range(3)
    ]
    with InfluxDBClient(url=victoria.url, token="unused", org="ledwatch") as client:
        assert client.ping()
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket="ledwatch", record="\n".join(lines), write_precision="ms"
        )
    victoria.flush()
    series = victoria.export('card_temp_c{site="svc-test"}')
    by_card = {s["metric"]["card"]: s for s in series}
    assert sorted(by_card) == ["p0c0", "p0c1", "p0c2"]
    assert by_card["p0c2"]["values"] == [42]
    assert by_card["p0c2"]["timestamps"] == [now_ms + 2]
    assert by_card["p0c0"]["metric"]["screen"] == "s1"


def test_victoria_restart_keeps_data(victoria: VictoriaMetrics) -> None:
    ts_ms = int(time.time() * 1000)
    body = f"env,site=svc-restart,screen=s1 humidity_pct=55 {ts_ms}"
    resp = httpx.post(f"{victoria.url}/write", params={"precision": "ms"}, content=body)
    assert resp.status_code == 204
    victoria.flush()
    victoria.restart()
    series = victoria.export('env_humidity_pct{site="svc-restart"}')
    assert [s["values"] for s in series] == [[55]]


def test_influxdb1_write_with_basic_auth_and_select(influxdb1: InfluxDB1) -> None:
    token = base64.b64encode(f"{influxdb1.username}:{influxdb1.password}".encode()).decode()
    lines = "\n".join(
        f"psu,site=svc-test,screen=s1,psu=p0c0-psu{i} vout_v=5.0{i},ok=true {1_700_000_000_000 + i}"
        for i in range(3)
    )
    resp = httpx.post(
        f"{influxdb1.url}/write",
        params={"db": influxdb1.database, "precision": "ms"},
        headers={"Authorization": f"Basic {token}"},
        content=lines,
    )
    assert resp.status_code == 204, resp.text
    answer = influxdb1.query("SELECT vout_v, ok FROM psu WHERE site = 'svc-test' ORDER BY time")
    series = answer["results"][0]["series"][0]
    assert series["columns"] == ["time", "vout_v", "ok"]
    assert series["values"] == [
        [1_700_000_000_000, 5.0, True],
        [1_700_000_000_001, 5.01, True],
        [1_700_000_000_002, 5.02, True],
    ]


def test_influxdb1_auth_is_on(influxdb1: InfluxDB1) -> None:
    write_url = f"{influxdb1.url}/write?" + urllib.parse.urlencode({"db": influxdb1.database})
    line = "agent,site=svc-test,agent=a1 queue_depth=1i"
    assert httpx.post(write_url, content=line).status_code == 401
    wrong = httpx.post(write_url, content=line, auth=(influxdb1.username, "wrong"))
    assert wrong.status_code == 401
    assert influxdb1.rows("SELECT * FROM agent WHERE site = 'svc-test'") == []
    with pytest.raises(ServiceError):
        influxdb1.query("SELEKT nonsense")


def test_influxdb1_restart_keeps_data(influxdb1: InfluxDB1) -> None:
    influxdb1.write("controller,site=svc-restart,screen=s1 temp_c=33.5 1700000000000", "ms")
    port = influxdb1.port
    influxdb1.restart()
    assert influxdb1.port == port
    rows = influxdb1.rows("SELECT temp_c FROM controller WHERE site = 'svc-restart'")
    assert rows == [{"time": 1_700_000_000_000, "temp_c": 33.5}]


def test_stopped_shared_server_is_back_for_the_next_test(mosquitto: Mosquitto) -> None:
    """Runs after test_mosquitto_restart_keeps_port_and_retained; also stops it itself."""
    assert mosquitto.is_running()
    mosquitto.stop()  # the autouse fixture in conftest starts it again


def test_shared_server_was_restarted(mosquitto: Mosquitto) -> None:
    assert mosquitto.is_running()


def test_pty_pair_carries_bytes_both_ways(pty_pair: PtyPair) -> None:
    assert Path(pty_pair.a).exists() and Path(pty_pair.b).exists()
    with (
        serial.Serial(pty_pair.a, 115200, timeout=2) as a,
        serial.Serial(pty_pair.b, 115200, timeout=2) as b,
    ):
        frame = bytes(range(256))  # raw mode: every byte value, no CR/LF translation
        a.write(frame)
        assert b.read(len(frame)) == frame
        b.write(b"\x55\xaa\x00\x0d\x0a\x11\x13")
        assert a.read(7) == b"\x55\xaa\x00\x0d\x0a\x11\x13"


def test_pty_pair_stop_removes_links(pty_pair: PtyPair) -> None:
    assert pty_pair.is_running()
    pty_pair.stop()
    deadline = time.monotonic() + 5
    while os.path.exists(pty_pair.a) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not os.path.exists(pty_pair.a)
