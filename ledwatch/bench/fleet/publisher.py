"""The benchmark's agents: one paho client (MQTT 5, QoS 1) publishing a fleet's snapshots.

`publish_backlog` sends a whole backlog as fast as the broker acknowledges it and waits
for every PUBACK. A PUBACK with reason 0x10 ("no matching subscribers") means the broker
threw the message away (no collector session existed), so those are counted: a drain
that starts with lost messages would be measured against the wrong total.

`Paced` publishes live at a given rate (snapshots/s, screens in turn, `ts` = the wall
clock), in a thread, and can add a dead-module fault to a screen while it runs. It also
follows `$SYS/broker/store/messages/count` (what the broker holds: queued and in-flight
messages), which Mosquitto publishes every `sys_interval` second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ledwatch.bench.fleet.lineproto import points_per_snapshot
from ledwatch.bench.fleet.payloads import Fleet
from ledwatch.bench.fleet.servers import BenchError

NO_MATCHING_SUBSCRIBERS = 16
STORE_TOPIC = "$SYS/broker/store/messages/count"
# Messages published and not yet acknowledged by the broker, at most. paho numbers them
# with 16-bit ids, and past 65,535 outstanding a new id collides with a waiting one
# ("Message queue full"): a tiny fleet's live probes outrun the broker by that much.
# Waiting here instead puts the publisher behind its schedule, which the live step reports.
MAX_UNACKED = 20_000
UNACKED_WAIT_S = 60.0  # a broker that acknowledges nothing for this long ends the run


class FleetClient:
    def __init__(self, host: str, port: int, client_id: str, inflight: int = 200) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)  # fmt: skip
        self.client.max_inflight_messages_set(inflight)
        self.client.max_queued_messages_set(0)
        self._lock = threading.Lock()
        self.acked = 0
        self.published = 0
        self.unrouted = 0
        self.broker_store: int | None = None
        self.broker_store_max = 0
        self._connected = threading.Event()
        self.client.on_publish = self._on_publish
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(10):
            self.close()
            raise BenchError(f"publisher could not connect to the broker on {host}:{port}")

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object,
                    reason: object, props: object) -> None:  # fmt: skip
        client.subscribe(STORE_TOPIC, qos=0)
        self._connected.set()

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int,
                    reason: mqtt.ReasonCode, props: object) -> None:  # fmt: skip
        with self._lock:
            self.acked += 1
            if int(getattr(reason, "value", 0)) == NO_MATCHING_SUBSCRIBERS:
                self.unrouted += 1

    def _on_message(self, client: mqtt.Client, userdata: object,
                    msg: mqtt.MQTTMessage) -> None:  # fmt: skip
        if msg.topic == STORE_TOPIC:
            try:
                value = int(msg.payload)
            except ValueError:
                return
            self.broker_store = value
            self.broker_store_max = max(self.broker_store_max, value)

    def publish(self, topic: str, payload: bytes) -> None:
        if self.published - self.acked >= MAX_UNACKED:
            self.wait_acked(self.published - MAX_UNACKED + 1, UNACKED_WAIT_S)
        self.published += 1
        info = self.client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise BenchError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")

    def wait_acked(self, n: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.acked < n:
            if time.monotonic() > deadline:
                raise BenchError(f"the broker acknowledged {self.acked} of {n} messages "
                                 f"within {timeout_s:.0f} s")  # fmt: skip
            time.sleep(0.01)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish_backlog(client: FleetClient, messages: Iterable[tuple[str, bytes]],
                    timeout_s: float = 600.0) -> tuple[int, float, int]:  # fmt: skip
    """Publish all, wait for every PUBACK: (messages, seconds, unrouted)."""
    start_acked, start_unrouted = client.acked, client.unrouted
    t0 = time.perf_counter()
    n = 0
    for topic, payload in messages:
        client.publish(topic, payload)
        n += 1
    client.wait_acked(start_acked + n, timeout_s)
    return n, time.perf_counter() - t0, client.unrouted - start_unrouted


@dataclass(frozen=True)
class Backlog:
    sent: int
    start_ms: int  # the oldest ts in it (its window starts there)
    points_per_snapshot: int


def publish_fleet_backlog(client: FleetClient, fleet: Fleet, n: int, end_ms: int, who: str,
                          log: Callable[[str], None]) -> Backlog:  # fmt: skip
    """`n` snapshots of the fleet ending at `end_ms`, for subscribers that are offline;
    every one must reach a session (a PUBACK 0x10 means one was thrown away)."""
    messages = list(fleet.backlog(n, end_ms))
    start_ms = min(doc["ts"] for _, _, doc in messages)
    pps = points_per_snapshot(messages[0][2])
    sent, publish_s, unrouted = publish_backlog(client, ((t, p) for t, p, _ in messages))
    del messages
    log(f"    published {sent:,} snapshots in {publish_s:.1f} s ({sent / publish_s:,.0f}/s)")
    if unrouted:
        raise BenchError(f"{who}: {unrouted} of {sent} snapshots reached no subscriber "
                         "(no session held the subscription)")
    return Backlog(sent, start_ms, pps)


@dataclass
class Injection:
    """A dead module added to one card: its fault polls, then the ticket's appearance."""

    screen: int
    card: int
    component: str
    screen_name: str
    polls_needed: int
    polls_sent: int = 0
    completed_at: float | None = None  # time.time() of the publish that completed the hold
    seen_at: float | None = None  # time.time() the ticket was first seen by the API


@dataclass
class Paced:
    """Live traffic: `rate` snapshots/s over the fleet's screens, in a thread."""

    client: FleetClient
    fleet: Fleet
    sent: int = 0
    behind_s: float = 0.0  # the most the publisher lagged its own schedule in this step
    injections: list[Injection] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next_screen: int = 0

    def run(self, rate: float, seconds: float, stop: threading.Event,
            on_injection: Callable[[Injection], None] | None = None) -> int:  # fmt: skip
        """Publish at `rate` for `seconds` (in the calling thread); returns how many."""
        self.behind_s = 0.0
        n_screens = self.fleet.spec.screens
        t0 = time.monotonic()
        k = 0
        while not stop.is_set():
            due = t0 + k / rate
            now = time.monotonic()
            if due - t0 >= seconds:
                break
            if due > now:
                time.sleep(due - now)
            else:
                self.behind_s = max(self.behind_s, now - due)
            screen = self._next_screen
            self._next_screen = (screen + 1) % n_screens
            with self._lock:  # the payload and the injections it counts for, together
                topic, payload = self.fleet.payload(screen, int(time.time() * 1000))
                completing = []
                for inj in self.injections:
                    if inj.screen == screen and inj.polls_sent < inj.polls_needed:
                        inj.polls_sent += 1
                        if inj.polls_sent == inj.polls_needed:
                            completing.append(inj)
                self.sent += 1
            self.client.publish(topic, payload)
            sent_at = time.time()
            for inj in completing:
                inj.completed_at = sent_at
                if on_injection is not None:
                    on_injection(inj)
            k += 1
        return k

    def inject(self, screen: int, card: int, polls_needed: int) -> Injection:
        """Dead modules on a card from this screen's next poll on; the hold completes
        with its `polls_needed`-th poll."""
        with self._lock:
            fault = self.fleet.add_module_fault(screen, card)
            inj = Injection(screen, card, fault.component, fault.screen, polls_needed)
            self.injections.append(inj)
        return inj
