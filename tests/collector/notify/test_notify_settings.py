"""`[notify]` validation: the sample is complete and true, every error names its key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from collector.notify.settings import (
    AlertmanagerChannelSettings,
    NotifySettings,
    PagerDutyChannelSettings,
    RouteSettings,
    SmtpChannelSettings,
    WebhookChannelSettings,
    load_notify,
)
from ledwatch.errors import ConfigError

SAMPLE = Path(__file__).resolve().parents[3] / "collector" / "notify" / "sample.toml"
SECRETS = {"LEDWATCH_WEBHOOK_SECRET": "s" * 32, "LEDWATCH_PD_KEY": "k" * 32}
OPTION = re.compile(r"^(?:# )?([a-z_]+) = (.+)$")


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def _sections(text: str) -> dict[str, list[tuple[str, str, bool]]]:
    """Per [section] header: (option, TOML value, commented?) in order of appearance."""
    out: dict[str, list[tuple[str, str, bool]]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("["):
            current = line.strip("[] ")
            out.setdefault(current, [])
            continue
        m = OPTION.match(line)
        if m:
            out.setdefault(current, []).append((m[1], m[2], line.startswith("#")))
    return out


def test_sample_is_valid_and_names_every_option(secrets: None) -> None:
    text = SAMPLE.read_text("utf-8")
    settings = load_notify(tomllib.loads(text)["notify"])
    assert set(settings.channels) == {"desk-mail", "ticket-system", "alertmanager", "pagerduty"}
    assert len(settings.routes) == 2
    sections = _sections(text)
    models: dict[str, type[BaseModel]] = {
        "notify": NotifySettings,
        "notify.channels.desk-mail": SmtpChannelSettings,
        "notify.channels.ticket-system": WebhookChannelSettings,
        "notify.channels.alertmanager": AlertmanagerChannelSettings,
        "notify.channels.pagerduty": PagerDutyChannelSettings,
        "notify.routes": RouteSettings,
    }
    for section, model in models.items():
        shown = {name for name, _, _ in sections[section]}
        fields = {f.alias or name for name, f in model.model_fields.items()}
        if model is NotifySettings:
            fields -= {"channels", "routes"}  # tables of their own
        assert shown == fields, (section, fields ^ shown)
        for name, value, commented in sections[section]:
            field = next(f for n, f in model.model_fields.items() if (f.alias or n) == name)
            parsed = tomllib.loads(f"v = {value}")["v"]
            if field.is_required() or commented:
                continue  # an example value
            default = field.get_default(call_default_factory=True)
            if section == "notify.routes" or name in ("to", "secret_env", "routing_key_env"):
                continue  # the route, recipients and the secrets' names are examples
            if name == "url" and model is WebhookChannelSettings:
                continue
            assert parsed == default, f"{section}.{name}: sample {parsed!r}, default {default!r}"


def test_defaults_send_nothing() -> None:
    settings = load_notify({})
    assert settings.channels == {} and settings.routes == []
    assert (settings.retry_min_s, settings.retry_max_s, settings.batch) == (5.0, 600.0, 100)


def _hook(**over: Any) -> dict[str, Any]:
    return {"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret_env": "HOOK_SECRET",
            **over}


def _mail(**over: Any) -> dict[str, Any]:
    return {"type": "smtp", "sender": "ledwatch@example.com", "to": ["desk@example.com"], **over}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"channels": {"hook": _hook()}, "routes": [{"levels": [["hook"], ["pagerdty"]]}]},
            "notify.routes.0.levels.1.0: unknown channel 'pagerdty' (channels: hook)",
        ),
        ({"channels": {"hook": _hook(url="htp:/x")}},
         "notify.channels.hook.url: not an http:// or https:// URL with a host: 'htp:/x'"),
        ({"channels": {"mail": _mail(port=70000)}},
         "notify.channels.mail.port: Input should be less than or equal to 65535"),
        ({"channels": {"mail": _mail(prot=25)}}, "notify.channels.mail.prot: unknown option"),
        ({"channels": {"x": {"type": "sms"}}},
         "notify.channels.x.type: type must be one of smtp, webhook, alertmanager, pagerduty"),
        ({"channels": {"x": "smtp"}}, "notify.channels.x: type must be one of"),
        ({"channels": {"Desk Mail": _mail()}}, "notify.channels.Desk Mail: a channel name must"),
        ({"channels": {"mail": _mail(starttls=True, ssl=True)}},
         "notify.channels.mail: give starttls or ssl, not both"),
        ({"channels": {"mail": _mail(username="u")}},
         "notify.channels.mail: a username needs password_file or password_env"),
        ({"channels": {"mail": _mail(password_env="P")}},
         "notify.channels.mail: a password needs its username"),
        ({"channels": {"mail": _mail(sender="ledwatch")}}, "notify.channels.mail.sender: String"),
        ({"channels": {"mail": _mail(to=["a@b", "not an address"])}},
         "notify.channels.mail.to.1: String should match pattern"),
        ({"channels": {"hook": _hook(secret_env=None)}},
         "notify.channels.hook: signing needs secret_file or secret_env"),
        ({"channels": {"pd": {"type": "pagerduty"}}},
         "notify.channels.pd: PagerDuty needs routing_key_file or routing_key_env"),
        ({"channels": {"am": {"type": "alertmanager", "labels": {"bad-name": "x"}}}},
         "notify.channels.am.labels.bad-name.[key]: String should match pattern"),
        ({"channels": {"mail": _mail(to=[])}, "routes": [{"levels": [["mail"]]}]},
         "notify.routes.0.to: channel 'mail' has no recipients: give to here or in "
         "notify.channels.mail.to"),
        ({"channels": {"hook": _hook()}, "routes": [{"levels": [["hook"]], "to": ["a@b"]}]},
         "notify.routes.0.to: no smtp channel in this route's levels"),
        ({"routes": [{"levels": []}]}, "notify.routes.0.levels: List should have at least 1"),
        ({"routes": [{"levels": [[]]}]}, "notify.routes.0.levels.0: List should have at least 1"),
        ({"routes": [{"levels": [["x"]], "priorities": ["P9"]}]},
         "notify.routes.0.priorities.0: Input should be 'P1', 'P2', 'P3' or 'P4'"),
        ({"routes": [{"levels": [["x"]], "events": ["exploded"]}]},
         "notify.routes.0.events.0: Input should be 'opened'"),
        ({"routes": [{"levels": [["x"]], "sites": ["ACME"]}]},
         "notify.routes.0.sites.0: String should match pattern"),
        ({"routes": [{"levels": [["x"]], "continue_": True}]},
         "notify.routes.0.continue_: unknown option"),
        ({"retry_min_s": 10, "retry_max_s": 1},
         "notify.retry_max_s: must not be below retry_min_s"),
        ({"desk_url": "desk"}, "notify.desk_url: not an http:// or https:// URL"),
    ],
)
def test_errors_name_the_key(data: dict[str, Any], message: str, monkeypatch: pytest.MonkeyPatch
                             ) -> None:
    monkeypatch.setenv("HOOK_SECRET", "h" * 20)
    with pytest.raises(ConfigError) as err:
        load_notify(data)
    assert message in str(err.value)


def test_several_errors_at_once() -> None:
    with pytest.raises(ConfigError) as err:
        load_notify({"channels": {"a": _mail(port=0), "b": _hook(url="x", secret_env="S")},
                     "batch": 0})
    text = str(err.value)
    assert "notify.channels.a.port" in text and "notify.channels.b.url" in text


def test_missing_secrets_name_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOOK_SECRET", raising=False)
    with pytest.raises(ConfigError) as err:
        load_notify({"channels": {"hook": _hook()}})
    assert str(err.value) == (
        "notify.channels.hook.secret_env: environment variable 'HOOK_SECRET' is not set"
    )
    with pytest.raises(ConfigError, match=r"notify.channels.pd.routing_key_file: cannot read"):
        load_notify({"channels": {"pd": {"type": "pagerduty",
                                         "routing_key_file": str(tmp_path / "none")}}})
    short = tmp_path / "short"
    short.write_text("tooshort\n")
    with pytest.raises(ConfigError, match=r"notify.channels.hook.secret: at least 16"):
        load_notify({"channels": {"hook": _hook(secret_env=None, secret_file=str(short))}})
    pw = tmp_path / "pw"
    pw.write_text("p4ss word\n")
    settings = load_notify({"channels": {"m": _mail(username="u", password_file=str(pw))}})
    assert settings.read_secrets() == {"m": {"password": "p4ss word"}}


def test_nested_in_a_bigger_config_keeps_the_keys() -> None:
    """The collector validates [notify] as one field of its settings: the keys stay true."""
    from pydantic import ValidationError

    from collector.settings import _format

    class Outer(BaseModel):
        notify: NotifySettings

    with pytest.raises(ValidationError) as err:
        Outer.model_validate({"notify": {"channels": {"m": _mail(port="x")},
                                         "routes": [{"levels": [["n"]]}]}})
    assert _format(err.value).startswith("notify.channels.m.port: Input should be a valid int")
    with pytest.raises(ValidationError) as err:
        Outer.model_validate({"notify": {"routes": [{"levels": [["n"]]}]}})
    assert _format(err.value) == (
        "notify.routes.0.levels.0.0: unknown channel 'n' (channels: none configured)"
    )


def test_desk_link() -> None:
    assert load_notify({}).desk_link(42) is None
    settings = load_notify({"desk_url": "https://desk.example.com/desk/"})
    assert settings.desk_link(42) == "https://desk.example.com/desk/tickets/42"


def test_channels_built_in_code_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo builds its channels in code (`--webhook URL`), not from TOML."""
    monkeypatch.setenv("HOOK_SECRET", "h" * 20)
    hook = WebhookChannelSettings.model_validate(_hook())
    settings = NotifySettings(channels={"demo-hook": hook},
                              routes=[RouteSettings(levels=[["demo-hook"]])])
    assert settings.channels["demo-hook"] is hook
    assert settings.read_secrets() == {"demo-hook": {"secret": "h" * 20}}
