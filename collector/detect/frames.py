"""Validated snapshots -> per-screen matrices that detection works on (pure).

Consecutive snapshots of one screen with the same cabinet layout become one
`ScreenBatch`: for every reading a rule needs, a (T, N) float matrix over T polls and N
elements (NaN = null; flags are 0/1). Building the matrices is the only per-snapshot
Python work (one numpy conversion per reading and batch); everything after it is
vectorised over polls, rules and elements at once.
A batch is plain data (numpy arrays, tuples), so it pickles cheaply: `ledwatch replay`
builds batches in worker processes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt

from collector.detect.rules import Section, readings
from ledwatch.compiled import columns as _columns

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_ID = re.compile(r"^p(\d+)c(\d+)$")


def _on_backup(ctrl: Mapping[str, Any]) -> float | None:
    ports = ctrl.get("redundancy") or ()
    known = [p for p in ports if p is not None]
    return float(any(p == "backup" for p in known)) if known else None


# Derived readings of the flat controller object (everything else is read as is).
CONTROLLER_READINGS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    # A link held by the vendor's software is not a lost controller: unknown instead.
    "online": lambda c: None if c.get("link") == "held" else c.get("online"),
    "held": lambda c: None if c.get("link") is None else float(c.get("link") == "held"),
    "on_backup": _on_backup,
}


@dataclass(slots=True)
class SectionFrame:
    ids: tuple[str, ...]
    readings: tuple[str, ...]
    values: FloatArray  # (T, len(readings), N)

    def reading(self, name: str) -> FloatArray | None:
        """(T, N) of one reading, or None when the section has no such reading."""
        try:
            return self.values[:, self.readings.index(name), :]
        except ValueError:
            return None


@dataclass(slots=True)
class ScreenBatch:
    site: str
    screen: str
    ts: IntArray  # (T,) poll times, strictly increasing
    seen_ms: IntArray  # (T,) when each snapshot was seen (agent silence)
    agents: tuple[str, ...]  # (T,) agent id per poll
    sections: dict[Section, SectionFrame]
    psu_card: IntArray  # (P,) index of each PSU's card, -1 for none
    card_port: IntArray  # (N,) output port, -1 unknown
    card_index: IntArray  # (N,) position on the port's chain, -1 unknown

    @property
    def layout(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return self.sections[Section.CARD].ids, self.sections[Section.PSU].ids

    def __len__(self) -> int:
        return len(self.ts)

    def rows(self, keep: npt.NDArray[np.bool_]) -> ScreenBatch:
        """The polls where `keep` is True."""
        return ScreenBatch(
            site=self.site,
            screen=self.screen,
            ts=self.ts[keep],
            seen_ms=self.seen_ms[keep],
            agents=tuple(a for a, k in zip(self.agents, keep, strict=True) if k),
            sections={s: SectionFrame(f.ids, f.readings, f.values[keep])
                      for s, f in self.sections.items()},
            psu_card=self.psu_card,
            card_port=self.card_port,
            card_index=self.card_index,
        )


FLAT_READINGS = {s: readings(s) for s in (Section.CONTROLLER, Section.ENV)}
CARD_READINGS = readings(Section.CARD)
# vout_ok is derived from vout_v and ok; both are read.
PSU_READINGS = tuple(dict.fromkeys([*(r for r in readings(Section.PSU) if r != "vout_ok"),
                                    "vout_v", "ok"]))


def _flat_row(obj: Mapping[str, Any], names: tuple[str, ...]) -> list[Any]:
    out = []
    for name in names:
        derive = CONTROLLER_READINGS.get(name)
        value = derive(obj) if derive is not None else obj.get(name)
        out.append(float(value) if isinstance(value, bool) else value)
    return out


def _section(docs: list[Mapping[str, Any]], key: str, names: tuple[str, ...], n: int
             ) -> FloatArray:
    """(T, len(names), N) of a columnar section, NaN where a reading is absent or null.

    One conversion per reading over all polls: a column holds one type (and nulls), and
    numpy converts that at ~20-40 ns an element, while a nested list mixing floats, bools
    and None takes its slow path at ~200 ns (measured; docs/hot-path.md). A reading no
    snapshot carries costs nothing."""
    t = len(docs)
    out = np.full((t, len(names), n), np.nan)
    for r, name in enumerate(names):
        cols = [d[key].get(name) for d in docs]
        absent = cols.count(None)
        if absent == t:
            continue
        if absent:  # the reading comes and goes between polls
            for i, col in enumerate(cols):
                if col is not None:
                    _fill(out[i : i + 1, r], [col], n)
            continue
        # Every column has N elements (validate_telemetry); None converts to NaN.
        _fill(out[:, r], cols, n)
    return out


def _fill_numpy(out: FloatArray, cols: list[Any], n: int) -> None:
    out[:] = np.fromiter(chain.from_iterable(cols), np.float64, len(cols) * n).reshape(-1, n)


def _fill_c(out: FloatArray, cols: list[Any], n: int) -> None:
    assert _columns is not None
    _columns.to_doubles(cols, out)


# One C loop (ledwatch/_columns.pyx) where the install built it, numpy's fromiter if not.
_fill = _fill_numpy if _columns is None else _fill_c


def _positions(cards: Mapping[str, list[Any]], ids: tuple[str, ...]) -> tuple[IntArray, IntArray]:
    port, index = cards.get("port"), cards.get("index")
    if port is not None and index is not None:
        return np.array(port, dtype=np.int64), np.array(index, dtype=np.int64)
    parsed = [_ID.match(i) for i in ids]
    return (
        np.array([int(m.group(1)) if m else -1 for m in parsed], dtype=np.int64),
        np.array([int(m.group(2)) if m else -1 for m in parsed], dtype=np.int64),
    )


@dataclass(frozen=True, slots=True)
class _Layout:
    psu_card: IntArray
    card_port: IntArray
    card_index: IntArray


_LAYOUTS: dict[tuple[tuple[str, ...], tuple[str, ...], tuple[Any, ...], tuple[Any, ...]],
               _Layout] = {}


def _layout(cards: Mapping[str, list[Any]], psus: Mapping[str, list[Any]],
            card_ids: tuple[str, ...], psu_ids: tuple[str, ...]) -> _Layout:
    """Where each PSU and cabinet sits; the same for every poll of a screen, so cached."""
    psu_cards = tuple(psus.get("card") or (None,) * len(psu_ids))
    ports = tuple(cards.get("port") or ()) + tuple(cards.get("index") or ())
    key = (card_ids, psu_ids, psu_cards, ports)
    found = _LAYOUTS.get(key)
    if found is None:
        where = {c: i for i, c in enumerate(card_ids)}
        port, index = _positions(cards, card_ids)
        found = _Layout(np.array([where.get(c, -1) for c in psu_cards], dtype=np.int64),
                        port, index)
        if len(_LAYOUTS) > 10_000:  # bounded: layouts are few, but never trust a payload
            _LAYOUTS.clear()
        _LAYOUTS[key] = found
    return found


def _batch(docs: list[Mapping[str, Any]], seen: list[int]) -> ScreenBatch:
    """One np.array call per section: the Python work per snapshot is building lists.
    (`_single_batches` passes docs of different screens with equal counts: the rows are
    then screens, and it replaces the first doc's ids and layout with each one's own.)"""
    first = docs[0]
    card_ids = tuple(first["cards"]["id"])  # strings, by the schema
    psu_ids = tuple(first["psus"]["id"])
    n, p, t = len(card_ids), len(psu_ids), len(docs)
    ctrl_names, env_names = FLAT_READINGS[Section.CONTROLLER], FLAT_READINGS[Section.ENV]
    ctrl = np.array([_flat_row(d["controller"], ctrl_names) for d in docs], dtype=np.float64)
    env = np.array([_flat_row(d.get("env") or {}, env_names) for d in docs], dtype=np.float64)
    cards = _section(docs, "cards", CARD_READINGS, n)
    psus = _section(docs, "psus", PSU_READINGS, p)
    vout = psus[:, PSU_READINGS.index("vout_v"), :]
    ok = psus[:, PSU_READINGS.index("ok"), :]
    # A smart PSU that says "not ok" without a voltage has failed as surely as 0 V.
    vout_ok = np.where(np.isnan(vout), np.where(ok == 0, 0.0, np.nan), vout)
    psus = np.concatenate([psus, vout_ok[:, np.newaxis, :]], axis=1)
    sections = {
        Section.CONTROLLER: SectionFrame(("controller",), ctrl_names, ctrl.reshape(t, -1, 1)),
        Section.ENV: SectionFrame(("env",), env_names, env.reshape(t, -1, 1)),
        Section.CARD: SectionFrame(card_ids, CARD_READINGS, cards),
        Section.PSU: SectionFrame(psu_ids, (*PSU_READINGS, "vout_ok"), psus),
    }
    layout = _layout(first["cards"], first["psus"], card_ids, psu_ids)
    return ScreenBatch(
        site=first["site"],
        screen=first["screen"],
        ts=np.array([int(d["ts"]) for d in docs], dtype=np.int64),
        seen_ms=np.array(seen, dtype=np.int64),
        agents=tuple(d["agent"] for d in docs),
        sections=sections,
        psu_card=layout.psu_card,
        card_port=layout.card_port,
        card_index=layout.card_index,
    )


def build_batches(
    docs: Iterable[Mapping[str, Any]], seen_ms: int | None = None
) -> list[ScreenBatch]:
    """Group validated snapshots into batches: per screen, in arrival order, split where
    the cabinet layout changes. `seen_ms` overrides each snapshot's `ts` as the time it
    was seen (the live collector passes its receive time)."""
    groups: dict[tuple[str, str], list[list[Mapping[str, Any]]]] = {}
    for doc in docs:
        runs = groups.setdefault((doc["site"], doc["screen"]), [])
        if runs:
            prev = runs[-1][-1]
            if (
                prev["cards"]["id"] == doc["cards"]["id"]
                and prev["psus"]["id"] == doc["psus"]["id"]
            ):
                runs[-1].append(doc)
                continue
        runs.append([doc])
    out = []
    singles: dict[tuple[int, int], list[Mapping[str, Any]]] = {}
    for runs in groups.values():
        for run in runs:
            if len(run) == 1:  # live: one poll per screen; alike ones are built together
                doc = run[0]
                singles.setdefault((len(doc["cards"]["id"]), len(doc["psus"]["id"])),
                                   []).append(doc)
                continue
            seen = [int(d["ts"]) if seen_ms is None else seen_ms for d in run]
            out.append(_batch(run, seen))
    for docs in singles.values():
        out += _single_batches(docs, seen_ms)
    return out


def _single_batches(docs: list[Mapping[str, Any]], seen_ms: int | None) -> list[ScreenBatch]:
    """One-poll batches of screens of equal counts: each matrix built once for all, and
    every batch a row of it (numpy's per-call cost, paid per group, not per screen)."""
    if len(docs) == 1:
        return [_batch(docs, [int(docs[0]["ts"]) if seen_ms is None else seen_ms])]
    stack = _batch(docs, [int(d["ts"]) if seen_ms is None else seen_ms for d in docs])
    out = []
    for i, doc in enumerate(docs):
        layout = _layout(doc["cards"], doc["psus"], tuple(doc["cards"]["id"]),
                         tuple(doc["psus"]["id"]))
        out.append(ScreenBatch(
            site=doc["site"], screen=doc["screen"], ts=stack.ts[i:i + 1],
            seen_ms=stack.seen_ms[i:i + 1], agents=(doc["agent"],),
            sections={
                sec: SectionFrame(
                    tuple(doc[_KEY[sec]]["id"]) if sec in _KEY else f.ids, f.readings,
                    f.values[i:i + 1])
                for sec, f in stack.sections.items()
            },
            psu_card=layout.psu_card, card_port=layout.card_port,
            card_index=layout.card_index,
        ))
    return out


_KEY = {Section.CARD: "cards", Section.PSU: "psus"}
