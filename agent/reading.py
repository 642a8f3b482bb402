"""The one place where a screen's published reading is finished. Pure: no clock, no I/O.

A driver returns what its controller said; the screen's PSU sources return their
`psus` columns. `finish` joins them into the reading the snapshot carries: the
controller's `online` and `link` made explicit, the columns the schema requires present,
each PSU source's rows merged into `psus` (`merge_psus`), and the edge events found by
comparing with the previous finished reading (`edge_events`). Nothing changes the
reading after this; the snapshot builder only wraps it (agent/snapshot.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from agent.drivers.base import LinkState, PsuSource, ScreenReading

CARD_REQUIRED: Final = ("id", "online", "temp_c", "voltage_v", "module_faults")
PSU_REQUIRED: Final = ("id", "ok", "vout_v")
# (card column, event when it becomes true, event when it becomes false again)
CARD_EDGES: Final = (
    ("online", "card_online", "card_offline"),
    ("door_open", "door_opened", "door_closed"),
    ("smoke", "smoke_detected", "smoke_cleared"),
)


def finish(
    reading: ScreenReading,
    buses: Sequence[Mapping[str, Sequence[Any]]] = (),
    previous: ScreenReading | None = None,
) -> ScreenReading:
    """The published reading of one poll (module docstring). `previous` is the last
    finished reading of the same screen (None on the first poll: no events)."""
    controller = dict(reading.controller)
    controller["link"] = str(reading.link)
    controller.setdefault("online", default_online(reading.link))
    cards = {key: list(col) for key, col in reading.cards.items()}
    for key in CARD_REQUIRED:
        cards.setdefault(key, [])
    psus = {k: list(v) for k, v in reading.psus.items()}
    if buses:
        psus = merge_psus(psus, buses)
    for key in PSU_REQUIRED:
        psus.setdefault(key, [])
    done = ScreenReading(controller=controller, cards=cards, psus=psus, env=dict(reading.env),
                         link=reading.link, errors=reading.errors)  # fmt: skip
    edges = edge_events(previous, done)
    seen = {(e.get("event"), e.get("component")) for e in edges}
    # A driver's own events pass, unless they repeat an edge found here.
    done.events = edges + [e for e in reading.events
                           if (e.get("event"), e.get("component")) not in seen]  # fmt: skip
    return done


def default_online(link: LinkState) -> bool | None:
    """`controller.online` for a driver that did not say: None while the link is held."""
    return None if link is LinkState.HELD else link is not LinkState.DOWN


def silent_source(source: PsuSource) -> dict[str, list[Any]]:
    """The `psus` columns of a source that could not be read at all: ids known, values
    null."""
    n = len(source.ids)
    cols: dict[str, list[Any]] = {k: [None] * n for k in (*PSU_REQUIRED, *source.columns)}
    cols["id"] = list(source.ids)
    cols["card"] = list(source.cards)
    return cols


def merge_psus(
    base: Mapping[str, Sequence[Any]], buses: Sequence[Mapping[str, Sequence[Any]]]
) -> dict[str, list[Any]]:
    """The controller's PSU rows plus each smart-PSU bus's rows, still columnar.

    A smart PSU whose id is a monitoring-card rail (`p0c3-psu1`) takes over that row
    field by field: its own vout/iout/temp/fan/ok/faults win, and where it has no
    reading (unit silent, bus down) the rail's value stays, so a PSU that dies and goes
    quiet still shows the sagging rail. Other smart PSUs are appended. Every column gets
    one element per row (None where a source has no such column).
    """
    keys = list(base)
    rows: dict[str, dict[str, Any]] = {}
    order: list[str] = []

    def add(cols: Mapping[str, Sequence[Any]]) -> None:
        keys.extend(k for k in cols if k not in keys)
        for i, ident in enumerate(cols.get("id", ())):
            row = {k: col[i] for k, col in cols.items()}
            old = rows.get(ident)
            if old is None:
                rows[ident] = row
                order.append(ident)
            else:
                old.update({k: v for k, v in row.items() if v is not None})

    add(base)
    for cols in buses:
        add(cols)
    return {k: [rows[ident].get(k) for ident in order] for k in keys}


def _rows(cols: Mapping[str, Sequence[Any]]) -> dict[str, dict[str, Any]]:
    ids = cols.get("id", [])
    return {ident: {k: v[i] for k, v in cols.items()} for i, ident in enumerate(ids)}


def _link(controller: Mapping[str, Any]) -> str:
    """held, up (the controller answered) or down."""
    if controller.get("link") == LinkState.HELD.value:
        return "held"
    return "up" if controller.get("online") else "down"


def controller_events(was: Mapping[str, Any], now: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Link, signal and layout edges of the controller object."""
    events: list[dict[str, Any]] = []
    before, after = _link(was), _link(now)

    def add(event: str, **extra: Any) -> None:
        events.append({"event": event, "component": "controller", **extra})

    if before != after:
        if after == "held":  # another client took the link: not lost (DESIGN: no ticket)
            add("controller_link_held")
        if before == "held":
            add("controller_link_released")
        if after == "down":
            add("controller_link_lost")
        elif after == "up" and before == "down":
            add("controller_link_restored")
    if was.get("signal_ok") is True and now.get("signal_ok") is False:
        add("signal_lost")
    elif was.get("signal_ok") is False and now.get("signal_ok") is True:
        add("signal_restored")
    # A change of the card count on any port, between two polls that counted: a new
    # mismatch (or a different one), or the count back to what the config expects.
    found_before, found = was.get("ports_found"), now.get("ports_found")
    if found_before is not None and found is not None and found_before != found:
        add("layout_restored" if now.get("layout_ok") else "layout_mismatch",
            ports_expected=now.get("ports_expected"), ports_found=found)  # fmt: skip
    return events


def psu_events(
    previous: Mapping[str, Sequence[Any]] | None,
    current: Mapping[str, Sequence[Any]],
    ids: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """`psu_failed` / `psu_recovered` edges (of the PSUs in `ids`, or of all); a failure
    carries the PSU's `faults` when its source reports them."""
    if previous is None:
        return []
    was = _rows(previous)
    events: list[dict[str, Any]] = []
    for ident, row in _rows(current).items():
        if ids is not None and ident not in ids:
            continue
        old, new = was.get(ident, {}).get("ok"), row.get("ok")
        if old is True and new is False:
            event = {"event": "psu_failed", "component": f"psu/{ident}"}
            if row.get("faults"):
                event["faults"] = row["faults"]
            events.append(event)
        elif old is False and new is True:
            events.append({"event": "psu_recovered", "component": f"psu/{ident}"})
    return events


def edge_events(previous: ScreenReading | None, current: ScreenReading) -> list[dict[str, Any]]:
    """Events for what changed since the previous poll (none on the first poll).

    While the controller is offline (or held) its cards are unknown, not failed: card
    edges are only reported between two polls that both reached the controller. PSU
    edges need a known `ok` on both sides, so rails of an unreachable controller (null)
    give none while a PSU bus of its own keeps reporting.
    """
    if previous is None:
        return []
    was, now = previous.controller, current.controller
    events = controller_events(was, now)
    if was.get("online") and now.get("online"):
        before = _rows(previous.cards)
        for ident, row in _rows(current.cards).items():
            old = before.get(ident)
            if old is None:
                continue
            comp = f"card/{ident}"
            for key, rise, fall in CARD_EDGES:
                if old.get(key) is False and row.get(key) is True:
                    events.append({"event": rise, "component": comp})
                elif old.get(key) is True and row.get(key) is False:
                    events.append({"event": fall, "component": comp})
            faults, old_faults = row.get("module_faults"), old.get("module_faults")
            if faults is not None and old_faults is not None and faults > old_faults:
                events.append({"event": "module_fault", "component": comp, "value": faults})
    return events + psu_events(previous.psus, current.psus)
