"""`[reports]` of the collector config: light (no rendering libraries) so that the
settings module can import it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Format = Literal["pdf", "html"]


class ReportSettings(BaseModel):
    """Quarterly inspection reports written on schedule (docs/reports.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Write every screen's quarterly remote inspection report after each quarter ends.
    enabled: bool = True
    # Where the reports go: <folder>/<quarter>/<site>/<screen>.pdf and .html.
    folder: Path = Path("/var/collector/reports")
    # Which files to write per screen.
    formats: tuple[Format, ...] = Field(default=("pdf", "html"), min_length=1)
    # Reports written per call of generate_due (the rest follow on the next calls).
    max_per_call: int = Field(default=10, ge=1, le=10_000)
    # Complete the screen's open inspection task with the report attached. Off by
    # default: the contract's inspection is done when a person has read the report.
    complete_tasks: bool = False
