"""The ticket lifecycle as data: one transition table, no scattered ifs (h11 style).

```
 open ─acknowledge─> acknowledged ─dispatch─> dispatched ─arrive─> on_site ─resolve─> resolved
                          └──────────── resolve (remote fix) ──────────────────────────┘
 resolved ─close─> closed
 open/acknowledged/dispatched/on_site ─clear (finding gone)─> verifying
 verifying ─resolve─> resolved          verifying ─close─> closed
 verifying ─recur (finding back)─> open          resolved ─recur─> open (the repair did not hold)
 verifying/resolved/closed ─reopen─> open        resolved/closed ─survey─> (unchanged)
```
`clear` and `recur` are taken by the detector only; people take the other steps.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from collector.tickets.errors import InvalidTransition


class State(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"
    ON_SITE = "on_site"
    VERIFYING = "verifying"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Step(StrEnum):
    OPEN = "open"  # creation; never in the table
    NOTE = "note"  # a history entry that changes nothing (a repeated phone report)
    ACKNOWLEDGE = "acknowledge"
    DISPATCH = "dispatch"
    ARRIVE = "arrive"
    RESOLVE = "resolve"
    CLOSE = "close"
    REOPEN = "reopen"
    SURVEY = "survey"
    CLEAR = "clear"  # detector: the finding went inactive
    RECUR = "recur"  # detector: the finding came back
    # History entries of root-cause tickets that change no state (docs/detection.md):
    ESCALATE = "escalate"  # a later stage of the same root cause (voltage_low -> psu_failed)
    PRIORITY = "priority"  # priority raised (an effect or a later stage is more urgent)
    EFFECT = "effect"  # a finding recorded as an effect of this ticket's root cause
    FLAPPING = "flapping"  # the fault comes and goes: kept open, marked
    UNSUPPRESS = "unsuppress"  # opened when the maintenance window that held it ended
    # SLA clocks (tickets/sla.py, docs/tickets.md): no state change either.
    PAUSE = "pause"  # waiting on the customer: the clocks stop
    RESUME = "resume"
    SLA_WARNING = "sla_warning"  # a share of a deadline gone: escalated to the next level
    RESPONSE_BREACHED = "response_breached"
    ONSITE_BREACHED = "onsite_breached"
    EVENT = "event"  # an agent's edge event about this ticket's component (door opened, ...)


AUTO_STEPS: Final = frozenset({Step.CLEAR, Step.RECUR})

TRANSITIONS: Final[dict[tuple[State, Step], State]] = {
    (State.OPEN, Step.ACKNOWLEDGE): State.ACKNOWLEDGED,
    (State.OPEN, Step.CLEAR): State.VERIFYING,
    (State.ACKNOWLEDGED, Step.DISPATCH): State.DISPATCHED,
    (State.ACKNOWLEDGED, Step.RESOLVE): State.RESOLVED,  # remote fix
    (State.ACKNOWLEDGED, Step.CLEAR): State.VERIFYING,
    (State.DISPATCHED, Step.ARRIVE): State.ON_SITE,
    (State.DISPATCHED, Step.CLEAR): State.VERIFYING,
    (State.ON_SITE, Step.RESOLVE): State.RESOLVED,
    (State.ON_SITE, Step.CLEAR): State.VERIFYING,
    (State.VERIFYING, Step.RESOLVE): State.RESOLVED,
    (State.VERIFYING, Step.CLOSE): State.CLOSED,
    (State.VERIFYING, Step.RECUR): State.OPEN,
    (State.VERIFYING, Step.REOPEN): State.OPEN,
    (State.RESOLVED, Step.CLOSE): State.CLOSED,
    (State.RESOLVED, Step.REOPEN): State.OPEN,
    (State.RESOLVED, Step.RECUR): State.OPEN,
    (State.RESOLVED, Step.SURVEY): State.RESOLVED,
    (State.CLOSED, Step.REOPEN): State.OPEN,
    (State.CLOSED, Step.SURVEY): State.CLOSED,
}

# Steps after which the same fault needed service again: they count a repeat service and
# start a new service cycle (SLA clocks restart). A fault that comes back while the ticket
# is only `verifying` was never repaired, so its cycle (and its clocks) simply continue.
NEW_CYCLE: Final = frozenset(
    {
        (State.VERIFYING, Step.REOPEN),
        (State.RESOLVED, Step.REOPEN),
        (State.CLOSED, Step.REOPEN),
        (State.RESOLVED, Step.RECUR),
    }
)

# States in which somebody still works on the fault; a cleared finding moves them on.
WORKING: Final = frozenset({State.OPEN, State.ACKNOWLEDGED, State.DISPATCHED, State.ON_SITE})


def allowed_steps(state: State, paused: bool = False) -> list[Step]:
    """Steps a person may take from `state`, in table order; pause or resume while
    somebody works on it."""
    steps = [s for (st, s) in TRANSITIONS if st == state and s not in AUTO_STEPS]
    if state in WORKING:
        steps.append(Step.RESUME if paused else Step.PAUSE)
    return steps


def next_state(state: State, step: Step) -> State:
    """The state after `step`, or `InvalidTransition` naming the allowed steps."""
    try:
        return TRANSITIONS[(state, step)]
    except KeyError:
        allowed = [s.value for s in allowed_steps(state)]
        raise InvalidTransition(state.value, step.value, allowed) from None
