"""Where a report reads telemetry history: InfluxQL over InfluxDB 1.x's `/query`.

Only the InfluxDB 1.x API (output `v1`) serves InfluxQL here: VictoriaMetrics (the `v2`
output on this platform, 1.79) answers every `/query` with a fixed "SHOW DATABASES"
reply whatever the statement, and `local`/`none` keep no quarter of history. Those
outputs get a report without history charts; `ReportSource.note` says why, in the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from collector.reports.errors import HistoryUnavailable
from collector.settings import CollectorSettings


@dataclass(frozen=True, slots=True)
class Series:
    """One series of an InfluxQL answer (epoch ms in the `time` column)."""

    name: str
    tags: dict[str, str]
    columns: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]


InfluxQL = Callable[[str], list[Series]]


@dataclass(frozen=True)
class V1Query:
    """`GET /query` of InfluxDB 1.x (also 2.x's v1 compatibility API) with Basic auth."""

    url: str
    database: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a repr or a log
    timeout_s: float = 10.0

    def __call__(self, statement: str) -> list[Series]:
        params = {"db": self.database, "q": statement, "epoch": "ms"}
        auth = (self.username, self.password or "") if self.username else None
        url = self.url.rstrip("/")
        try:
            resp = httpx.get(f"{url}/query", params=params, auth=auth, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise HistoryUnavailable(
                f"InfluxDB at {self.url} is unreachable: {type(exc).__name__}: {exc}"
            ) from None
        if resp.status_code in (401, 403):
            raise HistoryUnavailable(
                f"InfluxDB at {self.url} refused the credentials (HTTP {resp.status_code}): "
                "check influx.username and influx.password_file/_env"
            )
        if resp.status_code != 200:
            raise HistoryUnavailable(
                f"InfluxDB at {self.url}: HTTP {resp.status_code}: {resp.text.strip()[:200]}"
            )
        try:
            answer = resp.json()
        except ValueError:
            raise HistoryUnavailable(f"InfluxDB at {self.url}: the answer is not JSON") from None
        out: list[Series] = []
        for result in answer.get("results", []):
            if "error" in result:
                raise HistoryUnavailable(f"InfluxDB at {self.url}: {result['error']}")
            for s in result.get("series", []):
                out.append(
                    Series(
                        s.get("name", ""),
                        dict(s.get("tags") or {}),
                        tuple(s["columns"]),
                        tuple(tuple(v) for v in s.get("values", [])),
                    )
                )
        return out


_NO_HISTORY: Final = {
    "v2": "the collector writes through the InfluxDB 2.x API (output v2); only an InfluxDB "
    "1.x output (v1) is queried for history, so this report has no history charts",
    "local": "the collector keeps telemetry only in its local file (output local), not a "
    "quarter of it, so this report has no history charts",
    "none": "the collector stores no telemetry (output none), so this report has no history "
    "charts",
}


@dataclass(frozen=True)
class ReportSource:
    """What a report reads besides the ticket service (the API's `ApiContext.reports`).

    `query` None means the output has no InfluxQL (`note` says why, in the report).
    """

    query: InfluxQL | None = None
    note: str = ""
    screens: frozenset[tuple[str, str]] = field(default_factory=frozenset)  # from contracts

    @classmethod
    def from_settings(cls, settings: CollectorSettings) -> ReportSource:
        """From the collector config: `[influx]` v1 is queried, other outputs get a note;
        the screens `[contracts]` names are known even before their first snapshot."""
        influx = settings.influx
        screens = frozenset(contract_screens(settings.contracts))
        if influx.output == "v1":
            query = V1Query(
                influx.url, influx.database, influx.username, influx.password(),
                influx.timeout_ms / 1000,
            )
            return cls(query, "", screens)
        return cls(None, _NO_HISTORY[influx.output], screens)


def contract_screens(raw: dict[str, Any] | None) -> set[tuple[str, str]]:
    """(site, screen) named in a `[contracts]` table (ContractBook keeps them private)."""
    found: set[tuple[str, str]] = set()
    sites = (raw or {}).get("sites") or {}
    for site, site_raw in sites.items() if isinstance(sites, dict) else ():
        screens = site_raw.get("screens") if isinstance(site_raw, dict) else None
        if isinstance(screens, dict):
            found |= {(site, screen) for screen in screens}
    return found
