"""Setting a stop event from a signal handler without deadlocking the main thread."""

from __future__ import annotations

import threading


def set_from_handler(event: threading.Event) -> None:
    """`event.set()`, safe in a signal handler.

    A handler runs in the main thread between two bytecodes, possibly while that thread
    holds the event's own lock inside `event.wait()` (an Event's Condition holds a plain
    Lock): `event.set()` there waits for itself forever. Seen on this project:
    `ledwatch demo` hung on SIGTERM in `Event.set` under `Event.wait`. A short-lived
    thread sets the event as soon as the main thread lets go of the lock."""
    threading.Thread(target=event.set, name="ledwatch-signal", daemon=True).start()
