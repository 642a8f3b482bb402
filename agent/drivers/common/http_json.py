"""The pipe to an HTTP-speaking processor (COEX, Tessera): paced GETs with httpx.

Content-blind like the NovaStar transport: it moves bytes and classifies what came back
(answered with a status and a body, timed out, or unreachable); the family's pure codec
decides what the body means. It never raises for what the network or the device does.

Pacing: a request starts no sooner than `min_gap_s` after the previous one ended (the
vendors ask for restraint: COEX has no documented rate, LEDwatch keeps 200 ms between
requests as the public `legofsalmon/novasun` monitor does; Brompton warns that frequent
polling can hurt a Tessera processor). `trust_env=False`: a display PC's system proxy
must not capture requests to the LED network.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import httpx


class Outcome(StrEnum):
    ANSWERED = "answered"  # a status line and a body arrived (any status)
    TIMEOUT = "timeout"  # connected, but no (complete) answer in time
    UNREACHABLE = "unreachable"  # refused, reset, no route: nothing to talk to


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    outcome: Outcome
    status: int | None = None
    body: bytes = b""
    content_type: str | None = None
    error: str | None = None

    @property
    def answered(self) -> bool:
        return self.outcome is Outcome.ANSWERED


class JsonHttp:
    """One base URL, paced GETs. `sleep`/`clock` are injectable for tests."""

    def __init__(
        self,
        base_url: str,
        timeout_s: float,
        min_gap_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.min_gap_s = min_gap_s
        self._clock, self._sleep = clock, sleep
        self._next_at = 0.0
        self._client: httpx.Client | None = None
        self.requests = 0

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.base_url,
                timeout=self.timeout_s,
                trust_env=False,
                headers={"Accept": "application/json"},
            )
        return self._client

    def get(self, path: str) -> HttpAnswer:
        """GET `path`; see `Outcome` for what can come back."""
        wait = self._next_at - self._clock()
        if wait > 0:
            self._sleep(wait)
        self.requests += 1
        try:
            r = self._http().get(path)
        except httpx.ConnectTimeout as exc:  # nobody there (no RST either)
            self.close()
            return HttpAnswer(Outcome.UNREACHABLE, error=f"{type(exc).__name__}: {exc}")
        except httpx.TimeoutException as exc:
            return HttpAnswer(Outcome.TIMEOUT, error=f"{type(exc).__name__}: {exc}")
        except httpx.TransportError as exc:  # refused, reset, closed without an answer
            self.close()  # a fresh connection next time
            return HttpAnswer(Outcome.UNREACHABLE, error=f"{type(exc).__name__}: {exc}")
        finally:
            self._next_at = self._clock() + self.min_gap_s
        return HttpAnswer(Outcome.ANSWERED, r.status_code, r.content,
                          r.headers.get("content-type"))  # fmt: skip

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
