"""Brompton Tessera processors over the IP Control HTTP API (pure: JSON in, records out)."""

from firmware_protocols.brompton_tessera.api import (
    DEFAULT_PORT,
    MIN_POLL_INTERVAL_S,
    PATH_API,
    Answer,
    Fan,
    Kind,
    TesseraStatus,
    decode_answer,
    decode_status,
    require_tree,
)
from firmware_protocols.brompton_tessera.errors import TesseraProtocolError

__all__ = [
    "DEFAULT_PORT",
    "MIN_POLL_INTERVAL_S",
    "PATH_API",
    "Answer",
    "Fan",
    "Kind",
    "TesseraProtocolError",
    "TesseraStatus",
    "decode_answer",
    "decode_status",
    "require_tree",
]
