"""The durable outbox: snapshots wait here until the broker acknowledged them."""

from agent.outbox.base import Kind, Message, Outbox, SetAside
from agent.outbox.memory import MemoryOutbox, MemoryStore
from agent.outbox.sqlite import SqliteOutbox

__all__ = ["Kind", "MemoryOutbox", "MemoryStore", "Message", "Outbox", "SetAside", "SqliteOutbox"]
