"""`[notify]` of the collector config: channels, routes, retry timing.

Validated once at start like the rest of the collector config: unknown keys are refused
and every error names its dotted key (`notify.routes.0.levels.1: unknown channel
'pagerdty' (channels: desk-mail, pagerduty)`), also when several are wrong at once.
Channels are a table keyed by name whose `type` picks the option set; the dispatch is
done here rather than by a pydantic discriminated union because that would put the
type into the key (`notify.channels.desk-mail.smtp.port`), which is not what the
operator wrote. Secrets (SMTP password, webhook secret, PagerDuty routing key) come
from `*_file` / `*_env` only; `NotifySettings.read_secrets()` reads them all once so a
missing one fails at start, naming `notify.channels.<name>.<secret>_env`.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from collector.detect.findings import Priority
from collector.notify.model import Event
from ledwatch.contract import ID_PATTERN
from ledwatch.errors import ConfigError
from ledwatch.secrets import read_secret

ChannelName = Annotated[str, StringConstraints(pattern=ID_PATTERN.pattern)]
SiteId = Annotated[str, StringConstraints(pattern=ID_PATTERN.pattern)]
# An address only ("desk@example.com"), no display name: it goes into RCPT TO as is.
EmailAddress = Annotated[str, StringConstraints(pattern=r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")]


class _Section(BaseModel):
    # A typo must fail at start, not silently keep a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _one_secret(file: Path | None, env: str | None, name: str, required: str) -> None:
    """At most one source of a secret; `required` (the reason) set: exactly one."""
    if file is not None and env:
        raise ValueError(f"give {name}_file or {name}_env, not both")
    if required and file is None and not env:
        raise ValueError(f"{required} needs {name}_file or {name}_env")


def _check_url(value: str) -> str:
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http:// or https:// URL with a host: {value!r}")
    return value


class _ChannelBase(_Section):
    type: str
    timeout_s: float = Field(default=10.0, gt=0, le=300)

    def read_secrets(self, key: str) -> dict[str, str | None]:
        """Every secret of this channel by option name; `key` is `notify.channels.<name>`."""
        return {}


class SmtpChannelSettings(_ChannelBase):
    """E-mail over SMTP: plain, STARTTLS (`starttls`) or implicit TLS (`ssl`, port 465)."""

    type: Literal["smtp"]
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    ssl: bool = False
    ca_file: Path | None = None
    username: str | None = Field(default=None, min_length=1)
    password_file: Path | None = None
    password_env: str | None = None
    sender: EmailAddress
    to: list[EmailAddress] = Field(default_factory=list)

    @model_validator(mode="after")
    def _options(self) -> SmtpChannelSettings:
        if self.starttls and self.ssl:
            raise ValueError("give starttls or ssl, not both (ssl is TLS from the first byte)")
        _one_secret(
            self.password_file, self.password_env, "password", "a username" if self.username else ""
        )
        if self.username is None and (self.password_file is not None or self.password_env):
            raise ValueError("a password needs its username")
        return self

    def read_secrets(self, key: str) -> dict[str, str | None]:
        return {"password": read_secret(self.password_file, self.password_env, f"{key}.password")}


class _HttpChannelBase(_ChannelBase):
    url: str
    ca_file: Path | None = None

    _url = field_validator("url")(_check_url)


class WebhookChannelSettings(_HttpChannelBase):
    """A JSON POST signed with HMAC-SHA256 (docs/notifications.md has the verification)."""

    type: Literal["webhook"]
    secret_file: Path | None = None
    secret_env: str | None = None

    @model_validator(mode="after")
    def _secret(self) -> WebhookChannelSettings:
        _one_secret(self.secret_file, self.secret_env, "secret", "signing")
        return self

    def read_secrets(self, key: str) -> dict[str, str | None]:
        secret = read_secret(self.secret_file, self.secret_env, f"{key}.secret")
        if secret is not None and len(secret) < 16:
            raise ConfigError(f"{key}.secret: at least 16 characters, got {len(secret)}")
        return {"secret": secret}


class AlertmanagerChannelSettings(_HttpChannelBase):
    """Alertmanager's `POST /api/v2/alerts`; open tickets are re-pushed every `resend_s`."""

    type: Literal["alertmanager"]
    url: str = "http://127.0.0.1:9093"
    resend_s: float = Field(default=60.0, gt=0, le=3600)
    labels: dict[
        Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")], str
    ] = Field(default_factory=dict)


class PagerDutyChannelSettings(_HttpChannelBase):
    """PagerDuty Events API v2 (`trigger` / `acknowledge` / `resolve`)."""

    type: Literal["pagerduty"]
    url: str = "https://events.pagerduty.com/v2/enqueue"
    routing_key_file: Path | None = None
    routing_key_env: str | None = None

    @model_validator(mode="after")
    def _key(self) -> PagerDutyChannelSettings:
        _one_secret(self.routing_key_file, self.routing_key_env, "routing_key", "PagerDuty")
        return self

    def read_secrets(self, key: str) -> dict[str, str | None]:
        value = read_secret(self.routing_key_file, self.routing_key_env, f"{key}.routing_key")
        return {"routing_key": value}


ChannelSettings = (
    SmtpChannelSettings
    | WebhookChannelSettings
    | AlertmanagerChannelSettings
    | PagerDutyChannelSettings
)
CHANNEL_SETTINGS: dict[str, type[_ChannelBase]] = {
    "smtp": SmtpChannelSettings,
    "webhook": WebhookChannelSettings,
    "alertmanager": AlertmanagerChannelSettings,
    "pagerduty": PagerDutyChannelSettings,
}


class RouteSettings(_Section):
    """Which channels hear of a ticket change; a filter left out matches everything."""

    sites: list[SiteId] | None = Field(default=None, min_length=1)
    screens: list[SiteId] | None = Field(default=None, min_length=1)
    priorities: list[Priority] | None = Field(default=None, min_length=1)
    events: list[Event] | None = Field(default=None, min_length=1)
    levels: list[Annotated[list[ChannelName], Field(min_length=1)]] = Field(min_length=1)
    to: list[EmailAddress] = Field(default_factory=list)
    continue_: bool = Field(default=False, alias="continue")

    def matches(self, site: str, screen: str | None, priority: str, event: Event | None) -> bool:
        """`screen` / `event` None: that filter is not asked about (see routing.levels)."""
        return (
            (self.sites is None or site in self.sites)
            and (self.screens is None or screen is None or screen in self.screens)
            and (self.priorities is None or priority in self.priorities)
            and (self.events is None or event is None or event in self.events)
        )


def _error(loc: tuple[str | int, ...], message: str) -> InitErrorDetails:
    return InitErrorDetails(type="value_error", loc=loc, input=None, ctx={"error": message})


class NotifySettings(_Section):
    """The whole `[notify]` section; the default (no channels, no routes) sends nothing."""

    TYPES: ClassVar[tuple[str, ...]] = tuple(CHANNEL_SETTINGS)

    retry_min_s: float = Field(default=5.0, gt=0)
    retry_max_s: float = Field(default=600.0, gt=0)
    batch: int = Field(default=100, ge=1, le=10_000)
    interval_s: float = Field(default=1.0, gt=0, le=60)
    desk_url: str | None = None
    channels: dict[str, ChannelSettings] = Field(default_factory=dict)
    routes: list[RouteSettings] = Field(default_factory=list)

    @field_validator("desk_url")
    @classmethod
    def _desk(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @model_validator(mode="before")
    @classmethod
    def _channels(cls, data: Any) -> Any:
        """Validate each channel with the class its `type` names, keeping the operator's key."""
        if not isinstance(data, dict) or not isinstance(data.get("channels"), dict):
            return data
        channels: dict[str, Any] = {}
        errors: list[InitErrorDetails] = []
        for name, raw in data["channels"].items():
            loc: tuple[str | int, ...] = ("channels", name)
            if not ID_PATTERN.fullmatch(str(name)):
                errors.append(_error(loc, f"a channel name must match {ID_PATTERN.pattern}"))
                continue
            if isinstance(raw, _ChannelBase):  # built in code (the demo): already valid
                channels[name] = raw
                continue
            kind = raw.get("type") if isinstance(raw, dict) else None
            model = CHANNEL_SETTINGS.get(kind) if isinstance(kind, str) else None
            if model is None:
                where = (*loc, "type") if isinstance(raw, dict) else loc
                errors.append(_error(where, f"type must be one of {', '.join(cls.TYPES)}"))
                continue
            try:
                channels[name] = model.model_validate(raw)
            except ValidationError as exc:
                for err in exc.errors():
                    errors.append(
                        InitErrorDetails(
                            type=err["type"],
                            loc=(*loc, *err["loc"]),
                            input=err.get("input"),
                            ctx=err.get("ctx", {}),
                        )
                    )
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return {**data, "channels": channels}

    @model_validator(mode="after")
    def _cross_checks(self) -> NotifySettings:
        errors: list[InitErrorDetails] = []
        if self.retry_max_s < self.retry_min_s:
            errors.append(_error(("retry_max_s",), "must not be below retry_min_s"))
        known = ", ".join(sorted(self.channels)) or "none configured"
        for r, route in enumerate(self.routes):
            used_smtp: list[str] = []
            for n, level in enumerate(route.levels):
                for c, name in enumerate(level):
                    channel = self.channels.get(name)
                    if channel is None:
                        loc = ("routes", r, "levels", n, c)
                        errors.append(_error(loc, f"unknown channel {name!r} (channels: {known})"))
                    elif isinstance(channel, SmtpChannelSettings):
                        used_smtp.append(name)
            if route.to and not used_smtp:
                errors.append(_error(("routes", r, "to"), "no smtp channel in this route's levels"))
            for name in dict.fromkeys(used_smtp):
                channel = self.channels[name]
                if not route.to and isinstance(channel, SmtpChannelSettings) and not channel.to:
                    errors.append(
                        _error(
                            ("routes", r, "to"),
                            f"channel {name!r} has no recipients: give to here or in "
                            f"notify.channels.{name}.to",
                        )
                    )
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def read_secrets(self) -> dict[str, dict[str, str | None]]:
        """Every channel's secrets, read now; a missing file or variable is a ConfigError."""
        return {
            name: channel.read_secrets(f"notify.channels.{name}")
            for name, channel in self.channels.items()
        }

    def desk_link(self, ticket_id: object) -> str | None:
        """The desk page of a ticket (`<desk_url>/tickets/<id>`), None without `desk_url`."""
        if not self.desk_url or ticket_id is None:
            return None
        return f"{self.desk_url.rstrip('/')}/tickets/{ticket_id}"


class _Document(_Section):
    notify: NotifySettings


def load_notify(data: dict[str, Any]) -> NotifySettings:
    """Validate a `[notify]` table on its own (tests, tools) with the collector's messages.

    The collector validates the section as part of its config; this gives the same
    `notify.<key>: <message>` errors without building the rest of it.
    """
    from collector.settings import _format  # not at import time: collector.settings imports us

    try:
        settings = _Document.model_validate({"notify": data}).notify
    except ValidationError as exc:
        raise ConfigError(_format(exc)) from None
    settings.read_secrets()
    return settings
