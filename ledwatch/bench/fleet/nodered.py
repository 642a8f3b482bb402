"""Node-RED beside the collector: the flow integrators wire up instead (issue 11).

Installed from npm into a folder (`npm install --prefix DIR node-red
node-red-contrib-influxdb`; an existing install there is reused), run as
`node DIR/node_modules/node-red/red.js --userDir RUN --settings RUN/settings.js` on a
free 127.0.0.1 port with the editor off (Node-RED finds the InfluxDB nodes in the
node_modules it was installed in), and the flow

    mqtt in (QoS 1, persistent session kept at stop, JSON) -> function (snapshot -> points)
        -> influxdb batch (InfluxDB 1.x, precision ms) -> database "nodered"

The function makes the same points as the benchmark's encoder (lineproto.py). It writes
to its own database because node-influx writes every number as a float, and InfluxDB
refuses a float into a field the collector stores as an integer (module_faults, seq).
Node-RED acknowledges a message when it arrives, not when it is stored; what a failed
write carried is gone. Snapshots lost = published - controller points stored.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ledwatch.bench.fleet.lineproto import AGENT, CARD, CONTROLLER, ENV, PSU, Spec
from ledwatch.bench.fleet.payloads import Fleet
from ledwatch.bench.fleet.publisher import FleetClient, publish_fleet_backlog
from ledwatch.bench.fleet.servers import (
    NODERED_DATABASE,
    BenchError,
    Stack,
    stack_owns,
    stop_process,
)

CLIENT_ID = "bench-nodered"
READY_TIMEOUT_S = 60.0
POLL_S = 0.25
STALL_S = 8.0


class NodeRedUnavailable(RuntimeError):
    """Node-RED cannot be installed or started here; the message says why."""


def red_js(prefix: Path) -> Path:
    return prefix / "node_modules" / "node-red" / "red.js"


def installed(prefix: Path) -> bool:
    return red_js(prefix).is_file() and \
        (prefix / "node_modules" / "node-red-contrib-influxdb" / "influxdb.js").is_file()


def install(prefix: Path, timeout_s: float) -> str:
    """Install Node-RED and the InfluxDB nodes into `prefix` unless there; returns versions."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise NodeRedUnavailable("node or npm is not installed (Debian: apt-get install npm)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True,
                             timeout=30).stdout.strip()  # fmt: skip
    if not installed(prefix):
        prefix.mkdir(parents=True, exist_ok=True)
        cmd = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
               "--loglevel=error", "node-red", "node-red-contrib-influxdb"]  # fmt: skip
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                                 cwd=prefix)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise NodeRedUnavailable(f"npm install did not finish within {timeout_s:.0f} s") \
                from None
        if out.returncode != 0 or not installed(prefix):
            tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-8:])
            raise NodeRedUnavailable(f"npm install failed (exit {out.returncode}):\n{tail}")
    pkg = json.loads((prefix / "node_modules" / "node-red" / "package.json").read_text())
    contrib = json.loads((prefix / "node_modules" / "node-red-contrib-influxdb" /
                          "package.json").read_text())  # fmt: skip
    return f"node {version}, node-red {pkg['version']}, node-red-contrib-influxdb " \
        f"{contrib['version']}"


def _js_spec(spec: Spec) -> str:
    return json.dumps([[name, kind] for name, kind in spec])


def function_js() -> str:
    """The function node: one snapshot -> the points lineproto.py makes, as node-influx
    point objects ({measurement, tags, fields, timestamp})."""
    return f"""
const d = msg.payload;
if (!d || d.schema !== "ledwatch.telemetry/1") {{ return null; }}
const where = {{site: d.site, screen: d.screen}};
const pick = (obj, spec) => {{
  const f = {{}}; let n = 0;
  for (const [k] of spec) {{ const v = obj ? obj[k] : null;
    if (v !== null && v !== undefined) {{ f[k] = v; n++; }} }}
  return n ? f : null;
}};
const cols = (sec, spec, key, meas, out) => {{
  if (!sec || !sec.id) {{ return; }}
  for (let i = 0; i < sec.id.length; i++) {{
    const f = {{}}; let n = 0;
    for (const [k] of spec) {{ const c = sec[k];
      if (c && c[i] !== null && c[i] !== undefined) {{ f[k] = c[i]; n++; }} }}
    if (n) {{ out.push({{measurement: meas, tags: {{...where, [key]: sec.id[i]}}, fields: f,
                        timestamp: d.ts}}); }}
  }}
}};
const points = [];
const ctl = pick(d.controller, {_js_spec(CONTROLLER)}) || {{}};
ctl.seq = d.seq;
points.push({{measurement: "controller", tags: where, fields: ctl, timestamp: d.ts}});
cols(d.cards, {_js_spec(CARD)}, "card", "card", points);
cols(d.psus, {_js_spec(PSU)}, "psu", "psu", points);
const env = pick(d.env, {_js_spec(ENV)});
if (env) {{ points.push({{measurement: "env", tags: where, fields: env, timestamp: d.ts}}); }}
const st = pick(d.stats, {_js_spec(AGENT)});
if (st) {{ points.push({{measurement: "agent", tags: {{site: d.site, agent: d.agent}},
                        fields: st, timestamp: d.ts}}); }}
msg.payload = points;
return msg;
"""


def flow(broker_port: int, influx_port: int) -> list[dict[str, object]]:
    return [
        {"id": "bench-tab", "type": "tab", "label": "ledwatch bench"},
        {"id": "bench-broker", "type": "mqtt-broker", "name": "mosquitto",
         "broker": "127.0.0.1", "port": str(broker_port), "clientid": CLIENT_ID,
         "autoConnect": True, "usetls": False, "protocolVersion": "4", "keepalive": "60",
         "cleansession": False, "autoUnsubscribe": False},
        {"id": "bench-in", "type": "mqtt in", "z": "bench-tab", "name": "telemetry",
         "topic": "ledwatch/v1/+/screen/+/telemetry", "qos": "1", "datatype": "json",
         "broker": "bench-broker", "nl": False, "rap": True, "rh": 0, "inputs": 0,
         "x": 120, "y": 80, "wires": [["bench-fn"]]},
        {"id": "bench-fn", "type": "function", "z": "bench-tab", "name": "to points",
         "func": function_js(), "outputs": 1, "x": 320, "y": 80, "wires": [["bench-out"]]},
        {"id": "bench-influx", "type": "influxdb", "hostname": "127.0.0.1",
         "port": str(influx_port), "protocol": "http", "database": NODERED_DATABASE,
         "name": "influxdb", "usetls": False, "influxdbVersion": "1.x"},
        {"id": "bench-out", "type": "influxdb batch", "z": "bench-tab",
         "influxdb": "bench-influx", "precision": "ms", "retentionPolicy": "",
         "name": "write", "x": 520, "y": 80, "wires": []},
    ]  # fmt: skip


class NodeRed:
    def __init__(self, stack: Stack, prefix: Path, workdir: Path) -> None:
        assert stack.influx is not None
        self.stack, self.prefix = stack, prefix
        self.dir = workdir / "nodered"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = stack.svc.free_port()
        self.log_path = self.dir / "nodered.log"
        (self.dir / "flows.json").write_text(json.dumps(
            flow(stack.broker.port, stack.influx.port), indent=1))  # fmt: skip
        user, password = stack.credentials()
        (self.dir / "flows_cred.json").write_text(json.dumps(
            {"bench-influx": {"username": user, "password": password}}))  # fmt: skip
        (self.dir / "settings.js").write_text(f"""module.exports = {{
  uiHost: "127.0.0.1", uiPort: {self.port}, flowFile: "flows.json",
  credentialSecret: false, httpAdminRoot: false, httpNodeRoot: false,
  diagnostics: {{ enabled: false }}, telemetry: {{ enabled: false }},
  externalModules: {{ autoInstall: false }},
  logging: {{ console: {{ level: "info", metrics: false, audit: false }} }}
}};
""")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        node = shutil.which("node") or "node"
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [node, str(red_js(self.prefix)), "--userDir", str(self.dir),
                 "--settings", str(self.dir / "settings.js")],
                cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)  # fmt: skip
        stack_owns(self.stack, self.proc)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            text = self.log_path.read_bytes()[offset:].decode(errors="replace")
            if "Started flows" in text and "Connected to broker" in text:
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BenchError(f"Node-RED did not start its flow:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        stop_process(self.stack, self.proc, 20.0)
        self.proc = None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def write_errors(self) -> int:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return 0
        return sum(1 for line in text.splitlines() if "[influxdb batch:" in line
                   and "[error]" in line)  # fmt: skip


@dataclass
class NodeRedResult:
    versions: str
    snapshots: int
    stored_snapshots: int
    points: int
    seconds: float
    write_errors: int

    @property
    def rate(self) -> float:
        return self.points / self.seconds if self.seconds > 0 else 0.0

    @property
    def lost(self) -> int:
        return self.snapshots - self.stored_snapshots


def run_nodered_drain(stack: Stack, client: FleetClient, fleet: Fleet, *, n: int, end_ms: int,
                      prefix: Path, workdir: Path, install_timeout_s: float, timeout_s: float,
                      log: Callable[[str], None] = print) -> NodeRedResult:  # fmt: skip
    """The same kind of backlog through Node-RED; raises NodeRedUnavailable if it cannot run.

    Timed from the last look with nothing stored to the first look with everything that
    will be stored (counted in InfluxDB every `POLL_S`): Node-RED has no counters of its
    own. It is done when all snapshots are stored or none came for `STALL_S`.
    """
    t0 = time.monotonic()
    versions = install(prefix, install_timeout_s)
    log(f"    Node-RED: {versions} in {prefix} ({time.monotonic() - t0:.0f} s)")
    stack.create_influx_database(NODERED_DATABASE)
    red = NodeRed(stack, prefix, workdir)
    try:
        red.start()  # its persistent session subscribes
        time.sleep(0.5)
        red.stop()
        backlog = publish_fleet_backlog(client, fleet, n, end_ms, "Node-RED", log)
        sent, pps = backlog.sent, backlog.points_per_snapshot
        log(f"    database server at rest after {stack.settle_db():.1f} s")

        def stored() -> int:
            return stack.stored_snapshots(fleet.site, backlog.start_ms, end_ms + 1,
                                          NODERED_DATABASE)

        red.start()
        t_zero, t_full, have = time.monotonic(), time.monotonic(), 0
        last_change = time.monotonic()
        deadline = time.monotonic() + timeout_s
        while have < sent and time.monotonic() < deadline:
            time.sleep(POLL_S)
            now, count = time.monotonic(), stored()
            if count == 0:
                t_zero = now
            if count > have:
                have, t_full, last_change = count, now, now
            elif now - last_change > STALL_S:
                break
        return NodeRedResult(versions, sent, have, have * pps, max(0.0, t_full - t_zero),
                             red.write_errors())  # fmt: skip
    finally:
        red.stop()
        stack.drop_session(CLIENT_ID, mqtt_version=4)
