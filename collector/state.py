"""Latest known state per screen, shared by the ingest loop (writer) and the API (reader).

Kept in memory: it is rebuilt from the next snapshot after a restart, and the API only
needs the newest view. Access is guarded by a lock because ingest and API run in
different threads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class ScreenState:
    site: str
    screen: str
    agent: str
    seq: int
    ts_ms: int
    snapshot: dict[str, Any]  # the last validated telemetry document
    received_ms: int


@dataclass
class ScreenDirectory:
    _screens: dict[tuple[str, str], ScreenState] = field(default_factory=dict)
    _agents: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def update(self, state: ScreenState) -> None:
        with self._lock:
            old = self._screens.get((state.site, state.screen))
            if old is None or state.ts_ms >= old.ts_ms:
                self._screens[(state.site, state.screen)] = state

    def get(self, site: str, screen: str) -> ScreenState | None:
        with self._lock:
            return self._screens.get((site, screen))

    def list(self) -> list[ScreenState]:
        with self._lock:
            return sorted(self._screens.values(), key=lambda s: (s.site, s.screen))

    def set_agent_status(self, site: str, agent: str, status: dict[str, Any]) -> None:
        with self._lock:
            self._agents[(site, agent)] = status

    def agents(self) -> dict[tuple[str, str], dict[str, Any]]:
        with self._lock:
            return dict(self._agents)
