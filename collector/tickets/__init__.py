"""Service tickets: findings and desk actions in, tickets with SLA clocks and KPIs out."""

from collector.tickets.contracts import ContractBook, ContractTerms, MajorEvent
from collector.tickets.errors import (
    InvalidTransition,
    TicketConflict,
    TicketError,
    TicketInputError,
    TicketNotFound,
)
from collector.tickets.kpis import Kpis
from collector.tickets.lifecycle import State, Step
from collector.tickets.models import Resolution, Source, Survey, Ticket, TicketChange, TicketEvent
from collector.tickets.service import TicketFilter, TicketService

__all__ = [
    "ContractBook",
    "ContractTerms",
    "InvalidTransition",
    "Kpis",
    "MajorEvent",
    "Resolution",
    "Source",
    "State",
    "Step",
    "Survey",
    "Ticket",
    "TicketChange",
    "TicketConflict",
    "TicketError",
    "TicketEvent",
    "TicketFilter",
    "TicketInputError",
    "TicketNotFound",
    "TicketService",
]
