"""MQTT side of the agent: birth/will, outbox -> broker at QoS 1, acks only on PUBACK.

Threads (all daemon, all owned here):
- the network thread runs paho's `loop()` itself, so reconnects use our exponential
  backoff with jitter (paho's own has none: a site's agents that lost the broker
  together would otherwise reconnect in lock-step) and an exception escaping a paho
  callback is logged and survived instead of silently ending the network loop;
- the publish thread moves messages from the outbox into paho's in-flight window and
  turns PUBACKs into outbox acks, and doubles as the supervisor: if the network thread
  has died anyway it is started again. The agent never needs a restart.

Delivery: a message is deleted from the outbox only after its PUBACK (`on_publish`), and
with MQTT 5 only after a PUBACK that says someone subscribes: "no matching subscribers"
(0x10) means the broker accepted the message and threw it away, which is what Mosquitto
2.0 does between its own restart and the collector's re-subscription (it does not
restore shared subscriptions from its persistence file). Such a message stays in the
outbox; sending pauses (backoff) and then resumes with one message in flight until one
is routed again, so the backlog keeps its order.
paho keeps unacknowledged QoS 1 messages and re-sends them (DUP) after a reconnect, so
the in-flight map (mid -> outbox id) survives reconnects; duplicates are fine, the
collector's writes are idempotent. `on_publish` runs under paho's message lock, so it
only queues the mid; the publish thread, the sole owner of the in-flight map, resolves
it and acks in batches (one fsync for many acks).

Rate: live data flows as it is produced; an older backlog drains at
`drain_rate_per_s` on top of it (a token bucket refilled at that rate, plus one token
per message the pollers report through `notify()`), so an agent returning from a long
outage does not flood the broker and the collector.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from agent.outbox.base import Outbox
from agent.settings import AgentSettings
from agent.snapshot import build_status, encode
from ledwatch import contract

log = logging.getLogger(__name__)

REFUSED_HOLD_S = 5.0  # pause after the broker refused a publish (e.g. ACL), not a hot loop
NO_SUBSCRIBER = 0x10  # MQTT 5 PUBACK reason: accepted, but nobody subscribes to the topic
NO_SUBSCRIBER_HOLD_S = (0.25, 10.0)  # first and longest pause before probing again


def backoff_s(attempt: int, min_s: float, max_s: float) -> float:
    """Exponential backoff with jitter: the delay before reconnect attempt `attempt` (0-based)."""
    ceiling = min(max_s, min_s * (2 ** min(attempt, 30)))
    return random.uniform(ceiling / 2, ceiling)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Publisher:
    """Publishes the outbox to the broker; `start()` once, `stop()` once (clean offline)."""

    def __init__(
        self,
        settings: AgentSettings,
        outbox: Outbox,
        *,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 60.0,
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.window = settings.mqtt.max_inflight
        self.status_topic = contract.status_topic(settings.agent.site, settings.agent.id)
        self._client = self._make_client()
        self._stopping = threading.Event()  # network thread: end
        self._closing = threading.Event()  # publish thread: end
        self._wake = threading.Event()
        self._connected = threading.Event()
        # (mid, outcome): "ok", "refused" or "unrouted" (PUBACK 0x10, nobody subscribes)
        self._acks: collections.deque[tuple[int, str]] = collections.deque()
        self._inflight: dict[int, int] = {}  # mid -> outbox id (publish thread only)
        self._inflight_kind: dict[int, str] = {}  # outbox id -> kind, for the counters
        self._inflight_ids: set[int] = set()
        self._hold_until = 0.0
        self._unrouted_streak = 0  # pauses since the last routed message; > 0: probe with 1
        self._attempt = 0  # reconnect attempts since the last successful CONNACK
        rate = settings.agent.drain_rate_per_s
        self._bucket_cap = max(float(self.window), rate)
        self._bucket = self._bucket_cap
        self._bucket_t = time.monotonic()
        self._live = 0
        self._live_lock = threading.Lock()
        self._net_thread: threading.Thread | None = None
        self._pub_thread: threading.Thread | None = None
        self.counters: dict[str, int] = collections.Counter()
        self.last_error: str | None = None

    # -- paho client --------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        s = self.settings
        v5 = s.mqtt.protocol == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else True,
        )
        password = s.mqtt.password()
        client.username_pw_set(s.username, password.get_secret_value() if password else None)
        tls = s.mqtt.tls
        if tls is not None:
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
            )
            client.tls_insecure_set(tls.insecure)
        # Our window is never larger than paho's, so paho never queues behind our back.
        client.max_inflight_messages_set(self.window)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure:
            self.last_error = f"broker refused the connection: {reason}"
            log.error("MQTT %s", self.last_error)
            self.counters["connect_refused"] += 1
            return
        self.counters["connects"] += 1
        self._attempt = 0
        log.info("MQTT connected to %s:%s", self.settings.mqtt.host, self.settings.mqtt.port)
        birth = encode(build_status(self.settings, "online", _now_ms(), with_version=True))
        client.publish(self.status_topic, birth, qos=1, retain=True)
        self._connected.set()
        self._wake.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        self._connected.clear()
        if not self._stopping.is_set():
            self.counters["disconnects"] += 1
            log.warning("MQTT connection lost (%s); unacknowledged messages stay queued", reason)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure:
            outcome = "refused"
        elif reason.value == NO_SUBSCRIBER and self.settings.mqtt.require_subscriber:
            outcome = "unrouted"
        else:
            outcome = "ok"
        self._acks.append((mid, outcome))
        self._wake.set()

    # -- network thread -------------------------------------------------------------
    def _network_main(self) -> None:
        mq = self.settings.mqtt
        while not self._stopping.is_set():
            try:
                will = encode(build_status(self.settings, "offline", _now_ms()))
                self._client.will_set(self.status_topic, will, qos=1, retain=True)
                self._client.connect(mq.host, mq.port, keepalive=mq.keepalive_s)
                self._loop_until_disconnected()
            except OSError as exc:  # refused, unreachable, TLS handshake, reset
                self.last_error = f"cannot reach broker {mq.host}:{mq.port}: {exc}"
                log.warning("MQTT %s", self.last_error)
            except Exception as exc:  # a bug in a callback must not end the network loop
                self.last_error = f"MQTT network loop error: {exc!r}"
                self.counters["network_errors"] += 1
                log.exception("MQTT network loop error")
            self._connected.clear()
            if self._stopping.is_set():
                break
            delay = backoff_s(self._attempt, self.reconnect_min_s, self.reconnect_max_s)
            self._attempt += 1
            self._stopping.wait(delay)

    def _loop_until_disconnected(self) -> None:
        stop_deadline: float | None = None
        while self._client.loop(timeout=0.2) == MQTTErrorCode.MQTT_ERR_SUCCESS:
            if not self._stopping.is_set():
                continue
            if stop_deadline is None:  # clean stop: DISCONNECT, so the broker skips the will
                stop_deadline = time.monotonic() + 2.0
                self._client.disconnect()
            elif time.monotonic() > stop_deadline:
                break

    def _start_network(self) -> None:
        self._net_thread = threading.Thread(
            target=self._network_main, name="ledwatch-mqtt-net", daemon=True
        )
        self._net_thread.start()

    # -- publish thread -------------------------------------------------------------
    def notify(self, count: int = 1) -> None:
        """Called by the pollers after each put: live data gets its own send credit."""
        with self._live_lock:
            self._live = min(self._live + count, self.window)
        self._wake.set()

    def _take_tokens(self, wanted: int) -> int:
        now = time.monotonic()
        rate = self.settings.agent.drain_rate_per_s
        self._bucket = min(self._bucket_cap, self._bucket + (now - self._bucket_t) * rate)
        self._bucket_t = now
        with self._live_lock:
            live = min(self._live, wanted)
            self._live -= live
        backlog = min(int(self._bucket), wanted - live)
        self._bucket -= backlog
        return live + backlog

    def _drain_acks(self) -> None:
        done: list[int] = []
        while self._acks:
            mid, outcome = self._acks.popleft()
            msg_id = self._inflight.pop(mid, None)
            if msg_id is None:
                continue  # birth / offline status, not from the outbox
            self._inflight_ids.discard(msg_id)
            kind = self._inflight_kind.pop(msg_id, "")
            if outcome == "ok":
                done.append(msg_id)
                self.counters[f"acked_{kind}"] += 1
                if self._unrouted_streak:
                    log.info("broker routes messages again; sending the backlog")
                    self._unrouted_streak = 0
                    self.last_error = None
            elif outcome == "unrouted":
                self._unrouted(msg_id)
            else:
                self.counters["refused"] += 1
                self._hold_until = time.monotonic() + REFUSED_HOLD_S
                log.error("broker refused message %d (kept, retried later)", msg_id)
        if done:
            self.outbox.ack_batch(done)
            self.counters["acked"] += len(done)

    def _unrouted(self, msg_id: int) -> None:
        """PUBACK 0x10: the message reached nobody. Keep it, pause, then probe with one."""
        self.counters["unrouted"] += 1
        now = time.monotonic()
        if self._unrouted_streak and now < self._hold_until:
            return  # the rest of a window sent before the first 0x10: same pause
        first, longest = NO_SUBSCRIBER_HOLD_S
        self._hold_until = now + min(longest, first * 2 ** min(self._unrouted_streak, 16))
        if self._unrouted_streak == 0:
            self.last_error = (
                "broker has no subscriber for our topics (collector not subscribed?); "
                "messages stay in the outbox and are retried"
            )
            log.warning("message %d reached no subscriber: %s", msg_id, self.last_error)
        self._unrouted_streak += 1

    def _send(self) -> float:
        """Fill the in-flight window; return how long to sleep at most."""
        if not self._connected.is_set() or time.monotonic() < self._hold_until:
            return 0.5
        window = 1 if self._unrouted_streak else self.window  # probing: one at a time
        free = window - len(self._inflight)
        if free <= 0:
            return 0.5
        batch = [m for m in self.outbox.next_batch(self.window) if m.id not in self._inflight_ids]
        if not batch:
            return 0.5
        allowed = self._take_tokens(min(free, len(batch)))
        for msg in batch[:allowed]:
            info = self._client.publish(msg.topic, msg.payload, qos=1)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                log.warning("publish of message %d failed: %s", msg.id, mqtt.error_string(info.rc))
                break
            self._inflight[info.mid] = msg.id
            self._inflight_ids.add(msg.id)
            self._inflight_kind[msg.id] = msg.kind
            self.counters["sent"] += 1
        if allowed < len(batch):  # throttled: come back when a token is due
            return max(0.005, 1.0 / self.settings.agent.drain_rate_per_s)
        return 0.5

    def _publish_main(self) -> None:
        while not self._closing.is_set():
            try:
                if self._net_thread is not None and not self._net_thread.is_alive():
                    self.counters["network_restarts"] += 1
                    log.error("MQTT network thread died; restarting it")
                    self._start_network()
                self._drain_acks()
                sleep_s = self._send()
                self._drain_acks()
            except Exception as exc:  # e.g. disk full while acking: keep going, retry
                self.last_error = f"publisher error: {exc!r}"
                self.counters["publisher_errors"] += 1
                log.exception("publisher error")
                sleep_s = 1.0
            self._wake.wait(sleep_s)
            self._wake.clear()

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        self._start_network()
        self._pub_thread = threading.Thread(
            target=self._publish_main, name="ledwatch-publisher", daemon=True
        )
        self._pub_thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop sending, publish the retained offline status, disconnect cleanly."""
        self._closing.set()
        self._wake.set()
        if self._pub_thread is not None:
            self._pub_thread.join(timeout_s)
        try:
            self._drain_acks()
        except Exception:
            log.exception("final ack failed (messages stay in the outbox)")
        if self._connected.is_set():
            offline = encode(build_status(self.settings, "offline", _now_ms()))
            info = self._client.publish(self.status_topic, offline, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout_s)
            except (RuntimeError, ValueError):
                log.warning("offline status not confirmed before stop")
        self._stopping.set()
        if self._net_thread is not None:
            self._net_thread.join(timeout_s)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def inflight(self) -> int:
        return len(self._inflight)

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until the outbox is empty and nothing is in flight (for --once and tests)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.outbox.depth() == 0 and not self._inflight and not self._acks:
                return True
            time.sleep(0.02)
        return False

    def stats(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "inflight": len(self._inflight),
            "routed": self._unrouted_streak == 0,
            **dict(self.counters),
            "last_error": self.last_error,
        }
