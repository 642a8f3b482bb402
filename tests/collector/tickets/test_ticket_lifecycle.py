"""Every (state, step) pair: the table, and the service on a real SQLite file."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from collector.detect.findings import Fault, Finding
from collector.tickets import InvalidTransition, State, Step, TicketService
from collector.tickets.lifecycle import AUTO_STEPS, TRANSITIONS, allowed_steps, next_state

PEOPLE_STEPS = [
    Step.ACKNOWLEDGE,
    Step.DISPATCH,
    Step.ARRIVE,
    Step.RESOLVE,
    Step.CLOSE,
    Step.REOPEN,
    Step.SURVEY,
]
EXPECTED = {
    State.OPEN: {Step.ACKNOWLEDGE: State.ACKNOWLEDGED},
    State.ACKNOWLEDGED: {Step.DISPATCH: State.DISPATCHED, Step.RESOLVE: State.RESOLVED},
    State.DISPATCHED: {Step.ARRIVE: State.ON_SITE},
    State.ON_SITE: {Step.RESOLVE: State.RESOLVED},
    State.VERIFYING: {
        Step.RESOLVE: State.RESOLVED,
        Step.CLOSE: State.CLOSED,
        Step.REOPEN: State.OPEN,
    },
    State.RESOLVED: {
        Step.CLOSE: State.CLOSED,
        Step.REOPEN: State.OPEN,
        Step.SURVEY: State.RESOLVED,
    },
    State.CLOSED: {Step.REOPEN: State.OPEN, Step.SURVEY: State.CLOSED},
}


def test_table_matches_the_documented_lifecycle() -> None:
    people = {k: v for k, v in TRANSITIONS.items() if k[1] not in AUTO_STEPS}
    assert people == {(s, st): to for s, steps in EXPECTED.items() for st, to in steps.items()}
    for state in (State.OPEN, State.ACKNOWLEDGED, State.DISPATCHED, State.ON_SITE):
        assert next_state(state, Step.CLEAR) is State.VERIFYING
    assert next_state(State.VERIFYING, Step.RECUR) is State.OPEN
    assert next_state(State.RESOLVED, Step.RECUR) is State.OPEN
    for state in (State.CLOSED, State.RESOLVED, State.VERIFYING):
        with pytest.raises(InvalidTransition):
            next_state(state, Step.CLEAR)


def _drive(svc: TicketService, component: str, target: State) -> int:
    """A fresh ticket brought to `target` the way the desk and the detector would."""
    f = Finding("acme", "main", component, Fault.MODULE_FAULT, True, svc.now_ms())
    tid = svc.apply_findings([f])[0].ticket_id
    path = {
        State.OPEN: [],
        State.ACKNOWLEDGED: ["ack"],
        State.DISPATCHED: ["ack", "dispatch"],
        State.ON_SITE: ["ack", "dispatch", "arrive"],
        State.VERIFYING: ["clear"],
        State.RESOLVED: ["ack", "resolve"],
        State.CLOSED: ["ack", "resolve", "close"],
    }[target]
    for step in path:
        if step == "ack":
            svc.acknowledge(tid, "desk")
        elif step == "dispatch":
            svc.dispatch(tid, "desk", engineer="Eve")
        elif step == "arrive":
            svc.arrive(tid, "eve")
        elif step == "resolve":
            svc.resolve(tid, "desk")
        elif step == "close":
            svc.close_ticket(tid, "desk")
        elif step == "clear":
            svc.apply_findings(
                [Finding("acme", "main", component, Fault.MODULE_FAULT, False, svc.now_ms())]
            )
    assert svc.get(tid).state == target.value
    return tid


def _take(svc: TicketService, tid: int, step: Step) -> str:
    actions: dict[Step, Callable[[], object]] = {
        Step.ACKNOWLEDGE: lambda: svc.acknowledge(tid, "desk"),
        Step.DISPATCH: lambda: svc.dispatch(tid, "desk", engineer="Eve"),
        Step.ARRIVE: lambda: svc.arrive(tid, "eve"),
        Step.RESOLVE: lambda: svc.resolve(tid, "desk", root_cause="ribbon cable"),
        Step.CLOSE: lambda: svc.close_ticket(tid, "desk"),
        Step.REOPEN: lambda: svc.reopen(tid, "desk", reason="customer called again"),
        Step.SURVEY: lambda: svc.survey(tid, "desk", 5),
    }
    actions[step]()
    return svc.get(tid).state


@pytest.mark.parametrize("state", list(State))
def test_every_step_from_every_state(service: TicketService, state: State) -> None:
    for n, step in enumerate(PEOPLE_STEPS):
        tid = _drive(service, f"card/{state.value}-{n}", state)
        expected = EXPECTED[state].get(step)
        if expected is None:
            with pytest.raises(InvalidTransition) as err:
                _take(service, tid, step)
            allowed = [s.value for s in allowed_steps(state)]
            assert err.value.allowed == tuple(allowed)
            assert f"state {state.value!r}" in str(err.value)
            assert ", ".join(allowed) in str(err.value)
            assert service.get(tid).state == state.value  # nothing changed
        else:
            assert _take(service, tid, step) == expected.value
            last = service.get(tid).history[-1]
            assert (last.step, last.from_state, last.to_state) == (
                step.value,
                state.value,
                expected.value,
            )
