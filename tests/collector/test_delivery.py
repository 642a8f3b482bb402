"""Seq accounting (collector/delivery.py): the pure tracker, its metrics, and the API end
to end (real Mosquitto -> Collector -> VictoriaMetrics, real uvicorn)."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_service import publisher, settings_for, snapshot_bytes, wait_for  # noqa: F401

from collector.api.app import ApiContext
from collector.delivery import DeliveryTracker, Outcome, SeqStream
from collector.metrics import Metrics
from collector.service import Collector, serve_api
from collector.tickets import TicketService
from ledwatch.contract import telemetry_topic


def feed(stream: SeqStream, seqs: list[int]) -> list[Outcome]:
    return [stream.add(s) for s in seqs]


def test_in_order_jump_fill_late_duplicate() -> None:
    s = SeqStream()
    assert feed(s, [10, 11]) == [Outcome.FIRST, Outcome.NEXT]
    assert s.add(15) is Outcome.JUMP  # 12..14 missing
    assert (s.gaps(), s.missing, s.received, s.expected) == ([(12, 14)], 3, 3, 6)
    assert s.add(13) is Outcome.FILL  # splits the gap in two
    assert s.gaps() == [(12, 12), (14, 14)]
    assert feed(s, [12, 14]) == [Outcome.FILL, Outcome.FILL]
    assert (s.gaps(), s.missing, s.out_of_order) == ([], 0, 3)
    assert s.add(11) is Outcome.DUPLICATE and s.add(15) is Outcome.DUPLICATE
    assert s.duplicates == 2
    # Below first: an old message delivered late, not a new stream (seq survives restarts).
    assert s.add(7) is Outcome.LATE
    assert (s.first, s.last, s.gaps(), s.missing) == (7, 15, [(8, 9)], 2)
    assert s.add(9) is Outcome.FILL and s.add(8) is Outcome.FILL
    assert (s.missing, s.received, s.out_of_order) == (0, 9, 6)


def test_gap_cap_forgets_oldest_and_keeps_counting() -> None:
    s = SeqStream(max_gaps=3)
    feed(s, [1, 3, 5, 7, 9])  # gaps 2, 4, 6, 8: one too many
    assert s.gaps() == [(4, 4), (6, 6), (8, 8)]
    assert (s.open_gaps, s.forgotten_gaps, s.missing) == (3, 1, 4)
    assert s.add(2) is Outcome.DUPLICATE  # no longer told apart from a duplicate
    assert s.add(6) is Outcome.FILL
    assert s.missing == 3
    s2 = SeqStream(max_gaps=1)
    feed(s2, [1, 10, 5])  # the split makes two gaps: the older is forgotten
    assert (s2.gaps(), s2.forgotten_gaps, s2.missing) == ([(6, 9)], 1, 7)
    with pytest.raises(ValueError):
        SeqStream(max_gaps=0)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=200), min_size=1, max_size=300),
    st.randoms(use_true_random=False),
)
def test_matches_a_plain_set(seqs: list[int], rnd: random.Random) -> None:
    """Any order, any duplicates: the tracker agrees with the obvious set arithmetic."""
    rnd.shuffle(seqs)
    s = SeqStream()
    feed(s, seqs)
    seen = set(seqs)
    lo, hi = min(seen), max(seen)
    missing = sorted(set(range(lo, hi + 1)) - seen)
    assert (s.first, s.last, s.missing, s.received) == (lo, hi, len(missing), len(seen))
    assert [x for a, b in s.gaps() for x in range(a, b + 1)] == missing
    assert s.duplicates == len(seqs) - len(seen)
    for a, b in zip(s.gaps(), s.gaps()[1:], strict=False):
        assert a[1] + 1 < b[0]  # sorted, disjoint, never adjacent


def test_tracker_streams_totals_and_caps() -> None:
    t = DeliveryTracker(max_gaps=10, max_streams=2)
    t.record_seqs([("s1", "a", "p", n) for n in (1, 2, 5, 5)])
    assert t.record("s2", "b", "p", 7) is Outcome.FIRST
    assert t.record("s3", "c", "p", 1) is None  # over the stream cap: counted, not tracked
    totals = t.totals()
    assert (totals.streams, totals.gaps, totals.missing, totals.duplicates) == (2, 1, 2, 1)
    assert totals.untracked == 1
    (r,) = t.streams(site="s1")
    assert (r.screen, r.first, r.last, r.received, r.missing) == ("a", 1, 5, 3, 2)
    assert r.gaps == ((3, 4),)
    assert [x.site for x in t.streams(missing_only=True)] == ["s1"]
    assert t.streams(screen="nope") == []


def test_metrics_expose_seq_accounting() -> None:
    m = Metrics()
    for seq in (1, 2, 4, 4):
        m.delivery.record("s", "scr", "a", seq)
    text = m.render()
    for line in (
        "ledwatch_collector_seq_streams 1",
        "ledwatch_collector_seq_gaps 1",
        "ledwatch_collector_seq_missing 1",
        "ledwatch_collector_seq_duplicates_total 1",
        "ledwatch_collector_seq_out_of_order_total 0",
        "# TYPE ledwatch_collector_seq_missing gauge",
    ):
        assert line in text.splitlines(), line
    snap = m.snapshot()
    assert (snap["seq_gaps"], snap["seq_missing"], snap["seq_duplicates"]) == (1, 1, 1)


VIEWER = {"Authorization": "Bearer viewer-token-0001"}


def test_gap_shown_then_filled_end_to_end(
    mosquitto: Any, victoria: Any, publisher: Callable[..., None], tmp_path: Path  # noqa: F811
) -> None:
    """Publish 1..5 and 8..10: the API shows the gap 6..7; publish 7, 6 and 3 again: no gap,
    two out of order, one duplicate; storage holds seq 1..10 once each."""
    tag = uuid.uuid4().hex[:8]
    site = f"gap-{tag}"
    tickets = TicketService(f"sqlite:///{tmp_path / 'tickets.db'}")
    coll = Collector(settings_for(mosquitto, victoria.url, tag), tickets=tickets)
    coll.start()
    ctx = ApiContext(tickets=tickets, screens=coll.screens, health=coll.health,
                     metrics_text=coll.metrics_text, tokens={"viewer-token-0001": "viewer"},
                     delivery=coll.delivery)
    api = serve_api(ctx, "127.0.0.1", 0)
    try:
        assert coll.wait_connected(10)
        time.sleep(0.2)
        topic = telemetry_topic(site, "scr1")

        def stream() -> dict[str, Any]:
            resp = httpx.get(f"{api.url}/api/v1/delivery", params={"site": site},
                             headers=VIEWER, timeout=5)
            assert resp.status_code == 200, resp.text
            body = resp.json()
            return body["streams"][0] if body["streams"] else {}

        for seq in [1, 2, 3, 4, 5, 8, 9, 10]:
            publisher(topic, snapshot_bytes(site, seq))
        wait_for(lambda: stream().get("last") == 10, what="seq 10 accounted")
        s = stream()
        assert (s["first"], s["missing"], s["received"]) == (1, 2, 8)
        assert s["gaps"] == [{"first": 6, "last": 7}] and s["agent"] == "a1"
        assert "seq_gaps=1 seq_missing=2" in coll.status_line()

        for seq in [7, 6, 3]:
            publisher(topic, snapshot_bytes(site, seq))
        wait_for(lambda: stream().get("duplicates") == 1, what="the duplicate accounted")
        s = stream()
        assert (s["missing"], s["gaps"], s["received"], s["out_of_order"]) == (0, [], 10, 2)
        text = httpx.get(f"{api.url}/metrics", timeout=5).text
        assert "ledwatch_collector_seq_missing 0" in text.splitlines()

        victoria.flush()
        (series,) = victoria.export(f'controller_seq{{site="{site}"}}')
        assert sorted(series["values"]) == list(range(1, 11))  # one sample per snapshot

        assert httpx.get(f"{api.url}/api/v1/delivery", timeout=5).status_code == 401
        bad = httpx.get(f"{api.url}/api/v1/delivery", params={"site": "Bad Site"},
                        headers=VIEWER, timeout=5)
        assert bad.status_code == 422
    finally:
        api.stop()
        coll.stop()
        tickets.close()


def test_delivery_route_without_tracker_says_so(tmp_path: Path) -> None:
    tickets = TicketService(f"sqlite:///{tmp_path / 'tickets.db'}")
    from collector.state import ScreenDirectory

    ctx = ApiContext(tickets=tickets, screens=ScreenDirectory(), health=dict, metrics_text=str,
                     tokens={"viewer-token-0001": "viewer"})
    api = serve_api(ctx, "127.0.0.1", 0)
    try:
        resp = httpx.get(f"{api.url}/api/v1/delivery", headers=VIEWER, timeout=5)
        assert resp.status_code == 503 and "delivery" in resp.text
    finally:
        api.stop()
        tickets.close()
