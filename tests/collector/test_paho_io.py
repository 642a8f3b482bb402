"""collector/ingest/paho_io.py against a real Mosquitto: the buffered reads lose, reorder
and delay nothing, and `ack_many` acknowledges exactly what it is given."""

from __future__ import annotations

import gc
import os
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.matcher import MQTTMatcher
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collector.ingest.paho_io import READ_BUFFER_BYTES, BufferedClient


class _Receiver:
    """A persistent-session, manual-ack subscriber on `topic/#`."""

    def __init__(self, port: int, client_id: str, topic: str, ack: bool = True) -> None:
        self.got: list[tuple[str, bytes, int, float]] = []
        self.cond = threading.Condition()
        self._acked = 0
        self._stop = threading.Event()
        c = BufferedClient(CallbackAPIVersion.VERSION2, client_id=client_id,
                           protocol=mqtt.MQTTv5, manual_ack=True)
        c.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 300
        c.connect("127.0.0.1", port, clean_start=False, properties=props)
        c.subscribe(f"{topic}/#", qos=1)
        c.loop_start()
        self.client = c
        self._acker = threading.Thread(target=self._ack_loop, daemon=True) if ack else None
        if self._acker is not None:
            self._acker.start()

    def _ack_loop(self) -> None:
        """Acknowledge from another thread, in batches of up to 33, as the write pool does
        (the broker sends only its in-flight window before it waits for acks)."""
        while True:
            stopping = self._stop.wait(0.005)
            with self.cond:
                new = [(mid, 1) for _, _, mid, _ in self.got[self._acked:self._acked + 33]]
                self._acked += len(new)
            if new:
                self.client.ack_many(new)
            elif stopping:
                return  # everything received is acked (close() came right after the last)

    def _on_message(self, client: Any, userdata: Any, m: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.got.append((m.topic, m.payload, m.mid, time.monotonic()))
            self.cond.notify_all()

    def wait_for(self, n: int, timeout_s: float) -> None:
        with self.cond:
            self.cond.wait_for(lambda: len(self.got) >= n, timeout_s)

    def close(self) -> None:
        self._stop.set()
        if self._acker is not None:
            self._acker.join(5)
        time.sleep(0.3)  # the network thread sends what ack_many queued
        self.client.disconnect()
        self.client.loop_stop()


def _publish(port: int, items: list[tuple[str, bytes]]) -> float:
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    infos = [pub.publish(t, p, qos=1) for t, p in items]
    for info in infos:
        info.wait_for_publish(30)
    done = time.monotonic()
    pub.loop_stop()
    pub.disconnect()
    return done


def _items(topic: str, n: int) -> list[tuple[str, bytes]]:
    # Sizes around and across the read buffer: many small, some big, a few larger than it.
    sizes = [7, 300, 13_500, 70_000, READ_BUFFER_BYTES + 12_345]
    return [(f"{topic}/{i % 7}", i.to_bytes(4, "big") + os.urandom(sizes[i % len(sizes)] - 4))
            for i in range(n)]


@pytest.mark.timeout(120)
def test_burst_arrives_whole_and_in_order_then_acks_hold(mosquitto: Any) -> None:
    topic = f"pahoio/{uuid.uuid4().hex[:8]}"
    cid = f"pahoio-{uuid.uuid4().hex[:8]}"
    r = _Receiver(mosquitto.port, cid, topic)
    items = _items(topic, 400)
    _publish(mosquitto.port, items)
    r.wait_for(len(items), 60)
    assert [(t, p) for t, p, _, _ in r.got] == items  # nothing lost, altered or reordered
    r.close()
    # Same session again: everything was acknowledged, so the broker sends nothing.
    again = _Receiver(mosquitto.port, cid, topic)
    time.sleep(1.5)
    again.close()
    assert again.got == []


@pytest.mark.timeout(120)
def test_unacked_messages_come_back(mosquitto: Any) -> None:
    """The control for the test above: without acks the same wait does see redelivery."""
    topic = f"pahoio/{uuid.uuid4().hex[:8]}"
    cid = f"pahoio-{uuid.uuid4().hex[:8]}"
    r = _Receiver(mosquitto.port, cid, topic, ack=False)
    items = _items(topic, 10)
    _publish(mosquitto.port, items)
    r.wait_for(len(items), 30)
    r.client.ack_many([(mid, 1) for _, _, mid, _ in r.got[:5]])  # only the first five
    r.close()
    again = _Receiver(mosquitto.port, cid, topic, ack=False)
    again.wait_for(5, 10)
    again.close()
    assert sorted(p for _, p, _, _ in again.got) == sorted(p for _, p in items[5:])


@pytest.mark.timeout(60)
def test_a_lone_message_after_a_burst_is_not_held_in_the_buffer(mosquitto: Any) -> None:
    """select() cannot see bytes already in the read buffer: the client must read on by
    itself, or the burst's tail would wait for the next packet (or the 1 s loop timeout)."""
    topic = f"pahoio/{uuid.uuid4().hex[:8]}"
    r = _Receiver(mosquitto.port, f"pahoio-{uuid.uuid4().hex[:8]}", topic)
    small = [(f"{topic}/x", i.to_bytes(4, "big") * 25) for i in range(2000)]  # 100 B each
    sent = _publish(mosquitto.port, small)
    r.wait_for(len(small), 30)
    r.close()
    assert [p for _, p, _, _ in r.got] == [p for _, p in small]
    # The last message came within a fraction of the 1 s select timeout of its PUBACK.
    assert r.got[-1][3] - sent < 0.5, r.got[-1][3] - sent


def _cyclic_garbage_while_receiving(port: int, n: int, matcher: Any = None) -> tuple[int, int]:
    """Unreachable objects the cyclic GC finds after `n` messages are received, with the
    GC off meanwhile; and the messages received."""
    topic = f"pahoio/{uuid.uuid4().hex[:8]}"
    r = _Receiver(port, f"pahoio-{uuid.uuid4().hex[:8]}", topic)
    if matcher is not None:
        r.client._on_message_filtered = matcher
    time.sleep(0.3)  # subscribed
    gc.collect()
    gc.disable()
    try:
        _publish(port, [(f"{topic}/x", b"%d" % i) for i in range(n)])
        r.wait_for(n, 30)
        found = gc.collect()
    finally:
        gc.enable()
        r.close()
    return found, len(r.got)


@pytest.mark.timeout(60)
def test_receiving_leaves_no_cyclic_garbage_per_message(mosquitto: Any) -> None:
    """paho's per-topic callback lookup leaves a reference cycle per message (the GC's
    pauses, docs/hot-path.md item 12); BufferedClient skips it while no filter is set.
    The control runs paho's own matcher on the same traffic and must show the cycles."""
    n = 2000
    ours, got = _cyclic_garbage_while_receiving(mosquitto.port, n)
    assert got == n
    paho, got = _cyclic_garbage_while_receiving(mosquitto.port, n, MQTTMatcher())
    assert got == n
    assert paho >= 3 * n, paho  # the control: function, cells, topic parts per message
    assert ours < n // 10, ours  # the rest (threads, the publisher) does not grow with n


@pytest.mark.timeout(60)
def test_per_topic_callbacks_still_match(mosquitto: Any) -> None:
    topic = f"pahoio/{uuid.uuid4().hex[:8]}"
    r = _Receiver(mosquitto.port, f"pahoio-{uuid.uuid4().hex[:8]}", topic)
    filtered: list[str] = []
    r.client.message_callback_add(f"{topic}/+/b", lambda c, u, m: filtered.append(m.topic))
    time.sleep(0.3)
    _publish(mosquitto.port, [(f"{topic}/1/a", b"a"), (f"{topic}/2/b", b"b")])
    r.wait_for(1, 10)
    deadline = time.monotonic() + 10
    while not filtered and time.monotonic() < deadline:
        time.sleep(0.05)
    r.close()
    assert filtered == [f"{topic}/2/b"]  # the filter's callback, not on_message
    assert [t for t, _, _, _ in r.got] == [f"{topic}/1/a"]
