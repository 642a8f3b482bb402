"""The collector under test, as a user runs it: `python -m ledwatch.cli collector --config`.

Everything the benchmark learns about it comes through public doors: the config file it
writes, the Prometheus text of `/metrics` (`ledwatch_collector_received_total`,
`_stored_points_total`, `_pending`, `_dead_letters_total`, `_ticket_errors_total`), the
REST API (`/api/v1/health`, `/api/v1/tickets`), what is in the database, and the
process's own accounting in /proc (utime + stime, VmHWM).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ledwatch.bench.fleet.servers import (
    INFLUX_DATABASE,
    BenchError,
    Stack,
    proc_cpu_s,
    stack_owns,
    stop_process,
)
from ledwatch.bench.fleet.stats import metric_sum, parse_metrics

ADMIN_TOKEN = "fleet-bench-admin-token-0001"
M = "ledwatch_collector_"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
# The fleet's screens stop and start with every phase: an agent silent for minutes is
# the benchmark's doing, not a fault to ticket.
AGENT_SILENCE_S = 30 * 86400.0


def config_text(stack: Stack, *, client_id: str, share_group: str, api_port: int,
                database_url: str, workdir: Path, members: tuple[str, ...] = (),
                influx_extra: str = "") -> str:  # fmt: skip
    """A collector config: the defaults except where the run needs its own values.

    With `members` (the client ids of every collector of the run) the collectors form a
    `[cluster]` as docs/scaling.md tells a user to: each keeps the agents it owns, so
    detection sees every snapshot of its screens. `influx_extra` is TOML added to
    `[influx]` (tests turn the collector's own series off with it).
    """
    secret = workdir / "influx-secret"
    if stack.output == "v1":
        user, password = stack.credentials()
        secret.write_text(password + "\n")
        influx = (f'output = "v1"\nurl = "{stack.db_url}"\ndatabase = "{INFLUX_DATABASE}"\n'
                  f'username = "{user}"\npassword_file = "{secret}"\n')  # fmt: skip
    else:
        secret.write_text("unused-by-victoria-metrics\n")
        influx = (f'output = "v2"\nurl = "{stack.db_url}"\norg = "ledwatch"\n'
                  f'bucket = "ledwatch"\ntoken_file = "{secret}"\n')  # fmt: skip
    return f"""# written by `ledwatch bench fleet`
log_level = "INFO"
status_interval_s = 10.0
[mqtt]
host = "{stack.broker.host}"
port = {stack.broker.port}
client_id = "{client_id}"
share_group = "{share_group}"
clean_start = false
protocol = "5"
[influx]
{influx}{influx_extra}[database]
url = "{database_url}"
[api]
enabled = true
host = "127.0.0.1"
port = {api_port}
[[api.tokens]]
token = "{ADMIN_TOKEN}"
role = "admin"
[detect]
agent_silence_s = {AGENT_SILENCE_S}
[reports]
enabled = false
folder = "{workdir / 'reports'}"
""" + (f"[cluster]\nmembers = {json.dumps(list(members))}\n" if members else "")


def member_id(name: str) -> str:
    return f"bench-{name}"


@dataclass
class Sample:
    """One look at a collector: counters from /metrics and the process's CPU."""

    t: float
    received: float
    stored_points: float
    pending: float
    dead_letters: float
    ticket_errors: float
    cpu_s: float


class CollectorProc:
    def __init__(self, stack: Stack, workdir: Path, name: str, share_group: str,
                 database_url: str, members: tuple[str, ...] = (),
                 influx_extra: str = "") -> None:  # fmt: skip
        self.stack, self.name = stack, name
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.client_id = member_id(name)
        self.port = stack.svc.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = self.dir / "collector.toml"
        self.config.write_text(config_text(
            stack, client_id=self.client_id, share_group=share_group, api_port=self.port,
            database_url=database_url, workdir=self.dir, members=members,
            influx_extra=influx_extra))  # fmt: skip
        self.log_path = self.dir / "collector.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.url, timeout=10.0,
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})  # fmt: skip

    # -- lifecycle -------------------------------------------------------------------------

    def spawn(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ledwatch.cli", "collector", "--config", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
            )  # fmt: skip
        stack_owns(self.stack, self.proc)

    def wait_up(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until the API answers and says the broker is connected (then its SUBSCRIBE)."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise BenchError(f"collector {self.name} exited at start:\n{self.log_tail()}")
            try:
                body = self.http.get("/api/v1/health", timeout=1.0).json()
                if body.get("parts", {}).get("broker", {}).get("ok"):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"collector {self.name} not up within {timeout_s:.0f} s:\n"
                                 f"{self.log_tail()}")  # fmt: skip
            time.sleep(0.05)

    def start(self) -> None:
        self.spawn()
        self.wait_up()

    def stop(self) -> None:
        """SIGTERM: the collector stores and acks what it took, then exits."""
        stop_process(self.stack, self.proc, STOP_TIMEOUT_S)
        self.proc = None

    def close(self) -> None:
        self.stop()
        self.http.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- what it says ----------------------------------------------------------------------

    def metrics(self) -> dict[str, float]:
        resp = self.http.get("/metrics")
        resp.raise_for_status()
        return parse_metrics(resp.text)

    def sample(self) -> Sample:
        m = self.metrics()
        return Sample(
            t=time.monotonic(),
            received=metric_sum(m, M + "received_total", 'kind="telemetry"'),
            stored_points=metric_sum(m, M + "stored_points_total"),
            pending=metric_sum(m, M + "pending"),
            dead_letters=metric_sum(m, M + "dead_letters_total"),
            ticket_errors=metric_sum(m, M + "ticket_errors_total"),
            cpu_s=self.cpu_s(),
        )

    def cpu_s(self) -> float:
        """utime + stime of the collector process (all its threads), seconds."""
        cpu = None if self.proc is None else proc_cpu_s(self.proc.pid)
        return 0.0 if cpu is None else cpu

    def rss_peak_mb(self) -> float:
        if self.proc is None:
            return 0.0
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def tickets(self, site: str, screen: str | None = None) -> list[dict[str, Any]]:
        """Every ticket of `site` (and `screen`) through GET /api/v1/tickets, all pages."""
        out: list[dict[str, Any]] = []
        params: dict[str, str | int] = {"site": site, "limit": 1000, "offset": 0}
        if screen is not None:
            params["screen"] = screen
        while True:
            resp = self.http.get("/api/v1/tickets", params=params)
            resp.raise_for_status()
            body = resp.json()
            out += body["data"]
            if not body["data"] or len(out) >= int(body["count"]):
                return out
            params["offset"] = len(out)
