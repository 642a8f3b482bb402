"""Validated snapshots -> per-screen matrices that detection works on (pure).

Consecutive snapshots of one screen with the same cabinet layout become one
`ScreenBatch`: for every reading a rule needs, a (T, N) float matrix over T polls and N
elements (NaN = null; flags are 0/1). Building the matrices is the only per-snapshot
Python work; everything after it is vectorised over polls, rules and elements at once.
A batch is plain data (numpy arrays, tuples), so it pickles cheaply: `ledwatch replay`
builds batches in worker processes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from collector.detect.rules import Section, readings

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_ID = re.compile(r"^p(\d+)c(\d+)$")


def _flag(value: Any) -> float | None:
    return None if value is None else float(bool(value))


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
    values: dict[str, FloatArray]  # reading -> (T, N)


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


def _flat_matrix(objs: list[Mapping[str, Any]], reading: str) -> FloatArray:
    derive = CONTROLLER_READINGS.get(reading)
    if derive is None:
        vals = [_flag(o.get(reading)) if isinstance(o.get(reading), bool) else o.get(reading)
                for o in objs]
    else:
        vals = [derive(o) for o in objs]
    return np.array(vals, dtype=np.float64).reshape(len(objs), 1)


def _column_matrix(cols: list[Mapping[str, list[Any]]], reading: str, n: int) -> FloatArray:
    rows = [c.get(reading) for c in cols]
    if any(r is None for r in rows):
        blank = [None] * n
        rows = [blank if r is None else r for r in rows]
    if n == 0:
        return np.zeros((len(cols), 0))
    return np.array(rows, dtype=np.float64)


def _positions(cards: Mapping[str, list[Any]], ids: tuple[str, ...]) -> tuple[IntArray, IntArray]:
    port, index = cards.get("port"), cards.get("index")
    if port is not None and index is not None:
        return np.array(port, dtype=np.int64), np.array(index, dtype=np.int64)
    parsed = [_ID.match(i) for i in ids]
    return (
        np.array([int(m.group(1)) if m else -1 for m in parsed], dtype=np.int64),
        np.array([int(m.group(2)) if m else -1 for m in parsed], dtype=np.int64),
    )


def _batch(docs: list[Mapping[str, Any]], seen: list[int]) -> ScreenBatch:
    first = docs[0]
    card_ids = tuple(str(i) for i in first["cards"]["id"])
    psu_ids = tuple(str(i) for i in first["psus"]["id"])
    ctrls = [d["controller"] for d in docs]
    envs = [d.get("env") or {} for d in docs]
    cards = [d["cards"] for d in docs]
    psus = [d["psus"] for d in docs]
    n, p = len(card_ids), len(psu_ids)
    sections = {
        Section.CONTROLLER: SectionFrame(
            ("controller",), {r: _flat_matrix(ctrls, r) for r in readings(Section.CONTROLLER)}
        ),
        Section.ENV: SectionFrame(
            ("env",), {r: _flat_matrix(envs, r) for r in readings(Section.ENV)}
        ),
        Section.CARD: SectionFrame(
            card_ids, {r: _column_matrix(cards, r, n) for r in readings(Section.CARD)}
        ),
    }
    psu_values = {r: _column_matrix(psus, r, p) for r in readings(Section.PSU) if r != "vout_ok"}
    vout = psu_values.get("vout_v")
    if vout is None:
        vout = _column_matrix(psus, "vout_v", p)
    ok = _column_matrix(psus, "ok", p)
    # A smart PSU that says "not ok" without a voltage has failed as surely as 0 V.
    psu_values["vout_ok"] = np.where(np.isnan(vout), np.where(ok == 0, 0.0, np.nan), vout)
    sections[Section.PSU] = SectionFrame(psu_ids, psu_values)
    where = {c: i for i, c in enumerate(card_ids)}
    psu_cards = first["psus"].get("card") or [None] * p
    port, index = _positions(first["cards"], card_ids)
    return ScreenBatch(
        site=first["site"],
        screen=first["screen"],
        ts=np.array([int(d["ts"]) for d in docs], dtype=np.int64),
        seen_ms=np.array(seen, dtype=np.int64),
        agents=tuple(d["agent"] for d in docs),
        sections=sections,
        psu_card=np.array([where.get(c, -1) for c in psu_cards], dtype=np.int64),
        card_port=port,
        card_index=index,
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
    for runs in groups.values():
        for run in runs:
            seen = [int(d["ts"]) if seen_ms is None else seen_ms for d in run]
            out.append(_batch(run, seen))
    return out
