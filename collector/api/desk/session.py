"""Desk sessions: an opaque random id in the cookie, everything else on the server.

Why server-side rather than a signed cookie: the cookie then carries no token, role or
secret at all (only 256 random bits), logout really ends the session, and nothing needs
a key that survives restarts. The cost is that sessions live in this process: a restart
of the collector logs everyone out, which for a desk of a few people is a log-in again.

Sessions are keyed by the SHA-256 of their id, so even a dump of this process's memory
holds no usable cookie. Each has its own CSRF token (checked on every POST) and ends
after `IDLE_S` without a request or `MAX_AGE_S` after log-in, whichever comes first.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from collector.api.deps import RANK, Principal, Role

COOKIE: Final = "ledwatch_desk"
IDLE_S: Final = 2 * 3600.0  # a desk left alone for two hours logs in again
MAX_AGE_S: Final = 12 * 3600.0  # one shift, then log in again whatever happens
MAX_SESSIONS: Final = 10_000  # bounds memory if someone logs in in a loop


@dataclass(slots=True)
class DeskSession:
    principal: Principal
    name: str  # who sits at the desk, for the ticket history ("" if not given)
    csrf: str
    created_s: float
    seen_s: float

    def actor(self) -> str:
        return self.principal.actor(self.name or None)

    @property
    def can_step(self) -> bool:
        """Lifecycle steps need the engineer role, as in the REST API."""
        return RANK[self.principal.role] >= RANK[Role.ENGINEER]

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(self.csrf.encode(), given.encode())


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    """Thread-safe: routes run in FastAPI's thread pool."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        idle_s: float = IDLE_S,
        max_age_s: float = MAX_AGE_S,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self._clock = clock
        self.idle_s = idle_s
        self.max_age_s = max_age_s
        self.max_sessions = max_sessions
        self._sessions: dict[str, DeskSession] = {}
        self._lock = threading.Lock()

    def create(self, principal: Principal, name: str = "") -> tuple[str, DeskSession]:
        """A new session (never a reused id: no session fixation); returns (cookie, it)."""
        now = self._clock()
        session_id = secrets.token_urlsafe(32)
        session = DeskSession(principal, name, secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._expire(now)
            while len(self._sessions) >= self.max_sessions:  # drop the oldest
                self._sessions.pop(next(iter(self._sessions)))
            self._sessions[_key(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None) -> DeskSession | None:
        """The live session of this cookie value, its idle time restarted; else None."""
        if not session_id:
            return None
        now = self._clock()
        key = _key(session_id)
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if not self._alive(session, now):
                del self._sessions[key]
                return None
            session.seen_s = now
            return session

    def drop(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._sessions.pop(_key(session_id), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _alive(self, session: DeskSession, now: float) -> bool:
        return now - session.seen_s <= self.idle_s and now - session.created_s <= self.max_age_s

    def _expire(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if not self._alive(s, now)]:
            del self._sessions[key]
