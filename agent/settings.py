"""The agent's one validated configuration, read once from TOML at start.

Every section refuses unknown keys (a typo must not silently fall back to a default),
ids follow `ledwatch.contract.check_id`, and every error is re-raised as `ConfigError`
naming the dotted key (`screens[1].id: 'Lobby 1' is not a valid id ...`). Relative
paths are taken relative to the config file, so a Windows service and a systemd unit
find the same files whatever their working directory. Secrets (the MQTT password) are
read from a file or an environment variable, never from the command line, and are held
as `SecretStr` so they never appear in a log line or a repr.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from agent.drivers import driver_names, parse_psu_source
from agent.drivers.base import PsuSourceOptions
from ledwatch import contract
from ledwatch.errors import ConfigError
from ledwatch.files import read_config_text
from ledwatch.secrets import read_secret

DEFAULT_CONFIG_NAME = "agent.toml"


def _id_rule(value: object) -> str:
    """Apply `contract.check_id`, turning its message into a pydantic error (key added later)."""
    try:
        return contract.check_id(value, "")
    except ConfigError as exc:
        msg = str(exc).removeprefix(": ")
        raise PydanticCustomError("ledwatch_id", "{msg}", {"msg": msg}) from None


def _keyed(key: str, msg: str) -> PydanticCustomError:
    """An error whose message starts with the rest of the key (`[1].map: ...`); `_message`
    moves that part into the key, giving `screens[0].psus[1].map: ...`."""
    return PydanticCustomError("ledwatch_keyed", "{msg}", {"msg": f"{key}: {msg}"})


def _resolve(value: Path | None, info: ValidationInfo) -> Path | None:
    base = (info.context or {}).get("base_dir") if info.context else None
    if value is None or value.is_absolute() or base is None:
        return value
    return Path(base) / value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentSection(_Section):
    id: str
    site: str
    poll_interval_s: float = Field(default=5.0, gt=0, le=3600)
    data_dir: Path = Field(default=Path("ledwatch-data"), validate_default=True)
    log_file: Path | None = None
    outbox_quota_mb: float = Field(default=200.0, gt=0)
    drain_rate_per_s: float = Field(default=200.0, gt=0)
    status_interval_s: float = Field(default=60.0, gt=0)

    @field_validator("id", "site", mode="before")
    @classmethod
    def _ids(cls, value: object) -> str:
        return _id_rule(value)

    @field_validator("data_dir", "log_file", mode="after")
    @classmethod
    def _relative_to_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve(value, info)


class TlsSection(_Section):
    """Present (even empty) means TLS on; an empty table uses the system CA store."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False

    @field_validator("ca_file", "cert_file", "key_file", mode="after")
    @classmethod
    def _relative_to_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve(value, info)

    @model_validator(mode="after")
    def _pair(self) -> TlsSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise PydanticCustomError(
                "ledwatch_tls", "cert_file and key_file must be given together"
            )
        return self


class MqttSection(_Section):
    host: str = "localhost"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    tls: TlsSection | None = None
    keepalive_s: int = Field(default=30, ge=5, le=65535)
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str | None = Field(default=None, min_length=1, max_length=128)
    max_inflight: int = Field(default=100, ge=1, le=65535)
    # MQTT 5 only: a PUBACK "no matching subscribers" (0x10) means nobody received the
    # message (for example Mosquitto just restarted: it does not restore shared
    # subscriptions). Keep it in the outbox and retry, instead of deleting it.
    require_subscriber: bool = True

    @field_validator("password_file", mode="after")
    @classmethod
    def _relative_to_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve(value, info)

    @model_validator(mode="after")
    def _one_secret_source(self) -> MqttSection:
        if self.password_file is not None and self.password_env is not None:
            raise PydanticCustomError(
                "ledwatch_secret", "give password_file or password_env, not both"
            )
        return self

    def password(self) -> SecretStr | None:
        """Read the secret now (file or environment); raise `ConfigError` if it is missing."""
        value = read_secret(self.password_file, self.password_env, "mqtt.password")
        return None if value is None else SecretStr(value)


class MetricsSection(_Section):
    """The local Prometheus endpoint (`GET /metrics`, agent/metrics.py); port 0 = off."""

    port: int = Field(default=0, ge=0, le=65535)
    host: str = Field(default="127.0.0.1", min_length=1)


class ControllerSection(BaseModel):
    """`driver` picks the family; every other key is that driver's own option."""

    model_config = ConfigDict(extra="allow", frozen=True)

    driver: str

    @field_validator("driver")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in driver_names():
            known = ", ".join(driver_names())
            raise PydanticCustomError(
                "ledwatch_driver", "{msg}", {"msg": f"unknown driver {value!r} (known: {known})"}
            )
        return value

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ScreenSection(_Section):
    id: str
    controller: ControllerSection
    # One table per bus of smart PSUs, validated by its family (agent/drivers/__init__.py,
    # e.g. agent/drivers/modbus_psu/sample.toml); `AgentSettings` turns each table into
    # that family's options object.
    psus: list[Any] = Field(default_factory=list)

    @field_validator("id", mode="before")
    @classmethod
    def _ids(cls, value: object) -> str:
        return _id_rule(value)

    @field_validator("psus", mode="before")
    @classmethod
    def _tables(cls, value: object) -> object:
        if isinstance(value, list):
            for b, table in enumerate(value):
                if not isinstance(table, dict):
                    raise _keyed(f"[{b}]", "must be a table ([[screens.psus]])")
        return value

    def psu_options(self) -> list[PsuSourceOptions]:
        return list(self.psus)


class AgentSettings(_Section):
    agent: AgentSection
    mqtt: MqttSection = MqttSection()
    metrics: MetricsSection = MetricsSection()
    screens: list[ScreenSection] = Field(min_length=1)

    @model_validator(mode="after")
    def _psu_sources(self, info: ValidationInfo) -> AgentSettings:
        """Each `[[screens.psus]]` table validated by its family (a bad register map must
        stop the start, not the first poll), and no PSU id twice on one screen (its rows
        would be ambiguous)."""
        base = (info.context or {}).get("base_dir") if info.context else None
        for i, screen in enumerate(self.screens):
            if not screen.psus or not isinstance(screen.psus[0], dict):
                continue  # no buses, or already validated (a copy of valid settings)
            buses = []
            seen: dict[str, str] = {}
            for b, table in enumerate(screen.psus):
                where = f"screens[{i}].psus[{b}]"
                try:
                    bus = parse_psu_source(table, where, base)
                except ConfigError as exc:
                    raise PydanticCustomError("ledwatch_psus", "{msg}", {"msg": str(exc)}) from None
                for key, ident in bus.psu_ids():
                    if ident in seen:
                        msg = f"{where}.{key}: duplicate {ident!r} (already {seen[ident]})"
                        raise PydanticCustomError("ledwatch_psus", "{msg}", {"msg": msg})
                    seen[ident] = f"psus[{b}].{key}"
                buses.append(bus)
            self.screens[i] = screen.model_copy(update={"psus": buses})
        return self

    @model_validator(mode="after")
    def _unique_screens(self) -> AgentSettings:
        seen: dict[str, int] = {}
        for i, screen in enumerate(self.screens):
            if screen.id in seen:
                msg = (
                    f"screens[{i}].id: duplicate screen id {screen.id!r} "
                    f"(already screens[{seen[screen.id]}].id)"
                )
                raise PydanticCustomError("ledwatch_duplicate", "{msg}", {"msg": msg})
            seen[screen.id] = i
        return self

    # Derived values live here so that every part computes them the same way.
    @property
    def username(self) -> str:
        """The MQTT username defaults to the site id (broker ACL `ledwatch/v1/%u/#`)."""
        return self.mqtt.username or self.agent.site

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"ledwatch-agent-{self.agent.site}-{self.agent.id}"

    @property
    def outbox_path(self) -> Path:
        return self.agent.data_dir / "outbox.sqlite3"

    @property
    def outbox_quota_bytes(self) -> int:
        return int(self.agent.outbox_quota_mb * 1024 * 1024)


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_SUBKEY = re.compile(r"^((?:\[\d+\]|\.[a-z_]+)+): ")


def _message(err: Any) -> str:
    key = _dotted(tuple(err["loc"]))
    kind = err["type"]
    if kind == "extra_forbidden":
        msg = "unknown key (see agent/sample.toml for the accepted keys)"
    elif kind == "missing":
        msg = "required key is missing"
    else:
        msg = str(err["msg"]).removeprefix("Value error, ")
        # A list check that names its own element ("[1].slave: duplicate 1") or a
        # `_keyed` error: move the element's path into the key.
        m = _SUBKEY.match(msg)
        if m:
            key, msg = key + m[1], msg[m.end() :]
    return f"{key}: {msg}" if key else msg


def parse_settings(data: dict[str, Any], base_dir: Path | None = None) -> AgentSettings:
    """Validate already-parsed TOML; relative paths are resolved against `base_dir`."""
    try:
        settings = AgentSettings.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError("; ".join(_message(e) for e in exc.errors())) from None
    settings.mqtt.password()  # fail at start, not at the first connect
    return settings


def load_settings(path: str | Path) -> AgentSettings:
    """Read and validate an agent TOML file; raise `ConfigError` naming the file and the bad
    key. UTF-8 with a byte order mark and UTF-16 (what Windows editors write) are read as
    well (ledwatch/files.py); any other encoding is refused with "save it as UTF-8"."""
    path = Path(path)
    try:
        data = tomllib.loads(read_config_text(path))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_settings(data, base_dir=path.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
