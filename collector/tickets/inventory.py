"""The installed base from telemetry (pure): one snapshot -> the components it shows.

Spares planning and MTBF need to know how many parts of each model a screen holds;
nobody keeps that list by hand for long, but every `ledwatch.telemetry/1` snapshot
names them. A snapshot gives one row per part (docs/spares.md):

| row | component | kind | model | quantity |
| --- | --- | --- | --- | --- |
| the controller | `controller` | `controller` | `controller.model` | 1 |
| a receiving card | `card/<id>` | `receiving_card` | `cards.model[i]` | 1 |
| its LED modules | `card/<id>` | `module` | `module_model`, else the card's | `modules_total[i]` |
| a PSU | `psu/<id>` | `psu` | `psus.model[i]`, else `psu_model` | 1 |
(`module_model`, `psu_model`: the screen's contract settings.)

A model the snapshot does not name is `unknown`; recording never replaces a known model
with `unknown` (a controller whose link is down reports no models). A card whose module
count is missing or 0 gives no module row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

UNKNOWN: Final = "unknown"
KINDS: Final = ("controller", "receiving_card", "module", "psu")
MODEL_MAX: Final = 128


@dataclass(frozen=True, slots=True)
class ComponentRow:
    """One part of the installed base as a snapshot shows it."""

    component: str
    kind: str
    model: str
    quantity: int = 1


def _model(value: object) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()[:MODEL_MAX]
    return UNKNOWN


def _column(section: Mapping[str, Any], key: str, n: int) -> Sequence[Any]:
    col = section.get(key)
    if not isinstance(col, list) or len(col) != n:
        return [None] * n
    return col


def inventory_rows(
    doc: Mapping[str, Any], *, psu_model: str | None = None, module_model: str | None = None
) -> list[ComponentRow]:
    """The parts `doc` (a validated telemetry snapshot) shows; see the module docstring.

    `psu_model` / `module_model`: the screen's contract defaults for what telemetry does
    not name.
    """
    rows: list[ComponentRow] = []
    controller = doc.get("controller")
    if isinstance(controller, Mapping):
        rows.append(ComponentRow("controller", "controller", _model(controller.get("model"))))
    cards = doc.get("cards")
    if isinstance(cards, Mapping) and isinstance(cards.get("id"), list):
        ids = cards["id"]
        models = _column(cards, "model", len(ids))
        modules = _column(cards, "modules_total", len(ids))
        for card_id, model, count in zip(ids, models, modules, strict=True):
            if not isinstance(card_id, str):
                continue
            card_model = _model(model)
            rows.append(ComponentRow(f"card/{card_id}", "receiving_card", card_model))
            if isinstance(count, int) and not isinstance(count, bool) and count > 0:
                rows.append(ComponentRow(f"card/{card_id}", "module",
                                         _model(module_model) if module_model else card_model,
                                         count))
    psus = doc.get("psus")
    if isinstance(psus, Mapping) and isinstance(psus.get("id"), list):
        ids = psus["id"]
        for psu_id, model in zip(ids, _column(psus, "model", len(ids)), strict=True):
            if isinstance(psu_id, str):
                named = _model(model)
                rows.append(ComponentRow(f"psu/{psu_id}", "psu",
                                         _model(psu_model) if named == UNKNOWN else named))
    return rows


def summarise(rows: Sequence[ComponentRow]) -> dict[tuple[str, str], int]:
    """(kind, model) -> quantity: the installed base of the rows, e.g. for a status line."""
    out: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (row.kind, row.model)
        out[key] = out.get(key, 0) + row.quantity
    return dict(sorted(out.items()))
