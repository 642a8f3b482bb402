"""collector/ingest/paho_io.py `_handle_publish`: a PUBLISH decoded on the fast path is
the message paho's own decoder makes of the same bytes, and whatever the fast path does
not take (QoS 2, properties, malformed packets) is paho's, error for error."""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collector.ingest.paho_io import BufferedClient


def _client(cls: type[mqtt.Client], protocol: int, manual_ack: bool
            ) -> tuple[mqtt.Client, list[Any], list[tuple[int, int]]]:
    c = cls(CallbackAPIVersion.VERSION2, client_id="t", protocol=protocol, manual_ack=manual_ack)
    got: list[Any] = []
    c.on_message = lambda client, userdata, m: got.append(m)
    sent: list[tuple[int, int]] = []
    c._send_puback = lambda mid: sent.append((1, mid)) or mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
    c._send_pubrec = lambda mid: sent.append((2, mid)) or mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
    return c, got, sent


def _packet(topic: bytes, qos: int, mid: int, props: bytes | None, payload: bytes) -> bytes:
    return (len(topic).to_bytes(2, "big") + topic + (mid.to_bytes(2, "big") if qos else b"")
            + (props if props is not None else b"") + payload)


def _seen(c: mqtt.Client, got: list[Any], sent: list[Any], header: int, pkt: bytes) -> Any:
    c._in_packet = {"command": header, "packet": pkt}
    try:
        rc = c._handle_publish()
    except Exception as exc:  # malformed: the same error class both ways
        return ("raised", type(exc).__name__)
    msgs = [(m._topic, m.mid, m.qos, m.dup, m.retain, bytes(m.payload),
             None if m.properties is None or m.properties.isEmpty() else m.properties.json())
            for m in got]
    stored = sorted(c._in_messages)  # QoS 2 waits here for PUBREL
    return rc, msgs, list(sent), stored


def _props(expiry: int | None, user: list[tuple[str, str]]) -> bytes:
    p = Properties(PacketTypes.PUBLISH)
    if expiry is not None:
        p.MessageExpiryInterval = expiry
    for kv in user:
        p.UserProperty = kv
    return p.pack()


@settings(max_examples=300, deadline=None)
@given(
    protocol=st.sampled_from([mqtt.MQTTv5, mqtt.MQTTv311]),
    manual_ack=st.booleans(),
    topic=st.one_of(st.text(max_size=40).map(str.encode), st.binary(max_size=8)),
    qos=st.integers(0, 3),
    dup=st.booleans(), retain=st.booleans(),
    mid=st.integers(0, 65_535),
    props=st.one_of(st.none(), st.tuples(
        st.one_of(st.none(), st.integers(0, 2**32 - 1)),
        st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5)), max_size=2))),
    payload=st.binary(max_size=300),
    cut=st.one_of(st.none(), st.integers(0, 60)),
)
def test_fast_path_decodes_as_paho_does(
    protocol: int, manual_ack: bool, topic: bytes, qos: int, dup: bool, retain: bool,
    mid: int, props: Any, payload: bytes, cut: int | None,
) -> None:
    raw_props = _props(*props) if props is not None else (b"\x00" if protocol == mqtt.MQTTv5
                                                          else None)
    pkt = _packet(topic, qos, mid, raw_props, payload)
    if cut is not None:
        pkt = pkt[:cut]  # truncated: malformed, or a shorter payload
    header = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    paho = _seen(*_client(mqtt.Client, protocol, manual_ack), header, pkt)
    ours = _seen(*_client(BufferedClient, protocol, manual_ack), header, pkt)
    assert ours == paho


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311])
def test_agents_publishes_take_the_fast_path(protocol: int) -> None:
    """The control: the case above compares nothing if every packet went to paho."""
    c, got, _ = _client(BufferedClient, protocol, True)
    pkt = _packet(b"ledwatch/v1/s/a/telemetry", 1, 7, b"\x00" if protocol == mqtt.MQTTv5
                  else None, b"{}")
    c._in_packet = {"command": 0x32, "packet": pkt}
    c._handle_publish()
    assert type(got[0]).__name__ == "_Received"
    assert (got[0].topic, got[0].mid, got[0].payload) == ("ledwatch/v1/s/a/telemetry", 7, b"{}")
