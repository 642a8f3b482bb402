"""The collector's own health as Prometheus text (served by the API at /metrics).

Counters only go up and are updated from the ingest and writer threads, so one lock
guards them; rendering takes a consistent copy.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from collector.delivery import DeliveryTracker

PREFIX = "ledwatch_collector_"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@dataclass
class Metrics:
    received: Counter[str] = field(default_factory=Counter)  # by kind
    dead_letters: Counter[str] = field(default_factory=Counter)  # by reason
    stored_points: int = 0
    stored_batches: int = 0
    dropped_points: int = 0  # refused by the server as bad data (HTTP 400)
    write_errors: Counter[str] = field(default_factory=Counter)  # retryable / fatal
    findings: int = 0
    ticket_errors: int = 0
    pending: int = 0  # messages received but not yet acknowledged
    connected: bool = False
    last_error: str = ""
    last_error_ts: float = 0.0
    started_ts: float = field(default_factory=time.time)
    # Seq accounting of stored snapshots (collector/delivery.py); it has its own lock.
    delivery: DeliveryTracker = field(default_factory=DeliveryTracker)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def inc(self, name: str, amount: int = 1, label: str | None = None) -> None:
        with self._lock:
            if label is None:
                setattr(self, name, getattr(self, name) + amount)
            else:
                getattr(self, name)[label] += amount

    def set(self, name: str, value: int | bool) -> None:
        with self._lock:
            setattr(self, name, value)

    def error(self, message: str) -> None:
        with self._lock:
            self.last_error = message[:500]
            self.last_error_ts = time.time()

    def snapshot(self) -> dict[str, object]:
        seq = self.delivery.totals()
        with self._lock:
            return {
                "received": dict(self.received),
                "dead_letters": dict(self.dead_letters),
                "stored_points": self.stored_points,
                "stored_batches": self.stored_batches,
                "dropped_points": self.dropped_points,
                "write_errors": dict(self.write_errors),
                "findings": self.findings,
                "ticket_errors": self.ticket_errors,
                "seq_gaps": seq.gaps,
                "seq_missing": seq.missing,
                "seq_duplicates": seq.duplicates,
                "pending": self.pending,
                "connected": self.connected,
                "last_error": self.last_error,
                "last_error_ts": self.last_error_ts,
            }

    def render(self) -> str:
        """Prometheus text exposition format 0.0.4."""
        seq = self.delivery.totals()
        with self._lock:
            received, dead = dict(self.received), dict(self.dead_letters)
            write_errors = dict(self.write_errors)
            plain = {
                "stored_points_total": (
                    "counter",
                    "Points accepted by the sink.",
                    self.stored_points,
                ),
                "stored_batches_total": (
                    "counter",
                    "Batches accepted by the sink.",
                    self.stored_batches,
                ),
                "dropped_points_total": (
                    "counter",
                    "Points the sink refused as bad data.",
                    self.dropped_points,
                ),
                "findings_total": ("counter", "Fault findings (appear or clear).", self.findings),
                "ticket_errors_total": (
                    "counter",
                    "Batches of findings the ticket service failed on.",
                    self.ticket_errors,
                ),
                "seq_streams": ("gauge", "Streams (site, screen, agent) seen.", seq.streams),
                "seq_gaps": ("gauge", "Open seq gaps, all streams.", seq.gaps),
                "seq_missing": (
                    "gauge",
                    "Snapshots missing inside the seq range seen, all streams.",
                    seq.missing,
                ),
                "seq_duplicates_total": (
                    "counter",
                    "Snapshots stored again (at-least-once re-deliveries).",
                    seq.duplicates,
                ),
                "seq_out_of_order_total": (
                    "counter",
                    "Snapshots that arrived below the newest seq (gap fills, late ones).",
                    seq.out_of_order,
                ),
                "seq_forgotten_gaps_total": (
                    "counter",
                    "Gaps dropped by the per-stream cap (their seqs stay missing).",
                    seq.forgotten_gaps,
                ),
                "pending": ("gauge", "Messages received and not yet acknowledged.", self.pending),
                "broker_connected": (
                    "gauge",
                    "1 when connected to the MQTT broker.",
                    int(self.connected),
                ),
                "last_error_timestamp_seconds": (
                    "gauge",
                    "Unix time of the last error, 0: none.",
                    self.last_error_ts,
                ),
            }
            last_error = self.last_error
        out: list[str] = []

        def head(name: str, kind: str, help_: str) -> None:
            out.append(f"# HELP {PREFIX}{name} {help_}")
            out.append(f"# TYPE {PREFIX}{name} {kind}")

        for name, label, values, help_ in (
            ("received_total", "kind", received, "MQTT messages received, by kind."),
            ("dead_letters_total", "reason", dead, "Messages refused (acked, not stored)."),
            ("write_errors_total", "kind", write_errors, "Failed batch writes, by kind."),
        ):
            head(name, "counter", help_)
            out += [
                f'{PREFIX}{name}{{{label}="{_label(k)}"}} {v}' for k, v in sorted(values.items())
            ]
        for name, (kind, help_, value) in plain.items():
            head(name, kind, help_)
            out.append(f"{PREFIX}{name} {value}")
        if last_error:
            head("last_error_info", "gauge", "The last error message, as a label.")
            out.append(f'{PREFIX}last_error_info{{message="{_label(last_error)}"}} 1')
        return "\n".join(out) + "\n"
