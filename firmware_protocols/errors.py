"""Errors of the firmware protocol codecs, under the project's one error tree.

Codecs never raise on noise from the wire (they skip and count it). These errors exist
for the callers that must act on a *well-formed but unwanted* reply (a driver that got
the wrong serial number or an ACK != 0) and for local misuse of an encoder.
"""

from __future__ import annotations

from ledwatch.errors import ProtocolError, UsageError

__all__ = ["NovastarProtocolError", "UsageError"]


class NovastarProtocolError(ProtocolError):
    """A NovaStar reply was well formed but did not answer the request as asked.

    Examples: a serial number or register address that does not match the request,
    or an ACK other than 0 (spec 2.2) when the caller needs the data.
    """
