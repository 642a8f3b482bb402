"""Maintenance windows: an engineer works on a screen, and its findings open no tickets.

A window names a site, optionally a screen, optionally a component of it ("card/p0c3",
or "psu" for every PSU), a time range, who and why. While it lasts, a finding it covers
is recorded in `suppressed` instead of opening a ticket; when it ends (its end time, or
`end_window` = DELETE) the findings that are still active open their tickets then, and
the suppressed ones stay visible on the window. Windows are never deleted: ending one
early keeps it on record (`ended_early_ms`).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import Protocol

from sqlalchemy import Connection, select, update

from collector.tickets import db
from collector.tickets.apply import FindingsMixin, window_of
from collector.tickets.errors import TicketInputError, TicketNotFound
from collector.tickets.models import MaintenanceWindow, SuppressedFinding, TicketChange
from ledwatch.contract import check_id

MAX_WINDOW_MS = 90 * 86_400_000  # longer than a quarter is a contract change, not upkeep


class WindowSpec(Protocol):
    """A maintenance window from the collector config (settings.MaintenanceSettings)."""

    @property
    def site(self) -> str: ...
    @property
    def screen(self) -> str | None: ...
    @property
    def component(self) -> str | None: ...
    @property
    def start_ms(self) -> int: ...
    @property
    def end_ms(self) -> int: ...
    @property
    def who(self) -> str: ...
    @property
    def why(self) -> str: ...


class WindowNotFound(TicketNotFound):
    def __init__(self, window_id: int) -> None:
        Exception.__init__(self, f"maintenance window {window_id} does not exist")
        self.ticket_id = window_id


class MaintenanceMixin(FindingsMixin):
    def create_window(
        self,
        site: str,
        start_ms: int,
        end_ms: int,
        who: str,
        why: str,
        *,
        screen: str | None = None,
        component: str | None = None,
        actor: str = "",
        source: str = "api",
    ) -> MaintenanceWindow:
        check_id(site, "site")
        if screen is not None:
            check_id(screen, "screen")
        if component is not None and (not component or len(component) > 128):
            raise TicketInputError("component must be 1..128 characters, e.g. 'card/p0c3'")
        if component is not None and screen is None:
            raise TicketInputError("a component needs its screen")
        if end_ms <= start_ms:
            raise TicketInputError("end must be after start")
        if end_ms - start_ms > MAX_WINDOW_MS:
            raise TicketInputError("a maintenance window may last at most 90 days")
        if not who.strip() or not why.strip():
            raise TicketInputError("who and why must say who works on it and why")
        values = dict(site=site, screen=screen, component=component, start_ms=start_ms,
                      end_ms=end_ms, who=who.strip(), why=why.strip(),
                      created_ms=self._clock(), created_by=actor or who, source=source)
        window_id: list[int] = []

        def work(conn: Connection) -> list[TicketChange]:
            mt = db.maintenance
            window_id.append(
                int(conn.execute(mt.insert().values(**values).returning(mt.c.id)).scalar_one())
            )
            return []

        self._write(work)
        return self.window(window_id[0])

    def sync_windows(self, windows: Iterable[WindowSpec]) -> int:
        """Windows from the collector config: add the ones not yet on record."""
        known = {
            (w.site, w.screen, w.component, w.start_ms, w.end_ms)
            for w in self.windows(limit=1_000_000)
            if w.source == "config"
        }
        added = 0
        for w in windows:
            ident = (w.site, w.screen, w.component, w.start_ms, w.end_ms)
            if ident not in known:
                self.create_window(w.site, w.start_ms, w.end_ms, w.who, w.why, screen=w.screen,
                                   component=w.component, actor="config", source="config")
                known.add(ident)
                added += 1
        return added

    def window(self, window_id: int) -> MaintenanceWindow:
        mt = db.maintenance
        with self._engine.connect() as conn:
            row = conn.execute(select(mt).where(mt.c.id == window_id)).first()
        if row is None or not 0 < window_id <= 2**31 - 1:
            raise WindowNotFound(window_id)
        return window_of(row)

    def windows(
        self, site: str | None = None, active_at: int | None = None, limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[MaintenanceWindow]:
        mt = db.maintenance
        query = select(mt).order_by(mt.c.start_ms.desc(), mt.c.id.desc())
        if site is not None:
            query = query.where(mt.c.site == site)
        if active_at is not None:
            query = query.where(mt.c.start_ms <= active_at, mt.c.end_ms > active_at)
        with self._engine.connect() as conn:
            rows = conn.execute(query.limit(limit).offset(offset)).all()
        return [window_of(r) for r in rows]

    def end_window(self, window_id: int, actor: str) -> MaintenanceWindow:
        """End a window now (DELETE): it stays on record; held findings open tickets."""
        now = self._clock()
        window = self.window(window_id)

        def work(conn: Connection) -> list[TicketChange]:
            if window.end_ms > now:
                mt = db.maintenance
                conn.execute(
                    update(mt).where(mt.c.id == window_id)
                    .values(end_ms=max(now, window.start_ms + 1), ended_early_ms=now)
                )
            return []

        self._write(work)
        self.tick(now)
        return self.window(window_id)

    def suppressed(
        self, window_id: int | None = None, site: str | None = None, limit: int = 1000
    ) -> builtins.list[SuppressedFinding]:
        s = db.suppressed
        query = select(s).order_by(s.c.id)
        if window_id is not None:
            query = query.where(s.c.maintenance_id == window_id)
        if site is not None:
            query = query.where(s.c.site == site)
        with self._engine.connect() as conn:
            rows = conn.execute(query.limit(limit)).all()
        return [SuppressedFinding(**{c.name: getattr(r, c.name) for c in s.columns}) for r in rows]
