"""Errors of the InfluxDB sinks."""

from __future__ import annotations

from ledwatch.errors import LedwatchError


class WriteError(LedwatchError):
    """A batch was not stored.

    `retryable=True` (server down, timeout, 5xx, auth refused) means the same batch may
    succeed later, so the caller keeps it and does not acknowledge its messages;
    `retryable=False` (the server refused the data itself, HTTP 400) means retrying can
    never help, so the caller drops the batch and counts it.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable
