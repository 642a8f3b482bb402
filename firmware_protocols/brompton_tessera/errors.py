"""Errors of the Tessera codec, under the project's one error tree."""

from __future__ import annotations

from ledwatch.errors import ProtocolError


class TesseraProtocolError(ProtocolError):
    """A Tessera answer that is not the documented JSON tree."""
