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

A corrupt file (SQLite's "file is not a database" or "database disk image is malformed",
a truncated file, a page that cannot be read) is found at open by `PRAGMA quick_check`,
or later by the statement that trips over it. The file (with its -wal and -shm) is then
renamed `<name>.corrupt-<UTC timestamp>` and kept, the per-screen seqs, the dropped
count and the id counter are read back from it where they still can be (or taken from
what this process handed out), and a new file is started in its place; the statement
is run again on it. The unacknowledged messages left in the bad file are not re-sent
(their number is reported): a bad disk sector costs those, never the monitoring.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from agent.outbox.base import Kind, Message, SetAside, message_size
from ledwatch.errors import ConfigError, UsageError
from ledwatch.files import folder_problem

log = logging.getLogger(__name__)

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
_SEQ_PREFIX = "seq:"

# SQLite result codes that mean "this file is damaged" (primary codes, low byte).
# SQLITE_IOERR_READ / _SHORT_READ (extended) are a sector the disk cannot read or a
# file shorter than its header says: as persistent as corruption, so treated the same.
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
_SQLITE_IOERR_READ = 266
_SQLITE_IOERR_SHORT_READ = 522
_CORRUPT_WORDS = ("file is not a database", "database disk image is malformed")

T = TypeVar("T")


class _QuickCheckFailed(sqlite3.DatabaseError):
    """`PRAGMA quick_check` answered something other than "ok"."""


def is_corrupt(exc: BaseException) -> bool:
    """True for the SQLite errors that mean the file itself is damaged (not a lock, not
    a full disk, not a bug in a statement)."""
    if isinstance(exc, _QuickCheckFailed):
        return True
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and (
        code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
        or code in (_SQLITE_IOERR_READ, _SQLITE_IOERR_SHORT_READ)
    ):
        return True
    return any(words in str(exc) for words in _CORRUPT_WORDS)


@dataclass
class _Salvage:
    """What could still be read from a corrupt file."""

    counters: dict[str, int] = field(default_factory=dict)
    last_id: int = 0
    stranded: int | None = None


def _salvage(path: Path) -> _Salvage:
    """Read counters, the id counter and the number of messages from a bad file, each as
    far as it goes; read-only, so the kept file stays as it was found."""
    out = _Salvage()
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
    except sqlite3.Error:
        return out
    try:
        with contextlib.suppress(sqlite3.Error):
            rows = db.execute("SELECT name, value FROM counters").fetchall()
            out.counters = {str(name): int(value) for name, value in rows}
        with contextlib.suppress(sqlite3.Error):
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
            out.last_id = int(row[0]) if row else 0
        with contextlib.suppress(sqlite3.Error):
            out.stranded = int(db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
    finally:
        db.close()
    return out


def _aside_name(path: Path) -> Path:
    """`<name>.corrupt-<UTC timestamp>`, with `.1`, `.2`, ... if that is taken."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = path.with_name(f"{path.name}.corrupt-{stamp}")
    candidate, n = base, 0
    while any(Path(f"{candidate}{tail}").exists() for tail in ("", "-wal", "-shm")):
        n += 1
        candidate = base.with_name(f"{base.name}.{n}")
    return candidate


class SqliteOutbox:
    """`Outbox` on SQLite; thread-safe (one connection behind a lock: pollers + publisher)."""

    def __init__(self, path: str | Path, quota_bytes: int = 200 * 1024 * 1024) -> None:
        if quota_bytes <= 0:
            raise UsageError("outbox quota must be positive")
        self.path = Path(path)
        self.quota_bytes = quota_bytes
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._depth = 0
        self._bytes = 0
        self._dropped = 0
        self._last_id = 0
        self._seqs: dict[str, int] = {}  # seqs handed out by this process, for a reset
        self._set_aside: list[SetAside] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._open()
            except sqlite3.DatabaseError as exc:
                if not is_corrupt(exc):
                    raise
                self._reset(exc)
        except sqlite3.Error as exc:
            raise ConfigError(
                f"outbox {self.path}: cannot open: {exc}: check the file's owner and "
                "permissions, or set agent.data_dir"
            ) from None
        except OSError as exc:
            key = "agent.data_dir"
            raise ConfigError(f"outbox {self.path}: {folder_problem(exc, key)}") from None

    def _open(self) -> None:
        """Open (or create) the file, check it, load the counters; leaves `_db` set."""
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a put and its
        # seq/dropped counters commit together or not at all.
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA secure_delete=FAST")
            db.executescript(_SCHEMA)
            # Reads every page once (not the cross-checks of integrity_check): a damaged
            # page found now costs a new file at start, not a surprise in the middle.
            found = [str(r[0]) for r in db.execute("PRAGMA quick_check(3)").fetchall()]
            if found != ["ok"]:
                lines = [ln for x in found for ln in x.splitlines() if not ln.startswith("***")]
                raise _QuickCheckFailed("quick_check: " + "; ".join(lines)[:200])
            row = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages").fetchone()
            self._depth, self._bytes = int(row[0]), int(row[1])
            self._dropped = self._counter(db, _DROPPED)
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
            self._last_id = int(row[0]) if row else 0
        except BaseException:
            db.close()
            raise
        self._db = db

    def _reset(self, exc: sqlite3.DatabaseError) -> None:
        """Move the corrupt file aside, start a new one carrying over what is known."""
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        kept = _aside_name(self.path)
        try:
            for tail in ("", "-wal", "-shm"):
                src = Path(f"{self.path}{tail}")
                if src.exists():
                    os.rename(src, f"{kept}{tail}")
        except OSError as err:
            raise ConfigError(
                f"outbox {self.path} is corrupt ({reason}) and could not be moved aside "
                f"({err.strerror}): move it away by hand"
            ) from None
        found = _salvage(kept)
        seqs = {
            name: value for name, value in found.counters.items() if name.startswith(_SEQ_PREFIX)
        }
        for stream, seq in self._seqs.items():
            key = _SEQ_PREFIX + stream
            seqs[key] = max(seqs.get(key, 0), seq)
        dropped = max(found.counters.get(_DROPPED, 0), self._dropped)
        last_id = max(found.last_id, self._last_id)
        self._open()
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        for name, value in [*seqs.items(), (_DROPPED, dropped)]:
            db.execute("INSERT INTO counters (name, value) VALUES (?, ?)", (name, value))
        # Ids go on above the old file's: a message of the old file still in flight must
        # not share its id with a new one (its ack would delete the wrong message).
        db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('messages', ?)", (last_id,))
        db.execute("COMMIT")
        self._dropped, self._last_id = dropped, last_id
        record = SetAside(
            path=kept,
            reason=reason,
            at_ms=time.time_ns() // 1_000_000,
            stranded=found.stranded,
            seqs_kept=bool(seqs),
        )
        self._set_aside.append(record)
        left = (
            "its messages could not be counted"
            if found.stranded is None
            else f"{found.stranded} unacknowledged message(s) stay in it"
        )
        log.error(
            "outbox %s is corrupt (%s): moved aside to %s and kept (%s); a new outbox was "
            "started, sequence numbers %s",
            self.path,
            reason,
            kept,
            left,
            "carried over" if seqs else "start again at 1 (the old ones could not be read)",
        )

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise UsageError(f"outbox {self.path} is closed")
        return self._db

    def _guarded(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run `op` under the lock; if the file turns out corrupt, set it aside and run
        `op` once more on the new file."""
        with self._lock:
            try:
                return op(self._conn())
            except sqlite3.DatabaseError as exc:
                if not is_corrupt(exc):
                    raise
                self._reset(exc)
            return op(self._conn())

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
            self._dropped = self._bump(db, _DROPPED, dropped + 1)
            return 0
        if dropped:
            self._dropped = self._bump(db, _DROPPED, dropped)
        cur = db.execute(
            "INSERT INTO messages (kind, topic, payload, size) VALUES (?, ?, ?, ?)",
            (str(kind), topic, payload, size),
        )
        self._depth += 1
        self._bytes += size
        self._last_id = int(cur.lastrowid or 0)
        return self._last_id

    def _transaction(
        self, work: Callable[[sqlite3.Connection], tuple[int, int]], fsync: bool = True
    ) -> tuple[int, int]:
        def run(db: sqlite3.Connection) -> tuple[int, int]:
            kept = self._depth, self._bytes, self._dropped, self._last_id
            if not fsync:
                db.execute("PRAGMA synchronous=NORMAL")
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    result = work(db)
                    db.execute("COMMIT")
                except BaseException:
                    # On a corrupt file the rollback may fail too; the first error counts.
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                    self._depth, self._bytes, self._dropped, self._last_id = kept
                    raise
            finally:
                if not fsync:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("PRAGMA synchronous=FULL")
            return result

        return self._guarded(run)

    def put(self, kind: str, topic: str, payload: bytes) -> int:
        return self._transaction(lambda db: (self._insert(db, kind, topic, payload), 0))[0]

    def put_seq(
        self, kind: str, topic: str, stream: str, build: Callable[[int], bytes]
    ) -> tuple[int, int]:
        def work(db: sqlite3.Connection) -> tuple[int, int]:
            seq = self._bump(db, _SEQ_PREFIX + stream, 1)
            return self._insert(db, kind, topic, build(seq)), seq

        msg_id, seq = self._transaction(work)
        with self._lock:
            self._seqs[stream] = max(self._seqs.get(stream, 0), seq)
        return msg_id, seq

    def last_seq(self, stream: str) -> int:
        return self._guarded(lambda db: self._counter(db, _SEQ_PREFIX + stream))

    def next_batch(self, limit: int) -> list[Message]:
        rows = self._guarded(
            lambda db: db.execute(
                "SELECT id, kind, topic, payload FROM messages ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
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
        return self._dropped

    def set_aside(self) -> list[SetAside]:
        with self._lock:
            return list(self._set_aside)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
