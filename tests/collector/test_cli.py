"""`ledwatch collector` as a real process: config check, run with the API, clean SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
from datapath_helpers import make_snapshot
from paho.mqtt.enums import CallbackAPIVersion

from collector.cli import main
from ledwatch.contract import telemetry_topic

ROOT = Path(__file__).resolve().parents[2]


def test_check_config_ok_and_bad(tmp_path: Path, capsys: Any) -> None:
    assert main(["--config", str(ROOT / "collector" / "sample.toml"), "--check-config"]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[influx]\nflush_interval_ms = -1\n")
    assert main(["--config", str(bad), "--check-config"]) == 2
    assert "influx.flush_interval_ms" in capsys.readouterr().err


def test_runs_serves_api_and_stops_on_sigterm(
    tmp_path: Path, mosquitto: Any, free_port: Any
) -> None:
    tag = uuid.uuid4().hex[:8]
    site = f"cli-{tag}"
    api_port = free_port()
    token = "admin-token-" + tag
    config = tmp_path / "collector.toml"
    config.write_text(f"""
status_interval_s = 0.5
[mqtt]
host = "127.0.0.1"
port = {mosquitto.port}
client_id = "cli-{tag}"
share_group = "cli{tag}"
[influx]
output = "local"
local_path = "{tmp_path / 'telemetry.db'}"
flush_interval_ms = 100
[database]
url = "sqlite:///{tmp_path / 'db' / 'tickets.db'}"
[api]
port = {api_port}
tokens = [{{token = "{token}", role = "admin"}}]
""")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ledwatch.cli", "collector", "--config", str(config)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        base = f"http://127.0.0.1:{api_port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "API did not come up healthy"
            time.sleep(0.1)
        pub = mqtt.Client(CallbackAPIVersion.VERSION2)
        pub.connect(mosquitto.host, mosquitto.port)
        pub.loop_start()
        for seq in (1, 2, 3):  # module_fault opens once it held for 3 polls
            doc = make_snapshot(site=site, seq=seq, ts=1_763_892_000_000 + seq * 2000)
            doc["cards"]["module_faults"][0] = 2
            pub.publish(telemetry_topic(site, "scr1"), orjson.dumps(doc), qos=1).wait_for_publish(5)
        pub.loop_stop()
        pub.disconnect()
        deadline = time.monotonic() + 10
        while "ledwatch_collector_stored_points_total 0" in (
            text := httpx.get(f"{base}/metrics").text
        ):
            assert time.monotonic() < deadline, text
            time.sleep(0.1)
        deadline = time.monotonic() + 10
        while 'ledwatch_collector_received_total{kind="telemetry"} 3' not in (
            text := httpx.get(f"{base}/metrics").text
        ):
            assert time.monotonic() < deadline, text
            time.sleep(0.1)
        auth = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 10
        while True:
            tickets = httpx.get(f"{base}/api/v1/tickets", params={"site": site}, headers=auth)
            assert tickets.status_code == 200, tickets.text
            if "module_fault" in tickets.text:
                break
            assert time.monotonic() < deadline, tickets.text
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "status: broker=up" in out and "stopped:" in out


def test_unwritable_folders_are_one_line_naming_the_key(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "in-the-way").write_text("a file, not a folder")
    cases = {
        "database.url": f'[database]\nurl = "sqlite:///{tmp_path}/in-the-way/tickets.db"\n',
        "influx.local_path": (f'[influx]\noutput = "local"\n'
                              f'local_path = "{tmp_path}/in-the-way/telemetry.db"\n'),
        "reports.folder": f'[reports]\nfolder = "{tmp_path}/in-the-way/reports"\n',
    }
    for key, section in cases.items():
        ok_db = "" if key == "database.url" else (
            f'[database]\nurl = "sqlite:///{tmp_path}/db/tickets.db"\n')
        cfg = tmp_path / f"{key}.toml"
        cfg.write_text('[influx]\noutput = "none"\n' * (key != "influx.local_path")
                       + ok_db + section)
        for mode in (["--check-config"], []):
            assert main(["--config", str(cfg), *mode]) == 2, key
            err = capsys.readouterr().err
            assert err.startswith(f"ledwatch collector: {key} {tmp_path}/in-the-way"), err
            assert f"set {key}" in err and err.count("\n") == 1, err
