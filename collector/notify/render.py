"""Words for people: subjects, summaries and the plain-text body. Pure functions.

Every channel that shows a ticket to a person (the e-mail, Alertmanager's annotations,
PagerDuty's summary) takes its text from here, so a ticket reads the same everywhere.
Times are UTC with the zone written out: the desk and the field engineer may not share
a time zone, and a deadline without one is a guess.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from collector.notify.model import Event, Notification

PRODUCT = "LEDwatch"


def when(ms: object) -> str:
    """`2026-03-01 18:20:00 UTC`, or `-` for a missing time."""
    if not isinstance(ms, int | float) or isinstance(ms, bool):
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(ms: int) -> str:
    """RFC 3339 with milliseconds, UTC, for machines: `2026-03-01T18:00:00.000Z`."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def event_text(notification: Notification) -> str:
    """`opened`, `priority raised`, `escalated (level 1)`, ..."""
    text = str(notification.event).replace("_", " ")
    if notification.event is Event.ESCALATED:
        text += f" (level {notification.level})"
    return text


def where(ticket: dict[str, Any]) -> str:
    """`acme/lobby screen`: site/screen and the component."""
    return f"{ticket.get('site', '?')}/{ticket.get('screen', '?')} {ticket.get('component', '?')}"


TASK_WORDS = {"inspection": "remote inspection", "follow_up": "follow-up contact"}


def day(ms: object) -> str:
    """`2026-03-10`, or `-` for a missing time."""
    return when(ms)[:10]


def _what(notification: Notification) -> str:
    """What the notification is about, after the priority: the ticket's `acme/lobby
    screen screen_dark`, a task's `acme/lobby follow-up contact due 2026-03-10`, a
    report's `acme/lobby inspection report 2026-Q1`."""
    t = notification.ticket
    if notification.event is Event.REPORT_READY:
        return f"{t.get('site', '?')}/{t.get('screen', '?')} inspection report {t.get('quarter')}"
    if notification.about_task:
        kind = TASK_WORDS.get(str(t.get("kind")), str(t.get("kind")))
        return f"{t.get('site', '?')}/{t.get('screen', '?')} {kind} due {day(t.get('due_ms'))}"
    return f"{where(t)} {t.get('fault', '?')}"


def summary(notification: Notification) -> str:
    """One line: `P1 acme/lobby screen screen_dark: opened` (<= 1024 characters)."""
    t = notification.ticket
    return f"{t.get('priority', '?')} {_what(notification)}: {event_text(notification)}"[:1024]


def subject(notification: Notification) -> str:
    """`[LEDwatch P1] acme/lobby screen screen_dark: opened`."""
    t = notification.ticket
    return f"[{PRODUCT} {t.get('priority', '?')}] {_what(notification)}: {event_text(notification)}"


def _effects(ticket: dict[str, Any]) -> list[str]:
    lines = []
    for effect in ticket.get("effects") or ():
        if isinstance(effect, dict):
            state = "active" if effect.get("active") else "cleared"
            lines.append(f"  - {effect.get('component')} {effect.get('fault')} ({state})")
    return lines


def _task_facts(notification: Notification) -> list[tuple[str, object]]:
    t = notification.ticket
    if notification.event is Event.REPORT_READY:
        facts: list[tuple[str, object]] = [
            ("Report", f"quarterly remote inspection {t.get('quarter')}"),
            ("Site", t.get("site")), ("Screen", t.get("screen")), ("Priority", t.get("priority")),
        ]
        facts += [("File", path) for path in t.get("paths") or ()]
        task = t.get("task")
        if isinstance(task, dict):
            state = "done" if task.get("done_ms") else "open: mark it done once read"
            facts.append(("Task", f"{task.get('id')} due {day(task.get('due_ms'))} ({state})"))
        return facts
    return [
        ("Task", f"{t.get('id')} ({TASK_WORDS.get(str(t.get('kind')), t.get('kind'))})"),
        ("Event", event_text(notification)),
        ("Priority", t.get("priority")),
        ("Site", t.get("site")),
        ("Screen", t.get("screen")),
        ("Due", day(t.get("due_ms"))),
        ("State", t.get("state")),
    ]


def body(notification: Notification, desk_link: str | None) -> str:
    """The e-mail body: what happened, the ticket's facts, its deadlines, the note, the link."""
    t = notification.ticket
    if notification.about_task:
        return _body(notification, _task_facts(notification), desk_link)
    facts = [
        ("Ticket", f"{t.get('id')} ({t.get('key', '')})"),
        ("Event", event_text(notification)),
        ("Priority", t.get("priority")),
        ("State", t.get("state")),
        ("Site", t.get("site")),
        ("Screen", t.get("screen")),
        ("Component", t.get("component")),
        ("Fault", t.get("fault")),
        ("Detail", t.get("detail") or "-"),
        ("Opened", when(t.get("opened_ms"))),
    ]
    if t.get("reopened_ms"):
        facts.append(("Reopened", when(t.get("reopened_ms"))))
    facts += [
        ("Response due", when(t.get("response_due_ms"))),
        ("On site due", when(t.get("onsite_due_ms"))),
        ("Resolve due", when(t.get("resolve_due_ms"))),
    ]
    for label, key in (("Acknowledged", "acknowledged_ms"), ("Cleared", "cleared_ms")):
        if t.get(key):
            facts.append((label, when(t.get(key))))
    if t.get("engineer"):
        facts.append(("Engineer", t.get("engineer")))
    if t.get("predicted_failure_ms"):
        facts.append(("Expected to fail", when(t.get("predicted_failure_ms"))))
    return _body(notification, facts, desk_link, _effects(t))


def _body(notification: Notification, facts: list[tuple[str, object]], desk_link: str | None,
          effects: list[str] | None = None) -> str:
    width = max(len(label) for label, _ in facts) + 2
    lines = [summary(notification), ""]
    if notification.note:
        lines += [notification.note, ""]
    lines += [f"{label + ':':<{width}}{value}" for label, value in facts]
    if effects:
        lines += ["", "Effects (recorded on this ticket):", *effects]
    if desk_link:
        lines += ["", f"Desk: {desk_link}"]
    lines += [
        "",
        "-- ",
        f"Sent by {PRODUCT} at {when(notification.created_ms)}; notification "
        f"{notification.id} (level {notification.level}). A repeat of this id is a "
        "re-delivery, not a new change.",
    ]
    return "\n".join(lines) + "\n"
