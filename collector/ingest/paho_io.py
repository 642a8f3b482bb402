"""paho's client with fewer GIL hand-overs: buffered socket reads, acks sent together.

paho's network thread reads a PUBLISH in four `recv` calls (command byte, two length
bytes, body) and sends each PUBACK with its own `send`, and `ack()` from another thread
wakes it with one more `send` per message. Each call releases the GIL, and winning it
back from the ingest thread, which is busy decoding, can take the whole switch interval
(5 ms). Measured here (13.5 KB messages from a Mosquitto backlog): a bare paho client
receives 7,900 messages/s alone and 100/s beside one CPU-bound thread; reading from a
256 KB buffer, 2,800/s (docs/hot-path.md). The overrides below touch paho 2.x's
socket layer (`_sock_recv`, `loop_read`, `_packet_queue`, `_packet_write`), the decoding
of a plain PUBLISH (`_handle_publish`: 60 -> 4 us a snapshot) and its callback matcher
(`_on_message_filtered`, below); the MQTT state machine, and so acknowledgement order and
semantics, stay paho's.

paho also looks up per-topic callbacks for every message, and its matcher's recursive
closure leaves a reference cycle (function, cells, the topic split) per lookup: the
collector's main source of cyclic garbage, and so of the GC's pauses (docs/hot-path.md,
item 12). The collector registers no per-topic callbacks, so the lookup is skipped while
there are none (`_CycleFreeMatcher`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.client import MQTT_LOG_DEBUG, PUBACK, MQTTErrorCode
from paho.mqtt.matcher import MQTTMatcher

READ_BUFFER_BYTES = 256 * 1024
_MAX_MERGED_ACKS = 4096  # PUBACKs of 4 bytes: one send of at most 16 KB


class BufferedClient(mqtt.Client):
    """`mqtt.Client` that reads its socket in big chunks and can queue many acks at once."""

    _rsock: Any = None  # the socket `_rbuf` was read from (a reconnect drops the rest)
    _rbuf: bytes = b""
    _rpos: int = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._quiet = threading.local()  # set while ack_many queues: no wake-up per ack
        self._on_message_filtered = _CycleFreeMatcher()

    # -- reads ---------------------------------------------------------------------------

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._sock is not self._rsock:
            self._rsock, self._rbuf, self._rpos = self._sock, b"", 0
        if self._rpos >= len(self._rbuf):
            data = super()._sock_recv(max(bufsize, READ_BUFFER_BYTES))
            if len(data) <= bufsize:
                self._rbuf, self._rpos = b"", 0
                return data
            self._rbuf, self._rpos = data, 0
        end = self._rpos + bufsize
        out = self._rbuf[self._rpos:end]
        self._rpos = min(end, len(self._rbuf))
        return out

    def _buffered(self) -> bool:
        return self._sock is not None and self._sock is self._rsock and self._rpos < len(
            self._rbuf)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        # select() cannot see what waits in our buffer: read on until it is empty.
        rc = super().loop_read(max_packets)
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._buffered():
            rc = super().loop_read(max_packets)
        return rc

    # -- PUBLISH -------------------------------------------------------------------------

    def _handle_publish(self) -> MQTTErrorCode:
        # paho decodes a PUBLISH with struct formats built per packet (three copies of the
        # payload), an empty v5 `Properties` walked attribute by attribute, and an
        # `MQTTMessage` whose send handle holds a `threading.Condition`: ~60 us a 13.5 KB
        # snapshot, under the GIL (4 us here). QoS 0 and 1 without properties (what
        # agents send) take this path; QoS 2 (or 3), properties, an empty topic and a
        # packet too short for its header go to paho, which decodes or refuses them.
        packet = self._in_packet["packet"]
        header = self._in_packet["command"]
        qos = (header & 0x06) >> 1
        if qos > 1 or len(packet) < 2:
            return super()._handle_publish()
        pos = 2 + ((packet[0] << 8) | packet[1])
        head = pos + (2 if qos else 0) + (1 if self._protocol == mqtt.MQTTv5 else 0)
        if pos == 2 or len(packet) < head or (self._protocol == mqtt.MQTTv5 and packet[head - 1]):
            return super()._handle_publish()  # an empty topic (alias) or properties
        message = _Received(
            bytes(packet[2:pos]), (packet[pos] << 8) | packet[pos + 1] if qos else 0, qos,
            bool(header & 0x08), bool(header & 0x01), bytes(memoryview(packet)[head:]))
        if self.on_log is not None or self._logger is not None:
            self._easy_log(MQTT_LOG_DEBUG, "Received PUBLISH (d%d, q%d, r%d, m%d), %r, ... "
                           " (%d bytes)", message.dup, qos, message.retain, message.mid,
                           message._topic, len(message.payload))
        self._handle_on_message(message)
        if qos and not self._manual_ack:
            return self._send_puback(message.mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    # -- acknowledgements ----------------------------------------------------------------

    def ack_many(self, acks: Iterable[tuple[int, int]]) -> None:
        """`ack(mid, qos)` for each, in order, then one wake-up of the network thread."""
        self._quiet.on = True
        try:
            for mid, qos in acks:
                self.ack(mid, qos)
        finally:
            self._quiet.on = False
        wake = self._sockpairW
        if wake is not None:
            # BlockingIOError: a wake-up is already pending; OSError: shutting down.
            with contextlib.suppress(BlockingIOError, OSError):
                wake.send(b"0")
        self._call_socket_register_write()

    def _packet_queue(self, command: int, packet: bytes | bytearray, mid: int, qos: int,
                      info: Any = None) -> MQTTErrorCode:
        if getattr(self._quiet, "on", False):
            self._out_packet.append({"command": command, "mid": mid, "qos": qos, "pos": 0,
                                     "to_process": len(packet), "packet": packet,
                                     "info": info})
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._packet_queue(command, packet, mid, qos, info)

    def _packet_write(self) -> MQTTErrorCode:
        # Consecutive PUBACKs leave in one send. Only this (network) thread takes from
        # the left of `_out_packet`; other threads append on the right.
        out = self._out_packet
        if len(out) > 1 and _whole_puback(out[0]) and _whole_puback(out[1]):
            parts: list[bytes] = []
            while out and len(parts) < _MAX_MERGED_ACKS and _whole_puback(out[0]):
                parts.append(bytes(out.popleft()["packet"]))
            data = b"".join(parts)
            out.appendleft({"command": PUBACK, "mid": 0, "qos": 1, "pos": 0,
                            "to_process": len(data), "packet": data, "info": None})
        return super()._packet_write()


class _Received(mqtt.MQTTMessage):
    """An inbound `MQTTMessage` without the send handle (`info`), which only a publish
    uses; `properties` is None, as paho leaves it for MQTT 3.1.1."""

    __slots__ = ()

    def __init__(self, topic: bytes, mid: int, qos: int, dup: bool, retain: bool,
                 payload: bytes) -> None:
        self._topic, self.mid, self.qos, self.dup, self.retain = topic, mid, qos, dup, retain
        self.payload, self.properties = payload, None
        self.state, self.timestamp = mqtt.mqtt_ms_invalid, mqtt.time_func()


class _CycleFreeMatcher(MQTTMatcher):
    """paho's matcher of `message_callback_add` filters, without the garbage while empty."""

    def iter_match(self, topic: str) -> Iterator[Any]:
        if not self._root._children:
            return iter(())
        return super().iter_match(topic)


def _whole_puback(packet: Any) -> bool:
    return (packet["command"] & 0xF0) == PUBACK and packet["pos"] == 0
