"""Errors of the Colorlight codec, under the project's one error tree."""

from __future__ import annotations

from ledwatch.errors import ProtocolError, UsageError

__all__ = ["ColorlightProtocolError", "UsageError"]


class ColorlightProtocolError(ProtocolError):
    """A well-formed string-protocol reply that does not answer the request as asked:
    another `id` or `cmd`, or a non-zero `code` (9001-9011, 9999) where data was needed."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
