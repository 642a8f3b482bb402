"""PagerDuty Events API v2: one alert per ticket, keyed by the ticket's fault key.

```
POST https://events.pagerduty.com/v2/enqueue          202 Accepted = delivered
{"routing_key": ..., "event_action": "trigger" | "acknowledge" | "resolve",
 "dedup_key": "<site>/<screen>/<component>/<fault>",
 "payload": {"summary", "source": "<site>/<screen>", "severity", "timestamp",   (trigger
             "component", "group": <site>, "class": <fault>, "custom_details"},  only)
 "client": "LEDwatch", "client_url", "links"}
```
Every event but these triggers (again: PagerDuty adds it to the open alert with the same
dedup_key); `acknowledged` acknowledges; `cleared`, `resolved`, `closed` resolve. After
a resolve the same key opens a new PagerDuty alert, which is what a re-opened fault
wants. Severity from the priority: P1 critical, P2 error, P3 warning, P4 info.
PagerDuty answers 400 to a malformed event (given up) and 429 when rate limited
(about 120 events a minute per routing key; retried with backoff).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

import orjson

from collector.notify import render
from collector.notify.channel import HttpChannel
from collector.notify.model import ENDING_EVENTS, Event, Notification
from collector.notify.settings import PagerDutyChannelSettings

SEVERITY = {"P1": "critical", "P2": "error", "P3": "warning", "P4": "info"}
DEDUP_KEY_MAX = 255


def action(event: Event) -> str:
    if event is Event.ACKNOWLEDGED:
        return "acknowledge"
    if event in ENDING_EVENTS:
        return "resolve"
    return "trigger"


def dedup_key(ticket: dict[str, Any]) -> str:
    key = str(ticket.get("key") or f"ticket-{ticket.get('id')}")
    return key[:DEDUP_KEY_MAX]


def task_body(notification: Notification, routing_key: str) -> dict[str, Any]:
    """A task or report notification: a `trigger` of its own alert (nothing resolves it:
    the desk closes it in PagerDuty, or the route keeps these events off the pager)."""
    t = notification.ticket
    where = f"{t.get('site')}/{t.get('screen')}"
    key = (f"report/{where}/{t.get('quarter')}" if notification.event is Event.REPORT_READY
           else f"task/{where}/{t.get('kind')}/{t.get('due_ms')}")
    details = {k: v for k, v in t.items() if not isinstance(v, dict | list)}
    details |= {"event": str(notification.event), "note": notification.note,
                "notification_id": notification.id}
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": key[:DEDUP_KEY_MAX],
        "payload": {
            "summary": render.summary(notification),
            "source": where,
            "severity": SEVERITY.get(str(t.get("priority")), "info"),
            "timestamp": render.iso(notification.created_ms),
            "component": "task",
            "group": str(t.get("site")),
            "class": str(notification.event),
            "custom_details": details,
        },
        "client": render.PRODUCT,
    }


def event_body(
    notification: Notification, routing_key: str, desk_link: str | None
) -> dict[str, Any]:
    """The Events v2 document for one notification."""
    if notification.about_task:
        return task_body(notification, routing_key)
    t = notification.ticket
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action(notification.event),
        "dedup_key": dedup_key(t),
    }
    if body["event_action"] != "trigger":
        return body
    details = {
        "ticket_id": t.get("id"),
        "event": str(notification.event),
        "level": notification.level,
        "note": notification.note,
        "state": t.get("state"),
        "detail": t.get("detail"),
        "opened": render.when(t.get("opened_ms")),
        "response_due": render.when(t.get("response_due_ms")),
        "onsite_due": render.when(t.get("onsite_due_ms")),
        "resolve_due": render.when(t.get("resolve_due_ms")),
        "notification_id": notification.id,
    }
    body["payload"] = {
        "summary": render.summary(notification),
        "source": f"{t.get('site')}/{t.get('screen')}",
        "severity": SEVERITY.get(str(t.get("priority")), "error"),
        "timestamp": render.iso(notification.created_ms),
        "component": str(t.get("component")),
        "group": str(t.get("site")),
        "class": str(t.get("fault")),
        "custom_details": details,
    }
    body["client"] = render.PRODUCT
    if desk_link:
        body["client_url"] = desk_link
        text = f"{render.PRODUCT} desk: ticket {t.get('id')}"
        body["links"] = [{"href": desk_link, "text": text}]
    return body


class PagerDutyChannel(HttpChannel):
    kind = "pagerduty"

    def __init__(
        self,
        name: str,
        settings: PagerDutyChannelSettings,
        routing_key: str,
        desk_link: Callable[[object], str | None],
    ) -> None:
        super().__init__(name, settings.url, settings.timeout_s, settings.ca_file)
        self._routing_key = routing_key
        self._desk_link = desk_link

    def send(self, notification: Notification) -> None:
        link = self._desk_link(notification.ticket_id)
        body = orjson.dumps(event_body(notification, self._routing_key, link))
        self.post(self.url, body, {})

    def check(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        self.reachable(f"{parts.scheme}://{parts.netloc}/", "HEAD")
