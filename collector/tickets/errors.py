"""Ticket errors; the API layer maps each one to an HTTP status (see collector/api/errors)."""

from __future__ import annotations

from collections.abc import Sequence

from ledwatch.errors import UsageError


class TicketError(UsageError):
    """A ticket operation was asked for something it cannot do."""


class TicketNotFound(TicketError):
    def __init__(self, ticket_id: int) -> None:
        super().__init__(f"ticket {ticket_id} does not exist")
        self.ticket_id = ticket_id


class InvalidTransition(TicketError):
    """A lifecycle step that the ticket's current state does not allow."""

    def __init__(self, state: str, step: str, allowed: Sequence[str]) -> None:
        allowed_text = ", ".join(allowed) if allowed else "none"
        super().__init__(
            f"cannot {step} a ticket in state {state!r}; allowed steps from {state!r}: "
            f"{allowed_text}"
        )
        self.state = state
        self.step = step
        self.allowed = tuple(allowed)


class TicketConflict(TicketError):
    """The step is valid for the ticket but clashes with another one (same fault key open)."""


class TicketInputError(TicketError):
    """An argument is malformed (a bad month, an unknown filter value)."""
