"""Agent settings: the sample config loads, and every bad config names its key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from agent.settings import (
    AgentSection,
    MetricsSection,
    MqttSection,
    TlsSection,
    load_settings,
    parse_settings,
)
from ledwatch.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
[agent]
id = "pc1"
site = "acme"
poll_interval_s = 2
data_dir = "state"

[mqtt]
host = "broker.example"
password_env = "LEDWATCH_TEST_PW"

[mqtt.tls]
ca_file = "ca.crt"

[[screens]]
id = "lobby"
[screens.controller]
driver = "novastar"
url = "tcp://127.0.0.1:5200"
ports = 2

[[screens]]
id = "hall-2"
[screens.controller]
driver = "novastar"
url = "serial:///dev/ttyUSB0?baud=115200"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text, "utf-8")
    return path


def test_sample_config_loads() -> None:
    settings = load_settings(ROOT / "agent" / "sample.toml")
    assert settings.agent.poll_interval_s == 5
    assert settings.mqtt.port == 1883 and settings.mqtt.protocol == "5"
    assert settings.screens[0].controller.options()["url"].startswith("tcp://")


def test_good_config_defaults_and_derived_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDWATCH_TEST_PW", "s3cret")
    s = load_settings(write(tmp_path, GOOD))
    assert s.agent.data_dir == tmp_path / "state"  # relative to the config file
    assert s.mqtt.tls is not None and s.mqtt.tls.ca_file == tmp_path / "ca.crt"
    assert s.username == "acme"  # broker ACL pattern ledwatch/v1/%u/#
    assert s.client_id == "ledwatch-agent-acme-pc1"
    assert s.agent.outbox_quota_mb == 200 and s.agent.drain_rate_per_s == 200
    assert [x.id for x in s.screens] == ["lobby", "hall-2"]
    assert s.screens[0].controller.options() == {"url": "tcp://127.0.0.1:5200", "ports": 2}
    pw = s.mqtt.password()
    assert pw is not None and pw.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s) and "s3cret" not in str(pw)


def test_password_file(tmp_path: Path) -> None:
    (tmp_path / "pw.txt").write_text("from-file\n", "utf-8")
    text = GOOD.replace('password_env = "LEDWATCH_TEST_PW"', 'password_file = "pw.txt"')
    pw = load_settings(write(tmp_path, text)).mqtt.password()
    assert pw is not None and pw.get_secret_value() == "from-file"


@pytest.mark.parametrize(
    ("old", "new", "key", "what"),
    [
        ('id = "lobby"', 'id = "Lobby 1"', "screens[0].id", "'Lobby 1' is not a valid id"),
        ('id = "hall-2"', 'id = "hall/2"', "screens[1].id", "is not a valid id"),
        ('site = "acme"', 'site = "ac+me"', "agent.site", "is not a valid id"),
        (
            "poll_interval_s = 2",
            "poll_interval_s = 2\npoll_intervall_s = 3",
            "agent.poll_intervall_s",
            "unknown key",
        ),
        ('host = "broker.example"', 'host = "b"\nprot = 1', "mqtt.prot", "unknown key"),
        ('ca_file = "ca.crt"', 'ca_file = "ca.crt"\ncafile = 1', "mqtt.tls.cafile", "unknown key"),
        (
            'driver = "novastar"\nurl = "tcp',
            'driver = "barco"\nurl = "tcp',
            "screens[0].controller.driver",
            "unknown driver 'barco'",
        ),
        ('id = "hall-2"', 'id = "lobby"', "screens[1].id", "duplicate screen id 'lobby'"),
        ("poll_interval_s = 2", "poll_interval_s = 0", "agent.poll_interval_s", "greater than 0"),
        (
            'host = "broker.example"',
            'host = "b"\nprotocol = "4"',
            "mqtt.protocol",
            "'5' or '3.1.1'",
        ),
        ('id = "pc1"\n', "", "agent.id", "missing"),
        (
            'password_env = "LEDWATCH_TEST_PW"',
            'password_env = "LEDWATCH_UNSET_VAR"',
            "mqtt.password_env",
            "not set",
        ),
    ],
)
def test_bad_config_names_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str, key: str, what: str
) -> None:
    monkeypatch.setenv("LEDWATCH_TEST_PW", "x")
    monkeypatch.delenv("LEDWATCH_UNSET_VAR", raising=False)
    assert old in GOOD
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, GOOD.replace(old, new, 1)))
    msg = str(info.value)
    assert f"{key}: " in msg, msg
    assert what in msg, msg


def test_no_screens_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="screens"):
        parse_settings({"agent": {"id": "a", "site": "s"}, "screens": []})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[agent\nid="))
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.toml")


SAMPLE_LINE = re.compile(r"^(?:# )?([a-z_]+) = (.+)$")
SAMPLE_TABLE = re.compile(r"^(?:# )?\[+([a-z_.]+)\]+$")


@pytest.mark.parametrize(
    ("table", "model"),
    [("agent", AgentSection), ("mqtt", MqttSection), ("mqtt.tls", TlsSection),
     ("metrics", MetricsSection)],
)  # fmt: skip
def test_sample_shows_every_option_with_its_default(table: str, model: Any) -> None:
    """agent/sample.toml names every key of each section, commented or not, and a
    commented key shows the real default (paths and ids are examples)."""
    shown: dict[str, str] = {}
    current = ""
    for line in (ROOT / "agent" / "sample.toml").read_text("utf-8").splitlines():
        if m := SAMPLE_TABLE.match(line):
            current = m[1]
        elif (m := SAMPLE_LINE.match(line)) and current == table:
            shown[m[1]] = m[2]
    fields = {k: f for k, f in model.model_fields.items() if k != "tls"}
    assert set(shown) == set(fields)
    for key, raw in shown.items():
        default = fields[key].get_default(call_default_factory=True)
        if isinstance(default, int | float | bool) and not isinstance(default, Path):
            assert tomllib.loads(f"v = {raw}")["v"] == default, f"{table}.{key}"
