"""The real servers of one benchmark run, started through scripts/services.py.

`Stack` owns Mosquitto, the database under test (InfluxDB 1.x with auth on for output
"v1", VictoriaMetrics for "v2") and PostgreSQL (the shared ticket database of several
collectors), all private child processes on 127.0.0.1 free ports with their data in one
folder. `Stack.close()` stops them; services.py's atexit hook is the second net.

Also here, because only the benchmark needs them: counting stored snapshots (the
`controller` point carries `seq`, one point per snapshot) and dropping an MQTT session
(a collector's persistent session would otherwise keep queueing for a run that ended).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

if TYPE_CHECKING:
    from services import InfluxDB1, Mosquitto, PostgreSQL, VictoriaMetrics  # scripts/

INFLUX_DATABASE = "ledwatch"
NODERED_DATABASE = "nodered"
# Before each measured phase: the server at rest means below 5 % of a core for 1 s,
# waited for at most 60 s (`Stack.settle_db`).
SETTLE_QUIET_CORES = 0.05
SETTLE_WINDOW_S = 1.0
SETTLE_MAX_S = 60.0


class BenchError(RuntimeError):
    """The benchmark cannot go on (a server did not start, a check failed)."""


def services_module() -> ModuleType:
    """scripts/services.py of this checkout (the benchmark needs a source checkout)."""
    loaded = sys.modules.get("services")
    if loaded is not None and hasattr(loaded, "Mosquitto"):
        return loaded
    path = Path(__file__).resolve().parents[3] / "scripts" / "services.py"
    if not path.is_file():
        raise BenchError(f"{path} not found: `ledwatch bench fleet` runs from a source checkout")
    spec = importlib.util.spec_from_file_location("services", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["services"] = module
    spec.loader.exec_module(module)
    return module


def broker_conf(max_queued: int) -> str:
    """What the benchmark adds to services.Mosquitto's config (deploy/mosquitto values).

    A stopped collector's persistent session must hold the whole backlog: Mosquitto drops
    QoS 1 messages past `max_queued_messages` (default 1000). `autosave_interval` is the
    deploy value (services.py saves every second, which with a large queue rewrites it
    every second); `$SYS` every second shows what the broker holds.
    """
    return "\n".join([
        f"max_queued_messages {max(1_000_000, max_queued)}",
        "max_queued_bytes 0",
        "max_inflight_messages 100",
        "autosave_interval 60",
        "sys_interval 1",
    ]) + "\n"  # fmt: skip


def version_of(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0].strip() if text else "?"


def proc_cpu_s(pid: int) -> float | None:
    """utime + stime of a process (all its threads) from /proc, seconds; None if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_list(cpus: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


class Stack:
    def __init__(self, root: Path, output: str, max_queued: int, postgres: bool = True,
                 db_cpus: frozenset[int] | None = None) -> None:
        if output not in ("v1", "v2"):
            raise BenchError(f"output {output!r}: only v1 (InfluxDB 1.x) and v2 (VictoriaMetrics)")
        self.root, self.output = root, output
        self.svc = services_module()
        self.started: list[Any] = []
        missing = [b for b in ("mosquitto", "influxd" if output == "v1" else "victoria-metrics")
                   if self.svc.binary(b) is None]  # fmt: skip
        if missing:
            raise BenchError(f"{', '.join(missing)} not installed: run `python3 "
                             "scripts/services.py install` (or `make services`)")  # fmt: skip
        self.broker: Mosquitto = self.svc.Mosquitto(root / "mosquitto",
                                                    extra_conf=broker_conf(max_queued))
        self.influx: InfluxDB1 | None = None
        self.victoria: VictoriaMetrics | None = None
        self.postgres: PostgreSQL | None = None
        self.want_postgres = postgres and self.svc.binary("postgres") is not None
        self.db_cpus = db_cpus
        self.other_cpus: frozenset[int] | None = None

    def start(self) -> Stack:
        try:
            if self.db_cpus:
                # The server inherits the CPUs of the thread that starts it; this process
                # and all it starts after (broker, collectors, writers) keep to the rest.
                self.other_cpus = frozenset(os.sched_getaffinity(0)) - self.db_cpus
                os.sched_setaffinity(0, self.other_cpus)
            self._start(self.broker)
            with self._on_db_cpus():
                if self.output == "v1":
                    self.influx = self._start(self.svc.InfluxDB1(self.root / "influxdb"))
                else:
                    self.victoria = self._start(self.svc.VictoriaMetrics(self.root / "victoria"))
            if self.want_postgres:
                self.postgres = self._start(self.svc.PostgreSQL(self.root / "postgresql"))
        except Exception:
            self.close()
            raise
        return self

    @contextlib.contextmanager
    def _on_db_cpus(self) -> Iterator[None]:
        if not self.db_cpus or self.other_cpus is None:
            yield
            return
        os.sched_setaffinity(0, self.db_cpus)
        try:
            yield
        finally:
            os.sched_setaffinity(0, self.other_cpus)

    def cpu_note(self) -> str:
        """How the CPUs were shared, for the report ("" when they were not split)."""
        if not self.db_cpus or self.other_cpus is None:
            return ""
        return (f"database server on CPU {_cpu_list(self.db_cpus)}, everything else "
                f"(broker, collectors, writers, Node-RED) on CPU {_cpu_list(self.other_cpus)}")

    def _start(self, service: Any) -> Any:
        self.started.append(service)
        return service.start()

    def close(self) -> None:
        if self.db_cpus and self.other_cpus is not None:
            os.sched_setaffinity(0, self.other_cpus | self.db_cpus)
        for service in reversed(self.started):
            try:
                service.stop()
            except Exception as exc:  # stop the others anyway
                print(f"fleet: stopping {service!r}: {exc}", file=sys.stderr)
        self.started = []

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the database under test -----------------------------------------------------------

    def db_cpu_s(self) -> float | None:
        """The database server's utime + stime so far, None if it cannot be read: cores
        used over a span = its growth / the span (what the ceiling leaves the collector
        on a machine of few cores)."""
        svc = self.influx if self.output == "v1" else self.victoria
        proc = getattr(svc, "_proc", None)
        return None if proc is None else proc_cpu_s(proc.pid)

    def settle_db(self, quiet_cores: float = SETTLE_QUIET_CORES,
                  window_s: float = SETTLE_WINDOW_S, max_s: float = SETTLE_MAX_S) -> float:
        """Wait until the database server has used less than `quiet_cores` over one
        `window_s` (or `max_s` passed); the seconds waited.

        After a burst of millions of points the server goes on working on its own
        (InfluxDB snapshots its cache and compacts TSM files, VictoriaMetrics merges
        parts) for seconds. A phase that starts then shares the cores with that work
        and measures a busier server than the phase before it did. Every ceiling and
        every drain waits here first, so each starts on a server at rest."""
        start = time.monotonic()
        before = self.db_cpu_s()
        while before is not None and time.monotonic() - start < max_s:
            time.sleep(window_s)
            now = self.db_cpu_s()
            if now is None or now - before < quiet_cores * window_s:
                break
            before = now
        return time.monotonic() - start

    @property
    def db_url(self) -> str:
        svc = self.influx if self.output == "v1" else self.victoria
        assert svc is not None
        return str(svc.url)

    def credentials(self) -> tuple[str, str]:
        assert self.influx is not None
        return self.influx.username, self.influx.password

    def stored_snapshots(self, site: str, start_ms: int, end_ms: int,
                         database: str = INFLUX_DATABASE) -> int:  # fmt: skip
        """Snapshots of `site` stored with `start_ms <= ts < end_ms`: its controller points
        (one per snapshot, whatever the number of cards)."""
        if self.output == "v1":
            assert self.influx is not None
            q = (f"SELECT count(seq) FROM controller WHERE site = '{site}' "
                 f"AND time >= {start_ms}ms AND time < {end_ms}ms")  # fmt: skip
            rows = _rows(self.influx.query(q, database=database))
            return int(rows[0]["count"]) if rows else 0
        assert self.victoria is not None
        self.victoria.flush()
        series = self.victoria.export(f'controller_seq{{site="{site}"}}')
        return sum(len({t for t in s["timestamps"] if start_ms <= t < end_ms}) for s in series)

    def stored_series(self, site: str) -> dict[str, int]:
        """VictoriaMetrics only: metric name -> samples stored for `site` (what the
        encoder check compares between the collector and the plain writer)."""
        assert self.victoria is not None
        self.victoria.flush()
        out: dict[str, int] = {}
        for s in self.victoria.export(f'{{site="{site}"}}'):
            name = s["metric"]["__name__"]
            out[name] = out.get(name, 0) + len(s["timestamps"])
        return out

    def create_influx_database(self, name: str) -> None:
        assert self.influx is not None
        self.influx.query(f'CREATE DATABASE "{name}"')

    def ticket_db_url(self, name: str) -> str:
        """A fresh ticket database: PostgreSQL if it runs, else an SQLite file."""
        if self.postgres is not None:
            return str(self.postgres.create_database(name))
        return f"sqlite:///{self.root / (name + '.db')}"

    # -- MQTT ------------------------------------------------------------------------------

    def drop_session(self, client_id: str, mqtt_version: int = 5) -> None:
        """Connect as `client_id` with a clean start (MQTT 5: and session expiry 0; 3.1.1:
        clean session), then leave: the broker forgets that session and its queue."""
        if mqtt_version == 5:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                 protocol=mqtt.MQTTv5)  # fmt: skip
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0
            connect: dict[str, Any] = {"clean_start": True, "properties": props}
        else:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                 protocol=mqtt.MQTTv311, clean_session=True)  # fmt: skip
            connect = {}
        try:
            client.connect(self.broker.host, self.broker.port, **connect)
            client.loop_start()
            deadline = time.monotonic() + 5
            while not client.is_connected() and time.monotonic() < deadline:
                time.sleep(0.02)
            client.disconnect()
            client.loop_stop()
        except OSError as exc:
            print(f"fleet: could not drop the MQTT session {client_id}: {exc}", file=sys.stderr)

    def versions(self) -> dict[str, str]:
        svc = self.svc
        out = {"mosquitto": version_of([svc.binary("mosquitto") or "mosquitto", "-h"])}
        if self.output == "v1":
            out["influxdb"] = version_of([svc.binary("influxd") or "influxd", "version"])
        else:  # Debian's build prints no -version: ask the package
            out["victoria-metrics"] = "VictoriaMetrics " + version_of(
                ["dpkg-query", "-W", "-f", "${Version}", "victoria-metrics"])
        if self.postgres is not None:
            out["postgresql"] = version_of([svc.binary("postgres") or "postgres", "--version"])
        return out


def stack_owns(stack: Stack, proc: subprocess.Popen[bytes]) -> None:
    """A child the benchmark started: services.py's atexit hook kills it if we cannot."""
    stack.svc._LIVE.add(proc)


def stop_process(stack: Stack, proc: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
    """SIGTERM (a clean stop), SIGKILL if it is still there after `timeout_s`."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    stack.svc._LIVE.discard(proc)


def _rows(answer: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for series in answer["results"][0].get("series", []):
        for values in series.get("values", []):
            out.append(dict(zip(series["columns"], values, strict=True)))
    return out


def influx_write_url(base: str, output: str, user: str = "", password: str = "",
                     database: str = INFLUX_DATABASE) -> str:  # fmt: skip
    """The plain write endpoint: v1 `POST /write` with u/p, v2 `POST /api/v2/write`."""
    if output == "v1":
        q = {"db": database, "precision": "ms", "u": user, "p": password}
        return f"{base}/write?{urllib.parse.urlencode(q)}"
    q = {"org": "ledwatch", "bucket": "ledwatch", "precision": "ms"}
    return f"{base}/api/v2/write?{urllib.parse.urlencode(q)}"
