"""`ledwatch replay --config collector.toml FILE...`: the collector's pipeline over recorded
telemetry instead of MQTT ("what would last month have looked like with these rules?").

Each line of a FILE (plain or .gz) is one message: a bare `ledwatch.telemetry/1`,
`ledwatch.event/1` or `ledwatch.status/1` document, or `{"topic": ..., "payload": {...}}`.
The same code as the live collector decodes and validates it, stores it per the
config's `[influx]` output (unless `--no-store`), judges it and turns the findings into
tickets; every clock in detection and in the ticket service follows the snapshots' `ts`,
so a replayed month gives the tickets the live month would have given.

```
 reader (this process) ─ chunks of lines ─> worker processes: JSON, schema, line
                                            protocol, detection matrices (frames.py)
 results, in file order ─> store ─> Detector ─> TicketService (clock = newest ts)
```
Decoding is most of the work and needs no shared state, so it runs on the other cores;
detection and tickets stay in one process, in order. Bad lines are counted and reported
with file and line number, never fatal.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import logging
import multiprocessing
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from collector.detect.engine import Detector
from collector.detect.findings import Finding
from collector.detect.frames import ScreenBatch, build_batches
from collector.ingest.decode import DecodeError, decode_object
from collector.settings import CollectorSettings, load_settings
from ledwatch import contract
from ledwatch.errors import ConfigError, LedwatchError

log = logging.getLogger("collector.replay")

CHUNK_LINES = 2000
MAX_SHOWN_BAD = 20
_SCHEMA_TOPIC = {
    contract.SCHEMA_TELEMETRY: lambda d: contract.telemetry_topic(d["site"], d["screen"]),
    contract.SCHEMA_EVENT: lambda d: contract.event_topic(d["site"], d["screen"]),
    contract.SCHEMA_STATUS: lambda d: contract.status_topic(d["site"], d["agent"]),
}


@dataclass
class Chunk:
    """What a worker makes of a run of lines; plain data, pickled back to the reader."""

    batches: list[ScreenBatch] = field(default_factory=list)
    statuses: list[tuple[str, str, dict[str, Any], int]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    bad: list[tuple[str, int, str, str]] = field(default_factory=list)  # file, line, why
    kinds: Counter[str] = field(default_factory=Counter)
    max_ts: int = -1


def _topic_and_doc(obj: Any) -> tuple[str, Any]:
    if isinstance(obj, dict) and "topic" in obj and "payload" in obj:
        if not isinstance(obj["topic"], str):
            raise DecodeError("topic", "`topic` must be a string")
        return obj["topic"], obj["payload"]
    if isinstance(obj, dict):
        make = _SCHEMA_TOPIC.get(obj.get("schema"))  # type: ignore[arg-type]
        if make is None:
            raise DecodeError("schema", f"unknown schema {obj.get('schema')!r} and no topic")
        try:
            return make(obj), obj
        except (KeyError, TypeError, LedwatchError) as exc:
            raise DecodeError("schema", f"cannot name its topic: {exc}") from None
    raise DecodeError("json", "a line must be a JSON object")


def decode_chunk(args: tuple[str, list[tuple[int, bytes]], bool]) -> Chunk:
    """Worker: lines -> validated documents -> batches (+ line protocol when storing)."""
    from collector.influx.lineproto import snapshot_lines

    name, lines, store = args
    out = Chunk()
    docs: list[dict[str, Any]] = []
    for number, raw in lines:
        try:
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise DecodeError("json", f"not valid JSON: {exc}") from None
            topic, payload = _topic_and_doc(obj)
            decoded = decode_object(topic, payload)
        except DecodeError as exc:
            out.bad.append((name, number, exc.reason, str(exc)[:300]))
            continue
        out.kinds[decoded.kind] += 1
        doc = decoded.doc
        if decoded.kind == "telemetry":
            docs.append(doc)
            out.max_ts = max(out.max_ts, int(doc["ts"]))
            if store:
                out.lines += snapshot_lines(doc)
        elif decoded.kind == "status":
            ts = doc.get("ts")
            when = int(ts) if isinstance(ts, int) and not isinstance(ts, bool) else out.max_ts
            out.statuses.append((decoded.site, decoded.name, doc, when))
    out.batches = build_batches(docs)
    return out


def _open(path: Path) -> IO[bytes]:
    with path.open("rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else path.open("rb")  # type: ignore[return-value]


def _chunks(paths: list[Path], store: bool, progress: _Progress) -> Iterator[
    tuple[str, list[tuple[int, bytes]], bool]
]:
    for path in paths:
        progress.file(path)
        with _open(path) as fh:
            chunk: list[tuple[int, bytes]] = []
            for number, raw in enumerate(fh, 1):
                if raw.strip():
                    chunk.append((number, raw))
                if len(chunk) >= CHUNK_LINES:
                    progress.read(fh, len(chunk))
                    yield str(path), chunk, store
                    chunk = []
            if chunk:
                progress.read(fh, len(chunk))
                yield str(path), chunk, store


class _Progress:
    """A status line on stderr every few seconds: lines, share of the file, rate."""

    def __init__(self, quiet: bool, every_s: float = 2.0) -> None:
        self.quiet, self.every_s = quiet, every_s
        self.start = time.monotonic()
        self.last = self.start
        self.lines = 0
        self.name = ""
        self.size = 0
        self.snapshots = 0

    def file(self, path: Path) -> None:
        self.name = path.name
        self.size = path.stat().st_size

    def read(self, fh: IO[bytes], n: int) -> None:
        self.lines += n
        now = time.monotonic()
        if self.quiet or now - self.last < self.every_s:
            return
        self.last = now
        raw = getattr(fh, "fileobj", fh)
        share = ""
        with contextlib.suppress(OSError, ValueError):
            share = f" {100 * raw.tell() / max(self.size, 1):.0f} % of {self.name},"
        rate = self.snapshots / max(now - self.start, 1e-9)
        print(f"replay:{share} {self.lines:,} lines, {self.snapshots:,} snapshots "
              f"({rate:,.0f}/s)", file=sys.stderr, flush=True)


@dataclass
class Summary:
    kinds: Counter[str] = field(default_factory=Counter)
    bad: Counter[str] = field(default_factory=Counter)
    bad_shown: list[str] = field(default_factory=list)
    findings_active: int = 0
    findings_cleared: int = 0
    opened: int = 0
    reopened: int = 0
    stored_points: int = 0
    stale: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    elapsed_s: float = 0.0

    def text(self, tickets: int) -> str:
        span = ""
        if self.first_ts is not None and self.last_ts is not None:
            days = (self.last_ts - self.first_ts) / 86_400_000
            span = f" over {days:.1f} days of telemetry"
        snaps = self.kinds["telemetry"]
        rate = snaps / max(self.elapsed_s, 1e-9)
        lines = [
            f"replay: {snaps:,} snapshots, {self.kinds['event']:,} events, "
            f"{self.kinds['status']:,} status messages{span} in {self.elapsed_s:.1f} s "
            f"({rate:,.0f} snapshots/s)",
            f"  findings: {self.findings_active:,} opened, {self.findings_cleared:,} cleared",
            f"  tickets: {self.opened:,} opened, {self.reopened:,} re-opened, {tickets:,} in all",
            f"  stored points: {self.stored_points:,}; late or repeated snapshots not judged: "
            f"{self.stale:,}",
            f"  dead letters: {sum(self.bad.values()):,}"
            + (f" ({', '.join(f'{k} {v}' for k, v in sorted(self.bad.items()))})"
               if self.bad else ""),
        ]
        lines += [f"    {text}" for text in self.bad_shown]
        if sum(self.bad.values()) > len(self.bad_shown):
            lines.append(f"    ... and {sum(self.bad.values()) - len(self.bad_shown)} more")
        return "\n".join(lines)


class Replay:
    """The pipeline: store, detect, tickets; feed it `Chunk`s in file order."""

    def __init__(self, settings: CollectorSettings, database: str, store: bool) -> None:
        from collector.influx.writers import make_writer
        from collector.tickets.service import TicketService

        self.settings = settings
        self.clock_ms = 0
        self.tickets = TicketService(database, settings.contracts, clock=lambda: self.clock_ms)
        if settings.maintenance:
            self.tickets.sync_windows(settings.maintenance)
        self.detector = Detector(settings.detect)
        self.store = store and settings.influx.output != "none"
        self.writer = make_writer(settings.influx) if self.store else None
        if self.writer is not None:
            self.writer.connect()
        self.summary = Summary()
        self._pending: list[str] = []

    def feed(self, chunk: Chunk) -> None:
        s = self.summary
        s.kinds.update(chunk.kinds)
        for name, number, reason, message in chunk.bad:
            s.bad[reason] += 1
            if len(s.bad_shown) < MAX_SHOWN_BAD:
                s.bad_shown.append(f"{name}:{number}: {reason}: {message}")
        if chunk.batches:
            first = min(int(b.ts[0]) for b in chunk.batches)
            s.first_ts = first if s.first_ts is None else min(s.first_ts, first)
            s.last_ts = max(s.last_ts or 0, chunk.max_ts)
        findings: list[Finding] = []
        for batch in chunk.batches:
            findings += self.detector.process_batches([batch])
        for site, agent, doc, ts in chunk.statuses:
            findings += self.detector.process_status(site, agent, doc, max(ts, 0))
        self.clock_ms = max(self.clock_ms, chunk.max_ts)
        findings += self.detector.check_agents(self.clock_ms)
        findings.sort(key=lambda f: f.ts_ms)
        for f in findings:
            if f.active:
                s.findings_active += 1
            else:
                s.findings_cleared += 1
        changes = self.tickets.apply_findings(findings)
        changes += self.tickets.tick(self.clock_ms)
        s.opened += sum(1 for c in changes if c.opened)
        s.reopened += sum(1 for c in changes if c.step in ("recur", "reopen"))
        if self.writer is not None:
            from collector.influx.lineproto import forecast_line, ticket_line

            self._pending += chunk.lines
            self._pending += [forecast_line(f) for f in self.detector.forecasts]
            self._pending += [ticket_line(c) for c in changes]
            if len(self._pending) >= self.settings.influx.batch_size:
                self._flush()
        self.detector.forecasts = []
        s.stale = self.detector.stale

    def _flush(self) -> None:
        from collector.influx.errors import WriteError

        if self.writer is None or not self._pending:
            return
        size = self.settings.influx.batch_size
        for i in range(0, len(self._pending), size):
            part = self._pending[i:i + size]
            for attempt in range(4):
                try:
                    self.writer.write(part)
                    break
                except WriteError as exc:
                    if not exc.retryable or attempt == 3:
                        raise
                    time.sleep(0.5 * 2**attempt)
            self.summary.stored_points += len(part)
        self._pending = []

    def finish(self) -> None:
        self._flush()
        if self.writer is not None:
            self.writer.close()

    def tickets_json(self) -> list[dict[str, Any]]:
        from collector.api.schemas import TicketDetailPublic

        out = []
        offset = 0
        while True:
            page, total = self.tickets.list(limit=1000, offset=offset)
            for t in page:
                full = self.tickets.get(t.id)
                out.append(TicketDetailPublic.model_validate(full).model_dump(mode="json"))
            offset += len(page)
            if not page or offset >= total:
                break
        out.sort(key=lambda t: t["id"])
        return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ledwatch replay",
        description="Run the collector's pipeline (decode, validate, store, detect, tickets) "
        "over recorded telemetry, clocks following the snapshots' ts.",
        epilog="Lines: a bare ledwatch.telemetry/1, ledwatch.event/1 or ledwatch.status/1 "
        'document, or {"topic": ..., "payload": {...}}. Files may be gzip-compressed. '
        "docs/replay.md has examples.",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="JSON lines, plain or .gz")
    p.add_argument("--config", "-c", type=Path, required=True, help="collector TOML file")
    p.add_argument("--tickets-out", type=Path, default=None,
                   help="write every ticket (as GET /api/v1/tickets/{id} returns it) as JSON")
    p.add_argument("--database", default="sqlite://",
                   help="ticket database URL (default: a private in-memory SQLite, so a "
                        "replay never touches the live desk's tickets)")
    p.add_argument("--no-store", action="store_true",
                   help="do not write telemetry, whatever the config's [influx] output says")
    p.add_argument("--workers", type=int, default=None,
                   help="decoding processes (default: one per CPU; 0 = in this "
                        "process)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    return p


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"ledwatch replay: {args.config}: {exc}", file=sys.stderr)
        return 2
    missing = [str(p) for p in args.files if not p.is_file()]
    if missing:
        print(f"ledwatch replay: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    workers = args.workers
    if workers is None:
        workers = max(1, os.cpu_count() or 1)
    if workers < 0:
        print("ledwatch replay: --workers must be >= 0", file=sys.stderr)
        return 2
    start = time.monotonic()
    try:
        replay = Replay(settings, args.database, store=not args.no_store)
    except LedwatchError as exc:
        print(f"ledwatch replay: {exc}", file=sys.stderr)
        return 1
    progress = _Progress(args.quiet)
    store = replay.store
    try:
        chunks = _chunks(list(args.files), store, progress)
        if workers == 0:
            for item in chunks:
                replay.feed(decode_chunk(item))
                progress.snapshots = replay.summary.kinds["telemetry"]
        else:
            ctx = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
            with ctx.Pool(workers) as pool:
                for chunk in pool.imap(decode_chunk, chunks, chunksize=1):
                    replay.feed(chunk)
                    progress.snapshots = replay.summary.kinds["telemetry"]
        replay.finish()
    except LedwatchError as exc:
        print(f"ledwatch replay: {exc}", file=sys.stderr)
        return 1
    replay.summary.elapsed_s = time.monotonic() - start
    tickets = replay.tickets_json()
    if args.tickets_out is not None:
        args.tickets_out.parent.mkdir(parents=True, exist_ok=True)
        args.tickets_out.write_text(json.dumps(tickets, indent=1) + "\n", "utf-8")
    print(replay.summary.text(len(tickets)))
    if args.tickets_out is not None:
        print(f"  tickets written to {args.tickets_out}")
    replay.tickets.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
