"""`ledwatch bench fleet`: a fleet of screens through the real servers, measured side by side.

One command starts Mosquitto and the database under test (InfluxDB 1.x with auth on for
`--output v1`, VictoriaMetrics for `v2`; PostgreSQL as the shared ticket database when
more than one collector runs) from scripts/services.py, all on 127.0.0.1 free ports in a
temp folder, and stops them at the end, on Ctrl-C and on error. It shares nothing with
the collector beyond the public contracts: the fleet (payloads.py) is built from the
telemetry schema, the plain writers' line protocol (lineproto.py) from DESIGN.md's
InfluxDB table, and the collector runs as `python -m ledwatch.cli collector --config`,
watched through /metrics, the REST API, the database and /proc.

What one run measures (medians of `--repeat` where it repeats):
1. ceiling: the lines the collector would write for a backlog, pre-encoded in
   5,000- and 10,000-line requests (`--batch-lines`), sent by 1, 2 and 4 plain HTTP
   writers (`POST /write` with u/p, or `POST /api/v2/write`), precision ms; the best
   of them is the server's ceiling. The encoder's points per snapshot are checked once
   against the collector's `ledwatch_collector_stored_points_total` (drain.py,
   runner.py);
2. drain: the backlog published while the collector is stopped (its persistent session
   queues it), timed from its API answering until every snapshot is stored and acked;
   points/s and the ratio to the ceiling (drain.py);
3. live: the highest paced rate whose backlog (published - stored) stays bounded for
   `--live-s` (live.py, stats.judge_hold, stats.RateSearch);
4. fault -> ticket latency p50/p99 while confirming that rate (live.py);
5. collector CPU per 1,000 points (utime + stime over the drain) and peak RSS (VmHWM);
6. the drain again with 2 and 4 collectors of one `[cluster]` and one PostgreSQL ticket
   database: points/s, ratio to 1, and the tickets against the injected faults (no
   duplicate, no miss);
7. `--with-nodered`: the same backlog through Node-RED (mqtt in -> function -> influxdb
   batch, installed from npm), points/s and snapshots lost (nodered.py).
It prints a table of the figures and their ratios and writes it to docs/performance.md.
"""

from __future__ import annotations

from ledwatch.bench.fleet.runner import HELP, add_arguments, run

__all__ = ["HELP", "add_arguments", "run"]
