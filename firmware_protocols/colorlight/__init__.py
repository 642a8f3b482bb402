"""Colorlight processors (X, Z, U, D series): string protocol and UDP discovery (pure).

`framing` frames the JSON messages (`<[...]>`), `messages` holds requests, responses,
command names and error codes, `records` turns monitoring replies into typed records,
`discovery` encodes the 0xEB probe and decodes its 0xEA answer. No sockets, no clock.
"""

from firmware_protocols.colorlight.discovery import (
    PROBE,
    DeviceType,
    ProbeAnswer,
    decode_answer,
    encode_answer,
    is_probe,
)
from firmware_protocols.colorlight.errors import ColorlightProtocolError
from firmware_protocols.colorlight.framing import (
    MAX_FRAME_LEN,
    BadFrame,
    ColorlightCodec,
    Frame,
    StreamDecoder,
    decode_datagram,
    encode,
)
from firmware_protocols.colorlight.messages import (
    DEFAULT_PORT,
    Cmd,
    ErrorCode,
    Op,
    Request,
    Response,
    check_reply,
)

__all__ = [
    "DEFAULT_PORT",
    "MAX_FRAME_LEN",
    "PROBE",
    "BadFrame",
    "Cmd",
    "ColorlightCodec",
    "ColorlightProtocolError",
    "DeviceType",
    "ErrorCode",
    "Frame",
    "Op",
    "ProbeAnswer",
    "Request",
    "Response",
    "StreamDecoder",
    "check_reply",
    "decode_answer",
    "decode_datagram",
    "encode",
    "encode_answer",
    "is_probe",
]
