#!/usr/bin/env python3
"""Real servers for the tests: Mosquitto, VictoriaMetrics, InfluxDB 1.x, Alertmanager,
Prometheus, PostgreSQL, Tinyproxy, socat.

Also the headless Chromium (+ chromedriver) that the service desk's browser test drives.

DESIGN.md asks for real parts in tests, so this module starts the Debian-packaged
servers as private child processes: each binds to 127.0.0.1 on a free port, keeps its
data, config and log in a caller-given directory and never touches the system-wide
instance. Standard library only, so `make test` can run it before any venv exists.

Run as a script, `python scripts/services.py install` installs the missing Debian
packages (apt-get, with sudo when not root) without leaving their system services
running on the default ports.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
LOG_TAIL_LINES = 30

# command the tests need -> (absolute path, Debian package that ships it)
BINARIES: dict[str, tuple[str, str]] = {
    "mosquitto": ("/usr/sbin/mosquitto", "mosquitto"),
    "influxd": ("/usr/bin/influxd", "influxdb"),
    "victoria-metrics": ("/usr/bin/victoria-metrics", "victoria-metrics"),
    "socat": ("/usr/bin/socat", "socat"),
    "prometheus-alertmanager": ("/usr/bin/prometheus-alertmanager", "prometheus-alertmanager"),
    # Scrapes the agent's and the collector's /metrics (tests/test_prometheus_scrape.py).
    "prometheus": ("/usr/bin/prometheus", "prometheus"),
    "promtool": ("/usr/bin/promtool", "prometheus"),  # lints the agent's exposition
    # The service desk's browser test (tests/collector/desk): Selenium drives Debian's
    # Chromium through Debian's matching chromedriver (same version, same package source).
    "chromium": ("/usr/bin/chromium", "chromium"),
    "chromedriver": ("/usr/bin/chromedriver", "chromium-driver"),
    # The ticket database on PostgreSQL (tests/collector/tickets, tests/collector/api).
    "postgres": ("/usr/lib/postgresql/15/bin/postgres", "postgresql"),
    # An HTTP forward proxy (CONNECT too) between the collector and its database
    # (tests/collector/test_writer_proxy.py: influx.proxy).
    "tinyproxy": ("/usr/bin/tinyproxy", "tinyproxy"),
}

# Shared libraries (no command to look for) -> the Debian package that ships them.
# WeasyPrint (the inspection reports' PDFs, collector/reports) loads Pango through cffi.
LIBRARIES: dict[str, str] = {
    "pango-1.0": "libpango-1.0-0",
    "pangoft2-1.0": "libpangoft2-1.0-0",
    "harfbuzz-subset": "libharfbuzz-subset0",
}

# init scripts / units a package install may start, and the process name to look for
SYSTEM_SERVICES: dict[str, str] = {
    "mosquitto": "mosquitto",
    "influxdb": "influxd",
    "victoria-metrics": "victoria-metrics",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "prometheus": "prometheus",
    "postgresql": "postgres",
    "tinyproxy": "tinyproxy",
}


class ServiceError(RuntimeError):
    """A test server could not be started, reached or stopped; the message has its log tail."""


def binary(name: str) -> str | None:
    """Absolute path of a needed command (its Debian path first, then PATH), or None."""
    path = BINARIES[name][0] if name in BINARIES else ""
    if path and os.access(path, os.X_OK):
        return path
    return shutil.which(name)


def missing_binaries() -> list[str]:
    return [name for name in BINARIES if binary(name) is None]


def missing_libraries() -> list[str]:
    import ctypes.util

    return [name for name in LIBRARIES if ctypes.util.find_library(name) is None]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel picks it, so parallel runs differ)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout_s: float = 10.0,
    context: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    """One HTTP request; returns (status, body) for every status instead of raising on 4xx/5xx.
    `context`: the TLS settings of an https:// URL (a test server's own CA)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s, context=context) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def basic_auth(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


# Every child we start, so an interrupted run (Ctrl-C, a crashed session) leaves none behind.
_LIVE: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE):
        _terminate(proc)


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)
    _LIVE.discard(proc)


class Service:
    """One server process: config written into `tmpdir`, log in `tmpdir/<name>.log`.

    `stop()` then `start()` (or `restart()`) brings it back on the same port with the same
    data, which is what broker-outage and database-outage tests need.
    """

    name: ClassVar[str] = "service"
    host = "127.0.0.1"
    # An HTTP path that answers 200 once the server is ready; None: an open port will do.
    ready_path: ClassVar[str | None] = None

    def __init__(self, tmpdir: str | os.PathLike[str], port: int | None = None) -> None:
        self.dir = Path(tmpdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log_path = self.dir / f"{self.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    # -- hooks for subclasses ------------------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Write config files; called before every start."""

    def _ready(self) -> bool:
        if self.ready_path is None:
            return port_open(self.port)
        try:
            url = f"http://127.0.0.1:{self.port}{self.ready_path}"
            return http("GET", url, timeout_s=1.0)[0] == 200
        except OSError:
            return False

    def _after_start(self, first: bool) -> None:
        """Called once the server answers; `first` is True on its first start only."""

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> Self:
        if self.is_running():
            return self
        self._prepare()
        first = not getattr(self, "_started_once", False)
        with self.log_path.open("ab") as log:
            log.write(f"\n--- start {time.strftime('%H:%M:%S')}: {self._command()}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,  # Ctrl-C in pytest must not kill it before teardown
            )
        self._proc = proc
        _LIVE.add(proc)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._ready():
            if proc.poll() is not None:
                self._proc = None
                _LIVE.discard(proc)
                raise ServiceError(
                    f"{self.name} exited with code {proc.returncode} at start; "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ServiceError(
                    f"{self.name} did not answer on 127.0.0.1:{self.port} within "
                    f"{START_TIMEOUT_S:.0f} s; log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            time.sleep(0.05)
        self._after_start(first)
        self._started_once = True
        return self

    def stop(self) -> None:
        if self._proc is not None:
            _terminate(self._proc)
            self._proc = None

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        """The tail of the server's log, for assertion messages."""
        return log_tail(self.log_path)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<{type(self).__name__} 127.0.0.1:{self.port} {state} dir={self.dir}>"


class Mosquitto(Service):
    """Mosquitto 2.x with persistence in `tmpdir`, one plain listener on 127.0.0.1:port.

    `extra_conf` is appended after that listener, so it can add listener options (TLS
    `certfile`/`keyfile`), more `listener` blocks, `password_file`, `acl_file`, or set
    `allow_anonymous false`. A `per_listener_settings` line is moved to the top, where
    Mosquitto needs it. Sessions queue up to 1,000,000 messages, as deploy's broker does,
    unless `extra_conf` sets `max_queued_messages`.
    """

    name = "mosquitto"

    def __init__(
        self, tmpdir: str | os.PathLike[str], port: int | None = None, extra_conf: str = ""
    ) -> None:
        super().__init__(tmpdir, port)
        self.extra_conf = extra_conf
        self.conf_path = self.dir / "mosquitto.conf"
        self._ports: list[int] = []  # the TCP listeners of the written config

    def _prepare(self) -> None:
        extra = self.extra_conf.splitlines()
        head = [ln for ln in extra if ln.strip().startswith("per_listener_settings")]
        rest = [ln for ln in extra if ln not in head]
        lines = [
            *head,
            # run as whoever we are: as root Mosquitto would switch to the `mosquitto` user,
            # which may not be able to write to tmpdir.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            "persistence true",
            f"persistence_location {self.dir}/",
            "autosave_interval 1",
            f"log_dest file {self.log_path}",
            # not `all`: debug lines for every PUBLISH would slow a high-rate test
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "log_timestamp_format %H:%M:%S",
            # As deploy/mosquitto/mosquitto.conf: without it Nagle's algorithm holds the
            # tail of a snapshot until the subscriber's delayed ACK, up to 40 ms a message.
            "set_tcp_nodelay true",
            f"listener {self.port} 127.0.0.1",
        ]
        if not any(ln.strip().startswith("allow_anonymous") for ln in rest):
            lines.append("allow_anonymous true")
        if not any(ln.strip().startswith("max_queued_messages") for ln in rest):
            # As deploy/mosquitto: at Mosquitto's default of 1,000 queued messages a
            # session, a burst that outruns a subscriber is partly dropped by the broker
            # (182 of 2,000 seen in tests/collector/test_paho_io.py on a fast machine).
            lines.append("max_queued_messages 1000000")
        lines += rest
        self.conf_path.write_text("\n".join(lines) + "\n")
        # Every TCP listener is waited for, not only the first: Mosquitto opens them one
        # by one (a TLS one after loading its certificates), so the plain port can answer
        # while a client of the next one would still be refused. `listener 0` is a Unix
        # socket: no port to probe.
        found = (re.match(r"\s*listener\s+(\d+)", ln) for ln in lines)
        self._ports = [int(m.group(1)) for m in found if m and int(m.group(1))]

    def _ready(self) -> bool:
        return all(port_open(port) for port in self._ports)

    def _command(self) -> list[str]:
        return [binary("mosquitto") or "mosquitto", "-c", str(self.conf_path)]


class VictoriaMetrics(Service):
    """VictoriaMetrics single node, the InfluxDB 2.x stand-in (accepts `/api/v2/write`).

    Line protocol `meas field=1` is stored as metric `meas_field` with the tags as labels.
    With `tls` = (certificate file, key file) it serves HTTPS only, and `ca_file` (the
    PEM of the CA that signed the certificate) is what its own requests trust.
    """

    name = "victoria-metrics"

    def __init__(self, tmpdir: str | os.PathLike[str], port: int | None = None,
                 tls: tuple[Path, Path] | None = None, ca_file: Path | None = None) -> None:
        super().__init__(tmpdir, port)
        self.data_dir = self.dir / "vm-data"
        self.tls = tls
        self._context = None if ca_file is None else ssl.create_default_context(
            cafile=str(ca_file))

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _ready(self) -> bool:
        try:
            return http("GET", f"{self.url}/health", timeout_s=1.0,
                        context=self._context)[0] == 200
        except OSError:
            return False

    def _command(self) -> list[str]:
        tls = [] if self.tls is None else [
            "-tls", f"-tlsCertFile={self.tls[0]}", f"-tlsKeyFile={self.tls[1]}"]
        return [
            binary("victoria-metrics") or "victoria-metrics",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.data_dir}",
            "-retentionPeriod=100y",  # tests write old timestamps on purpose
            # Keep one sample per series and timestamp, as InfluxDB does (a re-delivered
            # snapshot overwrites itself); without it VictoriaMetrics keeps duplicates.
            "-dedup.minScrapeInterval=1ms",
            "-search.disableCache",  # a read right after a write must see it
            "-search.latencyOffset=0s",
            "-loggerLevel=WARN",
            "-http.shutdownDelay=0s",
            *tls,
        ]

    def flush(self) -> None:
        """Make everything written so far readable now (otherwise ~1 s later)."""
        status, body = http("GET", f"{self.url}/internal/force_flush", context=self._context)
        if status != 200:
            raise ServiceError(f"force_flush: HTTP {status}: {body[:200]!r}")

    def export(self, match: str) -> list[dict[str, Any]]:
        """Series matching a selector like `card_temp_c{site="s1"}`, one dict per series.

        Each dict is `{"metric": {"__name__": ..., label: value}, "values": [...],
        "timestamps": [ms, ...]}`. The time range is explicit because the default end is
        "now minus 1 s", which would hide the point a test has just written.
        """
        end_s = int(time.time()) + 3 * 86400  # VictoriaMetrics refuses > ~2 days ahead anyway
        query = urllib.parse.urlencode({"match[]": match, "start": "0", "end": str(end_s)})
        status, body = http("GET", f"{self.url}/api/v1/export?{query}", context=self._context)
        if status != 200:
            raise ServiceError(f"export {match}: HTTP {status}: {body[:300]!r}")
        return [json.loads(line) for line in body.splitlines() if line.strip()]


class InfluxDB1(Service):
    """InfluxDB 1.x (Debian ships 1.6.7) with auth on, an admin user and database `ledwatch`.

    Auth is on because with it off InfluxDB ignores every credential, so a test could
    not tell a client that authenticates from one that does not.
    """

    name = "influxd"

    def __init__(
        self,
        tmpdir: str | os.PathLike[str],
        port: int | None = None,
        auth: bool = True,
        username: str = "admin",
        password: str = "ledwatch-test-pw",
        database: str = "ledwatch",
    ) -> None:
        super().__init__(tmpdir, port)
        self.auth = auth
        self.username = username
        self.password = password
        self.database = database
        self.rpc_port = free_port()
        self.conf_path = self.dir / "influxdb.conf"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _prepare(self) -> None:
        d = self.dir
        self.conf_path.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
[coordinator]
  log-queries-after = "0s"
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {"true" if self.auth else "false"}
  log-enabled = false
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[continuous_queries]
  enabled = false
"""
        )

    def _command(self) -> list[str]:
        return [binary("influxd") or "influxd", "-config", str(self.conf_path)]

    def _ready(self) -> bool:
        try:
            return http("GET", f"{self.url}/ping", timeout_s=1.0)[0] == 204
        except OSError:
            return False

    def _after_start(self, first: bool) -> None:
        if not first:
            return
        # With auth on, InfluxDB accepts exactly one unauthenticated query: creating the
        # first admin user.
        q = f"CREATE USER \"{self.username}\" WITH PASSWORD '{self.password}' WITH ALL PRIVILEGES"
        status, body = http(
            "POST",
            f"{self.url}/query",
            urllib.parse.urlencode({"q": q}).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        if status != 200 or b'"error"' in body:
            raise ServiceError(f"creating the admin user: HTTP {status}: {body[:300]!r}")
        self.query(f'CREATE DATABASE "{self.database}"')

    def headers(self) -> dict[str, str]:
        return basic_auth(self.username, self.password)

    def query(self, influxql: str, database: str | None = None) -> dict[str, Any]:
        """Run InfluxQL (POST, so CREATE/DROP work too) and return the JSON answer.

        Raises ServiceError on an HTTP error or a statement error, so a typo in a test's
        query fails loudly rather than looking like "no rows".
        """
        form = {"q": influxql, "db": database or self.database, "epoch": "ms"}
        status, body = http(
            "POST",
            f"{self.url}/query",
            urllib.parse.urlencode(form).encode(),
            {"Content-Type": "application/x-www-form-urlencoded", **self.headers()},
        )
        if status != 200:
            raise ServiceError(f"query {influxql!r}: HTTP {status}: {body[:300]!r}")
        answer: dict[str, Any] = json.loads(body)
        errors = [r["error"] for r in answer.get("results", []) if "error" in r]
        if "error" in answer or errors:
            raise ServiceError(f"query {influxql!r}: {answer.get('error') or errors}")
        return answer

    def write(self, lines: str, precision: str = "ns", database: str | None = None) -> None:
        """POST line protocol to `/write` with Basic auth; raises ServiceError unless 204."""
        query = urllib.parse.urlencode({"db": database or self.database, "precision": precision})
        status, body = http("POST", f"{self.url}/write?{query}", lines.encode(), self.headers())
        if status != 204:
            raise ServiceError(f"write: HTTP {status}: {body[:300]!r}")

    def rows(self, influxql: str) -> list[dict[str, Any]]:
        """The first statement's rows as dicts (column -> value), tags merged in; [] if none."""
        out: list[dict[str, Any]] = []
        result = self.query(influxql)["results"][0]
        for series in result.get("series", []):
            for values in series.get("values", []):
                row = dict(series.get("tags") or {})
                row.update(zip(series["columns"], values, strict=True))
                out.append(row)
        return out


class Alertmanager(Service):
    """Prometheus Alertmanager (Debian ships 0.25) routing every alert to one webhook.

    `webhook_url` is the receiver the test runs. Each alert is its own group (`group_by:
    ['...']`) and the group timers are `group_wait_s` / `group_interval_s` (1 s by
    default, so a test sees a firing and a resolved notification within seconds);
    `send_resolved` is on. Clustering is off (its gossip port would bind every
    interface), the data (silences, notification log) lives in `tmpdir`.
    """

    name = "alertmanager"
    ready_path = "/-/ready"

    def __init__(
        self,
        tmpdir: str | os.PathLike[str],
        port: int | None = None,
        webhook_url: str = "http://127.0.0.1:9/",
        group_wait_s: float = 1.0,
        group_interval_s: float = 1.0,
        repeat_interval_s: float = 3600.0,
        resolve_timeout_s: float = 300.0,
    ) -> None:
        super().__init__(tmpdir, port)
        self.webhook_url = webhook_url
        self.group_wait_s = group_wait_s
        self.group_interval_s = group_interval_s
        self.repeat_interval_s = repeat_interval_s
        self.resolve_timeout_s = resolve_timeout_s
        self.conf_path = self.dir / "alertmanager.yml"
        self.data_dir = self.dir / "am-data"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _prepare(self) -> None:
        # JSON is YAML, so no YAML library is needed here.
        config = {
            "global": {"resolve_timeout": f"{self.resolve_timeout_s:g}s"},
            "route": {
                "receiver": "test",
                "group_by": ["..."],
                "group_wait": f"{self.group_wait_s:g}s",
                "group_interval": f"{self.group_interval_s:g}s",
                "repeat_interval": f"{self.repeat_interval_s:g}s",
            },
            "receivers": [
                {
                    "name": "test",
                    "webhook_configs": [{"url": self.webhook_url, "send_resolved": True}],
                }
            ],
        }
        self.conf_path.write_text(json.dumps(config, indent=2) + "\n")

    def _command(self) -> list[str]:
        return [
            binary("prometheus-alertmanager") or "prometheus-alertmanager",
            f"--config.file={self.conf_path}",
            f"--storage.path={self.data_dir}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds now (`GET /api/v2/alerts`), active and not."""
        status, body = http("GET", f"{self.url}/api/v2/alerts")
        if status != 200:
            raise ServiceError(f"GET /api/v2/alerts: HTTP {status}: {body[:300]!r}")
        answer: list[dict[str, Any]] = json.loads(body)
        return answer


class Tinyproxy(Service):
    """Tinyproxy, an HTTP forward proxy: absolute-URI requests and CONNECT tunnels.

    Listens on 127.0.0.1:port and lets only 127.0.0.1 in. With `auth` = (user,
    password) it answers 407 to a request without those Basic credentials. Every
    request is logged (`requests()`), so a test sees that a client went through it.
    """

    name = "tinyproxy"

    def __init__(
        self,
        tmpdir: str | os.PathLike[str],
        port: int | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(tmpdir, port)
        self.auth = auth
        self.conf_path = self.dir / "tinyproxy.conf"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _prepare(self) -> None:
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Allow 127.0.0.1",
            "Timeout 30",
            "MaxClients 50",
            "DisableViaHeader Yes",
            "LogLevel Info",
            f'LogFile "{self.log_path}"',
        ]
        if self.auth is not None:
            lines.append(f"BasicAuth {self.auth[0]} {self.auth[1]}")
        self.conf_path.write_text("\n".join(lines) + "\n")  # no ConnectPort: any port

    def _command(self) -> list[str]:
        return [binary("tinyproxy") or "tinyproxy", "-d", "-c", str(self.conf_path)]

    def requests(self) -> list[str]:
        """The request lines it has received ("POST http://...", "CONNECT host:port")."""
        if not self.log_path.exists():
            return []
        marker = "Request (file descriptor"
        return [line.split("): ", 1)[1].strip()
                for line in self.log_path.read_text(errors="replace").splitlines()
                if marker in line and "): " in line]


class Prometheus(Service):
    """Prometheus (Debian ships 2.42) scraping the targets it is given, nothing else.

    `targets` maps a job name to the URL of a `/metrics` page (`http://127.0.0.1:9464/metrics`);
    each job is scraped every `scrape_interval_s` (1 s by default, so a test sees samples
    within seconds). The web UI and HTTP API listen on 127.0.0.1:port, the TSDB lives in
    `tmpdir`; no remote write or read, no alerting, no rule files. Prometheus keeps
    `job` and `instance` labels and adds `up` per target. `set_targets()` rewrites the
    config; it is read at the next start (`restart()`).
    """

    name = "prometheus"
    ready_path = "/-/ready"

    def __init__(
        self,
        tmpdir: str | os.PathLike[str],
        port: int | None = None,
        targets: dict[str, str] | None = None,
        scrape_interval_s: float = 1.0,
    ) -> None:
        super().__init__(tmpdir, port)
        self.targets = dict(targets or {})
        self.scrape_interval_s = scrape_interval_s
        self.conf_path = self.dir / "prometheus.yml"
        self.data_dir = self.dir / "tsdb"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_targets(self, targets: dict[str, str]) -> None:
        self.targets = dict(targets)

    def _scrape_config(self, job: str, target: str) -> dict[str, Any]:
        url = urllib.parse.urlsplit(target)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ServiceError(f"prometheus target {job}: not an http(s) URL: {target!r}")
        interval = f"{self.scrape_interval_s:g}s"
        return {
            "job_name": job,
            "scheme": url.scheme,
            "metrics_path": url.path or "/metrics",
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "static_configs": [{"targets": [url.netloc]}],
        }

    def _prepare(self) -> None:
        interval = f"{self.scrape_interval_s:g}s"
        config = {  # JSON is YAML, so no YAML library is needed here
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [self._scrape_config(j, t) for j, t in self.targets.items()],
        }
        self.conf_path.write_text(json.dumps(config, indent=2) + "\n")

    def _command(self) -> list[str]:
        return [
            binary("prometheus") or "prometheus",
            f"--config.file={self.conf_path}",
            f"--storage.tsdb.path={self.data_dir}",
            "--storage.tsdb.retention.time=1d",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]

    def _api(self, path: str, params: dict[str, str] | None = None) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        status, body = http("GET", f"{self.url}{path}{query}")
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if status != 200 or not isinstance(answer, dict) or answer.get("status") != "success":
            raise ServiceError(f"GET {path}{query}: HTTP {status}: {body[:300]!r}")
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant PromQL query; one `{"metric": {labels}, "value": float}` per series."""
        data = self._api("/api/v1/query", {"query": expr})
        if data.get("resultType") == "scalar":
            return [{"metric": {}, "value": float(data["result"][1])}]
        return [
            {"metric": dict(item["metric"]), "value": float(item["value"][1])}
            for item in data.get("result", [])
        ]

    def targets_health(self) -> dict[str, dict[str, Any]]:
        """Job name -> its active target's state (`health` "up" / "down" / "unknown",
        `lastError`, `scrapeUrl`) from `/api/v1/targets`."""
        data = self._api("/api/v1/targets", {"state": "active"})
        return {t["labels"]["job"]: t for t in data.get("activeTargets", [])}


class PostgreSQL(Service):
    """PostgreSQL 15 (Debian) in a private cluster: `initdb` once into `tmpdir`, trust auth
    for user `ledwatch` on 127.0.0.1 only, durability off (tests need speed, not a disk
    that survives a power cut). Run as root, the server runs as the `postgres` user (it
    refuses root), and its folder is handed to that user.
    """

    name = "postgresql"
    user = "ledwatch"

    def __init__(self, tmpdir: str | os.PathLike[str], port: int | None = None) -> None:
        super().__init__(tmpdir, port)
        root = self.dir
        if os.geteuid() == 0:
            # The `postgres` user cannot enter root's 0700 pytest folders: its cluster
            # lives in a folder of its own, removed when the test run ends.
            import tempfile

            root = Path(tempfile.mkdtemp(prefix="ledwatch-pg-"))
            owner = pwd.getpwnam("postgres")
            os.chown(root, owner.pw_uid, owner.pw_gid)
            atexit.register(shutil.rmtree, root, True)
        self.data_dir = root / "pgdata"
        self.socket_dir = root / "sock"

    def _bin(self, name: str) -> str:
        found = binary("postgres")
        return str(Path(found).parent / name) if found else name

    def _as_owner(self, cmd: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return cmd
        return ["runuser", "-u", "postgres", "--", *cmd]

    def _prepare(self) -> None:
        self.socket_dir.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.socket_dir, owner.pw_uid, owner.pw_gid)
        if (self.data_dir / "PG_VERSION").exists():
            return
        with self.log_path.open("ab") as log:
            subprocess.run(
                self._as_owner([self._bin("initdb"), "-D", str(self.data_dir), "-U", self.user,
                                "--auth=trust", "--encoding=UTF8", "--no-sync"]),
                stdout=log, stderr=subprocess.STDOUT, check=True, cwd=self.socket_dir,
            )

    def _command(self) -> list[str]:
        return self._as_owner([
            self._bin("postgres"), "-D", str(self.data_dir), "-h", "127.0.0.1",
            "-p", str(self.port), "-k", str(self.socket_dir), "-c", "fsync=off",
            "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "max_connections=200",
        ])

    def _ready(self) -> bool:
        if not port_open(self.port):
            return False
        return self.psql("SELECT 1", check=False).returncode == 0

    def psql(self, sql: str, database: str = "postgres",
             check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self._bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
             "-d", database, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql],
            capture_output=True, text=True, check=check, timeout=30,
        )

    def create_database(self, name: str) -> str:
        """A new empty database; returns its SQLAlchemy URL (psycopg 3)."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"


class PtyPair:
    """Two linked pseudo-terminals from socat: bytes written to `.a` come out of `.b` and back.

    A real serial line without hardware: drivers open `.a`, an emulator opens `.b`.
    """

    def __init__(self, tmpdir: str | os.PathLike[str]) -> None:
        self.dir = Path(tmpdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.a = str(self.dir / "ttyA")
        self.b = str(self.dir / "ttyB")
        self.log_path = self.dir / "socat.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        for link in (self.a, self.b):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(link)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    binary("socat") or "socat",
                    "-d",
                    "-d",
                    f"pty,raw,echo=0,link={self.a}",
                    f"pty,raw,echo=0,link={self.b}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _LIVE.add(self._proc)
        deadline = time.monotonic() + 10.0
        # socat logs "starting data transfer loop" once both ends exist and are linked.
        while "starting data transfer loop" not in log_tail(self.log_path, 50):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ServiceError(f"socat pty pair failed:\n{log_tail(self.log_path)}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._proc is not None:
            _terminate(self._proc)
            self._proc = None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def socat_pty_pair(tmpdir: str | os.PathLike[str]) -> PtyPair:
    """A started PtyPair whose links live in `tmpdir`; call `.stop()` when done."""
    return PtyPair(tmpdir).start()


# -- installation -------------------------------------------------------------------------


def _running_pids(comm: str) -> list[int]:
    """Pids of processes named `comm` that we did not start (i.e. system services)."""
    ours = {p.pid for p in _LIVE}
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in ours:
            continue
        with contextlib.suppress(OSError):
            if (entry / "comm").read_text().strip() == comm[:15]:
                pids.append(int(entry.name))
    return pids


def _run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env, stdin=subprocess.DEVNULL)


@contextlib.contextmanager
def _no_service_starts(sudo: list[str]) -> Iterator[None]:
    """Tell invoke-rc.d / deb-systemd-invoke not to start services while packages install.

    Debian's standard switch is /usr/sbin/policy-rc.d exiting 101; containers usually
    have one already, a fresh VM does not, so we add one only for the install.
    """
    policy = Path("/usr/sbin/policy-rc.d")
    if policy.exists():
        yield
        return
    script = "#!/bin/sh\n# temporary, from ledwatch scripts/services.py install\nexit 101\n"
    _run([*sudo, "sh", "-c", f"printf '%s' '{script}' > {policy} && chmod 755 {policy}"])
    try:
        yield
    finally:
        _run([*sudo, "rm", "-f", str(policy)])


def _sudo() -> list[str] | None:
    """The prefix for root commands: [] as root, sudo otherwise (never prompting in CI)."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") is None:
        return None
    return ["sudo", "-n"] if os.environ.get("CI") == "true" else ["sudo"]


def apt_install(packages: list[str]) -> int:
    """apt-get update + install, non-interactive, leaving no package service running."""
    sudo = _sudo()
    if sudo is None:
        print("services: not root and no sudo; as root run: apt-get install", *packages)
        return 1
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with _no_service_starts(sudo):
        _run([*sudo, "apt-get", "update", "-q"], env)
        _run(
            [*sudo, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q",
             "--no-install-recommends", *packages],
            env,
        )
    # Belt and braces: a package whose service started anyway would hold the default port.
    for service, comm in SYSTEM_SERVICES.items():
        if service in packages and _running_pids(comm):
            print(f"services: stopping the system {service} service started by its package")
            with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
                _run([*sudo, "service", service, "stop"])
            for pid in _running_pids(comm):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGTERM)
    return 0


def install() -> int:
    """Install the Debian packages for the missing commands; no-op when all are present."""
    missing = missing_binaries()
    libraries = missing_libraries()
    if not missing and not libraries:
        print(f"services: {', '.join(BINARIES)} all present")
        return 0
    packages = sorted({BINARIES[name][1] for name in missing} | {LIBRARIES[n] for n in libraries})
    missing += [f"lib{name}" for name in libraries]
    print(f"services: missing {', '.join(missing)}; installing {' '.join(packages)}")
    try:
        rc = apt_install(packages)
    except subprocess.CalledProcessError as exc:
        print(f"services: {exc}")
        return 1
    still = missing_binaries() + [f"lib{name}" for name in missing_libraries()]
    if rc or still:
        print(f"services: still missing after install: {', '.join(still)}")
        return 1
    print("services: installed")
    return 0


def install_venv_support() -> int:
    """Debian splits `venv`/ensurepip into python3-venv, absent on a fresh install."""
    print("services: `python3 -m venv` failed; installing python3-venv")
    try:
        return apt_install(["python3-venv"])
    except subprocess.CalledProcessError as exc:
        print(f"services: {exc}")
        return 1


def install_compiler() -> int:
    """The collector's compiled parts (setup.py) need a C compiler and this Python's
    headers; a fresh Debian may have neither. Nothing is done when both are there."""
    import sysconfig

    header = Path(sysconfig.get_paths()["include"]) / "Python.h"
    missing = [pkg for pkg, ok in (("gcc", shutil.which("cc") or shutil.which("gcc")),
                                   ("python3-dev", header.is_file())) if not ok]
    if not missing:
        return 0
    print(f"services: for the compiled parts, installing {' '.join(missing)}")
    try:
        return apt_install(missing)
    except subprocess.CalledProcessError as exc:  # the install goes on, pure Python
        print(f"services: {exc}")
        return 1


def _serve(names: list[str]) -> int:
    """Start services in the foreground for manual poking; Ctrl-C stops them."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="ledwatch-services-"))
    classes: dict[str, type[Service]] = {
        "mosquitto": Mosquitto,
        "victoria": VictoriaMetrics,
        "influxdb1": InfluxDB1,
        "alertmanager": Alertmanager,
        "prometheus": Prometheus,
        "postgresql": PostgreSQL,
    }
    started = []
    for n in names:
        svc = classes[n](root / n)
        if isinstance(svc, Prometheus):  # something to scrape by hand: itself
            svc.set_targets({"prometheus": f"{svc.url}/metrics"})
        started.append(svc.start())
    for svc in started:
        print(f"{svc.name}: 127.0.0.1:{svc.port} (log {svc.log_path})", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        for svc in started:
            svc.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("install", help="apt-get install the servers the tests need, if missing")
    sub.add_parser("install-venv", help="apt-get install python3-venv (for `make venv`)")
    sub.add_parser("install-compiler",
                   help="apt-get install gcc / python3-dev if missing (for `make venv`)")
    sub.add_parser("check", help="exit 1 if a needed command is missing")
    serve = sub.add_parser("serve", help="run servers in the foreground until Ctrl-C")
    serve.add_argument("names", nargs="*", default=["mosquitto", "victoria", "influxdb1"],
                       choices=["mosquitto", "victoria", "influxdb1", "alertmanager",
                                "prometheus", "postgresql"])
    args = parser.parse_args(argv)
    if args.cmd == "install":
        return install()
    if args.cmd == "install-venv":
        return install_venv_support()
    if args.cmd == "install-compiler":
        return install_compiler()
    if args.cmd == "check":
        missing = missing_binaries()
        print("missing: " + ", ".join(missing) if missing else "all present")
        return 1 if missing else 0
    return _serve(args.names)


if __name__ == "__main__":
    sys.exit(main())
