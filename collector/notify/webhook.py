"""The generic JSON webhook, signed with HMAC-SHA256 over `timestamp + "." + body`.

```
POST <url>
Content-Type: application/json
X-LEDwatch-Timestamp: 1772388000                 unix seconds of this attempt
X-LEDwatch-Signature: sha256=<hex HMAC-SHA256(secret, "1772388000." + body)>
X-LEDwatch-Notification-Id: <id>                 the same on every re-delivery
Idempotency-Key: <id>
X-LEDwatch-Event: opened

{"schema": "ledwatch.notification/1", "id": ..., "event": ..., "created_ms": ...,
 "level": ..., "note": ..., "ticket": {... GET /api/v1/tickets/{id} ...},
 "desk_url": "<desk_url>/tickets/<id>"}            (only with notify.desk_url)
```
Every attempt is signed afresh with its own timestamp, so a receiver can refuse
anything older than five minutes (replays) and still accept a notification that waited
an hour in the outbox. `verify` is what a Python receiver runs; docs/notifications.md
has the same check without importing LEDwatch.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

import orjson

from collector.notify.channel import HttpChannel
from collector.notify.model import Event, Notification
from collector.notify.settings import WebhookChannelSettings

SCHEMA = "ledwatch.notification/1"
TIMESTAMP_HEADER = "X-LEDwatch-Timestamp"
SIGNATURE_HEADER = "X-LEDwatch-Signature"
ID_HEADER = "X-LEDwatch-Notification-Id"
EVENT_HEADER = "X-LEDwatch-Event"
TOLERANCE_S = 300


def payload(notification: Notification, desk_link: str | None = None) -> dict[str, Any]:
    """The JSON document the webhook POSTs; `desk_link` is the ticket's desk page."""
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "id": notification.id,
        "event": str(notification.event),
        "created_ms": notification.created_ms,
        "level": notification.level,
        "note": notification.note,
    }
    # A ticket's change carries the ticket; task_due / task_overdue the task, report_ready
    # the report (Notification.about_task).
    subject = ("report" if notification.event is Event.REPORT_READY
               else "task" if notification.about_task else "ticket")
    doc[subject] = notification.ticket
    if desk_link:
        doc["desk_url"] = desk_link
    return doc


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 keyed with the secret over `b"<timestamp>." + body`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str,
    timestamp: str | int,
    body: bytes,
    signature: str,
    now: float,
    tolerance_s: float = TOLERANCE_S,
) -> bool:
    """True when `signature` is ours for `body` and `timestamp` is within `tolerance_s` of `now`.

    `now` is unix seconds (`time.time()`); a timestamp too far in the future is refused
    as well, so a sender with a fast clock cannot mint long-lived requests.
    """
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature.strip())


class WebhookChannel(HttpChannel):
    kind = "webhook"

    def __init__(
        self,
        name: str,
        settings: WebhookChannelSettings,
        secret: str,
        desk_link: Callable[[object], str | None] = lambda _id: None,
        clock_s: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name, settings.url, settings.timeout_s, settings.ca_file)
        self._secret = secret
        self._desk_link = desk_link
        self._clock_s = clock_s

    def send(self, notification: Notification) -> None:
        link = self._desk_link(notification.ticket_id)
        body = orjson.dumps(payload(notification, link))
        timestamp = int(self._clock_s())
        headers = {
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            ID_HEADER: notification.id,
            "Idempotency-Key": notification.id,
            EVENT_HEADER: str(notification.event),
        }
        self.post(self.url, body, headers)

    def check(self) -> None:
        self.reachable(self.url, "HEAD")
