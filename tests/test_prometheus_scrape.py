"""A real Prometheus (Debian's, started by scripts/services.py) scrapes both long-running
processes: `ledwatch agent` (a child process with `[metrics] port` on, polling the
NovaStar emulator and publishing through the real Mosquitto) and the collector's
`/metrics` (the collector and its API in-process, as tests/test_end_to_end.py runs
them). Then the numbers are read back through Prometheus' HTTP API, as a Grafana
panel or an alert rule would see them. Bounded: the wait is at most 45 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from services import Prometheus, ServiceError

from collector.api.app import ApiContext
from collector.service import Collector, serve_api
from collector.settings import settings_from_dict
from collector.tickets.service import TicketService
from firmware_protocols.emulators.novastar import NovastarEmulator
from ledwatch import __version__

ROOT = Path(__file__).resolve().parent
SITE = "prom-site"
SCREEN = "lobby"


def test_prometheus_config_scrapes_only_the_given_targets(tmp_path: Path) -> None:
    server = Prometheus(tmp_path, targets={"agent": "http://127.0.0.1:9464/metrics",
                                           "api": "https://127.0.0.1:8000/x/metrics"})  # fmt: skip
    server._prepare()
    config = json.loads(server.conf_path.read_text())
    assert set(config) == {"global", "scrape_configs"}  # no remote_write/read, no alerting
    assert config["global"]["scrape_interval"] == "1s"
    agent, api = config["scrape_configs"]
    assert agent["static_configs"] == [{"targets": ["127.0.0.1:9464"]}]
    assert (api["scheme"], api["metrics_path"]) == ("https", "/x/metrics")
    server.set_targets({"bad": "127.0.0.1:9464"})
    with pytest.raises(ServiceError, match="not an http"):
        server._prepare()


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.5)


@pytest.fixture
def collector_metrics_url(
    mosquitto: Any, tmp_path: Path, free_port: Callable[[], int]
) -> Iterator[tuple[str, Collector]]:
    settings = settings_from_dict({
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port,
                 "client_id": f"prom-collector-{os.getpid()}", "share_group": "prom"},
        "influx": {"output": "local", "local_path": str(tmp_path / "telemetry.db"),
                   "flush_interval_ms": 100},
        "database": {"url": f"sqlite:///{tmp_path / 'tickets.db'}"},
    })  # fmt: skip
    tickets = TicketService(settings.database.url, settings.contracts)
    collector = Collector(settings, tickets=tickets)
    collector.start()
    api = None
    try:
        assert collector.wait_connected(10)
        api = serve_api(ApiContext(tickets=tickets, screens=collector.screens,
                                   health=collector.health, metrics_text=collector.metrics_text,
                                   tokens={}), "127.0.0.1", free_port())  # fmt: skip
        yield f"{api.url}/metrics", collector
    finally:
        if api is not None:
            api.stop()
        collector.stop()
        tickets.close()


@pytest.fixture
def agent_metrics_url(
    mosquitto: Any, tmp_path: Path, free_port: Callable[[], int]
) -> Iterator[str]:
    """`ledwatch agent` with its metrics port on, polling an emulated screen every 0.5 s."""
    emu = NovastarEmulator(ports=2, cards=3, psus=2)
    host, port = emu.serve_tcp("127.0.0.1", 0)
    metrics_port = free_port()
    config = tmp_path / "agent" / "agent.toml"
    config.parent.mkdir()
    config.write_text(f"""
[agent]
id = "pc1"
site = "{SITE}"
poll_interval_s = 0.5
status_interval_s = 5
[mqtt]
host = "{mosquitto.host}"
port = {mosquitto.port}
keepalive_s = 5
[metrics]
port = {metrics_port}
[[screens]]
id = "{SCREEN}"
[screens.controller]
driver = "novastar"
url = "tcp://{host}:{port}"
ports = 2
cards_per_port = 3
psus_per_cabinet = 2
""", "utf-8")
    log = (tmp_path / "agent" / "agent.out").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ledwatch.cli", "agent", "--config", str(config)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT.parent)},
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{metrics_port}/metrics"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        emu.stop()


@pytest.mark.timeout(120)
def test_prometheus_scrapes_agent_and_collector(
    prometheus: Any, agent_metrics_url: str, collector_metrics_url: tuple[str, Collector]
) -> None:
    collector_url, collector = collector_metrics_url
    prom = prometheus({"agent": agent_metrics_url, "collector": collector_url})

    def one(expr: str) -> float | None:
        result = prom.query(expr)
        return result[0]["value"] if result else None

    def both_up_with_data() -> bool:
        health = prom.targets_health()
        return (
            all(health.get(job, {}).get("health") == "up" for job in ("agent", "collector"))
            and (one(f'ledwatch_agent_snapshots_published_total{{site="{SITE}"}}') or 0) > 0
            and (one("ledwatch_collector_stored_points_total") or 0) > 0
        )

    try:
        wait_for(both_up_with_data, 45, "both targets up, with published and stored data")
    except AssertionError:
        raise AssertionError(f"targets: {prom.targets_health()}\nprometheus log:\n{prom.log()}"
                             ) from None  # fmt: skip

    assert one('up{job="agent"}') == 1 and one('up{job="collector"}') == 1
    published = one(f'ledwatch_agent_snapshots_published_total{{site="{SITE}",agent="pc1"}}')
    assert published is not None and published > 0
    # Labels as exposed survive the scrape (Prometheus adds job and instance).
    [link] = prom.query(f'ledwatch_agent_link_state{{site="{SITE}",screen="{SCREEN}",state="up"}}')
    assert link["value"] == 1 and link["metric"]["job"] == "agent"
    assert one(f'ledwatch_agent_cards_online{{site="{SITE}",screen="{SCREEN}"}}') == 6
    depth = one(f'ledwatch_agent_outbox_depth{{site="{SITE}"}}')
    assert depth is not None and depth >= 0
    assert one(f'ledwatch_agent_outbox_bytes{{site="{SITE}"}}') is not None
    assert one(f'ledwatch_agent_outbox_dropped_total{{site="{SITE}"}}') == 0
    assert one(f'ledwatch_agent_mqtt_connected{{site="{SITE}"}}') == 1
    assert one(f'ledwatch_agent_build_info{{site="{SITE}",version="{__version__}"}}') == 1
    polls = one(f'ledwatch_agent_polls_total{{site="{SITE}",screen="{SCREEN}"}}')
    assert polls is not None and polls >= published - 1  # published snapshots were polled
    stored = one("ledwatch_collector_stored_points_total")
    assert stored is not None and stored > 0
    # What the collector stored is what the agent sent: its seq accounting has the stream.
    assert (one("ledwatch_collector_seq_streams") or 0) >= 1
    assert int(str(collector.metrics.snapshot()["stored_points"])) >= stored  # scraped as is
