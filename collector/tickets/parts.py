"""The installed base, spare parts used and the spares plan, on the ticket database.

- `record_inventory` keeps `components` in step with what telemetry shows
  (inventory.py turns a snapshot into rows): an upsert per screen, at most once per
  `every_ms` per screen, dropping parts the screen has not reported for `stale_ms`.
- `parts_used` reads what resolves recorded (desk.py writes them with the resolve).
- `spares` is the plan of GET /api/v1/spares (the arithmetic is spares.py's). A ticket
  is a failure of a (kind, model) when its component and fault are in
  `spares.FAILURE_KIND`, it was opened in the window and it is a product fault (a
  resolve with `product_fault=false` takes it out); its model is the installed base's
  row for that component and kind (`unknown` when the component was never recorded).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, bindparam, delete, select, update

from collector.tickets import db
from collector.tickets.contracts import MS_PER_DAY
from collector.tickets.core import TicketCore
from collector.tickets.errors import TicketInputError
from collector.tickets.inventory import UNKNOWN, ComponentRow, inventory_rows
from collector.tickets.models import PartUsed, TicketChange
from collector.tickets.spares import (
    MAX_CONFIDENCE,
    InstalledComponent,
    SpareLine,
    failure_kind,
    hours_between,
    min_stock,
    spare_line,
)

STALE_MS: Final = 30 * MS_PER_DAY


@dataclass(frozen=True, slots=True)
class InventoryLine:
    """The installed base of one (kind, model) in a scope (the report's table)."""

    kind: str
    model: str
    quantity: int
    first_ms: int
    seen_ms: int


@dataclass(frozen=True, slots=True)
class SparesPlan:
    site: str | None
    region: str | None
    start_ms: int
    end_ms: int
    lead_time_days: float
    confidence: float
    lines: tuple[SpareLine, ...]


def _component(row: Any) -> InstalledComponent:
    return InstalledComponent(row.site, row.screen, row.component, row.kind, row.model,
                              int(row.quantity), int(row.first_ms), int(row.seen_ms))


class PartsMixin(TicketCore):
    # -- the installed base -------------------------------------------------------------
    def record_inventory(
        self,
        site: str,
        screen: str,
        rows: Sequence[ComponentRow],
        now_ms: int | None = None,
        *,
        every_ms: int = 0,
        stale_ms: int = STALE_MS,
    ) -> bool:
        """Upsert the screen's installed base from `rows`; False (nothing written) when
        the screen was recorded less than `every_ms` ago by this process."""
        now = self._clock() if now_ms is None else now_ms
        recorded: dict[tuple[str, str], int] = self.__dict__.setdefault("_inventory_at", {})
        last = recorded.get((site, screen))
        if last is not None and now - last < every_ms:
            return False
        latest = {(r.component, r.kind): r for r in rows}
        c = db.components

        def work(conn: Connection) -> list[TicketChange]:
            here = (c.c.site == site, c.c.screen == screen)
            existing = {(r.component, r.kind): r for r in conn.execute(select(c).where(*here))}
            new, changed = [], []
            for key, row in latest.items():
                old = existing.get(key)
                if old is None:
                    new.append(dict(site=site, screen=screen, component=row.component,
                                    kind=row.kind, model=row.model, quantity=row.quantity,
                                    first_ms=now, seen_ms=now))
                    continue
                model = old.model if row.model == UNKNOWN else row.model
                # A part of another model in the same place is a new part: its hours restart.
                replaced = model != old.model and old.model != UNKNOWN
                changed.append({"b_id": old.id, "b_model": model, "b_quantity": row.quantity,
                                "b_first": now if replaced else old.first_ms, "b_seen": now})
            db.insert_ignore(conn, c, new)
            if changed:
                conn.execute(update(c).where(c.c.id == bindparam("b_id")).values(
                    model=bindparam("b_model"), quantity=bindparam("b_quantity"),
                    first_ms=bindparam("b_first"), seen_ms=bindparam("b_seen")), changed)
            conn.execute(delete(c).where(*here, c.c.seen_ms < now - stale_ms))
            return []

        self._write(work)
        recorded[(site, screen)] = now
        return True

    def observe_inventory(
        self, doc: Mapping[str, Any], now_ms: int | None = None, *, every_ms: int = 0,
        stale_ms: int = STALE_MS,
    ) -> bool:
        """`record_inventory` for one telemetry snapshot, with the screen's contract
        defaults for the models telemetry does not name."""
        site, screen = str(doc["site"]), str(doc["screen"])
        now = self._clock() if now_ms is None else now_ms
        recorded: dict[tuple[str, str], int] = self.__dict__.setdefault("_inventory_at", {})
        last = recorded.get((site, screen))
        if last is not None and now - last < every_ms:
            return False  # before building rows: the cheap check comes first
        terms = self.contracts.terms(site, screen)
        rows = inventory_rows(doc, psu_model=terms.psu_model, module_model=terms.module_model)
        return self.record_inventory(site, screen, rows, now, every_ms=every_ms,
                                     stale_ms=stale_ms)

    def components(
        self, site: str | None = None, screen: str | None = None
    ) -> builtins.list[InstalledComponent]:
        """The installed base, part by part."""
        c = db.components
        query = select(c).order_by(c.c.site, c.c.screen, c.c.kind, c.c.component)
        if site is not None:
            query = query.where(c.c.site == site)
        if screen is not None:
            query = query.where(c.c.screen == screen)
        with self._engine.connect() as conn:
            return [_component(r) for r in conn.execute(query)]

    def inventory(
        self, site: str | None = None, screen: str | None = None
    ) -> builtins.list[InventoryLine]:
        """The installed base per (kind, model): quantity, first and last recorded."""
        out: dict[tuple[str, str], InventoryLine] = {}
        for part in self.components(site, screen):
            key = (part.kind, part.model)
            old = out.get(key)
            out[key] = InventoryLine(
                part.kind, part.model, part.quantity + (old.quantity if old else 0),
                min(part.first_ms, old.first_ms) if old else part.first_ms,
                max(part.seen_ms, old.seen_ms) if old else part.seen_ms)
        return [out[k] for k in sorted(out)]

    # -- parts used on repairs ------------------------------------------------------------
    def parts_used(
        self,
        site: str | None = None,
        screen: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> builtins.list[PartUsed]:
        """Parts fitted on resolves in [start_ms, end_ms), oldest first."""
        pu = db.parts_used
        conds: list[Any] = []
        for col, value in ((pu.c.site, site), (pu.c.screen, screen)):
            if value is not None:
                conds.append(col == value)
        if start_ms is not None:
            conds.append(pu.c.ts_ms >= start_ms)
        if end_ms is not None:
            conds.append(pu.c.ts_ms < end_ms)
        with self._engine.connect() as conn:
            return [
                PartUsed(p.ticket_id, p.site, p.screen, p.component, p.model, p.quantity,
                         p.ts_ms)
                for p in conn.execute(select(pu).where(*conds).order_by(pu.c.ts_ms, pu.c.id))
            ]

    # -- the spares plan -----------------------------------------------------------------
    def spares(
        self,
        site: str | None = None,
        region: str | None = None,
        *,
        lead_time_days: float = 30.0,
        confidence: float = 0.95,
        window_days: float = 365.0,
    ) -> SparesPlan:
        """Per (kind, model) in the scope (a site, a region, or everything): installed,
        minimum stock, failures, rate, MTBF and the recommended stock (docs/spares.md)."""
        if not 0 <= lead_time_days <= 3650:
            raise TicketInputError(f"lead_time_days must be 0..3650, got {lead_time_days}")
        if not 0 < confidence <= MAX_CONFIDENCE:
            raise TicketInputError(
                f"confidence must be above 0 and at most {MAX_CONFIDENCE}, got {confidence}")
        if not 1 <= window_days <= 3650:
            raise TicketInputError(f"window_days must be 1..3650, got {window_days}")
        now = self._clock()
        start = now - round(window_days * MS_PER_DAY)
        terms = self.contracts.terms

        def in_scope(s: str, sc: str) -> bool:
            return (site is None or s == site) and (
                region is None or terms(s, sc).region_of(s) == region)

        installed: dict[tuple[str, str], int] = {}
        shares: dict[tuple[str, str], list[tuple[int, float]]] = {}
        hours: dict[tuple[str, str], float] = {}
        model_of: dict[tuple[str, str, str, str], str] = {}
        for part in self.components(site):
            model_of[(part.site, part.screen, part.component, part.kind)] = part.model
            if not in_scope(part.site, part.screen):
                continue
            key = (part.kind, part.model)
            installed[key] = installed.get(key, 0) + part.quantity
            shares.setdefault(key, []).append(
                (part.quantity, terms(part.site, part.screen).spares_min_pct))
            hours[key] = hours.get(key, 0.0) + part.quantity * hours_between(
                part.first_ms, start, now)
        failures: dict[tuple[str, str], int] = {}
        for r in self._failure_tickets(site, start, now):
            kind = failure_kind(r.component, r.fault)
            if kind is None or not in_scope(r.site, r.screen):
                continue
            key = (kind, model_of.get((r.site, r.screen, r.component, kind), UNKNOWN))
            failures[key] = failures.get(key, 0) + 1
        used: dict[str, int] = {}
        for p in self.parts_used(site, start_ms=start, end_ms=now + 1):
            if in_scope(p.site, p.screen):
                used[p.model] = used.get(p.model, 0) + p.quantity
        lines = tuple(
            spare_line(kind, model, installed=installed.get((kind, model), 0),
                       min_stock=min_stock(shares.get((kind, model), ())),
                       failures=failures.get((kind, model), 0),
                       unit_hours=hours.get((kind, model), 0.0),
                       lead_time_days=lead_time_days, confidence=confidence,
                       parts_used=used.get(model, 0) if model != UNKNOWN else 0)
            for kind, model in sorted(set(installed) | set(failures))
        )
        return SparesPlan(site, region, start, now, lead_time_days, confidence, lines)

    def _failure_tickets(self, site: str | None, start_ms: int, end_ms: int) -> Iterable[Any]:
        """Tickets opened in [start, end) that are product faults (candidates)."""
        t = db.tickets
        query = select(t.c.site, t.c.screen, t.c.component, t.c.fault).where(
            t.c.opened_ms >= start_ms, t.c.opened_ms < end_ms, t.c.product_fault.is_(True))
        if site is not None:
            query = query.where(t.c.site == site)
        with self._engine.connect() as conn:
            return conn.execute(query).all()
