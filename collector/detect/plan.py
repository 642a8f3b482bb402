"""The column layout of one screen: every rule of every element, side by side (pure).

Detection runs one state machine per (rule, element). Laying all of a screen's pairs
out as the columns of one (T, M) matrix lets a single vectorised pass judge the whole
screen, whatever its sections:

```
 columns:  controller rules x 1 | psu rules x P | card rules x N | env rules x 1
 values:   the rule's reading of that element (frames.py), NaN where hidden
```
A plan is built once per screen and layout (the cabinets answering) and cached; it
knows which columns a lost controller, a dark cabinet (and so its PSUs), a scheduled
off time or a cabinet's own sensor hide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from collector.detect.debounce import Params
from collector.detect.frames import ScreenBatch
from collector.detect.rules import Rule, Section

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

# Within one poll, PSUs are judged before their cabinets (a PSU failure is the root of
# its dark cabinet) and the screen's own sensors last.
ORDER = (Section.CONTROLLER, Section.PSU, Section.CARD, Section.ENV)


@dataclass(frozen=True, slots=True)
class Block:
    """The columns of one rule: one per element of its section."""

    rule: Rule
    section: Section
    start: int
    stop: int
    reading: int  # index of the rule's reading in the section frame


class _Shape:
    """Everything of a plan but the element ids: the same for every screen with the same
    rules, element counts and PSU-to-cabinet wiring, so a fleet of alike screens builds it
    once (a new screen costs a dict look-up, not ~M Python objects)."""

    def __init__(self, rules: tuple[Rule, ...], batch: ScreenBatch) -> None:
        self.blocks: list[Block] = []
        start = 0
        for section in ORDER:
            frame = batch.sections[section]
            n = len(frame.ids)
            for rule in (r for r in rules if r.section is section):
                self.blocks.append(Block(rule, section, start, start + n,
                                         frame.readings.index(rule.reading)))
                start += n
        self.m = start
        sizes = np.array([b.stop - b.start for b in self.blocks], dtype=np.int64)
        self.params = Params.of_blocks([b.rule for b in self.blocks], sizes)
        self.by_rule = {b.rule.name: b for b in self.blocks}
        self.rank = np.repeat(np.array([ORDER.index(b.section) for b in self.blocks],
                                       dtype=np.int64), sizes)
        self.element = (np.concatenate([np.arange(n) for n in sizes.tolist()])
                        if self.blocks else np.zeros(0, dtype=np.int64))
        self.block_of = np.repeat(np.arange(len(self.blocks), dtype=np.int64), sizes)
        self.dark = np.repeat(np.array([b.rule.dark for b in self.blocks], dtype=bool), sizes)
        self._hiding(batch)
        self._tiled: dict[int, Params] = {}

    def tiled_params(self, copies: int) -> Params:
        """The params of `copies` screens of this shape side by side (stacked.py)."""
        found = self._tiled.get(copies)
        if found is None:
            if len(self._tiled) > 64:  # group sizes vary; keep the recent few
                self._tiled.clear()
            found = self._tiled[copies] = self.params.tiled(copies)
        return found

    def _hiding(self, batch: ScreenBatch) -> None:
        """Index arrays for `hidden`: which columns each cause hides."""
        lost_rule = self.by_rule.get("controller_lost")
        self.lost_cols = np.ones(self.m, dtype=bool)
        if lost_rule is not None:
            self.lost_cols[lost_rule.start:lost_rule.stop] = False
        dark_rule = self.by_rule.get("card_offline")
        # card columns of other rules: hidden where their own cabinet is dark
        cols, elems = [], []
        for b in self.blocks:
            if b.section is Section.CARD and b is not dark_rule:
                cols.append(np.arange(b.start, b.stop))
                elems.append(np.arange(b.stop - b.start))
            elif b.section is Section.PSU:
                card = batch.psu_card
                has = card >= 0
                cols.append(np.arange(b.start, b.stop)[has])
                elems.append(card[has])
        self.card_cols = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        self.card_elems = np.concatenate(elems) if elems else np.zeros(0, dtype=np.int64)
        # env columns judged only when no cabinet reports the same reading
        self.unless = [(b.start, b.rule.unless_cards) for b in self.blocks
                       if b.section is Section.ENV and b.rule.unless_cards]


_SHAPES: dict[tuple[object, ...], _Shape] = {}


class Plan:
    """One screen's layout: its `_Shape` and its element ids."""

    def __init__(self, rules: tuple[Rule, ...], batch: ScreenBatch) -> None:
        self.ids: dict[Section, tuple[str, ...]] = {
            section: batch.sections[section].ids for section in ORDER}
        key = (rules, *(len(self.ids[s]) for s in ORDER), batch.psu_card.tobytes())
        shape = _SHAPES.get(key)
        if shape is None:
            if len(_SHAPES) > 10_000:  # bounded: shapes are few, but never trust a payload
                _SHAPES.clear()
            shape = _SHAPES[key] = _Shape(rules, batch)
        self.shape = shape
        self.blocks = shape.blocks
        self.m = shape.m
        self.params = shape.params
        self.by_rule = shape.by_rule
        self.rank = shape.rank
        self.element = shape.element
        self.block_of = shape.block_of
        self.dark = shape.dark
        self.lost_cols = shape.lost_cols
        self.card_cols = shape.card_cols
        self.card_elems = shape.card_elems
        self.unless = shape.unless

    @property
    def keys(self) -> list[tuple[Section, str, str]]:
        """Column -> (section, rule, element id): how a carry is realigned when the
        layout changes (so only then built)."""
        return [(b.section, b.rule.name, ident)
                for b in self.blocks for ident in self.ids[b.section]]

    def values(self, batch: ScreenBatch) -> FloatArray:
        """(T, M): each column's reading."""
        parts = [batch.sections[b.section].values[:, b.reading, :] for b in self.blocks]
        if not parts:
            return np.zeros((len(batch), 0))
        return np.concatenate(parts, axis=1)

    def hidden(self, batch: ScreenBatch, raw: FloatArray, off: BoolArray
               ) -> tuple[BoolArray, BoolArray, BoolArray]:
        """(hide (T, M), controller lost (T,), cabinet dark (T, N)) for one batch."""
        t = len(batch)
        hide = np.zeros((t, self.m), dtype=bool)
        if off.any():
            hide |= off[:, np.newaxis] & self.dark[np.newaxis, :]
        lost = np.zeros(t, dtype=bool)
        lost_rule = self.by_rule.get("controller_lost")
        if lost_rule is not None:
            lost = raw[:, lost_rule.start] == 0
            if lost.any():  # behind a lost controller nothing else is readable
                hide |= lost[:, np.newaxis] & self.lost_cols[np.newaxis, :]
        n = len(self.ids[Section.CARD])
        dark = np.zeros((t, n), dtype=bool)
        dark_rule = self.by_rule.get("card_offline")
        if dark_rule is not None:
            dark = raw[:, dark_rule.start:dark_rule.stop] == 0
            if dark.any() and len(self.card_cols):
                hide[:, self.card_cols] |= dark[:, self.card_elems]
        if self.unless:
            cards = batch.sections[Section.CARD]
            for col, reading in self.unless:
                values = cards.reading(reading) if reading else None
                if values is not None and values.shape[1]:
                    hide[:, col] |= (~np.isnan(values)).any(axis=1)
        # what a dark cabinet or lost controller hides is dark for the correlation too
        return hide, lost, dark & ~lost[:, np.newaxis] & ~(off[:, np.newaxis] & bool(
            dark_rule is not None and dark_rule.rule.dark))

    def block(self, name: str) -> Block | None:
        return self.by_rule.get(name)
