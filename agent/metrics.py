"""The agent's health in Prometheus text format 0.0.4, on a local `GET /metrics` port.

Off by default (`[metrics] port = 0`); when on, a stdlib `ThreadingHTTPServer` runs in
one daemon thread and answers each scrape from the numbers the agent already keeps
(`Agent.status()`: the pollers, the publisher's counters, the outbox), so a scrape costs
no poll and no disk access and the agent needs no new dependency. Every series carries
the `agent` and `site` labels (several agents behind one Prometheus stay apart), the
per-screen ones a `screen` label too. `render()` is a pure function of a status dict,
so the exposition is tested without a socket.

Names (all `ledwatch_agent_*`; docs/deploy.md has the table with their meaning):
counters end in `_total` and count since the agent process started (Prometheus'
`rate()` copes with the reset at a restart); gauges are the value now.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agent.drivers.base import LinkState
from ledwatch import __version__
from ledwatch.errors import ConfigError

log = logging.getLogger(__name__)

PREFIX = "ledwatch_agent_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# name -> (type, help); the order of this table is the order of the exposition.
FAMILIES: dict[str, tuple[str, str]] = {
    "build_info": ("gauge", "Always 1; the agent's version is in the version label."),
    "uptime_seconds": ("gauge", "Seconds since the agent process started."),
    "link_state": (
        "gauge",
        "1 for the state of the screen's controller link at the last poll, 0 for the others.",
    ),
    "polls_total": ("counter", "Polls of the screen since the agent started."),
    "poll_duration_seconds": ("gauge", "How long the screen's last poll took."),
    "poll_errors_total": (
        "counter",
        "Failed or retried requests and failed polls of the screen since the agent started.",
    ),
    "cards_online": ("gauge", "Receiving cards that answered the last poll."),
    "cards": ("gauge", "Receiving cards in the screen's last snapshot."),
    "psus_answering": ("gauge", "Smart power supplies (Modbus) that answered the last poll."),
    "last_seq": ("gauge", "Sequence number of the screen's last snapshot."),
    "snapshots_published_total": (
        "counter",
        "Snapshots the broker acknowledged (and so left the outbox) since the agent started.",
    ),
    "events_published_total": (
        "counter",
        "Edge events the broker acknowledged since the agent started.",
    ),
    "messages_sent_total": (
        "counter",
        "MQTT publishes from the outbox, re-sends included, since the agent started.",
    ),
    "outbox_depth": ("gauge", "Messages in the outbox not yet acknowledged by the broker."),
    "outbox_bytes": ("gauge", "Bytes the outbox's messages count against its quota."),
    "outbox_quota_bytes": ("gauge", "The outbox's quota (agent.outbox_quota_mb) in bytes."),
    "outbox_dropped_total": (
        "counter",
        "Snapshots the outbox quota dropped, oldest first (kept across restarts).",
    ),
    "outbox_corrupt_total": (
        "counter",
        "Corrupt outbox files moved aside and replaced by a new one since the agent started.",
    ),
    "mqtt_connected": ("gauge", "1 while the agent has a connection to the broker."),
    "mqtt_routed": (
        "gauge",
        "0 while the broker says nobody subscribes to the agent's topics (PUBACK 0x10).",
    ),
    "mqtt_inflight": ("gauge", "Messages sent and not yet acknowledged by the broker."),
    "mqtt_reconnects_total": (
        "counter",
        "Connections to the broker after the first one since the agent started.",
    ),
    "mqtt_disconnects_total": ("counter", "Connections to the broker lost."),
    "mqtt_unrouted_total": (
        "counter",
        "PUBACKs saying no subscriber got the message (kept and sent again later).",
    ),
    "mqtt_refused_total": ("counter", "Publishes the broker refused (kept and retried)."),
    "publisher_errors_total": ("counter", "Unexpected errors in the publish loop (survived)."),
}


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float | int | bool | None) -> str:
    if value is None:
        return "NaN"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


Sample = tuple[str, Mapping[str, object], float | int | bool | None]


def _samples(status: Mapping[str, Any], quota_bytes: int | None) -> Iterable[Sample]:
    mqtt = status.get("mqtt") or {}
    yield "build_info", {"version": __version__}, 1
    yield "uptime_seconds", {}, status.get("uptime_s")
    for screen, s in status.get("screens", {}).items():
        where = {"screen": screen}
        for state in LinkState:
            yield "link_state", {**where, "state": str(state)}, s.get("link") == str(state)
        yield "polls_total", where, s.get("polls", 0)
        ms = s.get("poll_ms")
        yield "poll_duration_seconds", where, None if ms is None else ms / 1000.0
        yield "poll_errors_total", where, s.get("poll_errors", 0)
        yield "cards_online", where, s.get("cards_online", 0)
        yield "cards", where, s.get("cards_total", 0)
        if s.get("psus_total"):
            yield "psus_answering", where, s.get("psus_answered", 0)
        yield "last_seq", where, s.get("seq", 0)
    if mqtt:
        yield "snapshots_published_total", {}, mqtt.get("acked_telemetry", 0)
        yield "events_published_total", {}, mqtt.get("acked_event", 0)
        yield "messages_sent_total", {}, mqtt.get("sent", 0)
    yield "outbox_depth", {}, status.get("queue_depth", 0)
    yield "outbox_bytes", {}, status.get("outbox_bytes", 0)
    if quota_bytes is not None:
        yield "outbox_quota_bytes", {}, quota_bytes
    yield "outbox_dropped_total", {}, status.get("dropped", 0)
    yield "outbox_corrupt_total", {}, len(status.get("outbox_set_aside", []))
    if mqtt:
        yield "mqtt_connected", {}, bool(mqtt.get("connected"))
        yield "mqtt_routed", {}, bool(mqtt.get("routed", True))
        yield "mqtt_inflight", {}, mqtt.get("inflight", 0)
        yield "mqtt_reconnects_total", {}, max(0, mqtt.get("connects", 0) - 1)
        yield "mqtt_disconnects_total", {}, mqtt.get("disconnects", 0)
        yield "mqtt_unrouted_total", {}, mqtt.get("unrouted", 0)
        yield "mqtt_refused_total", {}, mqtt.get("refused", 0)
        yield "publisher_errors_total", {}, mqtt.get("publisher_errors", 0)


def render(status: Mapping[str, Any], quota_bytes: int | None = None) -> str:
    """The exposition of one `Agent.status()` (text format 0.0.4: HELP and TYPE once per
    family, then its samples; families without samples are left out)."""
    common = {"agent": status.get("agent", ""), "site": status.get("site", "")}
    by_family: dict[str, list[str]] = {name: [] for name in FAMILIES}
    for name, labels, value in _samples(status, quota_bytes):
        pairs = {**common, **labels}
        text = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs.items())
        by_family[name].append(f"{PREFIX}{name}{{{text}}} {_number(value)}")
    out: list[str] = []
    for name, lines in by_family.items():
        if not lines:
            continue
        kind, help_ = FAMILIES[name]
        out += [f"# HELP {PREFIX}{name} {help_}", f"# TYPE {PREFIX}{name} {kind}", *lines]
    return "\n".join(out) + "\n"


class MetricsServer:
    """`GET /metrics` on `host:port` in a daemon thread; `start()` once, `stop()` once.

    `text` is called for every scrape. Anything but GET /metrics (and `/`, which points
    to it) gets a 404; a failing `text` gets a 500 with the error, logged, never a dead
    server. Port 0 in the constructor means "any free port" (tests); the agent's own
    port 0 means "off" and never gets here.
    """

    def __init__(self, host: str, port: int, text: Callable[[], str]) -> None:
        self.host = host
        self._text = text

        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "ledwatch-agent"

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    try:
                        body, status, kind = outer._text().encode(), 200, CONTENT_TYPE
                    except Exception as exc:  # a bug in rendering must not kill the port
                        log.exception("metrics: rendering failed")
                        body, status, kind = f"error: {exc!r}\n".encode(), 500, "text/plain"
                elif path == "/":
                    body, status, kind = b"ledwatch agent: see /metrics\n", 200, "text/plain"
                else:
                    body, status, kind = b"not found: try /metrics\n", 404, "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("metrics: %s %s", self.address_string(), format % args)

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
            daemon_threads = True

        try:
            self._server = Server((host, port), Handler)
        except OSError as exc:
            raise ConfigError(
                f"metrics: cannot listen on {host}:{port}: {exc.strerror or exc}: "
                "pick another metrics.port (or 0 to turn the endpoint off)"
            ) from None
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def start(self) -> MetricsServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="ledwatch-metrics",
            daemon=True,
        )
        self._thread.start()
        log.info("metrics: serving Prometheus text on %s", self.url)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout_s)
            self._thread = None
        self._server.server_close()
