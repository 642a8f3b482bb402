"""Delivery errors: the receiver's answer decides whether retrying can help.

A channel's `send` raises `TemporaryFailure` (down, timed out, 408/429/5xx, an SMTP 4xx
reply: try again later) or `PermanentFailure` (the receiver refused this notification,
e.g. HTTP 400 or an SMTP 5xx reply: retrying sends the same bytes and gets the same
answer). Both are remote faults, so they sit under `ProtocolError`.
"""

from __future__ import annotations

from ledwatch.errors import ProtocolError


class DeliveryFailed(ProtocolError):
    """A notification did not reach its receiver; the message says why."""


class TemporaryFailure(DeliveryFailed):
    """Retry later; `retry_after_s` is the receiver's own hint (Retry-After), if any."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermanentFailure(DeliveryFailed):
    """Give up: the receiver refused this notification and would refuse it again."""
