"""`ledwatch bench fleet`: a tiny whole run on the real servers, and its parts.

The encoder is checked against the collector the way the benchmark does it, through
public doors only: a snapshot goes through a real `ledwatch collector` process and its
`ledwatch_collector_stored_points_total` must grow by what the encoder makes of it; on
VictoriaMetrics the stored series and samples of both must be the same too.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import random
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ledwatch.bench import main
from ledwatch.bench.fleet import publisher, report, runner
from ledwatch.bench.fleet.collectors import CollectorProc, M, Sample
from ledwatch.bench.fleet.drain import check_tickets, measured_window
from ledwatch.bench.fleet.lineproto import CARD, PSU, batches, by_screen, snapshot_points
from ledwatch.bench.fleet.nodered import function_js
from ledwatch.bench.fleet.payloads import MODULE_FAULT, PSU_FAILED, Fleet, FleetSpec
from ledwatch.bench.fleet.publisher import FleetClient, publish_backlog
from ledwatch.bench.fleet.servers import Stack, influx_write_url, services_module
from ledwatch.bench.fleet.stats import (
    RateSearch,
    judge_hold,
    metric_sum,
    parse_metrics,
    percentile,
)
from ledwatch.bench.fleet.writers import write_all
from ledwatch.contract import telemetry_topic, validate_telemetry


def need(*binaries: str) -> None:
    svc = services_module()
    missing = [b for b in binaries if svc.binary(b) is None]
    if not missing:
        return
    msg = f"{', '.join(missing)} not installed; run `make test` (scripts/services.py install)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {msg}", pytrace=False)
    pytest.skip(msg)


# -- the whole command, tiny -------------------------------------------------------------------


@pytest.mark.services
def test_tiny_run_prints_every_row_and_writes_the_doc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    need("mosquitto", "influxd")
    doc = tmp_path / "performance.md"
    doc.write_text("old content that is replaced\n")
    rc = main(["fleet", "--output", "v1", "--screens", "2", "--cards", "4",
               "--snapshots", "300", "--repeat", "1", "--live-s", "3", "--collectors", "1",
               "--doc", str(doc)])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    table = [line for line in out.splitlines() if line.startswith("| ")]
    labels = [line.split("|")[1].strip() for line in table[2:]]
    assert labels == list(report.ROW_LABELS)
    measured = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in table[2:]}
    for label in ("ceiling, 1 writer", "ceiling (best of 1/2/4)", "drain, 1 collector",
                  "drain / ceiling", "live rate held", "fault -> ticket p50 / p99",
                  "fault -> ticket, fixed rate", "collector CPU per 1,000 points",
                  "collector peak RSS", "encoder check"):
        assert not measured[label].startswith("not "), (label, measured[label])  # fmt: skip
    assert measured["drain, 2 collectors"] == "not measured"
    assert "1: 2/2" in measured["tickets vs faults injected"]  # dead module + failed PSU
    assert "lost 0 of 300" in out
    text = doc.read_text()
    assert "old content" not in text
    assert "<!-- fleet:v1 -->" in text and "--snapshots 300" in text and "nproc" in text
    assert "| ceiling, 1 writer" in text


# -- the encoder against the collector ---------------------------------------------------------


def _nulls(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy with gaps, as agents send them: a card that did not answer (every reading
    null: no point), a PSU with no readings, one reading missing elsewhere."""
    doc = copy.deepcopy(doc)
    for name, _ in CARD:
        if name in doc["cards"]:
            doc["cards"][name][1] = None
    for name, _ in PSU:
        doc["psus"][name][2] = None
    doc["cards"]["temp_c"][0] = None
    doc["env"]["humidity_pct"] = None
    doc["controller"]["temp_c"] = None
    return doc


@pytest.mark.services
def test_encoder_makes_the_points_the_collector_stores(tmp_path: Path) -> None:
    need("mosquitto", "victoria-metrics")
    spec = FleetSpec(screens=2, cards=6, interval_s=5)
    stack = Stack(tmp_path, "v2", max_queued=1000, postgres=False).start()
    proc = None
    client = None
    try:
        coll, plain = Fleet(spec, "enc-coll", faults=False), Fleet(spec, "enc-plain", faults=False)
        now = int(time.time() * 1000)
        docs = [coll.snapshot(0, now - 10_000), _nulls(coll.snapshot(1, now - 9_000))]
        ours = [snapshot_points(validate_telemetry(d)) for d in docs]
        assert len(ours[0]) == 1 + 6 + 12 + 1 + 1
        assert len(ours[1]) == len(ours[0]) - 2  # the silent card and the silent PSU
        # Without the collector's own series (a `collector` point every 10 s, `kpi`),
        # which would land in stored_points_total beside the snapshots' points.
        quiet = "ops_interval_s = 0\nkpi_interval_s = 0\nopen_ticket_interval_s = 0\n"
        proc = CollectorProc(stack, tmp_path, "enc", "g-enc", stack.ticket_db_url("enc"),
                             influx_extra=quiet)
        proc.start()
        time.sleep(0.5)
        client = FleetClient(stack.broker.host, stack.broker.port, "enc-agents")
        before = metric_sum(proc.metrics(), M + "stored_points_total")
        _, _, unrouted = publish_backlog(client, [(telemetry_topic(d["site"], d["screen"]),
                                                   json.dumps(d).encode()) for d in docs])
        assert unrouted == 0
        deadline = time.monotonic() + 30
        while (s := proc.sample()).received < 2 or s.pending:
            assert time.monotonic() < deadline, proc.log_tail()
            time.sleep(0.1)
        stored = metric_sum(proc.metrics(), M + "stored_points_total") - before
        assert stored == sum(len(p) for p in ours)
        # The same lines: what the collector stored equals what the plain writer stores.
        twin = [{**d, "site": plain.site} for d in docs]
        bodies = batches(twin)
        write_all(influx_write_url(stack.db_url, "v2"), bodies, sum(len(p) for p in ours), 1)
        assert stack.stored_series(coll.site) == stack.stored_series(plain.site) != {}
    finally:
        if client is not None:
            client.close()
        if proc is not None:
            proc.close()
        stack.close()


@pytest.mark.services
def test_publisher_keeps_its_unacknowledged_messages_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """paho's 16-bit message ids collide past 65,535 outstanding ("Message queue full",
    seen when a tiny fleet's live probes outran the broker): the publisher waits first."""
    need("mosquitto", "victoria-metrics")
    monkeypatch.setattr(publisher, "MAX_UNACKED", 20)
    stack = Stack(tmp_path, "v2", max_queued=1000, postgres=False).start()
    client = None
    try:
        client = FleetClient(stack.broker.host, stack.broker.port, "bound-agents")
        outstanding: list[int] = []
        real = client.client.publish

        def counting(*args: Any, **kwargs: Any) -> Any:
            assert client is not None
            outstanding.append(client.published - client.acked)
            return real(*args, **kwargs)

        monkeypatch.setattr(client.client, "publish", counting)
        topic = telemetry_topic("bound", "s0")
        n, _, _ = publish_backlog(client, ((topic, b"{}") for _ in range(2_000)))
        assert n == 2_000 and client.acked >= 2_000
        assert 1 < max(outstanding) <= 20
    finally:
        if client is not None:
            client.close()
        stack.close()


@pytest.mark.services
def test_db_cpus_keeps_the_server_and_the_rest_apart(tmp_path: Path) -> None:
    """--db-cpus: the database server runs on its CPUs only, the broker and whatever the
    benchmark starts later on the others; closing gives this process its CPUs back."""
    need("mosquitto", "victoria-metrics")
    mine = frozenset(os.sched_getaffinity(0))
    if len(mine) < 2:
        pytest.skip("one CPU: nothing to split")
    db = frozenset({min(mine)})
    stack = Stack(tmp_path, "v2", max_queued=1000, postgres=False, db_cpus=db).start()

    def allowed(pid: int) -> frozenset[int]:
        return frozenset(os.sched_getaffinity(pid))

    try:
        assert stack.victoria is not None
        assert allowed(stack.victoria._proc.pid) == db
        assert allowed(stack.broker._proc.pid) == mine - db
        assert allowed(0) == mine - db  # collectors and writers started from here
        assert stack.cpu_note() == (f"database server on CPU {min(mine)}, everything else "
                                    "(broker, collectors, writers, Node-RED) on CPU "
                                    + ",".join(str(c) for c in sorted(mine - db)))
    finally:
        stack.close()
    assert allowed(0) == mine


@pytest.mark.services
def test_settle_db_waits_while_the_server_works(tmp_path: Path) -> None:
    """Each phase starts on a server at rest: `settle_db` returns after one quiet window
    when nothing runs, waits while writes keep the server busy, and gives up at max_s."""
    need("mosquitto", "victoria-metrics")
    stack = Stack(tmp_path, "v2", max_queued=1000, postgres=False).start()
    try:
        assert stack.settle_db(window_s=0.2, max_s=5.0) < 1.0  # at rest: one window
        fleet = Fleet(FleetSpec(screens=2, cards=50), "settle")
        docs = [doc for _, _, doc in fleet.backlog(400, int(time.time() * 1000))]
        bodies = batches(docs, 5000)
        points = sum(len(snapshot_points(d)) for d in docs)
        url = influx_write_url(stack.db_url, "v2")
        busy_until = time.monotonic() + 2.5

        def busy() -> None:
            while time.monotonic() < busy_until:
                write_all(url, bodies, points, 2, {"Authorization": "Token unused"})

        writer = threading.Thread(target=busy)
        writer.start()
        try:
            time.sleep(0.3)
            assert stack.settle_db(window_s=0.2, max_s=0.5) < 1.0  # busy, but capped
            started = time.monotonic()
            waited = stack.settle_db(window_s=0.2, max_s=20.0)
        finally:
            writer.join()
        assert waited >= busy_until - started - 0.2  # it waited for the writes to end
        assert waited < 20.0
    finally:
        stack.close()


def test_nodered_function_makes_the_same_points() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    doc = _nulls(Fleet(FleetSpec(screens=1, cards=3), "nr-check").snapshot(0, 1_700_000_000_000))
    script = ("const msg = {payload: " + json.dumps(doc) + "};\n"
              "const out = (function(msg) {" + function_js() + "})(msg);\n"
              "console.log(JSON.stringify(out.payload));")  # fmt: skip
    res = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    theirs = json.loads(res.stdout)

    def key(measurement: str, tags: dict[str, str], fields: dict[str, Any]) -> str:
        return f"{measurement},{sorted(tags.items())},{sorted(fields)}"

    ours = []
    for line in snapshot_points(doc):
        head, fields, _ = line.split(" ")
        measurement, *tags = head.split(",")
        ours.append(key(measurement, dict(t.split("=") for t in tags),
                        {f.split("=")[0]: 1 for f in fields.split(",")}))  # fmt: skip
    assert sorted(ours) == sorted(key(p["measurement"], p["tags"], p["fields"]) for p in theirs)
    assert all(p["timestamp"] == doc["ts"] for p in theirs)


# -- the fleet ---------------------------------------------------------------------------------


def test_fleet_snapshots_follow_the_schema_and_carry_the_faults() -> None:
    fleet = Fleet(FleetSpec(screens=7, cards=12, interval_s=10), "fleet-check")
    assert {(f.screen, f.fault) for f in fleet.faults} == {
        ("s000", MODULE_FAULT), ("s001", PSU_FAILED), ("s005", MODULE_FAULT),
        ("s006", PSU_FAILED)}  # fmt: skip
    backlog = list(fleet.backlog(30, end_ms=1_700_000_000_000))
    assert len(backlog) == 30
    docs = [validate_telemetry(json.loads(p)) for _, p, _ in backlog]
    assert max(d["ts"] for d in docs) == 1_700_000_000_000
    by_screen: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by_screen.setdefault(d["screen"], []).append(d)
    for screen_docs in by_screen.values():
        assert [d["seq"] for d in screen_docs] == list(range(1, len(screen_docs) + 1))
        assert all(b["ts"] - a["ts"] == 10_000 for a, b in itertools.pairwise(screen_docs))
    s0 = by_screen["s000"][0]
    assert sum(s0["cards"]["module_faults"]) == 1
    s1 = by_screen["s001"][0]
    assert s1["psus"]["ok"].count(False) == 1 and 0.0 in s1["psus"]["vout_v"]
    assert len(s1["psus"]["id"]) == 2 * len(s1["cards"]["id"])
    healthy = Fleet(FleetSpec(screens=7, cards=12), "fleet-check", faults=False)
    assert healthy.faults == [] and len(healthy.healthy_cards(0)) == 12
    inj = healthy.add_module_fault(0, 5)
    assert inj.component == "card/p0c5" and 5 not in healthy.healthy_cards(0)
    assert healthy.snapshot(0, 1)["cards"]["module_faults"][5] == 2


def test_encoder_rules() -> None:
    doc = Fleet(FleetSpec(screens=1, cards=2), "enc-rules").snapshot(0, 1234)
    doc["controller"]["brightness_pct"] = 80  # an integral JSON number is still a float
    lines = snapshot_points(doc)
    assert lines[0].startswith("controller,screen=s000,site=enc-rules online=true,")
    assert "brightness_pct=80.0," in lines[0] and lines[0].endswith(",seq=1i 1234")
    card = lines[1]
    assert card.startswith("card,card=p0c0,screen=s000,site=enc-rules ")
    assert "module_faults=0i" in card and "row=0i" in card and "online=true" in card
    assert [ln.split(",")[0] for ln in lines] == ["controller"] + ["card"] * 2 + ["psu"] * 4 + [
        "env", "agent"]  # fmt: skip
    bodies = batches([doc, doc, doc], size=4)
    assert [b.count(b"\n") + 1 for b in bodies] == [4, 4, 4, 4, 4, 4, 3]


def test_screen_order_groups_each_window_and_keeps_each_screens_polls_in_order() -> None:
    fleet = Fleet(FleetSpec(screens=3, cards=1), "order")
    docs = [doc for _, _, doc in fleet.backlog(12, 10_000_000)]
    assert [d["screen"] for d in docs[:6]] == ["s000", "s001", "s002"] * 2  # arrival
    grouped = by_screen(docs, 6)
    assert sorted(map(id, grouped)) == sorted(map(id, docs))
    for start in (0, 6):
        window = grouped[start:start + 6]
        assert [d["screen"] for d in window] == ["s000"] * 2 + ["s001"] * 2 + ["s002"] * 2
        assert {id(d) for d in window} == {id(d) for d in docs[start:start + 6]}
    for screen in ("s000", "s001", "s002"):
        assert [d["ts"] for d in grouped if d["screen"] == screen] == \
            [d["ts"] for d in docs if d["screen"] == screen]


# -- arithmetic --------------------------------------------------------------------------------


def test_percentile_matches_numpy_linear() -> None:
    rnd = random.Random(5)
    for n in (1, 2, 3, 10, 101):
        values = [rnd.uniform(0, 1000) for _ in range(n)]
        for q in (0, 1, 25, 50, 90, 99, 100):
            assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([7], 99) == 7
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def _search(threshold: float, start: float, max_rate: float = 1000.0) -> RateSearch:
    search = RateSearch(start=start, max_rate=max_rate, precision=0.1, max_probes=12)
    while (rate := search.next_rate()) is not None:
        search.record(rate, rate <= threshold)
    return search


@pytest.mark.parametrize("threshold,start", [(115, 40), (115, 300), (37.5, 10), (800, 799)])
def test_rate_search_brackets_the_limit(threshold: float, start: float) -> None:
    s = _search(threshold, start)
    assert s.best is not None and s.failed is not None
    assert s.best <= threshold < s.failed <= s.best * 1.1
    assert len(s.probes) <= 12


def test_rate_search_edges() -> None:
    assert _search(5000, 100).best == 1000  # held up to max_rate: stops there
    s = _search(0.5, 8)  # nothing holds, down to min_rate
    assert s.best is None and s.failed == 1.0
    few = RateSearch(start=10, max_rate=1000, max_probes=3)
    while (rate := few.next_rate()) is not None:
        few.record(rate, True)
    assert len(few.probes) == 3 and few.best == 40
    noisy = RateSearch(start=100, max_rate=1000)
    noisy.record(100, True)
    noisy.record(200, False)
    noisy.record(150, True)
    noisy.record(120, False)  # a lower rate fails after a higher one held: trust the failure
    assert noisy.best == 100 and noisy.failed == 120
    with pytest.raises(ValueError):
        RateSearch(start=0, max_rate=10)


def test_judge_hold() -> None:
    rate = 100.0
    steady = [(t * 0.5, 20 + (t % 3)) for t in range(40)]
    assert judge_hold(steady, rate).held
    growing = [(t * 0.5, 5 * t) for t in range(40)]  # +10/s = 10 % of the rate
    v = judge_hold(growing, rate)
    assert not v.held and v.growth_per_s == pytest.approx(10.0)
    slow_growth = [(t * 0.5, 30 + 2 * t) for t in range(40)]  # +4/s: a 4 % shortfall
    assert not judge_hold(slow_growth, rate).held
    spike = [(t * 0.5, 400.0 if t < 8 else 30.0) for t in range(40)]  # start-up, then drained
    assert judge_hold(spike, rate).held
    late = [(t * 0.5, 20.0) for t in range(39)] + [(19.5, 250.0)]
    assert not judge_hold(late, rate).held
    assert not judge_hold([], rate).held


def test_prometheus_text() -> None:
    text = """# HELP ledwatch_collector_received_total MQTT messages received, by kind.
# TYPE ledwatch_collector_received_total counter
ledwatch_collector_received_total{kind="telemetry"} 1500
ledwatch_collector_received_total{kind="status"} 3
ledwatch_collector_stored_points_total 454500
ledwatch_collector_last_error_info{message="write failed: a b"} 1
ledwatch_collector_pending 0.0
"""
    m = parse_metrics(text)
    assert metric_sum(m, M + "received_total") == 1503
    assert metric_sum(m, M + "received_total", 'kind="telemetry"') == 1500
    assert metric_sum(m, M + "stored_points_total") == 454500
    assert metric_sum(m, M + "pending") == 0
    assert metric_sum(m, M + "nothing") == 0
    assert m['ledwatch_collector_last_error_info{message="write failed: a b"}'] == 1


def _round(t: float, *per: tuple[float, float, float]) -> list[Sample]:
    """(received, stored_points, pending) per collector at time t."""
    return [Sample(t, r, sp, p, 0, 0, t) for r, sp, p in per]


def test_drain_window_is_while_every_collector_works() -> None:
    rounds = [_round(0, (100, 900, 10), (10, 0, 10)),
              _round(1, (300, 2900, 10), (200, 1900, 10)),
              _round(2, (500, 5000, 0), (400, 3900, 10)),  # the first is done here
              _round(3, (500, 5000, 0), (500, 5000, 0))]  # fmt: skip
    assert measured_window(rounds) == (0, 2)
    one = [_round(0, (50, 400, 10)), _round(1, (300, 2900, 10)), _round(2, (500, 5000, 0))]
    assert measured_window(one) == (0, 2)
    done_early = [_round(0, (500, 5000, 0), (10, 0, 10)), _round(1, (500, 5000, 0), (500, 5000, 0))]
    assert measured_window(done_early) == (0, 1)  # no window with all at work: the whole span


def test_ticket_check() -> None:
    fleet = Fleet(FleetSpec(screens=2, cards=4), "tickets")
    (a, b) = fleet.faults
    tickets = [{"screen": a.screen, "component": a.component, "fault": a.fault},
               {"screen": a.screen, "component": a.component, "fault": a.fault},
               {"screen": "s001", "component": "agent/pc001", "fault": "agent_offline"}]
    t = check_tickets(tickets, fleet.faults, 2.0)
    assert (t.expected, t.tickets, t.duplicates, t.missing, t.other) == (2, 2, 1, 1, 1)
    assert not t.ok and t.other_kinds == ["agent_offline on agent/pc001"]
    good = check_tickets([{"screen": f.screen, "component": f.component, "fault": f.fault}
                          for f in (a, b)], fleet.faults)  # fmt: skip
    assert good.ok and good.tickets == 2


# -- command line and docs ---------------------------------------------------------------------


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    runner.add_arguments(p)
    return p.parse_args(argv)


def test_command_line_names_the_flags_that_differ() -> None:
    assert runner.command_line(_args([])) == "ledwatch bench fleet"
    args = _args(["--output", "v2", "--collectors", "4,1", "--live-s", "30", "--with-nodered"])
    assert runner.command_line(args) == \
        "ledwatch bench fleet --output v2 --collectors 1,4 --live-s 30 --with-nodered"
    with pytest.raises(SystemExit):
        _args(["--writers", "0"])
    assert _args([]).ceiling_orders == ["arrival", "screen"]
    screen_only = _args(["--ceiling-orders", "screen"])
    assert screen_only.ceiling_orders == ["screen"]
    assert runner.command_line(screen_only) == "ledwatch bench fleet --ceiling-orders screen"
    for bad in ("", "random", "arrival,random"):
        with pytest.raises(SystemExit):
            _args(["--ceiling-orders", bad])
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > 1:
        assert runner.command_line(_args(["--db-cpus", str(cpus[0])])) == \
            f"ledwatch bench fleet --db-cpus {cpus[0]}"
    with pytest.raises(SystemExit):  # every CPU for the server leaves none for the rest
        _args(["--db-cpus", ",".join(map(str, cpus))])
    with pytest.raises(SystemExit):
        _args(["--db-cpus", "9999"])


def test_influx_settings_reach_the_collectors_config(tmp_path: Path) -> None:
    """--influx KEY=VALUE: the line lands in every collector's [influx], the collector's
    own settings check it, and the printed command line gives it back as typed."""
    from types import SimpleNamespace

    from collector.settings import load_settings
    from ledwatch.bench.fleet.collectors import config_text
    from ledwatch.errors import ConfigError

    args = _args(["--output", "v2", "--influx", "max_in_flight=2", "--influx", "retry_max_s = 7.5"])
    assert args.influx == ["max_in_flight = 2", "retry_max_s = 7.5"]
    assert runner.command_line(args) == \
        "ledwatch bench fleet --output v2 --influx max_in_flight=2 --influx retry_max_s=7.5"
    for bad in ("max_in_flight", "=2", "max in flight=2", "max_in_flight=two", "url=\"x\""):
        with pytest.raises(SystemExit):
            _args(["--influx", bad])
    stack: Any = SimpleNamespace(output="v2", db_url="http://127.0.0.1:1",
                                 broker=SimpleNamespace(host="127.0.0.1", port=1))

    def settings(extra: list[str]) -> Any:
        path = tmp_path / "collector.toml"
        path.write_text(config_text(
            stack, client_id="c", share_group="g", api_port=1, workdir=tmp_path,
            database_url="postgresql://127.0.0.1/x",
            influx_extra="".join(line + "\n" for line in extra)))
        return load_settings(path)

    influx = settings(args.influx).influx
    assert (influx.max_in_flight, influx.retry_max_s) == (2, 7.5)
    assert runner.command_line(_args(["--influx", 'x="a = b"'])) == \
        "ledwatch bench fleet --influx 'x=\"a = b\"'"  # only the key's '=' is the flag's
    with pytest.raises(ConfigError, match=r"influx\.max_in_flite: unknown option"):
        settings(_args(["--influx", "max_in_flite=2"]).influx)


def test_bad_flags_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["fleet", "--collectors", "2,4"])
    assert "must include 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fleet", "--screens", "0"])
    with pytest.raises(SystemExit):
        main(["fleet", "--influx", "max_in_flight=2", "--influx", "max_in_flight=8"])
    assert "each key once" in capsys.readouterr().err


def test_timeline_windows_are_disjoint_and_past() -> None:
    spec = FleetSpec(screens=4, cards=2, interval_s=10)
    tl = runner.Timeline(spec, snapshots=40, windows=3)
    ends = [tl.end() for _ in range(3)]
    span = 10 * 10_000
    assert all(b - a >= span for a, b in itertools.pairwise(ends))
    assert ends[-1] < time.time() * 1000
    with pytest.raises(runner.BenchError):
        tl.end()


def test_each_round_pairs_its_drain_with_its_own_ceiling() -> None:
    """A machine fast in round 1 and slow in round 2: the medians mix the two rounds
    (0.96 x), each round alone reads 0.8 x."""
    from ledwatch.bench.fleet.drain import DrainResult, TicketCheck
    from ledwatch.bench.fleet.writers import WriteResult

    def drain(points: float) -> DrainResult:
        return DrainResult(1, 10, points, 1.0, 0.1, 100.0, 10, [10],
                           TicketCheck(0, 0, 0, 0, 0, 0.0), 0.0)  # fmt: skip

    res = report.Results("v2", "VictoriaMetrics", 2, 4, 300, 15, 2, 0)
    res.ceilings = {(1, 5000, "arrival"): [WriteResult(1, 150, 1.0), WriteResult(1, 100, 1.0)],
                    (4, 5000, "screen"): [WriteResult(4, 200, 1.0), WriteResult(4, 50, 1.0)]}
    res.drains = {1: [drain(160.0), drain(80.0)]}
    assert res.round_ratios() == pytest.approx([0.8, 0.8])
    rows = {label: (measured, ratio) for label, measured, ratio, _ in report.rows(res)}
    assert rows["drain / ceiling"][0] == "0.960"  # median drain 120 / best median 125
    assert rows["drain / ceiling, each round"] == ("0.800, 0.800", "median 0.800")
    res.drains = {1: [drain(160.0)]}
    rows = {label: (measured, ratio) for label, measured, ratio, _ in report.rows(res)}
    assert rows["drain / ceiling, each round"] == ("one round", "")


def test_doc_keeps_the_other_outputs_section(tmp_path: Path) -> None:
    path = tmp_path / "performance.md"
    res = report.Results("v1", "InfluxDB", 2, 4, 300, 15, 1, 3)
    table = report.format_table(report.rows(res))
    assert table.count("\n") == len(report.ROW_LABELS) + 1
    report.write_doc(path, report.section_text(res, "cmd one", "today", {"nproc": "2"}, {},
                                               table, 60, "0.5 / 0.6"), "v1")  # fmt: skip
    res2 = report.Results("v2", "VictoriaMetrics", 2, 4, 300, 15, 1, 3)
    report.write_doc(path, report.section_text(res2, "cmd two", "today", {}, {}, table, 60,
                                               "1 / 1"), "v2")  # fmt: skip
    report.write_doc(path, report.section_text(res, "cmd three", "today", {}, {}, table, 60,
                                               "1 / 1"), "v1")  # fmt: skip
    pinned = report.Results("v2", "VictoriaMetrics", 2, 4, 300, 15, 1, 3, db_cpus=1,
                            cpu_split="database server on CPU 0, everything else on CPU 1")
    report.write_doc(path, report.section_text(pinned, "cmd four", "today", {}, {}, table, 60,
                                               "1 / 1"), report.section_key(pinned))  # fmt: skip
    text = path.read_text()
    assert text.startswith("# Performance")
    assert "cmd one" not in text and "cmd two" in text and "cmd three" in text
    assert text.index("fleet:v1") < text.index("fleet:v2") < text.index("fleet:v2-db-cpus")
    assert "cmd four" in text and "- CPUs: database server on CPU 0" in text


def test_several_collectors_are_configured_as_one_cluster(tmp_path: Path) -> None:
    """k > 1 collectors are `[cluster] members` of each other (docs/scaling.md): a plain
    share group would split each screen's snapshots round-robin across them."""
    from types import SimpleNamespace

    from collector.settings import load_settings
    from ledwatch.bench.fleet.collectors import config_text

    stack: Any = SimpleNamespace(output="v2", db_url="http://127.0.0.1:1",
                                 broker=SimpleNamespace(host="127.0.0.1", port=1))
    members = ("bench-d-c0", "bench-d-c1", "bench-d-c2")
    for given, want in ((members, list(members)), ((), [])):
        path = tmp_path / f"c{len(given)}.toml"
        path.write_text(config_text(stack, client_id="bench-d-c0", share_group="g-d",
                                    api_port=1, database_url="sqlite:///x.db",
                                    workdir=tmp_path, members=given))
        settings = load_settings(path)
        assert settings.cluster.members == want
        assert settings.cluster.route == "filter"
        assert settings.mqtt.client_id == "bench-d-c0"
