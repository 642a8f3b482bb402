"""Report errors: bad input is a `UsageError`, an unreachable server is not."""

from __future__ import annotations

from ledwatch.errors import LedwatchError, UsageError


class ReportError(LedwatchError):
    """Root of the errors a report raises on purpose."""


class ReportInputError(ReportError, UsageError):
    """The caller asked wrongly (a malformed or future quarter): HTTP 422, exit 2."""


class UnknownScreen(ReportError, UsageError):
    """No telemetry, no ticket and no contract ever named this screen: HTTP 404, exit 2."""

    def __init__(self, site: str, screen: str) -> None:
        super().__init__(
            f"screen {site}/{screen} is unknown: no telemetry, no ticket and no contract names it"
        )
        self.site, self.screen = site, screen


class HistoryUnavailable(ReportError):
    """InfluxDB could not be queried (down, refused credentials): HTTP 503, exit 1."""
