"""Errors of the COEX codec, under the project's one error tree."""

from __future__ import annotations

from ledwatch.errors import ProtocolError


class CoexProtocolError(ProtocolError):
    """A COEX answer that breaks the documented `{code, data, message}` envelope."""
