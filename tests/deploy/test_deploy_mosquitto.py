"""deploy/mosquitto/ and deploy/tls/ against a real Mosquitto 2.x.

The broker runs the shipped mosquitto.conf and acl, with only the paths and the port
changed for the tmp dir, a password file made by `mosquitto_passwd`, and certificates
made by deploy/tls/make-dev-certs.sh. So what is checked is what an installation gets:
each site can only write its own subtree, the collector reads everything (also through
a shared subscription), credentials are checked, and only TLS is spoken.
"""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COLLECTOR = "ledwatch.collector"
PASSWORDS = {"site-a": "pw-site-a", "site-b": "pw-site-b", COLLECTOR: "pw-collector"}
# A ceiling on waits that end as soon as the broker answers: room for a TLS handshake
# on CI's two shared cores, never a longer test when all is well.
TIMEOUT_S = 20.0


def deploy_conf(tls_port: int, tmp: Path, certs: Path, mtls: bool = False) -> str:
    """The shipped mosquitto.conf with tmp paths; the fixture owns persistence and logs."""
    out = []
    for line in (DEPLOY / "mosquitto" / "mosquitto.conf").read_text().splitlines():
        if re.match(r"(persistence\w*|autosave_interval|log_dest|log_type)\b", line):
            continue
        if mtls and line.startswith("#require_certificate true"):
            line = line[1:]
        if mtls and line.startswith("#use_identity_as_username"):
            line = line[1:]
        if mtls and line.startswith("require_certificate false"):
            continue
        line = re.sub(r"^listener 8883$", f"listener {tls_port} 127.0.0.1", line)
        line = line.replace("/mosquitto/config/passwd", str(tmp / "passwd"))
        line = line.replace("/mosquitto/config/acl", str(DEPLOY / "mosquitto" / "acl"))
        line = line.replace("/mosquitto/certs/", f"{certs}/")
        out.append(line)
    text = "\n".join(out) + "\n"
    settings = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert not [ln for ln in settings if " /mosquitto/" in ln], "a container path was left"
    return text


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("certs")
    subprocess.run(
        ["sh", str(DEPLOY / "tls" / "make-dev-certs.sh"), str(out)],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture
def broker(
    fresh_mosquitto: Callable[..., Any], free_port: Callable[[], int], tmp_path: Path, certs: Path
) -> Callable[..., int]:
    """Start the deploy config; returns a function (mtls=False) -> TLS port."""

    def start(mtls: bool = False) -> int:
        passwd = tmp_path / "passwd"
        for i, (user, password) in enumerate(PASSWORDS.items()):
            create = ["-c"] if i == 0 else []
            subprocess.run(
                ["mosquitto_passwd", "-b", *create, str(passwd), user, password], check=True
            )
        tls_port = free_port()
        fresh_mosquitto(extra_conf=deploy_conf(tls_port, tmp_path, certs, mtls))
        return tls_port

    return start


@dataclass
class Client:
    """A paho client over TLS that records what the broker answered."""

    mqttc: mqtt.Client
    connack: ReasonCode | None = None
    error: str | None = None
    connected: threading.Event = field(default_factory=threading.Event)
    answered: threading.Event = field(default_factory=threading.Event)
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    got: threading.Condition = field(default_factory=threading.Condition)
    subacks: dict[int, list[ReasonCode]] = field(default_factory=dict)
    pubacks: dict[int, ReasonCode] = field(default_factory=dict)

    def wait_message(self, payload: bytes) -> None:
        with self.got:
            ok = self.got.wait_for(lambda: any(p == payload for _, p in self.messages), TIMEOUT_S)
        assert ok, f"{payload!r} not delivered; got {self.messages}"

    def subscribe(self, topic: str) -> list[ReasonCode]:
        _, mid = self.mqttc.subscribe(topic, qos=1)
        with self.got:
            assert self.got.wait_for(lambda: mid in self.subacks, TIMEOUT_S), "no SUBACK"
        return self.subacks[mid]

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        info = self.mqttc.publish(topic, payload, qos=1)
        info.wait_for_publish(TIMEOUT_S)
        assert info.is_published()
        return self.pubacks[info.mid]


@pytest.fixture
def connect(certs: Path) -> Iterator[Callable[..., Client]]:
    made: list[mqtt.Client] = []

    def make(
        port: int,
        user: str | None,
        password: str | None = None,
        client_cert: str | None = None,
        host: str = "localhost",
    ) -> Client:
        mqttc = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-{user}-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        client = Client(mqttc)
        if user is not None:
            mqttc.username_pw_set(user, password)
        cert = {}
        if client_cert:
            cert = {
                "certfile": str(certs / f"client-{client_cert}.crt"),
                "keyfile": str(certs / f"client-{client_cert}.key"),
            }
        mqttc.tls_set(ca_certs=str(certs / "ca.crt"), **cert)

        def on_connect(c: Any, u: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
            client.connack = rc
            if not rc.is_failure:
                client.connected.set()
            client.answered.set()

        def on_message(c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
            with client.got:
                client.messages.append((msg.topic, msg.payload))
                client.got.notify_all()

        def on_publish(c: Any, u: Any, mid: int, rc: ReasonCode, props: Any) -> None:
            client.pubacks[mid] = rc

        def on_subscribe(c: Any, u: Any, mid: int, codes: list[ReasonCode], props: Any) -> None:
            with client.got:
                client.subacks[mid] = codes
                client.got.notify_all()

        def on_disconnect(c: Any, u: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
            client.answered.set()

        mqttc.on_connect = on_connect
        mqttc.on_message = on_message
        mqttc.on_publish = on_publish
        mqttc.on_subscribe = on_subscribe
        mqttc.on_disconnect = on_disconnect
        made.append(mqttc)
        try:
            mqttc.connect(host, port, keepalive=10)
        except (OSError, ssl.SSLError) as e:
            client.error = repr(e)
            client.answered.set()
            return client
        mqttc.loop_start()
        client.answered.wait(TIMEOUT_S)
        return client

    yield make
    for mqttc in made:
        mqttc.disconnect()
        mqttc.loop_stop()


def test_site_writes_only_its_own_subtree(broker: Callable[..., int], connect: Any) -> None:
    port = broker()
    shared = connect(port, COLLECTOR, PASSWORDS[COLLECTOR])
    plain = connect(port, COLLECTOR, PASSWORDS[COLLECTOR])
    for client in (shared, plain):
        assert client.connected.is_set(), (client.connack, client.error)
    for client, topic in [
        (shared, "$share/collectors/ledwatch/v1/+/screen/+/telemetry"),
        (plain, "ledwatch/v1/#"),
    ]:
        (code,) = client.subscribe(topic)
        assert not code.is_failure, f"{topic}: {code}"

    site_a = connect(port, "site-a", PASSWORDS["site-a"])
    assert site_a.connected.is_set(), (site_a.connack, site_a.error)
    # Published first on the same connection, so it would arrive before the marker.
    denied = site_a.publish("ledwatch/v1/site-b/screen/s1/telemetry", b"forged")
    allowed = site_a.publish("ledwatch/v1/site-a/screen/s1/telemetry", b"snapshot")
    status = site_a.publish("ledwatch/v1/site-a/agent/a1/status", b"online")
    assert not allowed.is_failure and not status.is_failure
    assert denied.is_failure, "MQTT 5 brokers answer a forbidden publish with a failure code"

    shared.wait_message(b"snapshot")
    plain.wait_message(b"online")
    for client in (shared, plain):
        assert b"forged" not in [p for _, p in client.messages]
    assert ("ledwatch/v1/site-a/screen/s1/telemetry", b"snapshot") in plain.messages


def test_site_cannot_read_other_sites(broker: Callable[..., int], connect: Any) -> None:
    port = broker()
    site_a = connect(port, "site-a", PASSWORDS["site-a"])
    site_b = connect(port, "site-b", PASSWORDS["site-b"])
    collector = connect(port, COLLECTOR, PASSWORDS[COLLECTOR])
    codes = site_a.subscribe("ledwatch/v1/#")
    collector.subscribe("ledwatch/v1/#")
    site_b.publish("ledwatch/v1/site-b/screen/s1/telemetry", b"site-b data")
    collector.wait_message(b"site-b data")
    assert codes[0].is_failure or not site_a.messages


def test_wrong_password_and_anonymous_are_refused(broker: Callable[..., int], connect: Any) -> None:
    port = broker()
    wrong = connect(port, "site-a", "not-the-password")
    assert wrong.connack is not None and wrong.connack.is_failure
    assert not wrong.connected.is_set()
    anonymous = connect(port, None)
    assert anonymous.connack is not None and anonymous.connack.is_failure
    other = connect(port, "site-a", PASSWORDS["site-b"])
    assert not other.connected.is_set()


# MQTT 3.1.1 CONNECT, clean session, keepalive 10 s, client id "plain".
PLAIN_CONNECT = bytes([0x10, 17, 0, 4, *b"MQTT", 4, 2, 0, 10, 0, 5, *b"plain"])


def test_plain_connection_to_tls_listener_fails(broker: Callable[..., int]) -> None:
    port = broker()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        sock.sendall(PLAIN_CONNECT)
        try:
            answer = sock.recv(16)
        except ConnectionResetError:
            answer = b""
    assert not answer.startswith(b"\x20"), "the TLS listener answered plain MQTT with CONNACK"


def test_tls_verifies_the_server_with_the_ca(
    broker: Callable[..., int], certs: Path, tmp_path: Path
) -> None:
    port = broker()
    ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    for host in ("localhost", "127.0.0.1"):
        with (
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw,
            ctx.wrap_socket(raw, server_hostname=host) as tls,
        ):
            subject = dict(x[0] for x in tls.getpeercert()["subject"])
            assert subject["commonName"] == "ledwatch-broker"

    other_ca = tmp_path / "other-ca"
    subprocess.run(
        ["sh", str(DEPLOY / "tls" / "make-dev-certs.sh"), str(other_ca), "nobody"],
        check=True,
        capture_output=True,
    )
    wrong = ssl.create_default_context(cafile=str(other_ca / "ca.crt"))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        wrong.wrap_socket(raw, server_hostname="localhost")


def test_mutual_tls_variant(broker: Callable[..., int], connect: Any) -> None:
    """The commented mTLS lines work: the certificate's CN is the username for the ACL."""
    port = broker(mtls=True)
    collector = connect(port, None, client_cert=COLLECTOR)
    assert collector.connected.is_set(), (collector.connack, collector.error)
    collector.subscribe("ledwatch/v1/#")
    site_a = connect(port, None, client_cert="site-a")
    assert site_a.connected.is_set(), (site_a.connack, site_a.error)
    assert site_a.publish("ledwatch/v1/site-b/screen/s1/telemetry", b"forged").is_failure
    site_a.publish("ledwatch/v1/site-a/screen/s1/telemetry", b"snapshot")
    collector.wait_message(b"snapshot")
    assert b"forged" not in [p for _, p in collector.messages]
    no_cert = connect(port, "site-a", PASSWORDS["site-a"])
    assert not no_cert.connected.is_set()


def _secure_chain(port: int, certs: Path, tmp_path: Path, agent_tls: dict[str, str],
                  agent_user: str = "site-a", mtls: bool = False) -> tuple[Any, Any, Any]:
    """Emulator -> real agent -> the deploy broker (TLS) -> real collector (TLS)."""
    from agent.runtime import Agent
    from agent.settings import parse_settings
    from collector.service import Collector
    from collector.settings import settings_from_dict
    from firmware_protocols.emulators.novastar import NovastarEmulator

    (tmp_path / "agent-pw").write_text(PASSWORDS[agent_user] + "\n")
    (tmp_path / "collector-pw").write_text(PASSWORDS[COLLECTOR] + "\n")
    emu = NovastarEmulator(ports=1, cards=2, psus=1)
    host, emu_port = emu.serve_tcp()
    collector = Collector(settings_from_dict({
        "mqtt": {"host": "127.0.0.1", "port": port, "username": COLLECTOR,
                 "password_file": str(tmp_path / "collector-pw"),
                 "tls": {"ca_file": str(certs / "ca.crt"), **(
                     {"cert_file": str(certs / f"client-{COLLECTOR}.crt"),
                      "key_file": str(certs / f"client-{COLLECTOR}.key")} if mtls else {})},
                 "client_id": f"tls-collector-{uuid.uuid4().hex[:6]}"},
        "influx": {"output": "none"},
    }))
    collector.start()
    agent = Agent(parse_settings({
        "agent": {"id": "pc-tls", "site": "site-a", "poll_interval_s": 0.3,
                  "data_dir": str(tmp_path / "agent")},
        "mqtt": {"host": "127.0.0.1", "port": port, "username": agent_user,
                 "password_file": str(tmp_path / "agent-pw"), "tls": agent_tls},
        "screens": [{"id": "wall", "controller": {
            "driver": "novastar", "url": f"tcp://{host}:{emu_port}", "ports": 1,
            "cards_per_port": 2, "psus_per_cabinet": 1}}],
    }))
    agent.start()
    return emu, agent, collector


def _wait(predicate: Callable[[], Any], timeout_s: float) -> Any:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    return predicate()


@pytest.mark.parametrize("mtls", [False, True], ids=["tls+password", "mutual-tls"])
def test_agent_to_collector_over_the_deploy_broker(
    broker: Callable[..., int], certs: Path, tmp_path: Path, mtls: bool
) -> None:
    """The real agent and collector speak TLS (and mTLS) to the shipped broker config."""
    port = broker(mtls=mtls)
    agent_tls = {"ca_file": str(certs / "ca.crt")}
    if mtls:
        agent_tls |= {"cert_file": str(certs / "client-site-a.crt"),
                      "key_file": str(certs / "client-site-a.key")}
    emu, agent, collector = _secure_chain(port, certs, tmp_path, agent_tls, mtls=mtls)
    try:
        state = _wait(lambda: (s := collector.screens.get("site-a", "wall")) and s.seq >= 3
                      and s, 20)
        assert state, f"no telemetry through TLS: {collector.status_line()}"
        assert state.snapshot["cards"]["id"] == ["p0c0", "p0c1"]
        assert agent.outbox.depth() <= 2  # acknowledged by the broker, deleted
    finally:
        agent.stop()
        collector.stop()
        emu.stop()


def test_agent_with_a_foreign_ca_keeps_its_snapshots(
    broker: Callable[..., int], certs: Path, tmp_path: Path, tmp_path_factory: Any
) -> None:
    """An agent that cannot verify the broker never sends; its outbox keeps everything."""
    other = tmp_path_factory.mktemp("other-ca")
    subprocess.run(["sh", str(DEPLOY / "tls" / "make-dev-certs.sh"), str(other)],
                   check=True, capture_output=True)
    port = broker()
    emu, agent, collector = _secure_chain(port, certs, tmp_path,
                                          {"ca_file": str(other / "ca.crt")})
    try:
        assert _wait(lambda: agent.outbox.depth() >= 5, 20), agent.status()
        assert not agent.publisher.connected
        assert collector.screens.get("site-a", "wall") is None
    finally:
        agent.stop()
        collector.stop()
        emu.stop()
