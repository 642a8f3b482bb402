"""Open tickets as Alertmanager alerts (`POST /api/v2/alerts`), so a site reuses its
Alertmanager routes, silences, inhibitions and receivers.

```
labels       alertname=ledwatch_<fault>, site, screen, component, fault, priority,
             ticket_id, + the channel's static `labels`      (the alert's identity)
annotations  summary, description, state, event, note, desk_url
startsAt     the ticket's (re)open time;  generatorURL: the desk page (with desk_url)
endsAt       firing: now + 4 x resend_s (refreshed by every re-push);  ended: now
```
Alertmanager resolves an alert nobody re-sends once its `endsAt` passes, so the
channel keeps a registry of the tickets it reported firing (opened, escalated,
priority raised, reopened, breaches, acknowledged set an entry; cleared, resolved,
closed remove it, sending `endsAt = now`) and `refresh` re-pushes them every
`resend_s`, as Prometheus does with its rules. A raised priority changes the labels and
so the alert's identity: the alert under the old labels is ended in the same request.

The registry lives in memory. Given `open_tickets` (a callable returning the open
tickets as the API shows them), the first refresh after a start re-learns the tickets
that route to this channel at level 0, and every refresh ends alerts whose ticket is no
longer open; without it the registry starts empty and re-learns from the next events,
and alerts of tickets that changed nothing meanwhile lapse after 4 x resend_s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from collector.notify import render
from collector.notify.channel import HttpChannel
from collector.notify.errors import DeliveryFailed
from collector.notify.model import ENDING_EVENTS, Event, Notification
from collector.notify.settings import AlertmanagerChannelSettings

log = logging.getLogger(__name__)

ACTIVE_STATES = frozenset({"open", "acknowledged", "dispatched", "on_site"})
LIFETIME_RESENDS = 4  # a firing alert's endsAt is this many resend periods ahead

OpenTickets = Callable[[], list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Alert:
    """What the registry keeps per ticket: enough to re-push or end the alert."""

    labels: dict[str, str]
    annotations: dict[str, str]
    starts_ms: int
    generator_url: str | None

    def document(self, ends_ms: int) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": render.iso(self.starts_ms),
            "endsAt": render.iso(ends_ms),
        }
        if self.generator_url:
            doc["generatorURL"] = self.generator_url
        return doc


def alert_for(
    ticket: dict[str, Any],
    desk_link: str | None,
    extra_labels: dict[str, str],
    notification: Notification | None = None,
) -> Alert:
    """The alert of one ticket; `notification` adds its event and note to the annotations."""
    labels = {
        **extra_labels,
        "alertname": f"ledwatch_{ticket.get('fault', 'unknown')}",
        "site": str(ticket.get("site", "")),
        "screen": str(ticket.get("screen", "")),
        "component": str(ticket.get("component", "")),
        "fault": str(ticket.get("fault", "")),
        "priority": str(ticket.get("priority", "")),
        "ticket_id": str(ticket.get("id", "")),
    }
    annotations = {
        "summary": f"{ticket.get('priority')} {render.where(ticket)} {ticket.get('fault')}",
        "description": (
            f"{ticket.get('detail') or ticket.get('fault')}. Response due "
            f"{render.when(ticket.get('response_due_ms'))}, on site due "
            f"{render.when(ticket.get('onsite_due_ms'))}."
        ),
        "state": str(ticket.get("state", "")),
    }
    if notification is not None:
        annotations["event"] = render.event_text(notification)
        if notification.note:
            annotations["note"] = notification.note
    if desk_link:
        annotations["desk_url"] = desk_link
    started = ticket.get("reopened_ms") or ticket.get("opened_ms") or 0
    return Alert(labels, annotations, int(started), desk_link)


def task_alert(notification: Notification, extra_labels: dict[str, str]) -> Alert:
    """A task or report notification as an alert of its own (not kept in the registry:
    it fires once and lapses after LIFETIME_RESENDS x resend_s)."""
    t = notification.ticket
    kind = "report" if notification.event is Event.REPORT_READY else str(t.get("kind"))
    labels = {
        **extra_labels,
        "alertname": f"ledwatch_{notification.event.value}",
        "site": str(t.get("site", "")),
        "screen": str(t.get("screen", "")),
        "task": kind,
        "priority": str(t.get("priority", "")),
        "notification_id": notification.id,
    }
    annotations = {"summary": render.summary(notification),
                   "event": render.event_text(notification)}
    if notification.note:
        annotations["note"] = notification.note
    return Alert(labels, annotations, notification.created_ms, None)


class AlertmanagerChannel(HttpChannel):
    kind = "alertmanager"

    def __init__(
        self,
        name: str,
        settings: AlertmanagerChannelSettings,
        desk_link: Callable[[object], str | None],
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        open_tickets: OpenTickets | None = None,
        wants: Callable[[dict[str, Any]], bool] = lambda _ticket: True,
        retry_s: float = 5.0,
    ) -> None:
        super().__init__(name, settings.url, settings.timeout_s, settings.ca_file)
        self.settings = settings
        self.alerts_url = f"{settings.url.rstrip('/')}/api/v2/alerts"
        self._desk_link = desk_link
        self._clock_ms = clock_ms
        self._open_tickets = open_tickets
        self._wants = wants
        self._retry_ms = int(retry_s * 1000)
        self._resend_ms = int(settings.resend_s * 1000)
        self.active: dict[str, Alert] = {}  # ticket id -> the alert last pushed firing
        self._learned = open_tickets is None
        self._next_refresh_ms = 0

    def _post(self, alerts: list[dict[str, Any]]) -> None:
        if alerts:
            self.post(self.alerts_url, orjson.dumps(alerts), {})

    def send(self, notification: Notification) -> None:
        if notification.about_task:
            alert = task_alert(notification, self.settings.labels)
            self._post([alert.document(self._clock_ms() + LIFETIME_RESENDS * self._resend_ms)])
            return
        ticket = notification.ticket
        ticket_id = str(ticket.get("id"))
        now = self._clock_ms()
        link = self._desk_link(ticket.get("id"))
        alert = alert_for(ticket, link, self.settings.labels, notification)
        batch = []
        old = self.active.get(ticket_id)
        if old is not None and old.labels != alert.labels:
            batch.append(old.document(now))  # new labels: a new alert; end the old one
        ending = notification.event in ENDING_EVENTS
        batch.append(alert.document(now if ending else now + LIFETIME_RESENDS * self._resend_ms))
        self._post(batch)
        if ending:
            self.active.pop(ticket_id, None)
        else:
            self.active[ticket_id] = alert

    def refresh(self, now_ms: int) -> None:
        """Re-push the firing alerts every `resend_s`; raises DeliveryFailed when refused."""
        if now_ms < self._next_refresh_ms:
            return
        self._next_refresh_ms = now_ms + self._retry_ms  # a failure below retries sooner
        batch, gone = [], []
        if self._open_tickets is not None:
            open_now = {
                str(t.get("id")): t
                for t in self._open_tickets()
                if t.get("state") in ACTIVE_STATES
            }
            if not self._learned:
                for ticket_id, ticket in open_now.items():
                    if ticket_id not in self.active and self._wants(ticket):
                        link = self._desk_link(ticket.get("id"))
                        self.active[ticket_id] = alert_for(ticket, link, self.settings.labels)
            gone = [ticket_id for ticket_id in self.active if ticket_id not in open_now]
        ends = now_ms + LIFETIME_RESENDS * self._resend_ms
        for ticket_id, alert in self.active.items():
            batch.append(alert.document(now_ms if ticket_id in gone else ends))
        self._post(batch)
        for ticket_id in gone:  # only once Alertmanager has them ended
            del self.active[ticket_id]
        self._learned = True
        self._next_refresh_ms = now_ms + self._resend_ms

    def check(self) -> None:
        url = f"{self.settings.url.rstrip('/')}/-/healthy"
        response = self.reachable(url, "GET")
        if response.status_code != 200:
            raise DeliveryFailed(f"GET {url}: HTTP {response.status_code}, expected 200")
