"""The ceiling: plain HTTP writers sending pre-encoded line protocol, nothing else.

Each writer is a thread with its own keep-alive `http.client` connection that takes the
next request body off a shared list until none is left; a body is `--batch-lines` lines. Bodies
are encoded before the clock starts, so the figure is the server's (and the loopback's)
limit with 1, 2 or 4 requests in flight, not an encoder's. Any answer but 204 stops the
run: a ceiling that lost points would flatter the server.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from dataclasses import dataclass

from ledwatch.bench.fleet.servers import BenchError


@dataclass(frozen=True)
class WriteResult:
    writers: int
    points: int
    seconds: float
    db_cores: float | None = None  # the database server's CPU over the span, in cores

    @property
    def rate(self) -> float:
        return self.points / self.seconds if self.seconds > 0 else 0.0


def write_all(url: str, bodies: list[bytes], points: int, writers: int,
              headers: dict[str, str] | None = None, timeout_s: float = 60.0) -> WriteResult:
    """POST every body to `url` from `writers` threads; returns the wall time taken."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    send_headers = {"Content-Type": "text/plain; charset=utf-8", **(headers or {})}
    lock = threading.Lock()
    next_index = [0]
    errors: list[str] = []

    def worker() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
        try:
            while not errors:
                with lock:
                    i = next_index[0]
                    next_index[0] += 1
                if i >= len(bodies):
                    return
                conn.request("POST", target, bodies[i], send_headers)
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 204:
                    errors.append(f"HTTP {resp.status}: {body[:300]!r}")
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, name=f"plain-writer-{k}", daemon=True)
               for k in range(writers)]  # fmt: skip
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - t0
    if errors:
        raise BenchError(f"plain writer ({writers} in flight) to {parts.path}: {errors[0]}")
    return WriteResult(writers, points, took)
