"""An in-memory `Outbox` with the same semantics as SQLite, for tests of the poll loop.

`MemoryStore` stands for the file: closing an outbox and opening a new one over the same
store behaves like an agent restart (unacked messages, seqs and the dropped count stay).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from agent.outbox.base import Kind, Message, SetAside, message_size
from ledwatch.errors import UsageError


@dataclass
class MemoryStore:
    messages: OrderedDict[int, Message] = field(default_factory=OrderedDict)
    counters: dict[str, int] = field(default_factory=dict)
    last_id: int = 0


class MemoryOutbox:
    def __init__(self, quota_bytes: int = 200 * 1024 * 1024, store: MemoryStore | None = None):
        if quota_bytes <= 0:
            raise UsageError("outbox quota must be positive")
        self.quota_bytes = quota_bytes
        self.store = store if store is not None else MemoryStore()
        self._lock = threading.Lock()
        self._closed = False

    def _check(self) -> MemoryStore:
        if self._closed:
            raise UsageError("outbox is closed")
        return self.store

    def _bytes(self) -> int:
        return sum(message_size(m.topic, m.payload) for m in self.store.messages.values())

    def _insert(self, kind: str, topic: str, payload: bytes) -> int:
        st = self._check()
        size = message_size(topic, payload)
        used = self._bytes()
        dropped = 0
        if used + size > self.quota_bytes:
            for msg in [m for m in st.messages.values() if m.kind == Kind.TELEMETRY]:
                if used + size <= self.quota_bytes:
                    break
                del st.messages[msg.id]
                used -= message_size(msg.topic, msg.payload)
                dropped += 1
        if kind == Kind.TELEMETRY and used + size > self.quota_bytes:
            st.counters["dropped"] = st.counters.get("dropped", 0) + dropped + 1
            return 0
        st.counters["dropped"] = st.counters.get("dropped", 0) + dropped
        st.last_id += 1
        st.messages[st.last_id] = Message(st.last_id, str(kind), topic, payload)
        return st.last_id

    def put(self, kind: str, topic: str, payload: bytes) -> int:
        with self._lock:
            return self._insert(kind, topic, payload)

    def put_seq(
        self, kind: str, topic: str, stream: str, build: Callable[[int], bytes]
    ) -> tuple[int, int]:
        with self._lock:
            st = self._check()
            seq = st.counters.get(f"seq:{stream}", 0) + 1
            payload = build(seq)
            st.counters[f"seq:{stream}"] = seq
            return self._insert(kind, topic, payload), seq

    def last_seq(self, stream: str) -> int:
        with self._lock:
            return self._check().counters.get(f"seq:{stream}", 0)

    def next_batch(self, limit: int) -> list[Message]:
        with self._lock:
            out: list[Message] = []
            for msg in self._check().messages.values():
                if len(out) >= limit:
                    break
                out.append(msg)
            return out

    def ack_batch(self, ids: Iterable[int]) -> None:
        with self._lock:
            st = self._check()
            for i in ids:
                st.messages.pop(int(i), None)

    def depth(self) -> int:
        return len(self.store.messages)

    def dropped(self) -> int:
        return self.store.counters.get("dropped", 0)

    def stored_bytes(self) -> int:
        with self._lock:
            return self._bytes()

    def set_aside(self) -> list[SetAside]:
        return []  # memory cannot be corrupted by a disk

    def close(self) -> None:
        self._closed = True
