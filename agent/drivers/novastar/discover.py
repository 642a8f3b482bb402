"""NovaStar's LAN search, for `ledwatch discover` (agent/discover.py runs it).

NovaStar's LAN search (spec 1.2: UDP port 3800; the query as NovaStar's own tools send
it, see sarakusha/novastar packages/net/src/net.ts) is the ASCII datagram `rqProMI:`;
a controller answers `rpProMI:` followed by bytes whose layout is not documented. So
the sender's address is what identifies a controller; a MAC address or a name in the
rest of the reply is shown when one can be read, never relied on. Each controller
found is then asked over TCP (port 5200) for its model (3.7.2) and how many receiving
cards answer on each output port, which fills `ports` and `cards_per_port`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

from agent.discover import Found, Search, bind_address, screen_id, udp_search
from agent.drivers.novastar.transport import DEFAULT_TCP_PORT

FAMILY: Final = "novastar"
DISCOVERY_PORT: Final = 3800  # spec 1.2
TCP_PORT: Final = DEFAULT_TCP_PORT  # spec 1.2
QUERY: Final = b"rqProMI:"
REPLY: Final = b"rpProMI:"
MAX_PORTS: Final = 16  # output ports a sending card can have (driver's `ports` limit)
MAC_RE: Final = re.compile(
    r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}(?![0-9A-Fa-f])"
)


@dataclass(frozen=True, slots=True)
class Controller:
    """One controller that answered the search, and what the TCP probe learnt."""

    ip: str
    mac: str | None = None
    info: str = ""  # printable text after `rpProMI:` (undocumented layout)
    model: str | None = None  # 3.7.2, over TCP
    cards_per_port: tuple[int, ...] | None = None  # None: TCP probe failed

    @property
    def screen_id(self) -> str:
        return screen_id(self.ip)


def parse_reply(data: bytes, ip: str) -> Controller | None:
    """A search reply from `ip`, or None if it is not one (pure)."""
    if not data.startswith(REPLY):
        return None
    rest = data[len(REPLY) :]
    text = "".join(chr(b) if 32 <= b < 127 else " " for b in rest).strip()
    m = MAC_RE.search(text)
    mac = m.group(0).replace("-", ":").lower() if m else None
    return Controller(ip=ip, mac=mac, info=" ".join(text.split()))


def search(
    addresses: Sequence[str],
    port: int = DISCOVERY_PORT,
    timeout_s: float = 2.0,
    broadcast: bool = False,
    source_port: int = 0,
) -> list[Controller]:
    """Send the query to each address and collect replies for `timeout_s` seconds.
    One entry per answering address, in the order the replies came. (`broadcast` is
    kept for callers: the socket may always send to a broadcast address.)"""
    found: dict[str, Controller] = {}
    for data, ip, _ in udp_search(QUERY, addresses, port, timeout_s,
                                  bind_address(addresses, source_port)):  # fmt: skip
        got = parse_reply(data, ip)
        if got is not None and ip not in found:
            found[ip] = got
    return list(found.values())


def probe(ctrl: Controller, tcp_port: int = TCP_PORT, timeout_s: float = 0.5) -> Controller:
    """Ask the controller over TCP for its model and the cards on every output port.
    Uses the real driver with nothing configured, so its chain probe counts the cards."""
    from agent.drivers.novastar.driver import NovastarDriver, parse_options

    opts = parse_options(
        {
            "url": f"tcp://{ctrl.ip}:{tcp_port}",
            "ports": MAX_PORTS,
            "cards_per_port": 0,
            "timeout_ms": int(timeout_s * 1000),
            "retries": 1,
            "extended": {"inputs": False, "redundancy": False, "light_sensor": False,
                         "card_info": False},
        }
    )  # fmt: skip
    driver = NovastarDriver(opts)
    driver.open()
    try:
        reading = driver.poll()
    finally:
        driver.close()
    found = reading.controller.get("ports_found")
    if not reading.controller.get("online") or found is None:
        return ctrl
    counts = list(found)
    while len(counts) > 1 and counts[-1] == 0:
        counts.pop()
    return replace(ctrl, model=reading.controller.get("model"), cards_per_port=tuple(counts))


def as_found(c: Controller, tcp_port: int = TCP_PORT) -> Found:
    """The shared shape, with the `[screens.controller]` lines for the starter config."""
    lines = ['driver = "novastar"', f'url = "tcp://{c.ip}:{tcp_port}"']
    if c.cards_per_port is None:
        lines += [
            f"# PLACEHOLDER: {c.ip} did not answer on TCP {tcp_port}; set the real",
            "# number of output ports and receiving cards per port.",
            "# ports = 1",
            "cards_per_port = 1",
        ]
    else:
        counts = list(c.cards_per_port)
        lines.append(f"ports = {len(counts)}")
        one = len(set(counts)) == 1
        lines.append(f"cards_per_port = {counts[0] if one else counts}")
        if not any(counts):
            lines.append("# PLACEHOLDER: no receiving card answered; set the real count.")
    details = "?" if c.cards_per_port is None else ",".join(map(str, c.cards_per_port))
    return Found(FAMILY, c.ip, tuple(lines), c.model, c.mac, c.info, details)


def discover(request: Search) -> list[Found]:
    """The registry's entry (agent/drivers/__init__.py, `_DISCOVERY`)."""
    tcp_port = request.probe_port or TCP_PORT
    found = search(request.addresses, request.port or DISCOVERY_PORT, request.timeout_s,
                   request.broadcast, request.source_port)  # fmt: skip
    if request.probe:
        found = [probe(c, tcp_port) for c in found]
    return [as_found(c, tcp_port) for c in found]
