"""The durable outbox: one SQLite file next to the agent, safe against kill and power cut.

Journal: WAL, so the publisher's reads never block the pollers' writes. Durability:
`synchronous=FULL`. In WAL mode NORMAL survives a process crash but can lose the last
committed transactions on a power cut or OS crash, and "never lose a snapshot to a power
cut" is the agent's promise; FULL costs one fsync per commit, which at one snapshot per
screen per poll interval is nothing. Acks are the exception: they are committed in
batches with `synchronous=NORMAL` (no fsync of their own; the next put's fsync covers
them, WAL frames being durable in order), because losing an ack to a power cut only
re-sends a message the collector stores idempotently, while an fsync per ack batch
(with the pragma below) cut the backlog drain to 40 % (bench/outbox_drain.py).

`secure_delete=FAST`: many SQLite builds (Debian's, pyenv's) default to ON, which zeroes
every freed page, so deleting an acked 30 KiB snapshot rewrote its 8 overflow pages
into the WAL; FAST only zeroes what is written anyway (acks got ~5x cheaper).

Tables: `messages` (the queue, `INTEGER PRIMARY KEY AUTOINCREMENT` so ids are never
reused and `ORDER BY id` is the put order) and `counters` (per-screen seq, the dropped
count), both written in the same transaction as the put they belong to.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from agent.outbox.base import Kind, Message, message_size
from ledwatch.errors import UsageError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_kind ON messages (kind, id);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

_DROPPED = "dropped"
_ACK_CHUNK = 500  # ids per DELETE statement, well below SQLite's bound-parameter limit


class SqliteOutbox:
    """`Outbox` on SQLite; thread-safe (one connection behind a lock: pollers + publisher)."""

    def __init__(self, path: str | Path, quota_bytes: int = 200 * 1024 * 1024) -> None:
        if quota_bytes <= 0:
            raise UsageError("outbox quota must be positive")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.quota_bytes = quota_bytes
        self._lock = threading.Lock()
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a put and its
        # seq/dropped counters commit together or not at all.
        self._db: sqlite3.Connection | None = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30
        )
        db = self._db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA secure_delete=FAST")
        db.executescript(_SCHEMA)
        row = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages").fetchone()
        self._depth: int = row[0]
        self._bytes: int = row[1]

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise UsageError(f"outbox {self.path} is closed")
        return self._db

    @staticmethod
    def _counter(db: sqlite3.Connection, name: str) -> int:
        row = db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def _bump(db: sqlite3.Connection, name: str, by: int) -> int:
        row = db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value RETURNING value",
            (name, by),
        ).fetchone()
        return int(row[0])

    def _make_room(self, db: sqlite3.Connection, size: int) -> tuple[int, int]:
        """Delete oldest telemetry until `size` more bytes fit; return (rows, bytes) freed."""
        need = self._bytes + size - self.quota_bytes
        rows = freed = 0
        while need > freed:
            batch = db.execute(
                "SELECT id, size FROM messages WHERE kind = ? ORDER BY id LIMIT 256",
                (Kind.TELEMETRY.value,),
            ).fetchall()
            if not batch:
                break
            ids = []
            for msg_id, msg_size in batch:
                ids.append(msg_id)
                freed += msg_size
                if freed >= need:
                    break
            db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])
            rows += len(ids)
        return rows, freed

    def _insert(self, db: sqlite3.Connection, kind: str, topic: str, payload: bytes) -> int:
        """Insert inside an open transaction; return the id, or 0 if the quota refused it."""
        size = message_size(topic, payload)
        dropped, freed = (0, 0)
        if self._bytes + size > self.quota_bytes:
            dropped, freed = self._make_room(db, size)
        self._depth -= dropped
        self._bytes -= freed
        if kind == Kind.TELEMETRY and self._bytes + size > self.quota_bytes:
            # Nothing older left to drop (only events): the new snapshot is the one lost.
            self._bump(db, _DROPPED, dropped + 1)
            return 0
        if dropped:
            self._bump(db, _DROPPED, dropped)
        cur = db.execute(
            "INSERT INTO messages (kind, topic, payload, size) VALUES (?, ?, ?, ?)",
            (str(kind), topic, payload, size),
        )
        self._depth += 1
        self._bytes += size
        return int(cur.lastrowid or 0)

    def _transaction(
        self, work: Callable[[sqlite3.Connection], tuple[int, int]], fsync: bool = True
    ) -> tuple[int, int]:
        with self._lock:
            db = self._conn()
            depth, size = self._depth, self._bytes
            if not fsync:
                db.execute("PRAGMA synchronous=NORMAL")
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    result = work(db)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    self._depth, self._bytes = depth, size
                    raise
            finally:
                if not fsync:
                    db.execute("PRAGMA synchronous=FULL")
            return result

    def put(self, kind: str, topic: str, payload: bytes) -> int:
        return self._transaction(lambda db: (self._insert(db, kind, topic, payload), 0))[0]

    def put_seq(
        self, kind: str, topic: str, stream: str, build: Callable[[int], bytes]
    ) -> tuple[int, int]:
        def work(db: sqlite3.Connection) -> tuple[int, int]:
            seq = self._bump(db, f"seq:{stream}", 1)
            return self._insert(db, kind, topic, build(seq)), seq

        return self._transaction(work)

    def last_seq(self, stream: str) -> int:
        with self._lock:
            return self._counter(self._conn(), f"seq:{stream}")

    def next_batch(self, limit: int) -> list[Message]:
        with self._lock:
            rows = (
                self._conn()
                .execute(
                    "SELECT id, kind, topic, payload FROM messages ORDER BY id LIMIT ?", (limit,)
                )
                .fetchall()
            )
        return [Message(r[0], r[1], r[2], bytes(r[3])) for r in rows]

    def ack_batch(self, ids: Iterable[int]) -> None:
        keys = [int(i) for i in ids]
        if not keys:
            return

        def work(db: sqlite3.Connection) -> tuple[int, int]:
            freed = rows = 0
            for at in range(0, len(keys), _ACK_CHUNK):
                chunk = keys[at : at + _ACK_CHUNK]
                marks = ",".join("?" * len(chunk))
                sizes = db.execute(
                    f"DELETE FROM messages WHERE id IN ({marks}) RETURNING size", chunk
                ).fetchall()
                rows += len(sizes)
                freed += sum(r[0] for r in sizes)
            self._depth -= rows
            self._bytes -= freed
            return rows, freed

        self._transaction(work, fsync=False)

    def depth(self) -> int:
        return self._depth

    def stored_bytes(self) -> int:
        return self._bytes

    def dropped(self) -> int:
        with self._lock:
            return self._counter(self._conn(), _DROPPED)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
