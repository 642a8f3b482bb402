"""Collector settings: defaults, the sample file, errors that name the key, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.settings import CollectorSettings, load_settings
from ledwatch.errors import ConfigError

SAMPLE = Path(__file__).resolve().parents[2] / "collector" / "sample.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "collector.toml"
    path.write_text(text)
    return path


def test_sample_is_valid_and_equals_defaults() -> None:
    """The sample shows every default; if they drift apart, this fails."""
    assert load_settings(SAMPLE) == CollectorSettings()


def test_sample_documents_every_option() -> None:
    text = SAMPLE.read_text()

    def names(model: type, prefix: str = "") -> list[str]:
        out = []
        for name, info in model.model_fields.items():  # type: ignore[attr-defined]
            sub = info.annotation
            if hasattr(sub, "model_fields"):
                out += names(sub, f"{prefix}{name}.")
            else:
                out.append(name)
        return out

    missing = [
        n for n in names(CollectorSettings)
        if f"{n} =" not in text and f"[{n}]" not in text and f".{n}]" not in text
        and f".{n}." not in text and f"[[{n}]]" not in text
    ]
    assert not missing


def test_defaults() -> None:
    s = CollectorSettings()
    assert (s.mqtt.share_group, s.mqtt.qos, s.mqtt.clean_start) == ("collectors", 1, False)
    assert (s.influx.batch_size, s.influx.flush_interval_ms) == (10_000, 500)
    assert s.database.url == "sqlite:///var/collector/tickets.db"
    assert (s.api.host, s.api.port) == ("127.0.0.1", 8000)
    d = s.detect
    assert (d.agent_silence_s, d.timezone, d.schedule_grace_min) == (60, "UTC", 15)
    assert d.rules == {} and d.sites == {}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[influx]\nbatch_size = 0\n", "influx.batch_size"),
        ("[influx]\nbatch_sise = 10\n", "influx.batch_sise: unknown option"),
        ("[mqtt]\nport = 'x'\n", "mqtt.port"),
        ("[mqtt]\nqos = 0\n", "mqtt.qos"),
        ("[influx]\noutput = 'v3'\n", "influx.output"),
        ("[detect.rules.voltage_low]\nclear = 4.5\n", "detect.rules.voltage_low: clear"),
        ("[detect.rules.voltage_lo]\nclear = 4.5\n", "detect.rules.voltage_lo: unknown rule"),
        ("[detect.sites.a.screens.b]\ntimezone = 'Mars/Base'\n",
         "detect.sites.a.screens.b.timezone: unknown time zone"),
        ("[[detect.sites.a.screens.b.schedule]]\noff = '25:00-06:00'\n",
         "detect.sites.a.screens.b.schedule.0.off"),
        ("[[maintenance]]\nsite = 'a'\nstart = 2026-01-02T00:00:00Z\n"
         "end = 2026-01-01T00:00:00Z\nwho = 'x'\nwhy = 'y'\n", "maintenance.0: end must be"),
        ("[api]\ntokens = [{token = 'short', role = 'admin'}]\n", "api.tokens.0.token"),
        ("[api]\ntokens = [{token = 'abcdefghijklmnopq', role = 'god'}]\n", "api.tokens.0.role"),
        ("surprise = 1\n", "surprise: unknown option"),
        ("[mqtt\n", "not valid TOML"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))
    assert key in str(info.value)


def test_secrets_from_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    monkeypatch.setenv("LW_TEST_TOKEN", "tok-123")
    monkeypatch.setenv("LW_TEST_API", "api-token-0123456789")
    (tmp_path / "tokens").write_text("# comment\nviewer-token-abcdef viewer\n")
    s = load_settings(write(tmp_path, f"""
[mqtt]
username = "c1"
password_file = "{tmp_path / 'pw'}"
[influx]
output = "v2"
token_env = "LW_TEST_TOKEN"
[api]
token_file = "{tmp_path / 'tokens'}"
tokens = [{{token_env = "LW_TEST_API", role = "admin"}}]
"""))
    assert s.mqtt.password() == "s3cret"
    assert s.influx.token() == "tok-123"
    assert s.api.resolve_tokens() == {
        "viewer-token-abcdef": "viewer", "api-token-0123456789": "admin"
    }
    assert "s3cret" not in repr(s) and "tok-123" not in repr(s)


def test_missing_secret_fails_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LW_NOT_SET", raising=False)
    with pytest.raises(ConfigError, match=r"influx\.token_env"):
        load_settings(write(tmp_path, '[influx]\noutput = "v2"\ntoken_env = "LW_NOT_SET"\n'))
    with pytest.raises(ConfigError, match=r"mqtt\.password_file"):
        load_settings(write(tmp_path, f'[mqtt]\npassword_file = "{tmp_path}/nope"\n'))
