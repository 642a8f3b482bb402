"""Find Colorlight devices on a LAN with the UDP probe (0xEB out, 0xEA back).

The bytes are the codec's (`firmware_protocols.colorlight.discovery`) and the socket is
`agent.discover.udp_search`'s (shared with NovaStar's search); this module only turns
answers into devices and starter config lines. The probe goes to each target (a
broadcast address such as `192.168.1.255`, or single hosts) on port 9099, as the public
Companion module sends it; every 0xEA answer within `timeout_s` is a device, identified
by its source address. A device answers unicast to the sender, so this must run on the
LED network's side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.discover import Found, Search, bind_address, udp_search
from firmware_protocols.colorlight import DEFAULT_PORT, PROBE, decode_answer
from firmware_protocols.colorlight.discovery import DeviceType


@dataclass(frozen=True, slots=True)
class FoundDevice:
    host: str
    port: int
    device_type: int
    model_byte: int
    model: str | None  # known for B-protocol processors only
    protocol: str  # "A" or "B"

    @property
    def url(self) -> str:
        return f"udp://{self.host}:{self.port}"

    @property
    def kind(self) -> str:
        try:
            return DeviceType(self.device_type).name.lower()
        except ValueError:
            return f"type {self.device_type}"


def discover(
    targets: Sequence[str] = ("255.255.255.255",),
    port: int = DEFAULT_PORT,
    timeout_s: float = 1.5,
    bind: tuple[str, int] = ("0.0.0.0", 0),
) -> list[FoundDevice]:
    """Probe every target once and collect the answers for `timeout_s` seconds.

    Returns one `FoundDevice` per answering address and port, in order of arrival;
    datagrams that are not 0xEA answers are ignored. An unreachable target is skipped.
    """
    found: dict[tuple[str, int], FoundDevice] = {}
    for data, host, peer_port in udp_search(PROBE, targets, port, timeout_s, bind):
        answer = decode_answer(data)
        if answer is None or (host, peer_port) in found:
            continue
        found[(host, peer_port)] = FoundDevice(
            host, peer_port, answer.device_type, answer.model_byte, answer.model,
            answer.protocol,
        )  # fmt: skip
    return list(found.values())


def lan_search(request: Search) -> list[Found]:
    """`ledwatch discover`'s entry for this family (`_DISCOVERY` in agent/drivers): the
    probe to `request.addresses` (port 9099 unless `request.port`), each device found as
    a starter `[screens.controller]` with placeholders for the layout, which the probe
    answer does not carry."""
    bind = bind_address(request.addresses, request.source_port)
    out = []
    for dev in discover(request.addresses, request.port or DEFAULT_PORT, request.timeout_s, bind):
        lines = ('driver = "colorlight"', f'url = "{dev.url}"',
                 "# PLACEHOLDER: the probe does not tell the layout; set the real number of",
                 "# output ports and receiving cards per port.", "# ports = 1",
                 "cards_per_port = 1")  # fmt: skip
        info = f"{dev.kind}, {dev.protocol}-protocol, model byte {dev.model_byte}"
        out.append(Found("colorlight", dev.host, lines, dev.model, None, info, "?"))
    return out
