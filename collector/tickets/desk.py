"""What people do with tickets: phone and e-mail reports, and one method per lifecycle step."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any, Final

from sqlalchemy import Connection, select, update

from collector.detect.findings import Fault, Priority
from collector.tickets import db
from collector.tickets.errors import InvalidTransition, TicketInputError
from collector.tickets.lifecycle import State, Step, allowed_steps
from collector.tickets.models import Resolution, Source, Ticket, TicketChange
from collector.tickets.sla import SlaMixin
from ledwatch.contract import check_id

_KNOWN_LIST: Final = 10  # known screens named in the message for an unknown one


class DeskMixin(SlaMixin):
    def create_manual(
        self,
        site: str,
        screen: str,
        component: str,
        description: str,
        reporter: str,
        priority: Priority | str | None = None,
        actor: str | None = None,
    ) -> tuple[Ticket, bool]:
        """A fault reported by phone or e-mail -> (ticket, created). A second report of a
        fault that is still open goes into that ticket's history instead of a new ticket."""
        check_id(site, "site")
        check_id(screen, "screen")
        if not component or len(component) > 128 or component.strip() != component:
            raise TicketInputError("component must be 1..128 characters, e.g. 'card/c12'")
        try:
            prio = None if priority is None else Priority(priority)
        except ValueError:
            raise TicketInputError(f"priority must be one of P1..P4, got {priority!r}") from None
        who = actor or reporter
        key = f"{site}/{screen}/{component}/{Fault.MANUAL.value}"
        created: list[int] = []

        def work(conn: Connection) -> list[TicketChange]:
            ts = self._clock()
            existing = conn.execute(
                select(db.tickets.c.id, db.tickets.c.state).where(db.tickets.c.open_key == key)
            ).first()
            if existing is not None:
                state = State(existing.state)
                note = f"reported again by {reporter}: {description}"
                self._event(conn, existing.id, ts, who, Step.NOTE, state, state, note)
                created.append(-existing.id)
                return []
            change = self._create(
                conn,
                site=site,
                screen=screen,
                component=component,
                fault=Fault.MANUAL,
                priority=prio,
                source=Source.MANUAL,
                detail=description,
                reporter=reporter,
                ts_ms=ts,
                actor=who,
                repeat_of=None,
            )
            created.append(change.ticket_id)
            return [change]

        self._write(work)
        return self.get(abs(created[0])), created[0] > 0

    def check_known(
        self,
        site: str,
        screen: str,
        seen: Collection[tuple[str, str]] = (),
        seen_sites: Collection[str] = (),
    ) -> None:
        """Refuse a phone report for a site or screen nobody has named: a typo (or a
        fuzzer) would otherwise open tickets, with SLA clocks, for places that do not
        exist. Known: a contract names it, an agent reported it (`seen`: the live
        screens; `seen_sites`: sites of agent status messages), or it has had tickets."""
        t = db.tickets
        with self._engine.connect() as conn:
            had = conn.execute(select(t.c.screen).where(t.c.site == site).distinct())
            known = {r.screen for r in had}
        known |= {sc for si, sc in seen if si == site} | self.contracts.named_screens(site)
        if not (known or site in seen_sites or self.contracts.names_site(site)):
            raise TicketInputError(
                f"unknown site {site!r}: no contract and no agent names it; send "
                '"new_site": true to report a fault on a site not yet known'
            )
        if screen in known:
            return
        named = ", ".join(sorted(known)[:_KNOWN_LIST]) or "none yet"
        raise TicketInputError(
            f"unknown screen {screen!r} on site {site!r}: no contract, agent or ticket names "
            f'it (known: {named}); send "new_site": true to report a fault on a screen '
            "not yet known"
        )

    def _step(
        self, ticket_id: int, actor: str, step: Step, note: str, extra: dict[str, Any] | None = None
    ) -> Ticket:
        def work(conn: Connection) -> list[TicketChange]:
            row = self._row(conn, ticket_id)
            return [self._transition(conn, row, step, actor, self._clock(), note, extra or {})]

        self._write(work)
        return self.get(ticket_id)

    def acknowledge(self, ticket_id: int, actor: str, note: str = "") -> Ticket:
        return self._step(ticket_id, actor, Step.ACKNOWLEDGE, note)

    def dispatch(self, ticket_id: int, actor: str, engineer: str, note: str = "") -> Ticket:
        if not engineer.strip():
            raise TicketInputError("engineer must name the person sent on site")
        text = f"dispatched {engineer}" + (f": {note}" if note else "")
        return self._step(ticket_id, actor, Step.DISPATCH, text, {"engineer": engineer})

    def arrive(self, ticket_id: int, actor: str, note: str = "") -> Ticket:
        return self._step(ticket_id, actor, Step.ARRIVE, note)

    def resolve(
        self,
        ticket_id: int,
        actor: str,
        resolution: Resolution | str | None = None,
        root_cause: str = "",
        product_fault: bool = True,
        note: str = "",
        parts: Iterable[Mapping[str, Any]] = (),
    ) -> Ticket:
        """Record the fix. `resolution` defaults to onsite after an arrival, else remote;
        `product_fault=False` (misuse) keeps the downtime out of the warranty extension.
        `parts` (`{model, quantity, component?}`; component defaults to the ticket's) go
        into `parts_used` in the same transaction: a refused resolve records none."""
        try:
            chosen = None if resolution is None else Resolution(resolution)
        except ValueError:
            raise TicketInputError(
                f"resolution must be remote or onsite, got {resolution!r}"
            ) from None
        fitted = [_part(n, p) for n, p in enumerate(parts)]

        def work(conn: Connection) -> list[TicketChange]:
            row = self._row(conn, ticket_id)
            res = chosen or (Resolution.ONSITE if row.arrived_ms is not None else Resolution.REMOTE)
            extra = {
                "resolution": res.value,
                "root_cause": root_cause or row.root_cause,
                "product_fault": product_fault,
            }
            now = self._clock()
            change = self._transition(conn, row, Step.RESOLVE, actor, now, note, extra)
            conn.execute(
                update(db.downtime)
                .where(db.downtime.c.ticket_id == ticket_id)
                .values(product_fault=product_fault)
            )
            for component, model, quantity in fitted:
                conn.execute(db.parts_used.insert().values(
                    ticket_id=ticket_id, site=row.site, screen=row.screen,
                    component=component or row.component, model=model, quantity=quantity,
                    ts_ms=now))
            return [change]

        self._write(work)
        return self.get(ticket_id)

    def close_ticket(self, ticket_id: int, actor: str, note: str = "") -> Ticket:
        """The `close` step (`close()` without arguments shuts the service down)."""
        return self._step(ticket_id, actor, Step.CLOSE, note)

    def reopen(self, ticket_id: int, actor: str, reason: str) -> Ticket:
        if not reason.strip():
            raise TicketInputError("reason must say why the ticket is reopened")
        return self._step(ticket_id, actor, Step.REOPEN, reason)

    def pause(self, ticket_id: int, actor: str, reason: str) -> Ticket:
        """Waiting on the customer (access to the site, a decision): the clocks stop."""
        if not reason.strip():
            raise TicketInputError("reason must say what the ticket waits for")
        return self._pause_resume(ticket_id, actor, reason, Step.PAUSE)

    def resume(self, ticket_id: int, actor: str, note: str = "") -> Ticket:
        return self._pause_resume(ticket_id, actor, note, Step.RESUME)

    def _pause_resume(self, ticket_id: int, actor: str, note: str, step: Step) -> Ticket:
        def work(conn: Connection) -> list[TicketChange]:
            row = self._row(conn, ticket_id)
            state, paused = State(row.state), row.paused_ms is not None
            allowed = allowed_steps(state, paused)
            if step not in allowed:
                raise InvalidTransition(state.value, step.value,
                                        [s.value for s in allowed])
            now = self._clock()
            if step is Step.PAUSE:
                return [self._pause(conn, row, actor, now, note)]
            return [self._resume(conn, row, actor, now, note)]

        self._write(work)
        return self.get(ticket_id)

    def record_event(self, doc: dict[str, Any]) -> TicketChange | None:
        """An agent's `ledwatch.event/1` (door opened, link lost) goes on the history of
        the not-closed ticket of its component, if there is one."""
        site, screen = doc.get("site"), doc.get("screen")
        component = doc.get("component")
        if not (isinstance(site, str) and isinstance(screen, str) and isinstance(component, str)):
            return None
        detail = doc.get("detail")
        text = f"{doc.get('event', 'event')}" + (f": {detail}" if detail not in (None, "") else "")
        ts = doc.get("ts")
        when = int(ts) if isinstance(ts, int) and not isinstance(ts, bool) else self._clock()
        found: list[TicketChange] = []

        def work(conn: Connection) -> list[TicketChange]:
            t = db.tickets
            row = conn.execute(
                select(t).where(t.c.site == site, t.c.screen == screen,
                                t.c.component == component, t.c.open_key.is_not(None))
                .order_by(t.c.id.desc())
            ).first()
            if row is None:
                return []
            state = State(row.state)
            event_id = self._event(conn, row.id, when, f"agent:{doc.get('agent', '?')}",
                                   Step.EVENT, state, state, text[:1000])
            found.append(self._change(row, when, Step.EVENT.value, text, event_id=event_id))
            return []  # no listener change: nothing about the ticket itself changed

        self._write(work)
        return found[0] if found else None

    def survey(self, ticket_id: int, actor: str, score: int, comment: str = "") -> Ticket:
        """Record the customer's rating (1..5); a later rating replaces the earlier one."""
        if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
            raise TicketInputError(f"score must be an integer 1..5, got {score!r}")

        def work(conn: Connection) -> list[TicketChange]:
            row = self._row(conn, ticket_id)
            ts = self._clock()
            terms = self.contracts.terms(row.site, row.screen)
            satisfied = terms.satisfied(score)
            note = f"score {score} ({'satisfied' if satisfied else 'not satisfied'}) {comment}"
            change = self._transition(conn, row, Step.SURVEY, actor, ts, note.strip(), {})
            values = dict(score=score, satisfied=satisfied, comment=comment, ts_ms=ts, actor=actor)
            s = db.surveys
            if conn.execute(select(s.c.id).where(s.c.ticket_id == ticket_id)).first() is None:
                conn.execute(s.insert().values(ticket_id=ticket_id, **values))
            else:
                conn.execute(update(s).where(s.c.ticket_id == ticket_id).values(**values))
            return [change]

        self._write(work)
        return self.get(ticket_id)


def _part(n: int, part: Mapping[str, Any]) -> tuple[str | None, str, int]:
    """(component or None, model, quantity) of one `parts` entry, checked."""
    model, quantity, component = part.get("model"), part.get("quantity", 1), part.get("component")
    if not isinstance(model, str) or not 0 < len(model.strip()) <= 128:
        raise TicketInputError(f"parts[{n}].model must be 1..128 characters, got {model!r}")
    if not isinstance(quantity, int) or isinstance(quantity, bool) or not 1 <= quantity <= 10_000:
        raise TicketInputError(f"parts[{n}].quantity must be an integer 1..10000, "
                               f"got {quantity!r}")
    if component is not None and (not isinstance(component, str)
                                  or not 0 < len(component) <= 128):
        raise TicketInputError(f"parts[{n}].component must be 1..128 characters, "
                               f"got {component!r}")
    return component, model.strip(), quantity
