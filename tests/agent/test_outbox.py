"""One suite for every outbox backend (STYLE.md: every backend passes the same tests).

`reopen()` stands for an agent restart: SQLite reopens the same file, the memory
backend opens a new outbox over the same store.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.outbox import Kind, MemoryOutbox, MemoryStore, Outbox, SqliteOutbox
from agent.outbox.base import message_size

ROOT = Path(__file__).resolve().parents[2]
Factory = Callable[[int], Outbox]


@pytest.fixture(params=["sqlite", "memory"])
def make_outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    """`make_outbox(quota_bytes)` opens (or reopens) the backend's one outbox."""
    store = MemoryStore()
    opened: list[Outbox] = []

    def make(quota_bytes: int = 10_000_000) -> Outbox:
        box: Outbox
        if request.param == "sqlite":
            box = SqliteOutbox(tmp_path / "data" / "outbox.sqlite3", quota_bytes)
        else:
            box = MemoryOutbox(quota_bytes, store=store)
        opened.append(box)
        return box

    yield make
    for box in opened:
        box.close()


def fill(box: Outbox, n: int, kind: str = Kind.TELEMETRY, start: int = 0) -> list[int]:
    return [
        box.put(kind, f"t/{i % 3}", f"payload-{i:04d}".encode()) for i in range(start, start + n)
    ]


def test_order_and_same_batch_until_acked(make_outbox: Factory) -> None:
    box = make_outbox(10_000_000)
    ids = fill(box, 10)
    assert ids == sorted(ids) and len(set(ids)) == 10
    first = box.next_batch(4)
    assert [m.id for m in first] == ids[:4]
    assert [m.payload for m in first] == [f"payload-{i:04d}".encode() for i in range(4)]
    # No read-ahead: asking again without an ack gives the very same messages.
    assert box.next_batch(4) == first
    box.ack_batch([ids[0], ids[2]])
    assert [m.id for m in box.next_batch(4)] == [ids[1], ids[3], ids[4], ids[5]]
    assert box.depth() == 8


def test_ack_deletes_only_what_was_acked(make_outbox: Factory) -> None:
    box = make_outbox(10_000_000)
    ids = fill(box, 5)
    box.ack_batch([ids[1], ids[3], 999_999])  # an unknown id (dropped in flight) is ignored
    assert [m.id for m in box.next_batch(10)] == [ids[0], ids[2], ids[4]]
    box.ack_batch([])
    assert box.depth() == 3


def test_reopen_keeps_unacked_messages_and_seq(make_outbox: Factory) -> None:
    box = make_outbox(10_000_000)
    ids = fill(box, 6)
    _, seq_a = box.put_seq(Kind.TELEMETRY, "t/a", "lobby", lambda s: f"seq={s}".encode())
    _, seq_b = box.put_seq(Kind.TELEMETRY, "t/a", "lobby", lambda s: f"seq={s}".encode())
    _, seq_other = box.put_seq(Kind.TELEMETRY, "t/b", "hall", lambda s: f"seq={s}".encode())
    assert (seq_a, seq_b, seq_other) == (1, 2, 1)
    box.ack_batch(ids[:2])
    box.close()

    box = make_outbox(10_000_000)
    msgs = box.next_batch(100)
    assert [m.id for m in msgs[:4]] == ids[2:]
    assert [m.payload for m in msgs[4:]] == [b"seq=1", b"seq=2", b"seq=1"]
    assert box.depth() == 7
    assert box.last_seq("lobby") == 2
    new_id, seq_c = box.put_seq(Kind.TELEMETRY, "t/a", "lobby", lambda s: f"seq={s}".encode())
    assert seq_c == 3  # survives the restart, never repeats
    assert new_id > max(m.id for m in msgs)  # ids are never reused either


def test_seq_not_consumed_when_build_fails(make_outbox: Factory) -> None:
    box = make_outbox(10_000_000)

    def boom(seq: int) -> bytes:
        raise ValueError("encode failed")

    with pytest.raises(ValueError):
        box.put_seq(Kind.TELEMETRY, "t", "lobby", boom)
    assert box.depth() == 0
    assert box.put_seq(Kind.TELEMETRY, "t", "lobby", lambda s: b"ok")[1] == 1


def test_quota_drops_oldest_telemetry_keeps_events(make_outbox: Factory) -> None:
    size = message_size("t/0", b"payload-0000")
    box = make_outbox(size * 10)
    events = fill(box, 3, Kind.EVENT, start=100)
    tele = fill(box, 7)
    assert box.dropped() == 0 and box.depth() == 10
    more = fill(box, 4, start=7)  # 4 more telemetry: the 4 oldest telemetry go
    left = [m.id for m in box.next_batch(100)]
    assert left == events + tele[4:] + more
    assert box.dropped() == 4
    # Events are stored even when only events are left to drop.
    fill(box, 12, Kind.EVENT, start=200)
    stored = box.next_batch(100)
    assert sum(1 for m in stored if m.kind == Kind.EVENT) == 15
    assert all(m.kind == Kind.EVENT for m in stored)
    # A snapshot that cannot fit is itself the one dropped, and counted.
    assert box.put(Kind.TELEMETRY, "t/0", b"payload-xxxx") == 0
    assert box.dropped() == 4 + 7 + 1
    box.close()
    assert make_outbox(size * 10).dropped() == 12  # the count is persisted


def test_concurrent_puts_keep_per_screen_order(make_outbox: Factory) -> None:
    box = make_outbox(10_000_000)

    def writer(screen: str) -> None:
        for _ in range(50):
            box.put_seq(Kind.TELEMETRY, f"t/{screen}", screen, lambda s: str(s).encode())

    threads = [threading.Thread(target=writer, args=(f"s{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    msgs = box.next_batch(1000)
    assert len(msgs) == 200
    for i in range(4):
        seqs = [int(m.payload) for m in msgs if m.topic == f"t/s{i}"]
        assert seqs == list(range(1, 51))


WRITER = """
import sys
from agent.outbox import SqliteOutbox, Kind
box = SqliteOutbox(sys.argv[1], 50_000_000)
i = 0
while True:
    kind = Kind.EVENT if i % 10 == 0 else Kind.TELEMETRY
    msg_id, seq = box.put_seq(kind, "t/x", "lobby", lambda s: f"seq={s}".encode())
    print(msg_id, seq, flush=True)
    i += 1
"""


def test_sqlite_survives_sigkill_mid_stream(tmp_path: Path) -> None:
    """Every put that returned before the kill is there exactly once; seqs never repeat."""
    path = tmp_path / "outbox.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, env=env, text=True
    )
    assert proc.stdout is not None
    returned: list[tuple[int, int]] = []
    for line in proc.stdout:
        returned.append(tuple(int(x) for x in line.split()))  # type: ignore[arg-type]
        if len(returned) >= 300:
            break
    proc.kill()  # SIGKILL: no cleanup, no atexit, mid-transaction most likely
    proc.wait(10)
    proc.stdout.close()

    box = SqliteOutbox(path, 50_000_000)
    try:
        stored = box.next_batch(1_000_000)
        by_id = {m.id: m.payload for m in stored}
        assert len(by_id) == len(stored)
        for msg_id, seq in returned:
            assert by_id[msg_id] == f"seq={seq}".encode()
        payloads = [m.payload for m in stored]
        assert len(payloads) == len(set(payloads))  # no seq stored twice
        seqs = [int(p.split(b"=")[1]) for p in payloads]
        assert seqs == sorted(seqs) and seqs[0] == 1
        assert box.last_seq("lobby") >= seqs[-1]
        _, next_seq = box.put_seq(Kind.TELEMETRY, "t/x", "lobby", lambda s: b"after")
        assert next_seq == box.last_seq("lobby") > seqs[-1]
    finally:
        box.close()


def test_sqlite_quota_is_enforced_on_reopen(tmp_path: Path) -> None:
    box = SqliteOutbox(tmp_path / "o.sqlite3", 100_000)
    fill(box, 50)
    used = box.stored_bytes()
    box.close()
    small = SqliteOutbox(tmp_path / "o.sqlite3", used // 2)
    try:
        small.put(Kind.TELEMETRY, "t/0", b"new")
        assert small.stored_bytes() <= used // 2
        assert small.dropped() > 0
    finally:
        small.close()
