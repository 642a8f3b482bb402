"""Where each receiving card hangs: the `[[screens.controller.layout]]` tables. Pure.

A port's chain of cards runs through a block of `rows` x `cols` cabinets in one of
NovaLCT's "connection" patterns (`Order`), entering at a corner (`Start`); a card can
also be placed alone. `positions` turns the tables into card id -> (row, col), with row
0 at the top and col 0 at the left; docs/topology.md shows the patterns.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_CARDS_PER_PORT: Final = 512
CARD_RE: Final = re.compile(r"^p(\d+)c(\d+)$")


def card_id(port: int, index: int) -> str:
    return f"p{port}c{index}"


class Order(StrEnum):
    """How the cards of one port run through its block of cabinets (NovaLCT's "connection"
    patterns): row by row or column by column, every line the same way or snaking."""

    ROWS = "rows"
    SNAKE_ROWS = "snake-rows"
    COLS = "cols"
    SNAKE_COLS = "snake-cols"


class Start(StrEnum):
    """The cabinet the port's cable enters first."""

    TOP_LEFT = "top-left"
    TOP_RIGHT = "top-right"
    BOTTOM_LEFT = "bottom-left"
    BOTTOM_RIGHT = "bottom-right"


class LayoutEntry(BaseModel):
    """One `[[screens.controller.layout]]` table: either a port's block of cabinets
    (`port`, `rows`, `cols`, optional `order`, `start`, and `row`/`col` of the block's
    top-left cabinet) or one card placed by hand (`card`, `row`, `col`)."""

    model_config = ConfigDict(extra="forbid")

    port: int | None = Field(None, ge=0, lt=16)
    rows: int | None = Field(None, ge=1, le=MAX_CARDS_PER_PORT)
    cols: int | None = Field(None, ge=1, le=MAX_CARDS_PER_PORT)
    order: Order = Order.SNAKE_ROWS
    start: Start = Start.TOP_LEFT
    card: str | None = None
    row: int | None = Field(None, ge=0, le=10_000)
    col: int | None = Field(None, ge=0, le=10_000)

    @field_validator("card")
    @classmethod
    def _card(cls, value: str | None) -> str | None:
        if value is not None and not CARD_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a card id like 'p0c3' (p<port>c<index>)")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> LayoutEntry:
        given = self.model_fields_set
        if self.card is not None:
            extra = given & {"port", "rows", "cols", "order", "start"}
            if extra:
                raise ValueError(f"{sorted(extra)[0]}: not allowed with card (a card entry "
                                 "has card, row, col)")  # fmt: skip
            for key in ("row", "col"):
                if key not in given:
                    raise ValueError(f"{key}: required with card")
        elif self.port is not None:
            for key in ("rows", "cols"):
                if key not in given:
                    raise ValueError(f"{key}: required with port")
        else:
            raise ValueError("give port (with rows, cols) for a block, or card (with row, col)")
        return self

    def cells(self, count: int) -> list[tuple[int, int]]:
        """(row, col) of the port's cards 0..count-1, for a block entry."""
        assert self.rows is not None and self.cols is not None
        return [
            block_cell(k, self.rows, self.cols, self.order, self.start, self.row or 0,
                       self.col or 0)
            for k in range(count)
        ]  # fmt: skip


def block_cell(
    k: int, rows: int, cols: int, order: Order, start: Start, row0: int = 0, col0: int = 0
) -> tuple[int, int]:
    """Where card `k` of a port hangs in its rows x cols block (pure; see `Order`)."""
    if order in (Order.ROWS, Order.SNAKE_ROWS):
        r, c = divmod(k, cols)
        if order is Order.SNAKE_ROWS and r % 2:
            c = cols - 1 - c
    else:
        c, r = divmod(k, rows)
        if order is Order.SNAKE_COLS and c % 2:
            r = rows - 1 - r
    if start in (Start.TOP_RIGHT, Start.BOTTOM_RIGHT):
        c = cols - 1 - c
    if start in (Start.BOTTOM_LEFT, Start.BOTTOM_RIGHT):
        r = rows - 1 - r
    return row0 + r, col0 + c


def positions(layout: Sequence[LayoutEntry], counts: Sequence[int]) -> dict[str, tuple[int, int]]:
    """Card id -> (row, col); ValueError naming `layout[i].<key>` when a card does not
    exist, a block is too small, or two cards share a cell. `counts`: cards per port."""
    ports = len(counts)
    where: dict[str, tuple[int, int]] = {}
    placed_by: dict[str, int] = {}
    cell_of: dict[tuple[int, int], str] = {}
    for i, entry in enumerate(layout):
        if entry.card is not None:
            m = CARD_RE.fullmatch(entry.card)
            assert m is not None and entry.row is not None and entry.col is not None
            port, index = int(m[1]), int(m[2])
            if port >= ports or index >= counts[port]:
                raise ValueError(
                    f"layout[{i}].card: no card {entry.card} in the expected layout "
                    f"(ports = {ports}, cards_per_port = {list(counts)})"
                )
            cells = {entry.card: (entry.row, entry.col)}
            key = "card"
        else:
            assert entry.port is not None and entry.rows is not None and entry.cols is not None
            if entry.port >= ports:
                raise ValueError(f"layout[{i}].port: {entry.port} is not one of the "
                                 f"{ports} port(s) (0..{ports - 1})")  # fmt: skip
            n = counts[entry.port]
            if entry.rows * entry.cols < n:
                raise ValueError(f"layout[{i}].rows: {entry.rows} x {entry.cols} cells "
                                 f"cannot hold the {n} cards of port {entry.port}")  # fmt: skip
            cells = {card_id(entry.port, k): rc for k, rc in enumerate(entry.cells(n))}
            key = "port"
        for card, cell in cells.items():
            if card in placed_by:
                raise ValueError(f"layout[{i}].{key}: {card} is already placed by "
                                 f"layout[{placed_by[card]}]")  # fmt: skip
            if cell in cell_of:
                raise ValueError(f"layout[{i}]: {card} and {cell_of[cell]} both at row "
                                 f"{cell[0]}, col {cell[1]}")  # fmt: skip
            placed_by[card], cell_of[cell], where[card] = i, card, cell
    return where
