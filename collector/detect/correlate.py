"""Root causes from the device tree: which finding a new one is an effect of (pure).

Called when a cabinet's fault opens, with that poll's readings of the whole screen:

```
 card_offline of card c at poll t
   >= screen_dark_fraction of all cards dark at t ......... screen / screen_dark
   c and every card after it on its port dark (>= 2) ...... link/<first dark card> / link_break
   a PSU of c failing, sagging or degrading before ........ psu/<id> / psu_failed
   otherwise .............................................. c is its own root
 temp_high of card c at poll t
   the screen's median cabinet temperature within screen_hot_margin_c of the
   threshold (sun, air conditioning) ...................... screen / temp_high
```
A root found once stays the root of every later effect of the same kind while it is
active (emit.py), so cabinets that go dark one poll apart still make one ticket.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from collector.detect.emit import Emitter, Report
from collector.detect.findings import Fault
from collector.detect.frames import ScreenBatch

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(slots=True)
class Correlator:
    """The arrays of one batch a root-cause decision needs."""

    batch: ScreenBatch
    emit: Emitter
    dark: BoolArray  # (T, N) card raw offline
    temps: FloatArray  # (T, N) smoothed cabinet temperatures
    psu_vout: FloatArray  # (T, P) last known smoothed PSU voltage at each poll
    psu_low_v: FloatArray  # (P,) each PSU's voltage_low threshold
    dark_fraction: float
    hot_margin_c: float
    hot_threshold_c: float
    min_cards: int

    def card_offline(self, t: int, n: int) -> tuple[str, Report] | None:
        b, e = self.batch, self.emit
        card_ids = b.layout[0]
        ts = int(b.ts[t])
        dark = self.dark[t]
        total = len(card_ids)
        screen_key = e.key("screen", Fault.SCREEN_DARK)
        if screen_key in e.synth:
            return screen_key, Report(ts)
        if total >= self.min_cards and dark.sum() >= np.ceil(self.dark_fraction * total):
            rep = Report(ts, f"{int(dark.sum())} of {total} cabinets dark at once",
                         float(dark.sum()))
            return screen_key, rep
        port, index = int(b.card_port[n]), int(b.card_index[n])
        if port >= 0 and index >= 0:
            on_port = b.card_port == port
            first = self._chain_break(on_port, dark)
            if first is not None and index >= int(b.card_index[first]):
                key = e.key(f"link/{card_ids[first]}", Fault.LINK_BREAK)
                lost = int((on_port & (b.card_index >= b.card_index[first])).sum())
                return key, Report(
                    ts, f"output port {port}: {lost} cabinets from {card_ids[first]} on are "
                    "unreachable", float(lost))
        return self._psu_cause(t, n)

    def _chain_break(self, on_port: BoolArray, dark: BoolArray) -> int | None:
        """Index of the first card of a dark tail (>= 2 cards) of the port's chain."""
        where = np.flatnonzero(on_port)
        order = where[np.argsort(self.batch.card_index[where])]
        lit = np.flatnonzero(~dark[order])
        start = 0 if len(lit) == 0 else int(lit[-1]) + 1
        if len(order) - start >= 2:
            return int(order[start])
        return None

    def _psu_cause(self, t: int, n: int) -> tuple[str, Report] | None:
        b, e = self.batch, self.emit
        ts = int(b.ts[t])
        psu_ids = b.layout[1]
        card = b.layout[0][n]
        for j in np.flatnonzero(b.psu_card == n):
            pid = psu_ids[j]
            failed = e.key(f"psu/{pid}", Fault.PSU_FAILED)
            if e.is_active(failed):
                return failed, Report(ts)
            signs = [e.key(f"psu/{pid}", f) for f in (Fault.VOLTAGE_LOW, Fault.PSU_DEGRADING)]
            vout = float(self.psu_vout[t, j])
            sagging = not np.isnan(vout) and vout < float(self.psu_low_v[j])
            if sagging or any(e.is_active(k) for k in signs):
                last = "unknown" if np.isnan(vout) else f"{vout:.2f} V"
                return failed, Report(
                    ts, f"cabinet card/{card} went dark after its PSU sagged (last vout {last})",
                    None if np.isnan(vout) else vout)
        return None

    def card_hot(self, t: int, n: int) -> tuple[str, Report] | None:
        e = self.emit
        key = e.key("screen", Fault.TEMP_HIGH)
        ts = int(self.batch.ts[t])
        if key in e.synth:
            return key, Report(ts)
        row = self.temps[t]
        known = row[~np.isnan(row)]
        if len(known) < self.min_cards:
            return None
        median = float(np.median(known))
        if median < self.hot_threshold_c - self.hot_margin_c:
            return None
        hot = int((known > self.hot_threshold_c).sum())
        return key, Report(
            ts, f"whole screen hot: median cabinet {median:.1f} °C, {hot} of {len(known)} "
            f"above {self.hot_threshold_c:g} °C", median)

    def dark_root(self, t: int) -> tuple[str, Report] | None:
        """The root of the dark cabinets that make a chain answer short, if any is dark:
        a screen or link root first, else the first dark cabinet's own root."""
        e = self.emit
        dark = [k for k in e.rule_on if k.endswith("/card_offline")]
        roots = sorted({e.root_of.get(k, k) for k in dark},
                       key=lambda k: ("/screen/" not in k, "/link/" not in k, k))
        if not roots:
            return None
        return roots[0], Report(int(self.batch.ts[t]))
