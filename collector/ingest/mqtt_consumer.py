"""The collector's MQTT side: a persistent, manually acknowledged subscription.

At-least-once without loss needs three things together:
* a persistent session (fixed client id, clean start off, a session expiry), so the
  broker keeps queuing while the collector is down;
* `manual_ack=True`, so a message is acknowledged only when the service says its
  points are stored (`ack_many()`); a crash before that means redelivery, and the writes
  are idempotent (the point timestamp is the snapshot's `ts`);
* an in-flight window asked of the broker (MQTT 5 Receive Maximum =
  `influx.max_pending`). Mosquitto 2.0.11 was measured not to honour it, so the real
  bound is the service's own queue (docs/delivery.md): when it is full this module's
  callback blocks, paho stops reading the socket and TCP pushes back on the broker.

This module only moves messages; decoding and storing are the service's job. paho runs
its network loop (and reconnects with backoff) in its own thread; `on_message` is
called from that thread and must return quickly.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from collector.ingest.paho_io import BufferedClient
from ledwatch.contract import EVENT_FILTER, STATUS_FILTER, TELEMETRY_FILTER, shared

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Inbound:
    """One received message; `generation` is the connection it came on (acks are per
    connection: after a reconnect the broker redelivers and the old mid is void)."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int
    received_ms: int


@dataclass(frozen=True, slots=True)
class MqttOptions:
    """Everything the consumer needs; built from `MqttSettings` by `from_settings`."""

    host: str
    port: int
    client_id: str
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    share_group: str | None = "collectors"
    qos: int = 1
    clean_start: bool = False
    protocol: str = "5"
    session_expiry_s: int = 7 * 24 * 3600
    keepalive_s: int = 30
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0
    receive_maximum: int = 10_000
    # The subscriptions; None: telemetry through the share group, events and statuses
    # plainly (collector/cluster.py decides them for a cluster).
    filters: tuple[str, ...] | None = None

    @classmethod
    def from_settings(cls, s: Any, receive_maximum: int,
                      filters: tuple[str, ...] | None = None) -> MqttOptions:
        tls = s.tls
        return cls(
            host=s.host,
            port=s.port,
            client_id=s.client_id,
            username=s.username,
            password=s.password(),
            ca_file=str(tls.ca_file) if tls and tls.ca_file else None,
            cert_file=str(tls.cert_file) if tls and tls.cert_file else None,
            key_file=str(tls.key_file) if tls and tls.key_file else None,
            share_group=s.share_group or None,
            qos=s.qos,
            clean_start=s.clean_start,
            protocol=s.protocol,
            session_expiry_s=s.session_expiry_s,
            keepalive_s=s.keepalive_s,
            reconnect_min_s=s.reconnect_min_s,
            reconnect_max_s=s.reconnect_max_s,
            receive_maximum=receive_maximum,
            filters=filters,
        )


class MqttConsumer:
    """Subscribes to telemetry (shared), events and status; hands messages to `on_message`.

    Call order: `start()` once, then `ack_many()` from any thread for the delivered messages
    whose work is done, `pause()` to stop taking messages (they stay unacknowledged at the
    broker and come back on the next session), and `stop()` once.
    """

    def __init__(
        self,
        options: MqttOptions,
        on_message: Callable[[Inbound], None],
        on_connection: Callable[[bool], None] | None = None,
        keep: Callable[[str, bytes | bytearray], bool] | None = None,
    ) -> None:
        self.options = options
        self._on_message_cb = on_message
        # False: another collector's message (collector/cluster.py), acknowledged here
        # at once and counted in `skipped`; it never reaches the service's queue.
        self._keep = keep
        self.skipped = 0
        self._on_connection_cb = on_connection
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._paused = False
        self.generation = 0
        self.v5 = options.protocol == "5"
        if self.v5:
            client = BufferedClient(
                CallbackAPIVersion.VERSION2,
                client_id=options.client_id,
                protocol=mqtt.MQTTv5,
                manual_ack=True,
            )
        else:
            client = BufferedClient(
                CallbackAPIVersion.VERSION2,
                client_id=options.client_id,
                clean_session=options.clean_start,
                protocol=mqtt.MQTTv311,
                manual_ack=True,
            )
        if options.username:
            client.username_pw_set(options.username, options.password)
        if options.ca_file or options.cert_file:
            client.tls_set(
                ca_certs=options.ca_file,
                certfile=options.cert_file,
                keyfile=options.key_file,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        client.reconnect_delay_set(
            max(1, int(options.reconnect_min_s)), max(1, int(options.reconnect_max_s))
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client: BufferedClient = client

    @property
    def filters(self) -> list[str]:
        if self.options.filters is not None:
            return list(self.options.filters)
        return [
            shared(self.options.share_group, TELEMETRY_FILTER),
            EVENT_FILTER,
            STATUS_FILTER,
        ]

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def start(self) -> None:
        """Connect in the background (a broker that is down now is retried with backoff)."""
        o = self.options
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = o.session_expiry_s
            props.ReceiveMaximum = max(1, min(o.receive_maximum, 65_535))
            self._client.connect_async(
                o.host,
                o.port,
                keepalive=o.keepalive_s,
                clean_start=o.clean_start,
                properties=props,
            )
        else:
            self._client.connect_async(o.host, o.port, keepalive=o.keepalive_s)
        self._client.loop_start()

    def ack_many(self, msgs: Iterable[Inbound]) -> None:
        """Acknowledge delivered messages, in order, sent together (paho_io.py); those of
        an older connection are skipped (the broker has already redelivered them)."""
        gen = self.generation
        self._client.ack_many([(m.mid, m.qos) for m in msgs
                               if m.qos > 0 and m.generation == gen])

    def pause(self) -> None:
        self._paused = True

    def stop(self, timeout_s: float = 5.0) -> None:
        """Disconnect after the acks already queued are sent."""
        self._paused = True
        self._stopping.set()
        with contextlib.suppress(Exception):  # not connected: nobody to say goodbye to
            self._client.disconnect()
        deadline = time.monotonic() + timeout_s
        while self._connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        self._client.loop_stop()

    # -- paho callbacks (network thread) ---------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            log.warning(
                "MQTT %s:%s refused the connection: %s",
                self.options.host,
                self.options.port,
                reason,
            )
            return
        self.generation += 1
        present = getattr(flags, "session_present", False)
        log.info(
            "MQTT connected to %s:%s (session present: %s)",
            self.options.host,
            self.options.port,
            present,
        )
        qos = self.options.qos
        if self.v5:
            client.subscribe([(f, SubscribeOptions(qos=qos)) for f in self.filters])
        else:
            client.subscribe([(f, qos) for f in self.filters])
        self._connected.set()
        if self._on_connection_cb:
            self._on_connection_cb(True)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was:
            # Our own clean stop is no news; anything else (broker gone, kicked) is.
            level = logging.INFO if self._stopping.is_set() else logging.WARNING
            log.log(level, "MQTT disconnected from %s:%s: %s",
                    self.options.host, self.options.port, reason)
        if self._on_connection_cb:
            self._on_connection_cb(False)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self._paused:
            return  # not acknowledged: the broker keeps it for the next session
        if self._keep is not None and not self._keep(message.topic, message.payload):
            self.skipped += 1
            if message.qos > 0:
                client.ack(message.mid, message.qos)
            return
        self._on_message_cb(
            Inbound(
                topic=message.topic,
                payload=bytes(message.payload),
                mid=message.mid,
                qos=message.qos,
                generation=self.generation,
                received_ms=int(time.time() * 1000),
            )
        )
