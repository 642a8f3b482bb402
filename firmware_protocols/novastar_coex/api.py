"""NovaStar COEX HTTP API (MX40 Pro, MX30, MX20, CX40 Pro, ...): paths and the answer
envelope, decoded from (status, content type, body) with no I/O.

Sources: `FaintGhost/novastar-coex` (`src/api/device.ts`, `src/api/screen.ts`,
`src/api/index.ts`: the paths, port 8001, and the `"device locked"` answer given while
NovaStar's VMP holds the processor) and `legofsalmon/novasun` (`docs/coex-http-api.md`:
the error codes from the vendor's manual, and how absent endpoints answer on real units).

Every documented answer is one JSON object::

    {"code": 0, "data": <payload>, "message": "Success"}

    code  0 Success, 1 InvalidParam, 2 SendFailed, 3 InternalErr, 4 AnalysisFailed,
          5 Busying (back off), 6 NotSupport, 39 CfgFileNotExist, 41 NonStandardFileName

An endpoint a unit lacks is *not* answered with code 6 on the units seen so far: an MX40
Pro gave a bare HTTP 404, an MX30 (v1.5.1) an HTTP 200 with an empty body and no
Content-Type. Both decode as `ABSENT`. A lock by VMP is recognised by its message (the
code that comes with it is not published).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any, Final

from firmware_protocols.novastar_coex.errors import CoexProtocolError

DEFAULT_PORT: Final = 8001
PATH_MONITOR: Final = "/api/v1/device/monitor/info"  # per-cabinet + controller state
PATH_CABINET_COUNT: Final = "/api/v1/screen/cabinet/count"  # ~120 B: the cheap dropout check
PATH_CABINETS: Final = "/api/v1/device/cabinet"  # connected cabinets (large: read rarely)
PATH_SOURCES: Final = "/api/v1/device/input/sources"  # inputs: name, type, sourceStatus
PATH_DEVICE: Final = "/api/v1/device"  # documented, but 404 / empty on the units read
LOCKED_MESSAGE: Final = "device locked"


class ErrorCode(IntEnum):
    SUCCESS = 0
    INVALID_PARAM = 1
    SEND_FAILED = 2
    INTERNAL_ERR = 3
    ANALYSIS_FAILED = 4
    BUSYING = 5
    NOT_SUPPORT = 6
    CFG_FILE_NOT_EXIST = 39
    NON_STANDARD_FILE_NAME = 41


class Kind(StrEnum):
    OK = "ok"  # code 0: `data` holds the payload
    BUSY = "busy"  # code 5: the processor asks for a back-off
    LOCKED = "locked"  # "device locked": another client (VMP) holds it
    ERROR = "error"  # any other code, or an HTTP error status
    ABSENT = "absent"  # 404, or the MX30's empty 200: the unit has no such endpoint
    BAD = "bad"  # not JSON, or JSON without the envelope


@dataclass(frozen=True, slots=True)
class Answer:
    kind: Kind
    data: Any = None
    code: int | None = None
    message: str | None = None

    @property
    def held(self) -> bool:
        """Busy or locked: the controller is alive but asks us to stay away."""
        return self.kind in (Kind.BUSY, Kind.LOCKED)


def decode_answer(status: int, body: bytes, content_type: str | None = None) -> Answer:
    """Classify one HTTP answer (never raises); see the module docstring."""
    if status == 404 or (200 <= status < 300 and not body.strip()):
        return Answer(Kind.ABSENT, code=None, message=f"HTTP {status}, no body")
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        if not 200 <= status < 300:
            return Answer(Kind.ERROR, message=f"HTTP {status}")
        return Answer(Kind.BAD, message="not JSON")
    if not isinstance(doc, dict) or not isinstance(doc.get("code"), int):
        if not 200 <= status < 300:
            return Answer(Kind.ERROR, message=f"HTTP {status}")
        return Answer(Kind.BAD, message="no {code, data, message} envelope")
    code, message = doc["code"], doc.get("message")
    text = message if isinstance(message, str) else None
    if text is not None and text.strip().lower() == LOCKED_MESSAGE:
        return Answer(Kind.LOCKED, code=code, message=text)
    if code == ErrorCode.SUCCESS and 200 <= status < 300:
        return Answer(Kind.OK, doc.get("data"), code, text)
    if code == ErrorCode.BUSYING:
        return Answer(Kind.BUSY, code=code, message=text)
    return Answer(Kind.ERROR, code=code, message=text or f"HTTP {status}")


def require_data(answer: Answer) -> Any:
    """The payload of an OK answer; `CoexProtocolError` for anything else."""
    if answer.kind is not Kind.OK:
        raise CoexProtocolError(f"COEX answer {answer.kind}: {answer.message} (code {answer.code})")
    return answer.data


def envelope(data: Any, code: int = ErrorCode.SUCCESS, message: str = "Success") -> bytes:
    """The envelope's bytes (for the emulator)."""
    return json.dumps({"code": int(code), "data": data, "message": message},
                      separators=(",", ":")).encode()  # fmt: skip
