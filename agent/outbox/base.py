"""The outbox contract (thingsboard-gateway's event storage: put / get pack / done).

Call order and guarantees, for every backend:
- `put` returns only once the message is durable (for the SQLite backend: committed and
  fsynced); the returned id is strictly increasing, so ordering by id keeps the order
  of every screen's snapshots.
- `next_batch(limit)` returns the oldest `limit` messages not yet acknowledged, in id
  order, and keeps returning them until `ack_batch` removes them: nothing is read
  ahead of what the caller has in flight, so a crash or a reconnect can at worst send
  a message twice, never lose one.
- `ack_batch(ids)` deletes exactly those ids (unknown ids are ignored: a message may
  have been dropped by the quota while in flight).
- When the quota is reached the oldest *telemetry* is dropped, never an event; every
  dropped message is counted in `dropped()`, which survives restarts.
- `put_seq` assigns the next sequence number of a stream (one per screen) in the same
  transaction as the put, so a sequence number is never reused, even after a crash.
- A backend whose storage turns out corrupt (SQLite: "file is not a database", "database
  disk image is malformed", a truncated file) moves it aside, keeps it, lists it in
  `set_aside()` and goes on with a new, empty store: monitoring never stops for a bad
  disk sector. Sequence numbers and the dropped count are carried over where they can
  still be read (or are known to the running process).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol


class Kind(StrEnum):
    TELEMETRY = "telemetry"  # may be dropped (oldest first) when the quota is reached
    EVENT = "event"  # never dropped


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    kind: str
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class SetAside:
    """A corrupt outbox file the agent moved aside (kept, never deleted) and replaced."""

    path: Path  # where the bad file is now (`<name>.corrupt-<UTC timestamp>`)
    reason: str  # what SQLite said
    at_ms: int  # when it was found (ms since the Unix epoch)
    stranded: int | None  # unacknowledged messages left in it, None if unreadable
    seqs_kept: bool  # sequence numbers carried over (read from the bad file or the process)

    def as_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "reason": self.reason,
            "at_ms": self.at_ms,
            "stranded": self.stranded,
            "seqs_kept": self.seqs_kept,
        }


# Per-row bookkeeping counted against the quota besides topic and payload bytes
# (row header, index entry); keeps many tiny messages from escaping the quota.
ROW_OVERHEAD_BYTES = 64


def message_size(topic: str, payload: bytes) -> int:
    return len(topic.encode("utf-8")) + len(payload) + ROW_OVERHEAD_BYTES


class Outbox(Protocol):
    def put(self, kind: str, topic: str, payload: bytes) -> int:
        """Store one message durably; return its id."""
        ...

    def put_seq(
        self, kind: str, topic: str, stream: str, build: Callable[[int], bytes]
    ) -> tuple[int, int]:
        """Assign the stream's next seq, store `build(seq)`; return (id, seq) atomically."""
        ...

    def last_seq(self, stream: str) -> int:
        """The last seq assigned in `stream` (0 before the first)."""
        ...

    def next_batch(self, limit: int) -> list[Message]: ...

    def ack_batch(self, ids: Iterable[int]) -> None: ...

    def depth(self) -> int:
        """Messages stored and not yet acknowledged."""
        ...

    def dropped(self) -> int:
        """Telemetry messages dropped by the quota since the outbox was created."""
        ...

    def stored_bytes(self) -> int:
        """Bytes counted against the quota by the messages stored now."""
        ...

    def set_aside(self) -> list[SetAside]:
        """Corrupt stores moved aside since this outbox was opened, oldest first."""
        ...

    def close(self) -> None: ...
