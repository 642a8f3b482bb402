"""`ledwatch discover`: find NovaStar controllers on the LAN and write a starter config.

NovaStar's LAN search (spec 1.2: UDP port 3800; the query as NovaStar's own tools send
it, see sarakusha/novastar packages/net/src/net.ts) is the ASCII datagram `rqProMI:`;
a controller answers `rpProMI:` followed by bytes whose layout is not documented. So
the sender's address is what identifies a controller; a MAC address or a name in the
rest of the reply is shown when one can be read, never relied on. Each controller
found is then asked over TCP (port 5200) for its model (3.7.2) and how many receiving
cards answer on each output port, which fills `ports` and `cards_per_port`.

Only the addresses given are sent to: one broadcast address, or each host of a subnet
no larger than a /24 (a bigger scan is refused: it would flood a site's network and
take minutes).
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from ledwatch import contract
from ledwatch.errors import ConfigError, UsageError

DISCOVERY_PORT: Final = 3800  # spec 1.2
TCP_PORT: Final = 5200  # spec 1.2
QUERY: Final = b"rqProMI:"
REPLY: Final = b"rpProMI:"
MIN_PREFIX: Final = 24  # largest subnet scanned host by host: 254 hosts
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
        return "ctrl-" + self.ip.replace(".", "-").replace(":", "-")


def parse_reply(data: bytes, ip: str) -> Controller | None:
    """A search reply from `ip`, or None if it is not one (pure)."""
    if not data.startswith(REPLY):
        return None
    rest = data[len(REPLY) :]
    text = "".join(chr(b) if 32 <= b < 127 else " " for b in rest).strip()
    m = MAC_RE.search(text)
    mac = m.group(0).replace("-", ":").lower() if m else None
    return Controller(ip=ip, mac=mac, info=" ".join(text.split()))


def targets(subnet: str | None, broadcast: str | None) -> tuple[list[str], bool]:
    """(addresses to send the query to, whether it is a broadcast); UsageError if the
    subnet is malformed or larger than a /24."""
    if subnet is not None and broadcast is not None:
        raise UsageError("give --subnet or --broadcast, not both")
    if subnet is None:
        addr = broadcast or "255.255.255.255"
        try:
            ipaddress.IPv4Address(addr)
        except ValueError:
            raise UsageError(f"--broadcast: {addr!r} is not an IPv4 address") from None
        return [addr], True
    try:
        net = ipaddress.IPv4Network(subnet, strict=False)
    except ValueError as exc:
        raise UsageError(f"--subnet: {exc}") from None
    if net.prefixlen < MIN_PREFIX:
        raise UsageError(
            f"--subnet: {net} has {net.num_addresses} addresses; scan at most a /{MIN_PREFIX} "
            "(256 addresses) at a time, or use --broadcast"
        )
    hosts = [str(h) for h in net.hosts()] or [str(net.network_address)]
    return hosts, False


def search(
    addresses: Sequence[str],
    port: int = DISCOVERY_PORT,
    timeout_s: float = 2.0,
    broadcast: bool = False,
    source_port: int = 0,
) -> list[Controller]:
    """Send the query to each address and collect replies for `timeout_s` seconds.
    One entry per answering address, in the order the replies came."""
    loopback = all(ipaddress.IPv4Address(a).is_loopback for a in addresses)
    found: dict[str, Controller] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        if broadcast:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.bind(("127.0.0.1" if loopback else "", source_port))
        for addr in addresses:
            try:
                sock.sendto(QUERY, (addr, port))
            except OSError:
                continue  # unreachable host or network: nobody there to answer
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, (ip, _) = sock.recvfrom(2048)
            except TimeoutError:
                break
            except OSError:
                continue  # ICMP port unreachable from a host without a controller
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


def starter_config(found: Sequence[Controller], site: str, agent: str, tcp_port: int) -> str:
    """An agent TOML with one [[screens]] per controller (pure); `load_settings` accepts
    it as written. Unprobed controllers get placeholders marked for the installer."""
    contract.check_id(site, "--site")
    contract.check_id(agent, "--agent")
    lines = [
        "# Starter agent config written by `ledwatch discover`; see agent/sample.toml for",
        "# every option. Check each screen id, and the card counts marked PLACEHOLDER.",
        "[agent]",
        f'id = "{agent}"',
        f'site = "{site}"',
        "",
        "[mqtt]",
        'host = "localhost"',
        "# port = 1883",
    ]
    for c in found:
        about = ", ".join(x for x in (c.model, c.mac, c.info) if x) or "no details"
        lines += ["", f"# {c.ip}: {about}", "[[screens]]", f'id = "{c.screen_id}"', ""]
        lines += ["[screens.controller]", 'driver = "novastar"',
                  f'url = "tcp://{c.ip}:{tcp_port}"']  # fmt: skip
        if c.cards_per_port is None:
            lines += [
                f"# PLACEHOLDER: {c.ip} did not answer on TCP {tcp_port}; set the real",
                "# number of output ports and receiving cards per port.",
                "# ports = 1",
                "cards_per_port = 1",
            ]
            continue
        counts = list(c.cards_per_port)
        lines.append(f"ports = {len(counts)}")
        if len(set(counts)) == 1:
            lines.append(f"cards_per_port = {counts[0]}")
        else:
            lines.append(f"cards_per_port = {counts}")
        if not any(counts):
            lines.append("# PLACEHOLDER: no receiving card answered; set the real count.")
    return "\n".join(lines) + "\n"


def _table(found: Sequence[Controller]) -> str:
    rows = [("IP", "MODEL", "MAC", "CARDS PER PORT", "REPLY")]
    for c in found:
        cards = "?" if c.cards_per_port is None else ",".join(map(str, c.cards_per_port))
        rows.append((c.ip, c.model or "?", c.mac or "?", cards, c.info or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="ledwatch discover",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--subnet", help="query each host of this subnet (at most a /24)")
    where.add_argument("--broadcast", help="query this broadcast address (default 255.255.255.255)")
    parser.add_argument("--port", type=int, default=DISCOVERY_PORT, help="UDP port (3800)")
    parser.add_argument(
        "--tcp-port",
        type=int,
        default=TCP_PORT,
        help="controllers' TCP port, probed and written to the config (5200)",
    )
    parser.add_argument(
        "--source-port",
        type=int,
        default=0,
        help="local UDP port to send from and listen on (0: any); NovaStar's own tools use 3800",
    )
    parser.add_argument("--timeout-s", type=float, default=2.0, help="seconds to collect replies")
    parser.add_argument("--no-probe", action="store_true", help="skip the TCP probe")
    parser.add_argument(
        "--write-config",
        type=Path,
        metavar="AGENT_TOML",
        help="write a starter agent config for the controllers found",
    )
    parser.add_argument("--site", help="site id for --write-config")
    parser.add_argument("--agent", help="agent id for --write-config")
    parser.add_argument("--force", action="store_true", help="overwrite --write-config's file")
    args = parser.parse_args(argv)
    try:
        for name in ("port", "tcp_port"):
            if not 1 <= getattr(args, name) <= 65535:
                raise UsageError(f"--{name.replace('_', '-')}: must be 1..65535")
        if not 0 < args.timeout_s <= 60:
            raise UsageError("--timeout-s: must be more than 0 and at most 60")
        if args.write_config is not None:
            if not args.site or not args.agent:
                raise UsageError("--write-config needs --site and --agent")
            contract.check_id(args.site, "--site")
            contract.check_id(args.agent, "--agent")
            if args.write_config.exists() and not args.force:
                raise UsageError(f"{args.write_config} exists (use --force to overwrite)")
        addresses, is_broadcast = targets(args.subnet, args.broadcast)
        found = search(addresses, args.port, args.timeout_s, is_broadcast, args.source_port)
    except (UsageError, ConfigError) as exc:
        print(f"ledwatch discover: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"ledwatch discover: cannot send the search: {exc}", file=sys.stderr)
        return 2
    if not args.no_probe:
        found = [probe(c, args.tcp_port) for c in found]
    if not found:
        print(f"no controller answered on UDP {args.port} within {args.timeout_s:g} s")
        return 1
    print(_table(found))
    if args.write_config is not None:
        text = starter_config(found, args.site, args.agent, args.tcp_port)
        args.write_config.write_text(text, "utf-8")
        print(f"wrote {args.write_config} ({len(found)} screen(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
