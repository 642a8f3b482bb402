"""Agent test helpers: a real MQTT subscriber (paho) that records what the broker delivers,
and NovaStar emulators on TCP."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from firmware_protocols.emulators.novastar import NovastarEmulator


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool

    def doc(self) -> Any:
        return orjson.loads(self.payload)


@dataclass
class Subscriber:
    """Subscribes on connect (also after a broker restart); `persistent` keeps its session
    in the broker, so QoS 1 messages published while it reconnects are queued for it."""

    host: str
    port: int
    topics: list[str]
    persistent: bool = False
    username: str | None = None
    password: str | None = None
    messages: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-sub-{id(self)}",
            protocol=mqtt.MQTTv311,
            clean_session=not self.persistent,
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.reconnect_delay_set(0.1, 0.5)
        if self.username:
            self.client.username_pw_set(self.username, self.password)

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        client.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain)))

    def start(self) -> Subscriber:
        self.client.connect(self.host, self.port, keepalive=10)
        self.client.loop_start()
        assert self._subscribed.wait(10), "subscriber never got SUBACK"
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def wait_for(
        self, pred: Callable[[list[Received]], bool], timeout_s: float = 10.0
    ) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msgs = self.snapshot()
            if pred(msgs):
                return msgs
            time.sleep(0.02)
        msgs = self.snapshot()
        raise AssertionError(f"timed out; received {len(msgs)}: {[m.topic for m in msgs][-5:]}")


@pytest.fixture
def subscriber() -> Iterator[Callable[..., Subscriber]]:
    made: list[Subscriber] = []

    def make(
        host: str, port: int, topics: list[str], persistent: bool = False, **auth: str
    ) -> Subscriber:
        sub = Subscriber(host, port, topics, persistent, **auth)
        made.append(sub)
        return sub.start()

    yield make
    for sub in made:
        sub.stop()


@pytest.fixture
def emulator() -> Iterator[Callable[..., tuple[NovastarEmulator, str]]]:
    """`emulator(**options)` -> (a NovaStar emulator serving TCP on 127.0.0.1, its
    `tcp://host:port` URL); 2 ports x 3 cards x 2 PSUs unless told otherwise. Stopped
    after the test."""
    made: list[NovastarEmulator] = []

    def make(**kw: Any) -> tuple[NovastarEmulator, str]:
        emu = NovastarEmulator(**{"ports": 2, "cards": 3, "psus": 2, **kw})
        made.append(emu)
        host, port = emu.serve_tcp()
        return emu, f"tcp://{host}:{port}"

    yield make
    for emu in made:
        emu.stop()
