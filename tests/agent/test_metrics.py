"""The agent's Prometheus endpoint (agent/metrics.py): the exposition as Prometheus'
own `promtool` reads it, the values against `Agent.status()`, the live port of an agent
polling the NovaStar emulator through a real Mosquitto, and a port that is taken."""

from __future__ import annotations

import math
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from agent_config import write_agent_config

from agent.metrics import FAMILIES, MetricsServer, render
from agent.runtime import Agent
from agent.settings import load_settings, parse_settings
from ledwatch import __version__
from ledwatch.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

STATUS: dict[str, Any] = {
    "agent": "pc1",
    "site": "acme",
    "uptime_s": 12.5,
    "queue_depth": 3,
    "outbox_bytes": 9_000,
    "dropped": 2,
    "outbox_set_aside": [{"path": "/x/outbox.sqlite3.corrupt-1", "reason": "bad"}],
    "mqtt": {"connected": True, "inflight": 1, "routed": False, "sent": 9, "acked": 7,
             "acked_telemetry": 6, "acked_event": 1, "connects": 3, "disconnects": 2,
             "unrouted": 4},
    "screens": {
        "lobby": {"polls": 6, "poll_errors": 1, "poll_ms": 25.0, "link": "degraded",
                  "cards_online": 5, "cards_total": 6, "seq": 40, "psus_answered": 3,
                  "psus_total": 4},
        "hall": {"polls": 0, "poll_errors": 0, "poll_ms": None, "link": None,
                 "cards_online": 0, "cards_total": 0, "seq": 0, "psus_answered": 0,
                 "psus_total": 0},
    },
}  # fmt: skip

SAMPLE = re.compile(r'^(ledwatch_agent_[a-z_]+)\{((?:[a-z_]+="[^"]*",?)*)\} (\S+)$')


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """name + labels -> value; every line is a comment or a well-formed sample."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(re.findall(r'([a-z_]+)="([^"]*)"', m[2]))
        out[(m[1], labels)] = float(m[3])
    return out


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    want = {("agent", "pc1"), ("site", "acme"), *labels.items()}
    return samples[(f"ledwatch_agent_{name}", frozenset(want))]


def test_exposition_passes_promtool(promtool: str) -> None:
    text = render(STATUS, 200 * 1024 * 1024)
    lint = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=30)  # fmt: skip
    assert lint.returncode == 0 and lint.stdout + lint.stderr == "", lint.stdout + lint.stderr
    for name, (kind, _) in FAMILIES.items():
        assert f"# TYPE ledwatch_agent_{name} {kind}\n" in text


def test_values_come_from_the_status() -> None:
    s = parse(render(STATUS, 1_000))
    assert value(s, "build_info", version=__version__) == 1
    assert value(s, "uptime_seconds") == 12.5
    assert value(s, "link_state", screen="lobby", state="degraded") == 1
    assert value(s, "link_state", screen="lobby", state="up") == 0
    # Before its first poll a screen is in no state, and its last poll took no time yet.
    assert all(value(s, "link_state", screen="hall", state=st) == 0
               for st in ("up", "degraded", "down", "held"))  # fmt: skip
    assert math.isnan(value(s, "poll_duration_seconds", screen="hall"))
    assert value(s, "poll_duration_seconds", screen="lobby") == 0.025
    assert value(s, "polls_total", screen="lobby") == 6
    assert value(s, "poll_errors_total", screen="lobby") == 1
    assert value(s, "cards_online", screen="lobby") == 5
    assert value(s, "cards", screen="lobby") == 6
    assert value(s, "psus_answering", screen="lobby") == 3
    assert ("ledwatch_agent_psus_answering", frozenset(
        {("agent", "pc1"), ("site", "acme"), ("screen", "hall")})) not in s  # no smart PSUs
    assert value(s, "last_seq", screen="lobby") == 40
    assert value(s, "snapshots_published_total") == 6
    assert value(s, "events_published_total") == 1
    assert value(s, "messages_sent_total") == 9
    assert value(s, "outbox_depth") == 3
    assert value(s, "outbox_bytes") == 9_000
    assert value(s, "outbox_quota_bytes") == 1_000
    assert value(s, "outbox_dropped_total") == 2
    assert value(s, "outbox_corrupt_total") == 1
    assert value(s, "mqtt_connected") == 1 and value(s, "mqtt_routed") == 0
    assert value(s, "mqtt_inflight") == 1
    assert value(s, "mqtt_reconnects_total") == 2  # connects after the first
    assert value(s, "mqtt_disconnects_total") == 2
    assert value(s, "mqtt_unrouted_total") == 4
    assert value(s, "mqtt_refused_total") == 0


def test_without_a_publisher_only_the_outbox_and_screens_are_shown() -> None:
    text = render({**STATUS, "mqtt": None})
    assert "ledwatch_agent_mqtt_" not in text and "snapshots_published" not in text
    assert "ledwatch_agent_outbox_depth{" in text


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_server_answers_metrics_and_404_and_survives_a_bad_render() -> None:
    calls = {"n": 0}

    def text() -> str:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("bug")
        return "ledwatch_agent_x 1\n"

    server = MetricsServer("127.0.0.1", 0, text).start()
    try:
        assert get(server.url) == (200, "text/plain; version=0.0.4; charset=utf-8",
                                   "ledwatch_agent_x 1\n")  # fmt: skip
        assert get(server.url)[0] == 500
        assert get(server.url)[0] == 200  # still serving
        assert get(server.url.replace("/metrics", "/nope"))[0] == 404
    finally:
        server.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_metrics_settings() -> None:
    base = {"agent": {"id": "pc1", "site": "acme"},
            "screens": [{"id": "lobby", "controller": {"driver": "novastar"}}]}  # fmt: skip
    settings = parse_settings(base)
    assert (settings.metrics.port, settings.metrics.host) == (0, "127.0.0.1")  # off by default
    with pytest.raises(ConfigError, match=r"^metrics\.port: Input should be less than"):
        parse_settings({**base, "metrics": {"port": 70000}})
    with pytest.raises(ConfigError, match=r"^metrics\.bind: unknown key"):
        parse_settings({**base, "metrics": {"bind": "0.0.0.0"}})


def test_a_polling_agent_serves_its_health(
    tmp_path: Path, emulator: Any, mosquitto: Any, subscriber: Any, free_port: Any
) -> None:
    _, url = emulator()
    site = "metrics-live"
    sub = subscriber(mosquitto.host, mosquitto.port, [f"ledwatch/v1/{site}/#"])
    port = free_port()
    config = write_agent_config(tmp_path, site, {"lobby": url}, mosquitto.host, mosquitto.port)
    config.write_text(config.read_text() + f"[metrics]\nport = {port}\n", "utf-8")
    agent = Agent(load_settings(config))
    agent.start()
    try:
        sub.wait_for(lambda m: sum(r.topic.endswith("/telemetry") for r in m) >= 3)
        deadline = time.monotonic() + 10
        while True:
            status, kind, text = get(f"http://127.0.0.1:{port}/metrics")
            samples = parse(text)
            key = ("ledwatch_agent_snapshots_published_total",
                   frozenset({("agent", "pc1"), ("site", site)}))  # fmt: skip
            if samples.get(key, 0) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status == 200 and kind.startswith("text/plain; version=0.0.4")
        assert samples[key] >= 3
        where = {("agent", "pc1"), ("site", site), ("screen", "lobby")}
        assert samples[("ledwatch_agent_link_state", frozenset({*where, ("state", "up")}))] == 1
        assert samples[("ledwatch_agent_cards_online", frozenset(where))] == 6
        assert samples[("ledwatch_agent_polls_total", frozenset(where))] >= 3
        assert 0 < samples[("ledwatch_agent_poll_duration_seconds", frozenset(where))] < 5
        common = frozenset({("agent", "pc1"), ("site", site)})
        assert samples[("ledwatch_agent_mqtt_connected", common)] == 1
        assert ("ledwatch_agent_outbox_depth", common) in samples
    finally:
        agent.stop()
    with pytest.raises(OSError):  # the port closes with the agent
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_a_taken_metrics_port_is_a_one_line_config_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_agent_config(tmp_path, "metrics-taken", {"lobby": "tcp://127.0.0.1:1"})
        config.write_text(config.read_text() + f"[metrics]\nport = {port}\n", "utf-8")
        proc = subprocess.run(
            [sys.executable, "-m", "ledwatch.cli", "agent", "--config", str(config)],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.endswith(
        f"ledwatch agent: metrics: cannot listen on 127.0.0.1:{port}: Address already in use: "
        "pick another metrics.port (or 0 to turn the endpoint off)\n"
    )
    assert "Traceback" not in proc.stderr
