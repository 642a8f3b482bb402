"""Sinks for encoded line protocol: InfluxDB 2.x API, InfluxDB 1.x API, a local file, none.

Every sink has the same small contract (Telegraf's output interface):
`connect()` once before the first write; `write(lines)` stores a whole batch or raises
`WriteError` (never partially "succeeds" silently); `ping()` says whether the server
answers, for /health; `close()` once after the last write. `write` and `ping` may
come from several threads at once (the write pool's workers, the API's /health).
Lines arrive pre-encoded (collector/influx/lineproto.py), precision is ms.
"""

from __future__ import annotations

import http.client
import logging
import sqlite3
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Protocol

from collector.influx.connections import Route, basic_credentials
from collector.influx.errors import WriteError
from collector.settings import InfluxSettings

log = logging.getLogger(__name__)

__all__ = [
    "LocalWriter",
    "NullWriter",
    "V1Writer",
    "V2Writer",
    "WriteError",
    "Writer",
    "make_writer",
    "parse_line",
]


class Writer(Protocol):
    def connect(self) -> None: ...

    def write(self, lines: list[str]) -> None: ...

    def ping(self) -> bool: ...

    def close(self) -> None: ...


def _status_error(status: int, body: str, where: str) -> WriteError:
    # 400 = the data itself is refused (bad line, field type conflict): retrying the same
    # bytes can never work. Everything else (401/403 until someone fixes the token,
    # 404 database missing, 429, 5xx) may heal, so the batch is kept.
    retryable = status != 400 and status != 422
    return WriteError(f"{where}: HTTP {status}: {body.strip()[:300]}", retryable=retryable)


class _HttpWriter:
    """POST pre-encoded line protocol over a pool of keep-alive `http.client` connections
    (one per concurrent write: the collector's write pool sends several batches at once).

    http.client rather than httpx: a write is one request of 1-2 MB to one server, and
    httpx's per-request layers (request and header models, the connection pool's
    events and locks, h11) cost ~1 ms of GIL-held time a write in a drain, ~10 % of the
    collector's CPU (docs/hot-path.md, item 16). The body goes out as it is, without a
    copy: the headers in one send, then the joined lines and the final newline.
    """

    path = "/write"

    def __init__(self, url: str, timeout_ms: int, params: dict[str, str],
                 headers: dict[str, str] | None = None,
                 auth: tuple[str, str] | None = None,
                 proxy: str = "", ca_file: Path | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout_ms = timeout_ms
        self._route = Route(self.url, proxy, ca_file)
        self._target = f"{self._route.prefix}{self.path}?{urllib.parse.urlencode(params)}"
        self._headers = {"Content-Type": "text/plain; charset=utf-8", **self._route.headers,
                         **(headers or {})}
        if auth is not None:
            self._headers["Authorization"] = basic_credentials(*auth)
        self._idle: list[http.client.HTTPConnection] = []  # last used first (warm)
        self._lock = threading.Lock()
        self._open = False

    def connect(self) -> None:
        self._route.load_tls()
        if self._route.via is not None:
            log.info("writes to %s go through the proxy %s", self.url, self._route.via)
        self._open = True

    def write(self, lines: list[str]) -> None:
        if not lines:
            return
        if not self._open:
            raise WriteError(f"{self.url}: write() before connect()", retryable=False)
        body = "\n".join(lines).encode()
        headers = {**self._headers, "Content-Length": str(len(body) + 1)}
        status, text = self._request("POST", self._target, (body, b"\n"), headers)
        if status != 204:
            raise _status_error(status, text, self.url)

    def _request(self, method: str, target: str, body: tuple[bytes, ...] | None,
                 headers: dict[str, str]) -> tuple[int, str]:
        """One request on an idle connection (or a new one). A kept-alive connection the
        server has closed meanwhile fails on first use: that one is retried at once on a
        new connection (a write is idempotent: the same points overwrite themselves)."""
        conn, reused = self._take()
        while True:
            try:
                conn.request(method, target, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.HTTPException, OSError) as exc:
                conn.close()
                if reused and isinstance(exc, _STALE):
                    conn, reused = self._new(), False
                    continue
                raise WriteError(f"{self.url}: {type(exc).__name__}: {exc}",
                                 retryable=True) from exc
            except BaseException:  # a bug, a KeyboardInterrupt: no socket left to the GC
                conn.close()
                raise
            if resp.will_close:
                conn.close()
            else:
                with self._lock:
                    self._idle.append(conn)
            return resp.status, data.decode("utf-8", "replace")

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._new(), False

    def _new(self) -> http.client.HTTPConnection:
        return self._route.new(self.timeout_ms / 1000.0)

    def ping(self) -> bool:
        # /ping answers 204 on InfluxDB 1.x, 2.x and VictoriaMetrics (health() of
        # influxdb-client always fails on VictoriaMetrics, DESIGN.md).
        if not self._open:
            return False
        try:
            return self._request("GET", f"{self._route.prefix}/ping", None,
                                 self._route.headers)[0] == 204
        except WriteError:
            return False

    def close(self) -> None:
        self._open = False
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


# What a kept-alive connection closed by the server raises on its next request.
_STALE = (http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionResetError,
          BrokenPipeError, ConnectionAbortedError)


class V2Writer(_HttpWriter):
    """InfluxDB 2.x/3.x `/api/v2/write` (also VictoriaMetrics), `Authorization: Token`.

    Plain HTTP rather than influxdb-client: the lines are encoded already, and the
    client's serialisation and retry layers cost ~2.6 us a point (a quarter of the
    collector's CPU, measured) for nothing the service needs.
    """

    path = "/api/v2/write"

    def __init__(
        self, url: str, token: str | None, org: str, bucket: str, timeout_ms: int = 10_000,
        proxy: str = "", ca_file: Path | None = None,
    ) -> None:
        headers = {"Authorization": f"Token {token}"} if token else {}
        super().__init__(url, timeout_ms, {"org": org, "bucket": bucket, "precision": "ms"},
                         headers, proxy=proxy, ca_file=ca_file)
        self.org = org
        self.bucket = bucket


class V1Writer(_HttpWriter):
    """InfluxDB 1.x `POST /write?db=..&precision=ms` with Basic auth (works on 1.6+)."""

    def __init__(
        self,
        url: str,
        database: str,
        username: str | None = None,
        password: str | None = None,
        timeout_ms: int = 10_000,
        proxy: str = "",
        ca_file: Path | None = None,
    ) -> None:
        auth = (username, password or "") if username else None
        super().__init__(url, timeout_ms, {"db": database, "precision": "ms"}, auth=auth,
                         proxy=proxy, ca_file=ca_file)
        self.database = database


def _split_unescaped(text: str, sep: str) -> list[str]:
    """Split on `sep` outside backslash escapes and double-quoted strings."""
    parts: list[str] = []
    buf: list[str] = []
    i, quoted, n = 0, False, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n:
            buf.append(text[i : i + 2])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append("".join(buf))
            buf = []
            i += 1
            continue
        buf.append(ch)
        i += 1
    parts.append("".join(buf))
    return parts


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append({"n": "\n", "r": "\r"}.get(nxt, nxt))
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _field_value(raw: str) -> Any:
    if raw.startswith('"'):
        return _unescape(raw[1:-1])
    if raw in ("true", "t", "T", "True", "TRUE"):
        return True
    if raw in ("false", "f", "F", "False", "FALSE"):
        return False
    if raw.endswith(("i", "u")):
        return int(raw[:-1])
    return float(raw)


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, Any], int | None]:
    """Parse one line of line protocol: (measurement, tags, fields, timestamp or None)."""
    sections = _split_unescaped(line, " ")
    if len(sections) not in (2, 3):
        raise ValueError(f"not a line-protocol line: {line[:80]!r}")
    key = _split_unescaped(sections[0], ",")
    measurement = _unescape(key[0])
    tags: dict[str, str] = {}
    for item in key[1:]:
        k, v = _split_unescaped(item, "=")
        tags[_unescape(k)] = _unescape(v)
    fields: dict[str, Any] = {}
    for item in _split_unescaped(sections[1], ","):
        k = _split_unescaped(item, "=")[0]
        v = item[len(k) + 1 :]
        fields[_unescape(k)] = _field_value(v)
    ts = int(sections[2]) if len(sections) == 3 else None
    return measurement, tags, fields, ts


class LocalWriter:
    """An embedded SQLite store for the demo and for sites without an InfluxDB.

    One row per (series, field, timestamp), so re-delivered points overwrite themselves
    as in InfluxDB; `latest()` answers "what is the newest value" questions. Rows older
    than `retention_h` are pruned at most once a minute.
    """

    _SCHEMA = (
        "CREATE TABLE IF NOT EXISTS points ("
        " measurement TEXT NOT NULL, tags TEXT NOT NULL, field TEXT NOT NULL,"
        " ts INTEGER NOT NULL, value,"
        " PRIMARY KEY (measurement, tags, field, ts)) WITHOUT ROWID"
    )

    def __init__(self, path: str | Path, retention_h: float = 48.0) -> None:
        self.path = Path(path)
        self.retention_ms = int(retention_h * 3_600_000)
        self._db: sqlite3.Connection | None = None
        self._last_prune = 0.0
        self._lock = threading.Lock()  # written by the service, read by the API

    def connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(self._SCHEMA)

    def write(self, lines: list[str]) -> None:
        if self._db is None:
            raise WriteError("local writer: write() before connect()", retryable=False)
        rows: list[tuple[str, str, str, int, Any]] = []
        now_ms = int(time.time() * 1000)
        try:
            for line in lines:
                measurement, tags, fields, ts = parse_line(line)
                tagstr = ",".join(f"{k}={v}" for k, v in sorted(tags.items()))
                stamp = now_ms if ts is None else ts
                rows += [(measurement, tagstr, f, stamp, v) for f, v in fields.items()]
        except (ValueError, IndexError) as exc:
            raise WriteError(f"local writer: {exc}", retryable=False) from exc
        try:
            with self._lock:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT OR REPLACE INTO points VALUES (?,?,?,?,?)", rows)
                self._db.execute("COMMIT")
                if time.monotonic() - self._last_prune > 60:
                    self._last_prune = time.monotonic()
                    self._db.execute(
                        "DELETE FROM points WHERE ts < ?", (now_ms - self.retention_ms,)
                    )
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise WriteError(f"local writer {self.path}: {exc}", retryable=True) from exc

    def latest(self, measurement: str, field: str, **tags: str) -> tuple[int, Any] | None:
        """(ts_ms, value) of the newest point of the series with exactly these tags."""
        if self._db is None:
            return None
        tagstr = ",".join(f"{k}={v}" for k, v in sorted(tags.items()))
        with self._lock:
            row = self._db.execute(
                "SELECT ts, value FROM points WHERE measurement=? AND tags=? AND field=?"
                " ORDER BY ts DESC LIMIT 1",
                (measurement, tagstr, field),
            ).fetchone()
        return None if row is None else (int(row[0]), row[1])

    def count(self) -> int:
        if self._db is None:
            return 0
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM points").fetchone()[0])

    def ping(self) -> bool:
        return self._db is not None

    def close(self) -> None:
        if self._db is not None:
            with self._lock:
                self._db.close()
            self._db = None


class NullWriter:
    """Discards everything (output = "none"): detection and tickets without storage."""

    def connect(self) -> None:
        pass

    def write(self, lines: list[str]) -> None:
        pass

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass


def make_writer(settings: InfluxSettings) -> Writer:
    """The sink selected by `influx.output`, not yet connected."""
    if settings.output == "v2":
        return V2Writer(
            settings.url, settings.token(), settings.org, settings.bucket, settings.timeout_ms,
            settings.proxy, settings.ca_file,
        )
    if settings.output == "v1":
        return V1Writer(
            settings.url,
            settings.database,
            settings.username,
            settings.password(),
            settings.timeout_ms,
            settings.proxy,
            settings.ca_file,
        )
    if settings.output == "local":
        return LocalWriter(settings.local_path, settings.local_retention_h)
    return NullWriter()
