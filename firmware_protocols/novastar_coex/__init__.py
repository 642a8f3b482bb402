"""NovaStar COEX processors (MX40 Pro, MX30, ...) over their HTTP API on port 8001 (pure).

`api` classifies an answer (ok, busy, locked by VMP, absent, bad) from its status and
body; `records` turns the payloads into typed records. No sockets, no clock: the driver
and the emulator own the HTTP.
"""

from firmware_protocols.novastar_coex.api import (
    DEFAULT_PORT,
    LOCKED_MESSAGE,
    PATH_CABINET_COUNT,
    PATH_CABINETS,
    PATH_DEVICE,
    PATH_MONITOR,
    PATH_SOURCES,
    Answer,
    ErrorCode,
    Kind,
    decode_answer,
    envelope,
    require_data,
)
from firmware_protocols.novastar_coex.errors import CoexProtocolError
from firmware_protocols.novastar_coex.records import (
    CabinetInfo,
    CabinetMonitor,
    Fan,
    InputSource,
    MonitorInfo,
    decode_cabinet_count,
    decode_cabinet_list,
    decode_monitor_info,
    decode_sources,
    signal_present,
)

__all__ = [
    "DEFAULT_PORT",
    "LOCKED_MESSAGE",
    "PATH_CABINETS",
    "PATH_CABINET_COUNT",
    "PATH_DEVICE",
    "PATH_MONITOR",
    "PATH_SOURCES",
    "Answer",
    "CabinetInfo",
    "CabinetMonitor",
    "CoexProtocolError",
    "ErrorCode",
    "Fan",
    "InputSource",
    "Kind",
    "MonitorInfo",
    "decode_answer",
    "decode_cabinet_count",
    "decode_cabinet_list",
    "decode_monitor_info",
    "decode_sources",
    "envelope",
    "require_data",
    "signal_present",
]
