"""The `[screens.controller]` table for `driver = "novastar"`, validated once.

Every option is in sample.toml with its default and what it does. A bad value raises
`ConfigError` naming `controller.<key>` (`controller.layout[2].card: ...`); the agent's
runtime prefixes the screen (`screens[0].controller...`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent.drivers.common.options import card_counts, check_card_counts, validate
from agent.drivers.novastar.layout import MAX_CARDS_PER_PORT, LayoutEntry, positions
from agent.drivers.novastar.transport import check_url


class FunctionCardOptions(BaseModel):
    """Where the function card (MFN300) sits and what is on its RS-485 ports (3.8.1)."""

    model_config = ConfigDict(extra="forbid")

    port: int = Field(default=0, ge=0, le=15)  # sending card output port it hangs on
    board: int = Field(default=0, ge=0, le=0xFFFE)  # its index on that port
    mth300_rs485: int | None = Field(default=0, ge=0, le=3)  # temperature/humidity sensor
    ns048c_rs485: int | None = Field(default=None, ge=0, le=3)  # light sensor


class ExtendedOptions(BaseModel):
    """The `[screens.controller.extended]` table: which extra reads a poll makes."""

    model_config = ConfigDict(extra="forbid")

    inputs: bool = True  # 3.19 input selection (3.18 and 3.1.2 are read every poll)
    redundancy: bool = True  # 3.10.1; 3.10.2 rides on card_info
    light_sensor: bool = True  # 3.8.4: a sensor wired to the sending card
    card_info: bool = True  # 3.9 per card (6 bytes): model, firmware, redundant line
    # 3.9 describes hardware that changes only when a card is swapped, yet it doubles the
    # requests per card: read it on the first poll and every this many polls (1 = every
    # poll). In between, model/firmware repeat the last answer and `redundant_line`
    # follows the per-port redundancy state, which is read every poll.
    card_info_every: int = Field(default=12, ge=1, le=10_000)
    # Smart modules: 256 bytes more per card, at an address LEDwatch had to assume
    # (see firmware_protocols.novastar.SmartModule), so off unless asked for.
    smart_modules: bool = False
    function_card: FunctionCardOptions | None = None


class NovastarOptions(BaseModel):
    """The `[screens.controller]` table for `driver = "novastar"` (see sample.toml)."""

    model_config = ConfigDict(extra="forbid")

    url: str
    ports: int = Field(1, ge=1, le=16)
    cards_per_port: int | list[int]
    psus_per_cabinet: int = Field(2, ge=0, le=8)
    timeout_ms: int = Field(300, ge=10, le=60_000)
    retries: int = Field(2, ge=0, le=10)
    psu_ok_min_v: float = Field(4.5, gt=0, le=12.7)
    pipeline_depth: int = Field(8, ge=1, le=64)
    layout: list[LayoutEntry] = Field(default_factory=list)
    probe_every: int = Field(12, ge=0, le=100_000)
    reconnect_min_s: float = Field(1.0, gt=0, le=3600)
    reconnect_max_s: float = Field(60.0, gt=0, le=86_400)
    # Connection attempts in a row that the controller's TCP port accepts but then resets
    # or leaves unanswered before the link is reported `held` (another client such as
    # NovaLCT holds it) instead of `down`; 0 never reports held.
    held_after: int = Field(4, ge=0, le=1000)
    extended: ExtendedOptions = ExtendedOptions()

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return check_url(url)

    @model_validator(mode="after")
    def _backoff(self) -> NovastarOptions:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError(f"reconnect_max_s: {self.reconnect_max_s} is below "
                             f"reconnect_min_s ({self.reconnect_min_s})")  # fmt: skip
        return self

    @field_validator("cards_per_port")
    @classmethod
    def _cards(cls, cards: int | list[int]) -> int | list[int]:
        return check_card_counts(cards, MAX_CARDS_PER_PORT)

    @model_validator(mode="after")
    def _per_port(self) -> NovastarOptions:
        self.card_counts()
        return self

    @model_validator(mode="after")
    def _layout(self) -> NovastarOptions:
        self.positions()
        return self

    def card_counts(self) -> list[int]:
        return card_counts(self.cards_per_port, self.ports)

    def positions(self) -> dict[str, tuple[int, int]]:
        """Card id -> (row, col) from `layout` (see `layout.positions`)."""
        return positions(self.layout, self.card_counts())


def parse_options(options: dict[str, Any]) -> NovastarOptions:
    """Validate once; a bad value raises `ConfigError` naming `controller.<key>`."""
    return validate(NovastarOptions, options, "controller")


def parse_extended_options(options: dict[str, Any] | None) -> ExtendedOptions:
    """Validate once; a bad value raises `ConfigError` naming `controller.extended.<key>`."""
    return validate(ExtendedOptions, options, "controller.extended")
