"""The collector end to end on real servers: Mosquitto -> Collector -> VictoriaMetrics.

Each test uses its own site id, client id and share group, so tests sharing the session
broker and database cannot see each other's data or persistent sessions.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from datapath_helpers import make_snapshot
from paho.mqtt.enums import CallbackAPIVersion

from collector.service import Collector, serve_api
from collector.settings import CollectorSettings
from ledwatch.contract import status_topic, telemetry_topic

NOW_MS = int(time.time() * 1000) // 1000 * 1000


def wait_for(cond: Callable[[], bool], timeout_s: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        time.sleep(0.05)


@pytest.fixture
def mosquitto(fresh_mosquitto: Callable[..., Any]) -> Any:
    """A private broker per test: a collector subscribes to every agent's retained status,
    so offline statuses other tests leave on the shared broker would add findings here."""
    return fresh_mosquitto()


@pytest.fixture
def publisher(mosquitto: Any) -> Iterator[Callable[[str, bytes], None]]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()

    def publish(topic: str, payload: bytes, retain: bool = False) -> None:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    yield publish
    client.loop_stop()
    client.disconnect()


def settings_for(
    mosquitto: Any, url: str, tag: str, protocol: str = "5", **influx: Any
) -> CollectorSettings:
    return CollectorSettings.model_validate({
        "mqtt": {
            "host": mosquitto.host, "port": mosquitto.port, "client_id": f"coll-{tag}",
            "share_group": f"g{tag}" if protocol == "5" else "", "protocol": protocol,
            "reconnect_min_s": 1, "reconnect_max_s": 2,
        },
        "influx": {"output": "v2", "url": url, "org": "ledwatch", "bucket": "ledwatch",
                   "flush_interval_ms": 100, "retry_max_s": 0.5, "timeout_ms": 2000, **influx},
        "api": {"enabled": False},
    })


def snapshot_bytes(site: str, seq: int, **kw: Any) -> bytes:
    return orjson.dumps(make_snapshot(site=site, seq=seq, ts=NOW_MS + seq * 1000, **kw))


def stored_ts(victoria: Any, site: str) -> set[int]:
    victoria.flush()
    return {t for s in victoria.export(f'controller_online{{site="{site}"}}')
            for t in s["timestamps"]}


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_valid_stored_malformed_dead_lettered(
    mosquitto: Any, victoria: Any, publisher: Callable[..., None], protocol: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    site = f"svc-{tag}"
    coll = Collector(settings_for(mosquitto, victoria.url, tag, protocol))
    coll.start()
    try:
        assert coll.wait_connected(10)
        time.sleep(0.2)  # the SUBSCRIBE is sent right after CONNACK
        for seq in range(1, 6):
            publisher(telemetry_topic(site, "scr1"), snapshot_bytes(site, seq))
        publisher(telemetry_topic(site, "scr1"), b"{broken json")
        bad = make_snapshot(site=site, seq=9)
        bad["cards"]["online"][0] = "yes"
        publisher(telemetry_topic(site, "scr1"), orjson.dumps(bad))
        publisher(telemetry_topic(site, "other"), snapshot_bytes(site, 10))  # topic mismatch
        publisher(status_topic(site, "a1"), b'{"state": "online"}')

        def done() -> bool:
            s = coll.metrics.snapshot()
            dead = s["dead_letters"]
            assert isinstance(dead, dict)
            return sum(dead.values()) == 3 and s["pending"] == 0 and s["stored_points"] != 0

        wait_for(done, what="3 dead letters and everything acked")
        wait_for(lambda: len(stored_ts(victoria, site)) == 5, what="5 snapshots in VM")
        assert stored_ts(victoria, site) == {NOW_MS + seq * 1000 for seq in range(1, 6)}
        snap = coll.metrics.snapshot()
        assert snap["dead_letters"] == {"json": 1, "schema": 1, "mismatch": 1}
        assert isinstance(snap["received"], dict) and snap["received"]["telemetry"] == 5
        latest = coll.screens.get(site, "scr1")
        assert latest is not None and latest.seq == 5
        assert coll.screens.agents()[(site, "a1")]["state"] == "online"
        health = coll.health()
        assert health["broker"]["ok"] and health["influx"]["ok"] and health["status"] == "ok"
        text = coll.metrics_text()
        assert 'ledwatch_collector_dead_letters_total{reason="json"} 1' in text
        assert "ledwatch_collector_pending 0" in text
    finally:
        coll.stop()


def test_sink_down_nothing_acked_then_stored(
    mosquitto: Any, fresh_victoria: Callable[[], Any], publisher: Callable[..., None]
) -> None:
    """VictoriaMetrics down: messages are neither stored nor acked, the broker stops at
    max_pending, a collector restart gets them again, and they land once VM is back."""
    vm = fresh_victoria()
    vm.stop()
    tag = uuid.uuid4().hex[:8]
    site = f"down-{tag}"
    settings = settings_for(mosquitto, vm.url, tag, max_pending=3)
    first = Collector(settings)
    first.start()
    try:
        assert first.wait_connected(10)
        time.sleep(0.2)
        for seq in range(1, 9):
            publisher(telemetry_topic(site, "scr1"), snapshot_bytes(site, seq))

        def failing() -> bool:
            s = first.metrics.snapshot()
            errors = s["write_errors"]
            assert isinstance(errors, dict)
            return errors.get("retryable", 0) >= 2

        wait_for(failing, what="retried write errors")
        time.sleep(0.5)
        snap = first.metrics.snapshot()
        assert snap["stored_points"] == 0
        assert snap["pending"] == 3  # the broker's in-flight window (Receive Maximum)
        assert isinstance(snap["received"], dict) and snap["received"]["telemetry"] == 3
        assert first.health()["influx"]["ok"] is False
    finally:
        first.stop(timeout_s=1.0)  # VM still down: gives up, acks nothing
    vm.start()
    second = Collector(settings)  # same client id: resumes the broker session
    second.start()
    try:
        wait_for(lambda: len(stored_ts(vm, site)) == 8, timeout_s=20, what="8 snapshots")
        assert stored_ts(vm, site) == {NOW_MS + seq * 1000 for seq in range(1, 9)}
        wait_for(lambda: second.metrics.snapshot()["pending"] == 0, what="all acked")
    finally:
        second.stop()


def test_sink_comes_back_while_running(
    mosquitto: Any, fresh_victoria: Callable[[], Any], publisher: Callable[..., None]
) -> None:
    vm = fresh_victoria()
    vm.stop()
    tag = uuid.uuid4().hex[:8]
    site = f"back-{tag}"
    coll = Collector(settings_for(mosquitto, vm.url, tag))
    coll.start()
    try:
        assert coll.wait_connected(10)
        time.sleep(0.2)
        for seq in range(1, 4):
            publisher(telemetry_topic(site, "scr1"), snapshot_bytes(site, seq))
        wait_for(lambda: coll.metrics.snapshot()["pending"] == 3, what="3 pending")
        vm.start()
        wait_for(lambda: coll.metrics.snapshot()["pending"] == 0, what="acked after retry")
        assert stored_ts(vm, site) == {NOW_MS + seq * 1000 for seq in range(1, 4)}
    finally:
        coll.stop()


def test_findings_open_tickets_and_ticket_points(
    mosquitto: Any, victoria: Any, publisher: Callable[..., None], tmp_path: Path
) -> None:
    from collector.tickets.service import TicketService

    tickets = TicketService(f"sqlite:///{tmp_path / 'tickets.db'}")
    tag = uuid.uuid4().hex[:8]
    site = f"tkt-{tag}"
    coll = Collector(settings_for(mosquitto, victoria.url, tag), tickets=tickets)
    coll.start()
    try:
        assert coll.wait_connected(10)
        time.sleep(0.2)
        publisher(telemetry_topic(site, "scr1"), snapshot_bytes(site, 1))
        # The rule (card_temp_high) opens after its hold: a rolling median of 4 polls,
        # then 2 polls above 75 °C. One hot reading alone would be a glitch.
        for seq in range(2, 7):
            hot = make_snapshot(site=site, seq=seq, ts=NOW_MS + 2000 * seq)
            hot["cards"]["temp_c"][1] = 88.0
            publisher(telemetry_topic(site, "scr1"), orjson.dumps(hot))

        def ticket_points() -> list[dict[str, Any]]:
            victoria.flush()
            return victoria.export(f'ticket_id{{site="{site}"}}')

        wait_for(lambda: len(ticket_points()) >= 1, what="a ticket point")
        series = ticket_points()
        assert series[0]["metric"]["priority"] == "P2"
        assert coll.metrics.snapshot()["findings"] == 1
        assert coll.health()["database"]["ok"] is True
        # the demo runs the API in-process the same way
        from collector.api.app import ApiContext

        ctx = ApiContext(tickets=tickets, screens=coll.screens, health=coll.health,
                         metrics_text=coll.metrics_text, tokens={})
        api = serve_api(ctx, "127.0.0.1", 0)
        try:
            resp = httpx.get(f"{api.url}/api/v1/health", timeout=5)
            assert resp.status_code == 200, resp.text
            assert "ledwatch_collector_findings_total 1" in httpx.get(f"{api.url}/metrics").text
        finally:
            api.stop()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{api.url}/api/v1/health", timeout=2)
    finally:
        coll.stop()
        tickets.close()


def test_reconnects_after_broker_restart(
    mosquitto: Any, victoria: Any, publisher: Callable[..., None]
) -> None:
    tag = uuid.uuid4().hex[:8]
    site = f"rec-{tag}"
    coll = Collector(settings_for(mosquitto, victoria.url, tag))
    coll.start()
    try:
        assert coll.wait_connected(10)
        mosquitto.stop()
        wait_for(lambda: not coll.consumer.connected, what="disconnect seen")
        assert coll.health()["broker"]["ok"] is False
        mosquitto.start()
        assert coll.wait_connected(15)
        time.sleep(0.3)
        publisher(telemetry_topic(site, "scr1"), snapshot_bytes(site, 1))
        wait_for(lambda: stored_ts(victoria, site) == {NOW_MS + 1000}, what="stored")
    finally:
        coll.stop()


def test_health_fails_while_influxdb_refuses_every_write(
    mosquitto: Any, influxdb1: Any, publisher: Callable[..., None], tmp_path: Path
) -> None:
    """InfluxDB answers /ping but refuses the writes (a wrong password): /health must say
    so with InfluxDB's reason and answer 503, and nothing is acknowledged meanwhile."""
    from collector.api.app import ApiContext
    from collector.tickets.service import TicketService

    tag = uuid.uuid4().hex[:8]
    site = f"refused-{tag}"
    tickets = TicketService(f"sqlite:///{tmp_path / 'tickets.db'}")
    wrong = tmp_path / "influx-password"
    wrong.write_text("not-the-password\n")
    coll = Collector(settings_for(mosquitto, influxdb1.url, tag, output="v1",
                                  database=influxdb1.database, username=influxdb1.username,
                                  password_file=str(wrong)))
    coll.start()
    api = None
    try:
        assert coll.wait_connected(10)
        time.sleep(0.2)
        publisher(telemetry_topic(site, "scr1"), snapshot_bytes(site, 1))

        def refused() -> bool:
            errors = coll.metrics.snapshot()["write_errors"]
            return isinstance(errors, dict) and errors.get("retryable", 0) >= 2

        wait_for(refused, what="refused writes being retried")
        health = coll.health()
        assert health["influx"]["ok"] is False and health["status"] != "ok"
        assert "writes failing" in health["influx"]["error"]
        assert "401" in health["influx"]["error"]
        snap = coll.metrics.snapshot()
        assert snap["stored_points"] == 0 and snap["pending"] == 1  # held, not acked
        ctx = ApiContext(tickets=tickets, screens=coll.screens, health=coll.health,
                         metrics_text=coll.metrics_text, tokens={})
        api = serve_api(ctx, "127.0.0.1", 0)
        resp = httpx.get(f"{api.url}/api/v1/health", timeout=5)
        assert resp.status_code == 503, resp.text
        body = resp.json()
        assert body["status"] == "fail" and body["failed"] == ["influx"]
        assert "401" in body["parts"]["influx"]["error"]
    finally:
        if api is not None:
            api.stop()
        coll.stop()
        tickets.close()


class _Recording:
    """The real writer, with the lines of every request it sends kept."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.requests = inner, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def write(self, lines: list[str]) -> None:
        self.inner.write(lines)
        self.requests.append(list(lines))

    @property
    def sizes(self) -> list[int]:
        return [len(r) for r in self.requests]


def _subscribe_once(settings: CollectorSettings) -> None:
    """A collector's persistent session subscribes and goes, so a backlog waits for it."""
    first = Collector(settings)
    first.start()
    assert first.wait_connected(10)
    time.sleep(0.2)
    first.stop()


def _drain_backlog(mosquitto: Any, vm: Any, publisher: Callable[..., None], intake: int,
                   per_snapshot: int) -> tuple[list[int], list[int]]:
    """40 snapshots of one screen published as a backlog, then drained: (snapshots per
    detection call, lines per write request)."""
    from collector.influx.writers import make_writer

    tag = uuid.uuid4().hex[:8]
    site = f"intake-{tag}"
    settings = settings_for(mosquitto, vm.url, tag, batch_size=2 * per_snapshot,
                            intake_batches=intake, flush_interval_ms=2000)
    _subscribe_once(settings)
    for seq in range(1, 41):
        publisher(telemetry_topic(site, "scr1"), snapshot_bytes(site, seq))
    writer = _Recording(make_writer(settings.influx))
    coll = Collector(settings, writer=writer)
    judged: list[int] = []
    process = coll.detector.process

    def recording(docs: Any, now_ms: Any = None) -> Any:
        docs = list(docs)
        judged.append(len(docs))
        return process(docs, now_ms)

    coll.detector.process = recording  # type: ignore[method-assign]
    coll.start()
    try:
        wait_for(lambda: len(stored_ts(vm, site)) == 40, timeout_s=30, what="40 stored")
        wait_for(lambda: coll.metrics.snapshot()["pending"] == 0, what="all acked")
    finally:
        coll.stop()
    assert stored_ts(vm, site) == {NOW_MS + seq * 1000 for seq in range(1, 41)}
    assert sum(judged) == 40
    return judged, writer.sizes


def test_backlog_is_judged_in_intakes_and_written_in_batches(
    mosquitto: Any, fresh_victoria: Callable[[], Any], publisher: Callable[..., None]
) -> None:
    """A backlog: `intake_batches` batches are judged as one detection batch and written
    as separate requests of at most batch_size lines (plus the last snapshot), in order;
    everything is stored and acked. With intake_batches 1 each batch is judged alone."""
    from collector.influx.lineproto import snapshot_lines

    vm = fresh_victoria()
    per_snapshot = len(snapshot_lines(make_snapshot(site="x", seq=1, ts=NOW_MS)))
    judged4, sizes4 = _drain_backlog(mosquitto, vm, publisher, 4, per_snapshot)
    judged1, sizes1 = _drain_backlog(mosquitto, vm, publisher, 1, per_snapshot)
    assert max(sizes4) <= 3 * per_snapshot and max(sizes1) <= 3 * per_snapshot
    assert max(judged4) > 3, judged4  # several write batches judged together
    assert max(judged1) <= 3, judged1  # one batch (2 snapshots, maybe a 3rd) at a time


def _drain_three_screens(mosquitto: Any, vm: Any, publisher: Callable[..., None],
                         by_screen: bool) -> list[list[str]]:
    """12 polls of 3 screens published as a backlog, poll after poll, then drained in
    4-snapshot batches: the screen of each controller line, request by request."""
    from collector.influx.lineproto import snapshot_lines
    from collector.influx.writers import make_writer

    tag = uuid.uuid4().hex[:8]
    site = f"byscreen-{tag}"
    per_snapshot = len(snapshot_lines(make_snapshot(site="x", seq=1, ts=NOW_MS)))
    settings = settings_for(mosquitto, vm.url, tag, batch_size=4 * per_snapshot,
                            intake_batches=8, flush_interval_ms=2000,
                            group_screens=by_screen)
    _subscribe_once(settings)
    for seq in range(1, 13):
        for screen in ("s1", "s2", "s3"):
            doc = make_snapshot(site=site, screen=screen, seq=seq, ts=NOW_MS + seq * 1000)
            publisher(telemetry_topic(site, screen), orjson.dumps(doc))
    writer = _Recording(make_writer(settings.influx))
    coll = Collector(settings, writer=writer)
    coll.start()
    try:
        wait_for(lambda: len(stored_ts(vm, site)) == 12, timeout_s=30, what="12 ts stored")
        wait_for(lambda: coll.metrics.snapshot()["pending"] == 0, what="all acked")
        totals = coll.delivery.totals()
        assert (totals.streams, totals.gaps, totals.duplicates, totals.out_of_order) == (
            3, 0, 0, 0)
    finally:
        coll.stop()
    vm.flush()
    stored = {(s["metric"]["screen"], t) for s in vm.export(
        f'controller_seq{{site="{site}"}}') for t in s["timestamps"]}
    assert stored == {(scr, NOW_MS + seq * 1000) for scr in ("s1", "s2", "s3")
                      for seq in range(1, 13)}
    requests = [[ln for ln in req if ln.startswith("controller,")] for req in writer.requests]
    screens = [[ln.split(",screen=")[1].split(",")[0] for ln in req] for req in requests]
    assert sum(map(len, screens)) == 36
    for req in requests:  # each screen's polls in order within a request
        for scr in ("s1", "s2", "s3"):
            seqs = [int(ln.rsplit("seq=", 1)[1].split("i")[0]) for ln in req
                    if f",screen={scr}," in ln]
            assert seqs == sorted(seqs)
    return screens


def test_a_backlog_is_written_screen_by_screen(
    mosquitto: Any, fresh_victoria: Callable[[], Any], publisher: Callable[..., None]
) -> None:
    """`group_screens`: a backlog intake's requests hold runs of one screen's polls, not
    every screen's latest; everything is stored once and acked, no gap, no duplicate. The
    control (`group_screens = false`) interleaves the screens in the same backlog's
    requests."""
    vm = fresh_victoria()
    grouped = _drain_three_screens(mosquitto, vm, publisher, by_screen=True)
    arrival = _drain_three_screens(mosquitto, vm, publisher, by_screen=False)

    def switches(reqs: list[list[str]]) -> int:
        return sum(1 for r in reqs for a, b in itertools.pairwise(r) if a != b)

    assert any(len(r) >= 4 and len(set(r)) == 1 for r in grouped), grouped
    assert not any(len(r) >= 4 and len(set(r)) == 1 for r in arrival), arrival
    assert 2 * switches(grouped) < switches(arrival), (grouped, arrival)


def test_findings_come_before_the_batch_is_written(
    mosquitto: Any, victoria: Any, publisher: Callable[..., None]
) -> None:
    """A live inflow fills its write batch slowly: the snapshots are judged within
    detect_within_ms while the batch still waits for its flush interval (30 s here)."""
    tag = uuid.uuid4().hex[:8]
    site = f"early-{tag}"
    coll = Collector(settings_for(mosquitto, victoria.url, tag, flush_interval_ms=30_000,
                                  batch_size=1_000_000, detect_within_ms=20))
    coll.start()
    try:
        assert coll.wait_connected(10)
        time.sleep(0.2)
        # module_fault holds 3 polls; messages 5 ms apart keep the batch from the idle
        # flush (20 ms without a message), so only detect_within_ms can judge them.
        started = time.monotonic()
        for seq in range(1, 200):
            doc = make_snapshot(site=site, seq=seq, ts=NOW_MS + 1000 * seq)
            doc["cards"]["module_faults"][2] = 2
            publisher(telemetry_topic(site, "scr1"), orjson.dumps(doc))
            if coll.metrics.snapshot()["findings"] >= 1:
                break
            time.sleep(0.005)
        assert coll.metrics.snapshot()["findings"] == 1, "no finding while the batch filled"
        assert time.monotonic() - started < 25
        assert coll.metrics.snapshot()["stored_points"] == 0  # the batch is still open
    finally:
        coll.stop()


class _Gated(_Recording):
    """The real writer, whose requests wait until the test opens the gate."""

    def __init__(self, inner: Any) -> None:
        import threading

        super().__init__(inner)
        self.gate, self.waiting = threading.Event(), threading.Event()

    def write(self, lines: list[str]) -> None:
        self.waiting.set()
        assert self.gate.wait(30), "the test never opened the gate"
        super().write(lines)


def test_a_fault_is_judged_while_the_writes_are_full(
    mosquitto: Any, victoria: Any, publisher: Callable[..., None]
) -> None:
    """The sink holds the only write slot and the next batch waits for it: what arrives
    meanwhile is still taken and judged (a ticket does not wait for a write), and once
    the sink answers everything is stored and acknowledged, in order."""
    from collector.influx.writers import make_writer

    tag = uuid.uuid4().hex[:8]
    site = f"full-{tag}"
    settings = settings_for(mosquitto, victoria.url, tag, max_in_flight=1,
                            flush_interval_ms=50, detect_within_ms=20)
    writer = _Gated(make_writer(settings.influx))
    coll = Collector(settings, writer=writer)
    coll.start()
    try:
        assert coll.wait_connected(10)
        time.sleep(0.2)
        publisher(telemetry_topic(site, "scr1"), snapshot_bytes(site, 1))
        assert writer.waiting.wait(10)  # batch 1 holds the slot
        publisher(telemetry_topic(site, "scr1"), snapshot_bytes(site, 2))
        wait_for(lambda: coll.metrics.snapshot()["received"].get("telemetry", 0) >= 2,
                 what="batch 2 taken")
        time.sleep(0.1)  # its idle flush: batch 2 now waits in submit
        for seq in range(3, 7):  # module_fault holds 3 polls
            doc = make_snapshot(site=site, seq=seq, ts=NOW_MS + seq * 1000)
            doc["cards"]["module_faults"][2] = 2
            publisher(telemetry_topic(site, "scr1"), orjson.dumps(doc))
        wait_for(lambda: coll.metrics.snapshot()["findings"] >= 1, timeout_s=10,
                 what="a finding while the write slot is held")
        assert coll.metrics.snapshot()["stored_points"] == 0 and not writer.sizes
        assert coll.metrics.snapshot()["pending"] == 6  # taken, none acknowledged
        writer.gate.set()
        wait_for(lambda: coll.metrics.snapshot()["pending"] == 0, what="all acked")
        assert stored_ts(victoria, site) == {NOW_MS + seq * 1000 for seq in range(1, 7)}
        assert coll.metrics.snapshot()["findings"] == 1
    finally:
        writer.gate.set()
        coll.stop()
