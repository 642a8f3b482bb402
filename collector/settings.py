"""The collector's one typed configuration, read once from TOML at start.

Every option has a default that suits a single-machine installation, and every error
names the dotted key (`influx.batch_size: ...`) so an operator can fix the file without
reading code. Secrets are never values in the file: they come from a file or an
environment variable, are read only when needed and never appear in a repr or a log.
"""

from __future__ import annotations

import re
import tomllib
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from collector.detect.config import DetectSettings
from collector.influx.connections import proxy_url
from collector.notify.settings import NotifySettings
from collector.reports.settings import ReportSettings
from ledwatch.errors import ConfigError
from ledwatch.secrets import read_secret

Role = Literal["viewer", "engineer", "admin"]


class _Section(BaseModel):
    # Unknown keys are refused: a typo must fail at start, not silently keep a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsSettings(_Section):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _pair(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self


class MqttSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    tls: TlsSettings | None = None
    client_id: str = Field(default="ledwatch-collector-1", min_length=1, max_length=128)
    share_group: str | None = Field(default="collectors", pattern=r"^[A-Za-z0-9_-]*$")
    qos: Literal[1] = 1
    clean_start: bool = False
    protocol: Literal["5", "3.1.1"] = "5"
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    reconnect_min_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _one_secret(self) -> MqttSettings:
        if self.password_file is not None and self.password_env:
            raise ValueError("give password_file or password_env, not both")
        return self

    def password(self) -> str | None:
        return read_secret(self.password_file, self.password_env, "mqtt.password")


class InfluxSettings(_Section):
    output: Literal["v2", "v1", "local", "none"] = "local"
    url: str = "http://127.0.0.1:8086"
    org: str = ""
    bucket: str = "ledwatch"
    token_file: Path | None = None
    token_env: str | None = None
    database: str = "ledwatch"
    username: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    local_path: Path = Path("/var/collector/telemetry.db")
    local_retention_h: float = Field(default=48.0, gt=0)
    # Lines per write request. 10,000 (the top of InfluxData's 5,000-10,000 advice) halves
    # the requests and the per-batch work of 5,000: the drain into InfluxDB 1.6 went from
    # 63-80k to 94-127k points/s here (docs/performance.md).
    batch_size: int = Field(default=10_000, ge=1, le=1_000_000)
    flush_interval_ms: int = Field(default=500, ge=1, le=600_000)
    max_pending: int = Field(default=10_000, ge=1, le=65_535)
    # Batches written at once: the next is encoded while the server stores the previous.
    # 8, not 4: a slot stays taken until its batch's turn to be acked, so one slow write
    # idles the others; the drain rose ~0.70 -> ~0.82 x the server's ceiling on v2 and
    # ~0.75 -> ~0.85 on v1 here (docs/hot-path.md, item 14).
    max_in_flight: int = Field(default=8, ge=1, le=64)
    # From a backlog, this many write batches are taken and judged together: detection
    # costs ~1.6 ms per 1,000 points judged one batch at a time, ~0.57 in 4-batch intakes,
    # ~0.44 in 8 (docs/hot-path.md, item 11).
    intake_batches: int = Field(default=8, ge=1, le=64)
    # A backlog intake's batches laid out screen by screen (acks still in arrival order,
    # with the intake's last batch): the servers take such requests 1.25-1.6 x faster;
    # the drain into InfluxDB 1.6 went from ~150k to ~237k points/s here (docs/hot-path.md,
    # "Requests by screen"). A live intake (one batch) is the same either way.
    group_screens: bool = True
    # A snapshot is judged at most this long after it was taken, even while its write
    # batch still fills: at 100 snapshots/s a 10,000-line batch takes 330 ms (20 ms:
    # fault -> ticket p50/p99 81/154 ms at 100 snapshots/s, 50 ms: 86/212).
    detect_within_ms: int = Field(default=20, ge=1, le=600_000)
    timeout_ms: int = Field(default=10_000, ge=100)
    retry_max_s: float = Field(default=30.0, gt=0)
    # "" connects directly; "env" reads HTTP_PROXY/HTTPS_PROXY/NO_PROXY; or an
    # http://[user:password@]host:port proxy (collector/influx/connections.py).
    proxy: str = ""
    # The CAs an https:// url's certificate is checked against (PEM); unset: the system's.
    ca_file: Path | None = None
    # The collector's own series for the dashboards (collector/influx/ops.py); 0 = off.
    # `kpi` and `open_ticket` are fleet-wide: in a cluster only the care member writes them.
    ops_interval_s: float = Field(default=10.0, ge=0)
    kpi_interval_s: float = Field(default=3600.0, ge=0)
    open_ticket_interval_s: float = Field(default=60.0, ge=0)

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, value: str, info: ValidationInfo) -> str:
        # "env": the environment the collector starts in is the one its writer will read.
        url = urllib.parse.urlsplit(str(info.data.get("url", "")))
        proxy_url(value, url.scheme or "http", url.hostname or "")
        return value

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{str(value)!r} is not a file")
        return value

    @model_validator(mode="after")
    def _check_output(self) -> InfluxSettings:
        if self.token_file is not None and self.token_env:
            raise ValueError("give token_file or token_env, not both")
        if self.password_file is not None and self.password_env:
            raise ValueError("give password_file or password_env, not both")
        if self.output in ("v1", "v2") and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https:// for output {self.output!r}")
        if self.output == "v2" and not self.bucket:
            raise ValueError("bucket is required for output 'v2'")
        if self.output == "v1" and not self.database:
            raise ValueError("database is required for output 'v1'")
        return self

    def token(self) -> str | None:
        return read_secret(self.token_file, self.token_env, "influx.token")

    def password(self) -> str | None:
        return read_secret(self.password_file, self.password_env, "influx.password")


class DatabaseSettings(_Section):
    url: str = "sqlite:///var/collector/tickets.db"
    # Upgrade an older schema at start (a log line says from which revision); false makes
    # start refuse until `ledwatch collector db upgrade` ran (for a planned backup first).
    auto_upgrade: bool = True


class TokenEntry(_Section):
    token: str | None = Field(default=None, min_length=16)
    token_env: str | None = None
    role: Role

    @model_validator(mode="after")
    def _one(self) -> TokenEntry:
        if (self.token is None) == (self.token_env is None):
            raise ValueError("give exactly one of token or token_env")
        return self


class ApiSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    token_file: Path | None = None
    tokens: list[TokenEntry] = Field(default_factory=list)

    def resolve_tokens(self) -> dict[str, str]:
        """token -> role; the token file has one `<token> <role>` per line, `#` comments."""
        result: dict[str, str] = {}
        if self.token_file is not None:
            try:
                text = self.token_file.read_text("utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"api.token_file: cannot read {str(self.token_file)!r}: {exc.strerror}"
                ) from None
            for number, raw in enumerate(text.splitlines(), 1):
                line = raw.split("#", 1)[0].strip()
                if not line:
                    continue
                parts = line.split()
                if len(parts) != 2 or parts[1] not in ("viewer", "engineer", "admin"):
                    raise ConfigError(
                        f"api.token_file: line {number}: expected '<token> <viewer|engineer|admin>'"
                    )
                result[parts[0]] = parts[1]
        for index, entry in enumerate(self.tokens):
            token = entry.token or read_secret(None, entry.token_env, f"api.tokens.{index}.token")
            if token:
                result[token] = entry.role
        return result


class MaintenanceSettings(_Section):
    """A planned maintenance window (`[[maintenance]]`); the API adds ad-hoc ones."""

    site: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    screen: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    component: str | None = Field(default=None, min_length=1, max_length=128)
    start: datetime
    end: datetime
    who: str = Field(min_length=1, max_length=128)
    why: str = Field(min_length=1, max_length=4000)

    @model_validator(mode="after")
    def _order(self) -> MaintenanceSettings:
        if self.end_ms <= self.start_ms:
            raise ValueError("end must be after start")
        if self.component is not None and self.screen is None:
            raise ValueError("a component needs its screen")
        return self

    @staticmethod
    def _ms(value: datetime) -> int:
        # TOML local date-times carry no offset: LEDwatch reads them as UTC.
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return int(aware.timestamp() * 1000)

    @property
    def start_ms(self) -> int:
        return self._ms(self.start)

    @property
    def end_ms(self) -> int:
        return self._ms(self.end)


class CareSettings(_Section):
    """Proactive care (docs/tasks.md, docs/spares.md): the collector's background job
    (collector/care.py) and the defaults of the spares plan."""

    # Run the care job (installed base, tasks, their notifications, due reports).
    enabled: bool = True
    # Seconds between two runs of the care job.
    interval_s: float = Field(default=60.0, gt=0)
    # Priority the notification routes see for task_due, task_overdue, report_ready.
    task_priority: Literal["P1", "P2", "P3", "P4"] = "P4"
    # task_due is notified this many days before the due date (0: on the day).
    task_notice_days: float = Field(default=7.0, ge=0, le=365)
    # The installed base of a screen is recorded at most once per this many minutes.
    inventory_interval_min: float = Field(default=60.0, ge=0)
    # A part the screen has not reported for this many days leaves the installed base.
    inventory_stale_days: float = Field(default=30.0, gt=0)
    # GET /api/v1/spares defaults: reorder lead time, the Poisson confidence, the window.
    spares_lead_time_days: float = Field(default=30.0, ge=0, le=3650)
    spares_confidence: float = Field(default=0.95, gt=0, le=0.9999)
    spares_window_days: float = Field(default=365.0, ge=1, le=3650)


class ClusterSettings(_Section):
    """Several collectors sharing one fleet (docs/scaling.md)."""

    # The mqtt.client_id of every collector of the cluster, this one included; each owns
    # the agents that hash to it. Empty: this collector takes every message.
    members: list[Annotated[str, StringConstraints(min_length=1, max_length=128)]] = Field(
        default_factory=list)
    # "filter": every collector subscribes to everything and keeps its own agents'
    # messages (any broker; Mosquitto). "broker": the broker routes each agent to one
    # collector through the share group (EMQX `hash_clientid`); nothing is filtered.
    route: Literal["filter", "broker"] = "filter"

    @model_validator(mode="after")
    def _unique(self) -> ClusterSettings:
        if len(set(self.members)) != len(self.members):
            raise ValueError("members: a collector is named twice")
        return self


class CollectorSettings(_Section):
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    status_interval_s: float = Field(default=60.0, gt=0)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    influx: InfluxSettings = Field(default_factory=InfluxSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    detect: DetectSettings = Field(default_factory=DetectSettings)
    # Seconds between two saves of detection's rolling state to the ticket database
    # (also saved on a clean stop); 0 turns saving off.
    detect_state_save_s: float = Field(default=300.0, ge=0)
    maintenance: list[MaintenanceSettings] = Field(default_factory=list)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    reports: ReportSettings = Field(default_factory=ReportSettings)
    care: CareSettings = Field(default_factory=CareSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    contracts: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _member(self) -> CollectorSettings:
        members = self.cluster.members
        if members and self.mqtt.client_id not in members:
            raise ValueError(f"cluster.members: this collector's mqtt.client_id "
                             f"{self.mqtt.client_id!r} is not one of them")
        return self


_NESTED_KEY = re.compile(r"^([a-z0-9_]+(?:\.[a-z0-9_-]+)*): (.*)$", re.DOTALL)


def _format(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown option"
        nested = _NESTED_KEY.match(msg)  # a validator that names a deeper key first
        if nested:
            loc, msg = f"{loc}.{nested.group(1)}", nested.group(2)
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def settings_from_dict(data: dict[str, Any]) -> CollectorSettings:
    """Validate an already-parsed TOML document; raise `ConfigError` naming the key."""
    try:
        settings = CollectorSettings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format(exc)) from None
    # Read every secret once now so a missing file or variable fails at start.
    settings.mqtt.password()
    if settings.influx.output == "v2":
        settings.influx.token()
    if settings.influx.output == "v1":
        settings.influx.password()
    settings.api.resolve_tokens()
    settings.notify.read_secrets()
    return settings


def load_settings(path: str | Path) -> CollectorSettings:
    # UTF-8 with a byte order mark and UTF-16 (what Windows editors write) are decoded by
    # their mark; any other encoding raises ConfigError ending in "save it as UTF-8".
    from ledwatch.files import read_config_text

    path = Path(path)
    try:
        data = tomllib.loads(read_config_text(path))
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}") from None
    return settings_from_dict(data)
