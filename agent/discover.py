"""`ledwatch discover`: find controllers on the LAN and write a starter config.

The searches themselves belong to the families (registered in agent/drivers/__init__.py,
`_DISCOVERY`); this module is what they share: the addresses to send to, the table it
prints, the starter agent config it writes. Every registered family searches, or only
the one named with `--family`.

Only the addresses given are sent to: one broadcast address, or each host of a subnet
no larger than a /24 (a bigger scan is refused: it would flood a site's network and
take minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from agent.drivers import discovery, discovery_names
from ledwatch import contract
from ledwatch.errors import ConfigError, UsageError

MIN_PREFIX: Final = 24  # largest subnet scanned host by host: 254 hosts


@dataclass(frozen=True, slots=True)
class Search:
    """What a family's search is asked: where to send, for how long; `port` and
    `probe_port` None mean the family's own (NovaStar: UDP 3800, TCP 5200)."""

    addresses: tuple[str, ...]
    broadcast: bool = False
    timeout_s: float = 2.0
    port: int | None = None  # where the search datagram goes
    probe_port: int | None = None  # what the follow-up probe connects to; also in the config
    source_port: int = 0  # local port to send from and listen on (0: any)
    probe: bool = True  # ask each controller found for its layout


@dataclass(frozen=True, slots=True)
class Found:
    """One controller a family found, in the shape every family shares.

    `controller` holds the `[screens.controller]` lines of the starter config (driver,
    url, layout, and `# PLACEHOLDER` comments where a person must fill something in)."""

    family: str
    ip: str
    controller: tuple[str, ...]
    model: str | None = None
    mac: str | None = None
    info: str = ""  # what the reply said, printable
    details: str = "?"  # e.g. the cards per port, "3,2"

    @property
    def screen_id(self) -> str:
        return screen_id(self.ip)


def screen_id(ip: str) -> str:
    """The screen id a starter config gives the controller at `ip` (`ctrl-10-0-0-5`)."""
    return "ctrl-" + ip.replace(".", "-").replace(":", "-")


def bind_address(addresses: Sequence[str], source_port: int = 0) -> tuple[str, int]:
    """Where a search listens: 127.0.0.1 when it only asks loopback addresses (a test, an
    emulator on this PC), else every interface; `source_port` 0 means any."""
    loopback = all(ipaddress.ip_address(a).is_loopback for a in addresses)
    return ("127.0.0.1" if loopback else "0.0.0.0", source_port)


def udp_search(
    query: bytes,
    addresses: Sequence[str],
    port: int,
    timeout_s: float,
    bind: tuple[str, int] = ("0.0.0.0", 0),
) -> list[tuple[bytes, str, int]]:
    """Send `query` once to each address (UDP `port`; broadcast addresses allowed) and
    collect every datagram that comes back within `timeout_s`, as (data, host, port) in
    order of arrival. The family's parser decides which of them are answers.

    An address that cannot be sent to is skipped (nobody there to answer), and an ICMP
    "port unreachable" from one host does not end the wait for the others."""
    replies: list[tuple[bytes, str, int]] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.bind(bind)
        for addr in addresses:
            with contextlib.suppress(OSError):
                sock.sendto(query, (addr, port))
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, (host, peer_port) = sock.recvfrom(2048)
            except TimeoutError:
                break
            except OSError:
                continue
            replies.append((data, host, peer_port))
    return replies


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


def starter_config(found: Sequence[Found], site: str, agent: str) -> str:
    """An agent TOML with one [[screens]] per controller (pure); `load_settings` accepts
    it as written. Unprobed controllers carry placeholders marked for the installer."""
    contract.check_id(site, "--site")
    contract.check_id(agent, "--agent")
    lines = [
        "# Starter agent config written by `ledwatch discover`; see agent/sample.toml for",
        "# every option. Check each screen id, and the values marked PLACEHOLDER.",
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
        lines += ["", f"# {c.ip} ({c.family}): {about}", "[[screens]]", f'id = "{c.screen_id}"',
                  "", "[screens.controller]", *c.controller]  # fmt: skip
    return "\n".join(lines) + "\n"


def _table(found: Sequence[Found]) -> str:
    rows = [("IP", "FAMILY", "MODEL", "MAC", "DETAILS", "REPLY")]
    rows += [(c.ip, c.family, c.model or "?", c.mac or "?", c.details, c.info or "-")
             for c in found]  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledwatch discover",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--family", choices=discovery_names(),
                        help="search for this family only (default: every one)")  # fmt: skip
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--subnet", help="query each host of this subnet (at most a /24)")
    where.add_argument("--broadcast", help="query this broadcast address (default 255.255.255.255)")
    parser.add_argument("--port", type=int,
                        help="UDP port the search goes to (default: the family's; NovaStar 3800)")
    parser.add_argument(
        "--tcp-port",
        type=int,
        help="controllers' port, probed and written to the config (default: the family's; "
        "NovaStar 5200)",
    )
    parser.add_argument(
        "--source-port",
        type=int,
        default=0,
        help="local UDP port to send from and listen on (0: any); NovaStar's own tools use 3800",
    )
    parser.add_argument("--timeout-s", type=float, default=2.0, help="seconds to collect replies")
    parser.add_argument("--no-probe", action="store_true", help="skip the follow-up probe")
    parser.add_argument(
        "--write-config",
        type=Path,
        metavar="AGENT_TOML",
        help="write a starter agent config for the controllers found",
    )
    parser.add_argument("--site", help="site id for --write-config")
    parser.add_argument("--agent", help="agent id for --write-config")
    parser.add_argument("--force", action="store_true", help="overwrite --write-config's file")
    return parser  # fmt: skip


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    families = [args.family] if args.family else discovery_names()
    try:
        for name in ("port", "tcp_port"):
            value = getattr(args, name)
            if value is not None and not 1 <= value <= 65535:
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
        search = Search(tuple(addresses), is_broadcast, args.timeout_s, args.port, args.tcp_port,
                        args.source_port, not args.no_probe)  # fmt: skip
        found: list[Found] = []
        for family in families:
            found += discovery(family)(search)
    except (UsageError, ConfigError) as exc:
        print(f"ledwatch discover: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"ledwatch discover: cannot send the search: {exc}", file=sys.stderr)
        return 2
    if not found:
        print(f"no controller answered within {args.timeout_s:g} s "
              f"(searched for: {', '.join(families)})")  # fmt: skip
        return 1
    print(_table(found))
    if args.write_config is not None:
        text = starter_config(found, args.site, args.agent)
        args.write_config.write_text(text, "utf-8")
        print(f"wrote {args.write_config} ({len(found)} screen(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
