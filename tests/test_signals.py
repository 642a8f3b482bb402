"""A stop event set from a signal handler while the main thread is inside `Event.wait`."""

from __future__ import annotations

import threading

from ledwatch.signals import set_from_handler


def test_a_handler_landing_inside_event_wait_still_stops() -> None:
    """A signal lands between two bytecodes of the main thread, which may then hold the
    event's lock inside `Event.wait` (reached here through the private `_cond`, the one
    Event.wait takes). `stop.set()` there never returns; `set_from_handler` must."""
    stop = threading.Event()
    returned = threading.Event()
    set_under_lock: list[bool] = []

    def main_thread_in_wait() -> None:
        with stop._cond:  # type: ignore[attr-defined]
            set_from_handler(stop)  # what the handler runs
            set_under_lock.append(stop.is_set())
            returned.set()

    t = threading.Thread(target=main_thread_in_wait, daemon=True)
    t.start()
    assert returned.wait(5), "the handler deadlocked on the event's own lock"
    assert set_under_lock == [False]  # set once the lock is let go, not under it
    assert stop.wait(5), "the event was never set"
    t.join(5)
