"""Colorlight string protocol: request/response objects, command names, error codes.

Source: the String-Protocol constants and types of the public Companion module
`ydev-clt/companion-module-colorlight-processor` (`src/actions/string-protocol/core/
constants.ts`, `types.ts`, `frames.ts`), which cite the vendor document's sections
(given here as "§"). A request is `{id, cmd, sid, op[, data]}`, a response the same plus
`code`; several of them travel as one JSON array inside `<` `>` (see `framing.py`).

    id    uint32 transaction id, not repeated within a short time on one link (§2)
    cmd   command short code, e.g. "sndinfo" (§4.3, §5)
    sid   sender id 1..254, 255 = broadcast (USB-cascaded devices only) (§4.2.5)
    op    "get" | "set" (§4.2.4)
    data  object, optional; screen-group commands carry `data.gid` (default 1) (§2)
    code  0 = success, 9001..9011 and 9999 = errors (Appendix C)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, Final

from firmware_protocols.colorlight.errors import ColorlightProtocolError, UsageError

ID_MAX: Final = 0xFFFFFFFF
SID_MIN: Final = 1
SID_MAX_UNICAST: Final = 254
SID_BROADCAST: Final = 255
GID_DEFAULT: Final = 1
HEARTBEAT_MIN_S: Final = 5.0  # §5.1.1: the heartbeat interval the vendor recommends
HEARTBEAT_MAX_S: Final = 30.0
HEARTBEAT_DEFAULT_S: Final = 10.0
DEFAULT_PORT: Final = 9099  # the Companion module's default target port


class Op(StrEnum):
    GET = "get"
    SET = "set"


class ErrorCode(IntEnum):
    """Global protocol codes (Appendix C)."""

    SUCCESS = 0
    INVALID_JSON = 9001
    MISSING_DELIMITER = 9002
    ROOT_NOT_ARRAY = 9003
    EMPTY_ARRAY = 9004
    ELEMENT_NOT_OBJECT = 9005
    DEVICE_NOT_FOUND = 9006
    TIMEOUT = 9007
    INVALID_PARAMS = 9008
    MISSING_REQUIRED = 9009
    CMD_UNSUPPORTED = 9010
    PARAMS_OUT_OF_CAPABILITY = 9011
    UNKNOWN = 9999


class Cmd(StrEnum):
    """The commands LEDwatch uses (the module lists ~80; these read the monitoring state)."""

    HEARTBEAT = "heartbeat"  # §5.1, op set, data {}: the device does not answer it
    CMDLIST = "cmdlist"  # §5.1: commands the device supports
    SN = "sn"  # §5.2.6: serial number {serial}
    BRIGHT = "bright"  # brightness {brt: 0..10000}
    SNDINFO = "sndinfo"  # §5.3.1: sending card {model, ver, brt, ct, temp, black, freeze, ...}
    SND_ETH = "snd_eth"  # §5.3.2: sending card Ethernet ports {n, ports}
    PR_VIDEO = "pr_video"  # §5.3.5: input signals {srcTotal, sources}, asks {slotCode, boardKind}
    PR_VIDEO_COUNT = "pr_video_count"  # §5.3.8: {count}
    MFC_PROBE = "mfc_probe"  # §5.4.1: multifunction card {port, cardCount, temp, hwVer, swVer}
    RCV_PROBE = "rcv_probe"  # §5.4.2: receiving card {port, rcv, type, w, h, linked, runtime, ver}
    MOD_PROBE = "mod_probe"  # §5.4.3: modules {port, modules}
    PR_RCV_STATE = "pr_rcv_state"  # §5.4.8: receiving card module state {port, modules}


def _check_common(id_: int, cmd: str, sid: int, op: str) -> None:
    if not isinstance(id_, int) or isinstance(id_, bool) or not 0 <= id_ <= ID_MAX:
        raise UsageError(f"colorlight: id {id_!r} is not a uint32")
    if not isinstance(cmd, str) or not cmd:
        raise UsageError("colorlight: cmd must be a non-empty string")
    if not isinstance(sid, int) or isinstance(sid, bool) or not SID_MIN <= sid <= SID_BROADCAST:
        raise UsageError(f"colorlight: sid {sid!r} is not 1..255")
    if op not in (Op.GET, Op.SET):
        raise UsageError(f"colorlight: op {op!r} is not get/set")


@dataclass(frozen=True, slots=True)
class Request:
    id: int
    cmd: str
    sid: int
    op: Op
    data: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        _check_common(self.id, self.cmd, self.sid, self.op)
        object.__setattr__(self, "op", Op(self.op))

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"id": self.id, "cmd": self.cmd, "sid": self.sid, "op": str(self.op)}
        if self.data is not None:
            obj["data"] = dict(self.data)
        return obj


@dataclass(frozen=True, slots=True)
class Response:
    id: int
    cmd: str
    sid: int
    op: Op
    code: int = 0
    data: Any = field(default=None)

    def __post_init__(self) -> None:
        _check_common(self.id, self.cmd, self.sid, self.op)
        object.__setattr__(self, "op", Op(self.op))
        if not isinstance(self.code, int) or isinstance(self.code, bool) or self.code < 0:
            raise UsageError(f"colorlight: code {self.code!r} is not a code")

    @property
    def ok(self) -> bool:
        return self.code == ErrorCode.SUCCESS

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"id": self.id, "cmd": self.cmd, "sid": self.sid,
                               "op": str(self.op), "code": self.code}  # fmt: skip
        if self.data is not None:
            obj["data"] = self.data
        return obj


Item = Request | Response


def item_from_json(obj: object) -> Item | ErrorCode:
    """One array element -> a Request (no `code`) or Response (with `code`), or the code
    the protocol gives for what is wrong with it (9005 not an object, 9009 missing field,
    9008 a field of the wrong type)."""
    if not isinstance(obj, dict):
        return ErrorCode.ELEMENT_NOT_OBJECT
    if any(k not in obj for k in ("id", "cmd", "sid", "op")):
        return ErrorCode.MISSING_REQUIRED
    data = obj.get("data")
    try:
        if "code" in obj:
            return Response(obj["id"], obj["cmd"], obj["sid"], obj["op"], obj["code"], data)
        if data is not None and not isinstance(data, dict):
            return ErrorCode.INVALID_PARAMS
        return Request(obj["id"], obj["cmd"], obj["sid"], obj["op"], data)
    except (UsageError, ValueError):
        return ErrorCode.INVALID_PARAMS


def dumps(items: list[dict[str, Any]]) -> str:
    """Compact one-line JSON with `<` and `>` escaped: the frame delimiters may not occur
    raw inside the payload (§4.2.1), and `\\u003c` is the same string to any JSON parser."""
    text = json.dumps(items, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e")


def check_reply(request: Request, response: Response) -> Response:
    """The response to `request`, or `ColorlightProtocolError` (other id/cmd, or an error
    code); returns it so callers can chain."""
    if response.id != request.id or response.cmd != request.cmd:
        raise ColorlightProtocolError(
            f"reply {response.cmd}#{response.id} does not answer {request.cmd}#{request.id}"
        )
    if not response.ok:
        try:
            name = ErrorCode(response.code).name
        except ValueError:
            name = "unlisted"
        raise ColorlightProtocolError(
            f"{request.cmd}#{request.id}: code {response.code} ({name})", response.code
        )
    return response
