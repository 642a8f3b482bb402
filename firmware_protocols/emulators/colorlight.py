"""A Colorlight processor with its screen behind it, speaking the string protocol.

`ColorlightEmulator` models one sending device (default: an X100 Pro-4U, a B-protocol
processor) with N output ports, each a chain of receiving cards (one per cabinet) with M
modules, and multifunction cards on some ports. It answers the monitoring commands of
`firmware_protocols.colorlight` (sndinfo, snd_eth, pr_video, pr_video_count, mfc_probe,
rcv_probe, mod_probe, pr_rcv_state, cmdlist, sn, bright; heartbeat is counted and, as the
public client says of the real device, not answered) with the codec, so no test takes a
shortcut around it:

- over UDP (`serve_udp`): one reply datagram per request frame, and the 0xEB discovery
  probe answered with an 0xEA frame on the same socket, as the Companion module sends
  both to port 9099;
- over TCP (`serve_tcp`, several clients): the same frames as a byte stream.

What goes over a real device's UDP 9099 is the vendor's binary translation of these
frames (libsp), which is not public: this emulator speaks the framed JSON itself, like
the driver (docs/families.md). Faults are data (`FamilyFault`) on an injectable clock;
kinds the string protocol cannot show (fans, doors, smoke) are refused with the reason.
"""

from __future__ import annotations

import argparse
import contextlib
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from firmware_protocols import colorlight as cl
from firmware_protocols.colorlight import Cmd, ErrorCode, Request, Response
from firmware_protocols.colorlight.discovery import DeviceType
from firmware_protocols.colorlight.messages import SID_BROADCAST
from firmware_protocols.emulators import family_cli
from firmware_protocols.emulators.family_base import FamilyEmulator
from firmware_protocols.emulators.faults import (
    COMMON_RULES,
    OVER_TEMP_C,
    Clock,
    FamilyFault,
    FaultRule,
    Target,
    psu_dark,
)
from firmware_protocols.emulators.http_base import ServerGroup, reset_on_close
from ledwatch.errors import UsageError

FAMILY: Final = "colorlight"
DEFAULT_MODEL: Final = "X100 Pro-4U"
DEFAULT_MODEL_BYTE: Final = 24  # MODELS_B
DEFAULT_BRIGHTNESS: Final = 7500  # 1/100 %
RULES: Final[dict[str, FaultRule]] = {
    "module_fail": FaultRule(Target.CARD, example="module_fail@10:p0c1/2"),
    "psu_sag_then_die": FaultRule(Target.CARD, example="psu_sag_then_die@30:p0c3"),
    "over_temp": FaultRule(Target.CARD, optional=True, example="over_temp:p0c0"),
    **COMMON_RULES,
}
UNSUPPORTED: Final[dict[str, str]] = {
    "fan_stop": "the string protocol reports no fan speed",
    "door_open": "the string protocol reports no door sensor",
    "smoke": "the string protocol reports no smoke sensor",
    "held": "no vendor lock-out is known for Colorlight processors",
    "psu_drift": "the string protocol reports no supply voltage",
    "busy": "the string protocol has no busy answer",
}


class ColorlightEmulator(FamilyEmulator):
    """See the module docstring. Thread-safe: every transport thread calls `handle`."""

    FAMILY = FAMILY
    RULES = RULES
    UNSUPPORTED = UNSUPPORTED

    def __init__(
        self,
        ports: int = 2,
        cards: int | Sequence[int] = 4,
        modules: int = 8,
        mfc_ports: Iterable[int] = (0,),
        inputs: int = 2,
        model: str = DEFAULT_MODEL,
        model_byte: int = DEFAULT_MODEL_BYTE,
        device_type: int = DeviceType.PROCESSOR,
        sid: int = 1,
        faults: Iterable[FamilyFault] = (),
        clock: Clock = time.monotonic,
    ) -> None:
        per_port = [cards] * ports if isinstance(cards, int) else list(cards)
        if not 1 <= ports <= 64 or len(per_port) != ports or any(n < 0 for n in per_port):
            raise UsageError("emulator: ports must be 1..64 and cards one count >= 0 per port")
        if not 0 <= modules <= 64 or not 1 <= inputs <= 32 or not 1 <= sid <= 254:
            raise UsageError("emulator: modules 0..64, inputs 1..32, sid 1..254")
        self.ports = ports
        self.cards_per_port = per_port
        self.modules = modules
        self.mfc_ports = frozenset(mfc_ports)
        self.inputs = inputs
        self.model = model
        self.model_byte = model_byte
        self.device_type = device_type
        self.sid = sid
        self.brightness = DEFAULT_BRIGHTNESS
        self.requests = 0
        self.heartbeats = 0
        self.probes = 0
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self._group = ServerGroup("colorlight-emulator")
        super().__init__(per_port, faults, clock)

    def _dark(self, port: int, index: int, active: list[tuple[float, FamilyFault]]) -> bool:
        return any(f.kind == "psu_sag_then_die" and f.card_key == (port, index) and psu_dark(e)
                   for e, f in active)  # fmt: skip

    # -- the device --------------------------------------------------------------------
    def handle(self, request: Request) -> Response | None:
        """The answer to one request; None = no answer (heartbeat, link dropped)."""
        with self._lock:
            self.requests += 1
        if self.link_down():
            return None
        if request.cmd == Cmd.HEARTBEAT:
            with self._lock:
                self.heartbeats += 1
            return None
        if request.sid not in (self.sid, SID_BROADCAST):
            return self._reply(request, ErrorCode.DEVICE_NOT_FOUND)
        handler = self._handlers().get(request.cmd)
        if handler is None:
            return self._reply(request, ErrorCode.CMD_UNSUPPORTED)
        data = dict(request.data or {})
        result = handler(request, data, self.faults.active())
        if isinstance(result, ErrorCode):
            return self._reply(request, result)
        return self._reply(request, ErrorCode.SUCCESS, result)

    @staticmethod
    def _reply(req: Request, code: ErrorCode, data: Any = None) -> Response:
        return Response(req.id, req.cmd, req.sid, req.op, int(code), data)

    def _handlers(self) -> dict[str, Callable[..., Any]]:
        return {
            Cmd.SNDINFO: self._sndinfo,
            Cmd.SND_ETH: self._snd_eth,
            Cmd.PR_VIDEO: self._pr_video,
            Cmd.PR_VIDEO_COUNT: lambda r, d, a: {"count": self.inputs},
            Cmd.MFC_PROBE: self._mfc_probe,
            Cmd.RCV_PROBE: self._rcv_probe,
            Cmd.MOD_PROBE: self._mod_probe,
            Cmd.PR_RCV_STATE: self._pr_rcv_state,
            Cmd.CMDLIST: lambda r, d, a: {"cmds": [*sorted(self._handlers()), Cmd.HEARTBEAT]},
            Cmd.SN: lambda r, d, a: {"serial": "CL-EMU-000001"},
            Cmd.BRIGHT: self._bright,
        }

    def _sndinfo(self, req: Request, data: dict[str, Any], active: list[Any]) -> dict[str, Any]:
        hot = any(f.kind == "over_temp" and f.target is None for _, f in active)
        return {
            "model": self.model, "ver": "2.3.0", "brt": self.brightness, "ct": 6500,
            "temp": OVER_TEMP_C if hot else self.wave(42.0, 2.0, 60.0, 0.0),
            "black": 0, "freeze": 0, "tp": 0, "ports": self.ports,
        }  # fmt: skip

    def _snd_eth(self, req: Request, data: dict[str, Any], active: list[Any]) -> dict[str, Any]:
        # A port's link is the cable to its first cabinet: gone when that one is dark.
        linked = [n > 0 and not self._dark(p, 0, active) for p, n in enumerate(self.cards_per_port)]
        return {"n": self.ports, "ports": [{"idx": p + 1, "linked": int(v)}
                                           for p, v in enumerate(linked)]}  # fmt: skip

    def _pr_video(self, req: Request, data: dict[str, Any], active: list[Any]) -> Any:
        if not isinstance(data.get("slotCode"), int) or not isinstance(data.get("boardKind"), int):
            return ErrorCode.MISSING_REQUIRED
        lost = any(f.kind == "signal_lost" for _, f in active)
        # Input 1 is fed; the others are plugged in but carry nothing.
        return {"srcTotal": self.inputs,
                "sources": [{"src": k + 1, "signal": int(k == 0 and not lost)}
                            for k in range(self.inputs)]}  # fmt: skip

    def _port(self, data: dict[str, Any]) -> int | ErrorCode:
        port = data.get("port")
        if not isinstance(port, int) or isinstance(port, bool):
            return ErrorCode.MISSING_REQUIRED
        if not 1 <= port <= self.ports:
            return ErrorCode.INVALID_PARAMS
        return port - 1

    def _mfc_probe(self, req: Request, data: dict[str, Any], active: list[Any]) -> Any:
        p = self._port(data)
        if isinstance(p, ErrorCode):
            return p
        if p not in self.mfc_ports:
            return {"port": p + 1, "cardCount": 0}
        hot = any(f.kind == "over_temp" and f.card_key and f.card_key[0] == p for _, f in active)
        temp = OVER_TEMP_C if hot else self.wave(31.0, 1.5, 90.0, p * 1.3)
        return {"port": p + 1, "cardCount": 1, "temp": temp, "hwVer": "1.0", "swVer": "2.1.4"}

    def _rcv_probe(self, req: Request, data: dict[str, Any], active: list[Any]) -> Any:
        p = self._port(data)
        if isinstance(p, ErrorCode):
            return p
        rcv = data.get("rcv")
        if not isinstance(rcv, int) or isinstance(rcv, bool):
            return ErrorCode.MISSING_REQUIRED
        if not 1 <= rcv <= 65534:
            return ErrorCode.INVALID_PARAMS
        i = rcv - 1
        if i >= self.cards_per_port[p]:
            return ErrorCode.DEVICE_NOT_FOUND  # past the end of the chain: no card there
        dark = self._dark(p, i, active)
        return {
            "port": p + 1, "rcv": rcv, "type": "5A-75E", "w": 128, "h": 128,
            "linked": int(not dark),
            "runtime": 0 if dark else 4000 + 17 * i + int(self.faults.elapsed() // 60),
            "ver": "" if dark else "13.5.6.2",
        }  # fmt: skip

    def _alive(self, p: int, active: list[Any]) -> list[int]:
        return [i for i in range(self.cards_per_port[p]) if not self._dark(p, i, active)]

    def _mod_probe(self, req: Request, data: dict[str, Any], active: list[Any]) -> Any:
        p = self._port(data)
        if isinstance(p, ErrorCode):
            return p
        return {"port": p + 1, "modules": [{"rcv": i + 1, "count": self.modules}
                                           for i in self._alive(p, active)]}  # fmt: skip

    def _pr_rcv_state(self, req: Request, data: dict[str, Any], active: list[Any]) -> Any:
        p = self._port(data)
        if isinstance(p, ErrorCode):
            return p
        broken: dict[int, int] = {}
        for _, f in active:
            if f.kind == "module_fail" and f.card_key and f.card_key[0] == p:
                i = f.card_key[1]
                broken[i] = max(broken.get(i, 0), min(self.modules, f.number or 1))
        return {"port": p + 1, "modules": [{"rcv": i + 1, "err": broken.get(i, 0)}
                                           for i in self._alive(p, active)]}  # fmt: skip

    def _bright(self, req: Request, data: dict[str, Any], active: list[Any]) -> Any:
        if req.op == cl.Op.SET:
            brt = data.get("brt")
            if not isinstance(brt, int) or not 0 <= brt <= 10000:
                return ErrorCode.INVALID_PARAMS
            with self._lock:
                self.brightness = brt
        return {"brt": self.brightness}

    def answer(self, frame: cl.Frame | cl.BadFrame) -> bytes | None:
        """The reply frame's bytes for one decoded frame (None: nothing to say)."""
        if self.link_down():
            return None
        if isinstance(frame, cl.BadFrame):  # a whole frame refused: one error element
            return cl.encode([Response(0, "error", self.sid, cl.Op.GET, int(frame.code))])
        replies: list[Response] = []
        for item in frame.items:
            if isinstance(item, ErrorCode):
                replies.append(Response(0, "error", self.sid, cl.Op.GET, int(item)))
            elif isinstance(item, Request):
                reply = self.handle(item)
                if reply is not None:
                    replies.append(reply)
        return cl.encode(replies) if replies else None

    def answer_datagram(self, data: bytes) -> list[bytes]:
        """The reply datagrams to one datagram: the 0xEA answer to a probe, else one per
        request frame; none while the link is dropped (silence, as on a real LAN)."""
        if self.link_down():
            return []
        if cl.is_probe(data):
            with self._lock:
                self.probes += 1
            return [cl.encode_answer(self.device_type, self.model_byte)]
        codec = cl.ColorlightCodec()
        return [r for f in cl.decode_datagram(codec, data) if (r := self.answer(f))]

    # -- transports ----------------------------------------------------------------------
    def serve_udp(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Answer datagrams (string protocol and the discovery probe); returns the bound
        (host, port). A real device listens on 9099."""
        return self._serve(_UdpServer((host, port), _UdpHandler))

    def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """The same frames over a TCP stream (several clients); returns (host, port)."""
        return self._serve(_TcpServer((host, port), _TcpHandler))

    def _serve(self, srv: _UdpServer | _TcpServer) -> tuple[str, int]:
        srv.emu = self
        return self._group.start(srv)

    def stop(self) -> None:
        """Stop every listener; open TCP connections end within 0.1 s (bounded waits)."""
        self.stopping.set()
        self._group.stop()


class _UdpServer(socketserver.UDPServer):
    emu: ColorlightEmulator


class _UdpHandler(socketserver.BaseRequestHandler):
    server: _UdpServer

    def handle(self) -> None:
        data, sock = self.request
        for datagram in self.server.emu.answer_datagram(data):
            with contextlib.suppress(OSError):
                sock.sendto(datagram, self.client_address)


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    emu: ColorlightEmulator

    def verify_request(self, request: Any, client_address: Any) -> bool:
        if self.emu.link_down():
            reset_on_close(request)
            return False  # refused: the client reads a reset
        return True


class _TcpHandler(socketserver.BaseRequestHandler):
    server: _TcpServer

    def handle(self) -> None:
        emu, conn = self.server.emu, self.request
        conn.settimeout(0.1)
        dec = cl.StreamDecoder()
        while not emu.stopping.is_set():
            if emu.link_down():
                reset_on_close(conn)
                return
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            out = b"".join(r for f in dec.feed(data) if (r := emu.answer(f)))
            with contextlib.suppress(OSError):
                conn.sendall(out)


def main(argv: list[str] | None = None) -> int:
    """`ledwatch emulate colorlight [--udp HOST:PORT] [--tcp HOST:PORT] ...`."""
    p = family_cli.parser(
        FAMILY, "A Colorlight processor speaking the string protocol (UDP like port 9099, "
        "or TCP), with faults.", RULES, udp=True,
    )  # fmt: skip
    p.add_argument("--ports", type=int, default=2, help="output ports (default 2)")
    p.add_argument("--cards", type=family_cli.counts, default=4,
                   help="receiving cards per port: 4, or 4,3 per port (default 4)")
    p.add_argument("--modules", type=int, default=8, help="modules per cabinet (default 8)")
    p.add_argument("--mfc-ports", default="0",
                   help="0-based ports with a multifunction card, comma list (default 0)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if not (args.udp or args.tcp):
        p.error("say where to serve: --udp HOST:PORT and/or --tcp HOST:PORT")
    found = family_cli.all_faults(p, args, FAMILY, RULES, UNSUPPORTED)
    try:
        mfc = [int(x) for x in args.mfc_ports.split(",") if x.strip()]
        emu = ColorlightEmulator(ports=args.ports, cards=args.cards, modules=args.modules,
                                 mfc_ports=mfc, faults=found)  # fmt: skip
    except (UsageError, ValueError) as exc:
        p.error(str(exc))
    return _serve(emu, args, found)


def _serve(emu: ColorlightEmulator, args: argparse.Namespace, found: list[FamilyFault]) -> int:
    try:
        if args.udp:
            print("udp {}:{}".format(*emu.serve_udp(*args.udp)), flush=True)
        if args.tcp:
            print("tcp {}:{}".format(*emu.serve_tcp(*args.tcp)), flush=True)
    except OSError as exc:
        emu.stop()
        print(f"ledwatch emulate {FAMILY}: {exc}", file=sys.stderr)
        return 1
    print(f"cards {' '.join(emu.card_ids())}", flush=True)
    family_cli.print_faults(found)
    return family_cli.run_until_stopped(emu.stop, args.duration)


if __name__ == "__main__":
    sys.exit(main())


fault = ColorlightEmulator.fault
