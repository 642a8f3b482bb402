"""Sinks against real servers: VictoriaMetrics (/api/v2/write), InfluxDB 1.6 (auth on),
SQLite (local). Every test reads back what it wrote."""

from __future__ import annotations

import http.server
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from datapath_helpers import make_snapshot

from collector.influx.errors import WriteError
from collector.influx.lineproto import snapshot_lines
from collector.influx.writers import LocalWriter, NullWriter, V1Writer, V2Writer, make_writer
from collector.settings import InfluxSettings

NOW_MS = int(time.time() * 1000) // 1000 * 1000  # VictoriaMetrics drops far-future points


def _doc(site: str, seq: int = 1, ts: int = NOW_MS) -> dict[str, Any]:
    doc = make_snapshot(site=site, seq=seq, ts=ts, n_cards=3)
    doc["cards"]["id"][1] = "odd id,=x"
    doc["cards"]["temp_c"] = [41.5, 50, None]
    return doc


def test_v2_writer_victoria(victoria: Any) -> None:
    w = V2Writer(victoria.url, token="unused", org="ledwatch", bucket="ledwatch")
    w.connect()
    try:
        assert w.ping()
        doc = _doc("wv2")
        w.write(snapshot_lines(doc))
        w.write(snapshot_lines(doc))  # a redelivered snapshot overwrites itself
    finally:
        w.close()
    victoria.flush()
    series = victoria.export('card_temp_c{site="wv2"}')
    # VictoriaMetrics keeps raw duplicates unless run with -dedup.minScrapeInterval, so
    # compare distinct samples; InfluxDB (test_v1_writer_influxdb16) overwrites in place.
    got = {s["metric"]["card"]: (set(s["values"]), set(s["timestamps"])) for s in series}
    assert got == {"c0": ({41.5}, {NOW_MS}), "odd id,=x": ({50.0}, {NOW_MS})}
    faults = victoria.export('card_module_faults{site="wv2"}')
    assert sorted(s["metric"]["card"] for s in faults) == ["c0", "c2", "odd id,=x"]
    assert {v for s in faults for v in s["values"]} == {0}
    online = victoria.export('controller_online{site="wv2",screen="scr1"}')
    assert set(online[0]["values"]) == {1}


def test_a_written_body_is_not_kept_for_the_cyclic_gc(victoria: Any) -> None:
    """The body (1-2 MB a write in a drain) must be freed when its write ends, not live on
    in a reference cycle until the GC runs (the collector runs it rarely): httpx's
    transport, used before, left each request in one (docs/hot-path.md, item 8)."""
    import gc

    lines = snapshot_lines(_doc("wgc")) * 200
    size = len("\n".join(lines).encode())
    w = V2Writer(victoria.url, token=None, org="ledwatch", bucket="ledwatch")
    w.connect()
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            w.write(lines)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        # other tests' server threads make garbage too: look for this body only
        held = [o for g in gc.garbage for o in [g, *gc.get_referents(g)]
                if isinstance(o, bytes) and len(o) >= size and b"site=wgc" in o]  # fmt: skip
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        w.close()
    assert held == []


def test_a_connection_the_server_closed_is_replaced_without_an_error() -> None:
    """A kept-alive connection closed by the server while idle (its idle timeout, a
    restart) fails on its next request: that write must go out on a new connection, not
    come back as a failed write (a warning and a retry after backoff, each time)."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            seen.append(self.rfile.read(int(self.headers["Content-Length"])).decode())
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.close_connection = len(seen) == 1  # drop the first connection after it

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    w = V2Writer(f"http://127.0.0.1:{server.server_address[1]}", token="t", org="o",
                 bucket="b")
    w.connect()
    try:
        w.write(["m f=1 1"])
        time.sleep(0.2)  # the server has closed the kept connection by now
        w.write(["m f=2 2"])
    finally:
        w.close()
        server.shutdown()
        server.server_close()
    assert seen == ["m f=1 1\n", "m f=2 2\n"]


def test_v2_writer_server_down(free_port: Any) -> None:
    w = V2Writer(f"http://127.0.0.1:{free_port()}", token="t", org="o", bucket="b",
                 timeout_ms=2000)
    w.connect()
    try:
        assert not w.ping()
        with pytest.raises(WriteError) as info:
            w.write(["m f=1 1"])
        assert info.value.retryable
    finally:
        w.close()


def test_v1_writer_influxdb16(influxdb1: Any) -> None:
    w = V1Writer(influxdb1.url, influxdb1.database, influxdb1.username, influxdb1.password)
    w.connect()
    try:
        assert w.ping()
        w.write(snapshot_lines(_doc("wv1")))
        w.write(snapshot_lines(_doc("wv1")))  # idempotent
    finally:
        w.close()
    rows = influxdb1.rows(
        "SELECT card, temp_c, module_faults, online FROM card WHERE site='wv1' GROUP BY *"
    )
    by_card = {r["card"]: r for r in rows}
    assert set(by_card) == {"c0", "odd id,=x", "c2"}
    assert by_card["c0"]["temp_c"] == 41.5 and by_card["c0"]["time"] == NOW_MS
    assert by_card["c2"]["temp_c"] is None  # null omitted, not stored as a sentinel
    assert by_card["odd id,=x"]["module_faults"] == 0
    assert all(r["online"] is True for r in rows)
    # field types as DESIGN.md needs them for InfluxQL (float stays float, counters ints)
    keys = influxdb1.rows('SHOW FIELD KEYS FROM "card"')
    types = {r["fieldKey"]: r["fieldType"] for r in keys}
    assert types["temp_c"] == "float" and types["module_faults"] == "integer"
    assert types["online"] == "boolean"


def test_v1_writer_auth_refused(influxdb1: Any) -> None:
    w = V1Writer(influxdb1.url, influxdb1.database, influxdb1.username, "wrong-password")
    w.connect()
    try:
        with pytest.raises(WriteError) as info:
            w.write(["m f=1 1"])
        assert info.value.retryable  # keep the data: someone fixes the password
        assert "401" in str(info.value)
    finally:
        w.close()


def test_v1_writer_type_conflict_not_retryable(influxdb1: Any) -> None:
    w = V1Writer(influxdb1.url, influxdb1.database, influxdb1.username, influxdb1.password)
    w.connect()
    try:
        w.write([f"conflict_m,site=wv1c f=1i {NOW_MS}"])
        with pytest.raises(WriteError) as info:
            w.write([f'conflict_m,site=wv1c f="text" {NOW_MS + 1}'])
        assert not info.value.retryable
    finally:
        w.close()


def test_local_writer(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "telemetry.db"
    w = LocalWriter(path)
    w.connect()
    try:
        w.write(snapshot_lines(_doc("wl", seq=1, ts=NOW_MS)))
        first = w.count()
        w.write(snapshot_lines(_doc("wl", seq=1, ts=NOW_MS)))  # overwrite, no duplicate
        assert w.count() == first
        later = _doc("wl", seq=2, ts=NOW_MS + 1000)
        later["cards"]["temp_c"][0] = 60.25
        w.write(snapshot_lines(later))
        assert w.latest("card", "temp_c", card="c0", screen="scr1", site="wl") == (
            NOW_MS + 1000, 60.25)
        assert w.latest("card", "temp_c", card="odd id,=x", screen="scr1", site="wl") == (
            NOW_MS + 1000, 50.0)
        assert w.latest("card", "module_faults", card="c0", screen="scr1", site="wl") == (
            NOW_MS + 1000, 0)
        assert w.latest("card", "temp_c", card="c2", screen="scr1", site="wl") is None
        with pytest.raises(WriteError) as info:
            w.write(["garbage"])
        assert not info.value.retryable
    finally:
        w.close()
    reopened = LocalWriter(path)
    reopened.connect()
    assert reopened.latest("controller", "online", screen="scr1", site="wl") == (NOW_MS + 1000, 1)
    reopened.close()


def test_make_writer(tmp_path: Path) -> None:
    assert isinstance(make_writer(InfluxSettings(output="none")), NullWriter)
    local = make_writer(InfluxSettings(output="local", local_path=tmp_path / "x.db"))
    assert isinstance(local, LocalWriter)
    v1 = make_writer(InfluxSettings(output="v1", url="http://127.0.0.1:1", database="d"))
    assert isinstance(v1, V1Writer) and v1.database == "d"
