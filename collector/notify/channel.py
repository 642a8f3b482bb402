"""The channel interface, and the HTTP plumbing three of the four channels share.

A channel is a pipe to one receiver: `send` returns only once the receiver accepted the
notification and raises `TemporaryFailure` / `PermanentFailure` otherwise; it keeps no
queue and does no retrying (the outbox and the sender do). The sender calls `send`,
`refresh` and `close` from its one thread; `check` is called once at start-up.
"""

from __future__ import annotations

import ssl
import time
from abc import ABC, abstractmethod
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import ClassVar

import httpx

from collector.notify.errors import DeliveryFailed, PermanentFailure, TemporaryFailure
from collector.notify.model import Notification
from ledwatch import __version__

USER_AGENT = f"LEDwatch/{__version__}"
# HTTP answers that a later attempt may get past (RFC 9110: timeout, rate limit, server).
RETRYABLE_STATUS = frozenset({408, 425, 429})


class Channel(ABC):
    """One configured receiver, known by its name in `[notify.channels]`."""

    kind: ClassVar[str]

    def __init__(self, name: str, timeout_s: float) -> None:
        self.name = name
        self.timeout_s = timeout_s  # the longest one network step may block

    @property
    def key(self) -> str:
        """The config key, for messages: `notify.channels.<name>`."""
        return f"notify.channels.{self.name}"

    @abstractmethod
    def send(self, notification: Notification) -> None:
        """Deliver one notification; return only when the receiver accepted it."""

    @abstractmethod
    def check(self) -> None:
        """Raise `DeliveryFailed` when the receiver cannot be reached now (start-up check)."""

    def refresh(self, now_ms: int) -> None:  # noqa: B027  (optional hook, empty by default)
        """Periodic upkeep, called by the sender about every second (Alertmanager re-push)."""

    def close(self) -> None:  # noqa: B027
        """Release connections; the sender calls it once when it stops."""


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Verify servers against `ca_file` when given, else the system's CAs."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def retry_after_s(value: str | None, now_s: float | None = None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from now; None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, moment - (time.time() if now_s is None else now_s))


def judge(response: httpx.Response, what: str) -> None:
    """2xx: accepted. 408/425/429/5xx: TemporaryFailure. Anything else: PermanentFailure."""
    status = response.status_code
    if 200 <= status < 300:
        return
    text = response.text[:300].strip().replace("\n", " ")
    message = f"{what}: HTTP {status}" + (f": {text}" if text else "")
    if status in RETRYABLE_STATUS or status >= 500:
        raise TemporaryFailure(message, retry_after_s(response.headers.get("retry-after")))
    if 300 <= status < 400:
        message += f" (redirect to {response.headers.get('location')!r}: configure that URL)"
    raise PermanentFailure(message)


class HttpChannel(Channel):
    """A channel that POSTs JSON with httpx: one client with keep-alive, no redirects."""

    def __init__(self, name: str, url: str, timeout_s: float, ca_file: Path | None) -> None:
        super().__init__(name, timeout_s)
        self.url = url
        self.client = httpx.Client(
            timeout=timeout_s,
            verify=tls_context(ca_file),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        """POST `body`; a transport error or a refusal becomes the matching failure."""
        try:
            response = self.client.post(
                url, content=body, headers={"Content-Type": "application/json", **headers}
            )
        except httpx.TimeoutException as exc:
            raise TemporaryFailure(f"POST {url}: timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise TemporaryFailure(f"POST {url}: {type(exc).__name__}: {exc}") from None
        judge(response, f"POST {url}")
        return response

    def reachable(self, url: str, method: str = "HEAD") -> httpx.Response:
        """Any HTTP answer proves the receiver is there (a webhook may well say 405 to HEAD)."""
        try:
            return self.client.request(method, url)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{method} {url}: {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        self.client.close()
