"""`ledwatch replay`: the collector's pipeline over recorded telemetry, as a user runs it
(a subprocess), with clocks that follow the snapshots' `ts`."""

from __future__ import annotations

import copy
import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from datapath_helpers import make_snapshot

from collector.api.app import ApiContext, create_app
from collector.state import ScreenDirectory
from collector.tickets import TicketService
from ledwatch.contract import status_topic, telemetry_topic

sys.path.insert(0, str(Path(__file__).resolve().parent / "api"))
from api_server import serve

T0 = 1_767_225_600_000  # 2026-01-01T00:00Z
POLL = 60_000
ROOT = Path(__file__).resolve().parents[2]


def replay(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledwatch.cli", "replay", *map(str, args)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )


def month(screens: int = 3, polls: int = 120) -> list[dict[str, Any]]:
    """`polls` minutes of `screens` screens, in time order, with a few faults."""
    docs = []
    for k in range(polls):
        for s in range(screens):
            d = make_snapshot(screen=f"scr{s}", agent=f"pc{s}", seq=k + 1, ts=T0 + k * POLL,
                              n_cards=8)
            if s == 0 and 30 <= k < 50:
                d["cards"]["module_faults"][3] = 2
            if s == 1 and 60 <= k < 70:
                d["controller"]["signal_ok"] = False
            if s == 2 and k == 40:
                d["cards"]["temp_c"][1] = 120.0  # a one-poll glitch: nothing
            if s == 2 and 80 <= k < 95:
                continue  # the agent of scr2 is silent for 15 minutes
            docs.append(d)
    return docs


def write(path: Path, docs: list[dict[str, Any]], wrap_every: int = 2,
          extra: list[bytes] = ()) -> Path:  # type: ignore[assignment]
    lines = [orjson.dumps({"topic": status_topic("s1", "pc0"),
                           "payload": {"state": "online", "ts": T0}})]
    for i, d in enumerate(docs):
        if i % wrap_every:
            lines.append(orjson.dumps(d))
        else:
            lines.append(orjson.dumps({"topic": telemetry_topic(d["site"], d["screen"]),
                                       "payload": d}))
    lines[len(lines) // 2:len(lines) // 2] = list(extra)
    data = b"\n".join(lines) + b"\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def config(tmp_path: Path, text: str = '[influx]\noutput = "none"\n') -> Path:
    path = tmp_path / "collector.toml"
    path.write_text(text)
    return path


def test_replays_both_line_forms_and_reports_bad_lines(tmp_path: Path) -> None:
    docs = month()
    half = len(docs) // 2
    bad = [b"not json", b'{"schema": "ledwatch.telemetry/1", "site": "s1"}',
           b'{"topic": "elsewhere/x", "payload": {}}', b"[1, 2]"]
    first = write(tmp_path / "a.jsonl.gz", docs[:half], extra=bad)
    second = write(tmp_path / "b.jsonl", docs[half:])
    out = tmp_path / "tickets.json"
    run = replay("--config", config(tmp_path), "--tickets-out", out, first, second)
    assert run.returncode == 0, run.stderr
    text = run.stdout
    assert f"replay: {len(docs):,} snapshots, 0 events, 2 status messages" in text
    assert "dead letters: 4 (json 2, schema 1, topic 1)" in text
    assert "a.jsonl.gz:" in text and ": json: not valid JSON" in text
    tickets = json.loads(out.read_text())
    got = sorted((t["screen"], t["component"], t["fault"]) for t in tickets)
    assert got == [("-", "agent/pc2", "agent_offline"), ("scr0", "card/c3", "module_fault"),
                   ("scr1", "controller", "signal_lost")]
    # every clock followed ts: the module fault opened on its 3rd bad poll
    mod = next(t for t in tickets if t["fault"] == "module_fault")
    assert mod["opened_ms"] == T0 + 32 * POLL
    assert mod["response_due_ms"] == mod["opened_ms"] + 20 * 60_000
    agent = next(t for t in tickets if t["fault"] == "agent_offline")
    assert T0 + 80 * POLL < agent["opened_ms"] < T0 + 85 * POLL  # silence, not wall clock
    assert agent["state"] == "verifying"  # back at minute 95
    assert mod["state"] == "verifying" and mod["history"][0]["step"] == "open"


def test_tickets_out_is_what_the_api_returns(tmp_path: Path) -> None:
    db = tmp_path / "tickets.db"
    out = tmp_path / "tickets.json"
    path = write(tmp_path / "t.jsonl", month())
    run = replay("--config", config(tmp_path), "--database", f"sqlite:///{db}",
                 "--tickets-out", out, "--workers", "0", path)
    assert run.returncode == 0, run.stderr
    exported = json.loads(out.read_text())
    svc = TicketService(f"sqlite:///{db}")
    ctx = ApiContext(tickets=svc, screens=ScreenDirectory(), health=dict, metrics_text=str,
                     tokens={"viewer-token-0001": "viewer"})
    try:
        with serve(create_app(ctx)) as url:
            auth = {"Authorization": "Bearer viewer-token-0001"}
            for ticket in exported:
                live = httpx.get(f"{url}/api/v1/tickets/{ticket['id']}", headers=auth)
                assert live.status_code == 200
                body = live.json()
                # allowed steps and spare_due depend on "now": compare the rest
                for key in ("spare_due",):
                    body.pop(key), ticket.pop(key)
                assert body == ticket
    finally:
        svc.close()


def test_the_same_tickets_in_process_and_with_workers(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl.gz", month(screens=4, polls=200))
    outs = []
    for workers in ("0", "2"):
        out = tmp_path / f"t{workers}.json"
        run = replay("--config", config(tmp_path), "--tickets-out", out, "--workers", workers,
                     "--quiet", path)
        assert run.returncode == 0, run.stderr
        outs.append(json.loads(out.read_text()))
    assert outs[0] == outs[1] and len(outs[0]) >= 3


def test_schedules_and_maintenance_windows_of_the_config_apply(tmp_path: Path) -> None:
    docs = month()
    text = '''[influx]
output = "none"
[[detect.sites.s1.screens.scr1.schedule]]
off = "00:55-02:00"
[[maintenance]]
site = "s1"
screen = "scr0"
start = 2026-01-01T00:20:00Z
end = 2026-01-01T00:40:00Z
who = "J. Smith"
why = "module swap"
'''
    out = tmp_path / "tickets.json"
    run = replay("--config", config(tmp_path, text), "--tickets-out", out,
                 write(tmp_path / "t.jsonl", docs))
    assert run.returncode == 0, run.stderr
    tickets = json.loads(out.read_text())
    faults = {(t["screen"], t["fault"]): t for t in tickets}
    assert ("scr1", "signal_lost") not in faults  # dark on schedule
    # the module fault began inside the window and was still there when it ended
    mod = faults[("scr0", "module_fault")]
    assert mod["opened_ms"] == T0 + 40 * POLL and "maintenance window" in mod["detail"]


def test_stores_per_the_config_output_at_the_recorded_time(
    tmp_path: Path, influxdb1: Any
) -> None:
    """Into a real InfluxDB 1.6 with auth on; points carry the snapshots' own ts."""
    docs = [d for d in month(screens=1, polls=10)]
    for d in docs:
        d["site"] = "replay-store"
    (tmp_path / "pw").write_text(influxdb1.password)
    text = f'''[influx]
output = "v1"
url = "{influxdb1.url}"
database = "{influxdb1.database}"
username = "{influxdb1.username}"
password_file = "{tmp_path / 'pw'}"
'''
    run = replay("--config", config(tmp_path, text), write(tmp_path / "t.jsonl", docs))
    assert run.returncode == 0, run.stderr + run.stdout
    assert "stored points: " in run.stdout and "stored points: 0;" not in run.stdout
    rows = influxdb1.rows("SELECT seq FROM controller WHERE site = 'replay-store'")
    assert [r["seq"] for r in rows] == list(range(1, 11))
    assert rows[0]["time"] in (T0, T0 * 1_000_000, "2026-01-01T00:00:00Z")
    skipped = replay("--config", config(tmp_path, text), "--no-store",
                     write(tmp_path / "u.jsonl", copy.deepcopy(docs)))
    assert "stored points: 0;" in skipped.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--config", "nope.toml", "x"], "cannot read"),
        (["--config", "{cfg}", "missing.jsonl"], "no such file: missing.jsonl"),
        (["--config", "{bad}", "{data}"], "detect.rules.voltage_lo: unknown rule"),
        (["--config", "{cfg}", "--workers", "-1", "{data}"], "--workers must be >= 0"),
    ],
)
def test_bad_input_is_a_message_not_a_traceback(tmp_path: Path, args: list[str],
                                                says: str) -> None:
    cfg = config(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text("[detect.rules.voltage_lo]\nclear = 4.8\n")
    data = write(tmp_path / "d.jsonl", month(screens=1, polls=3))
    run = replay(*[a.format(cfg=cfg, bad=bad, data=data) for a in args])
    assert run.returncode == 2, run.stdout
    assert says in run.stderr and "Traceback" not in run.stderr
