"""Reading JSON values defensively, for the codecs of the JSON-speaking families (pure).

Colorlight, COEX and Tessera answers are JSON whose spellings and types are not
guaranteed across models and firmware; a value of the wrong type reads as None (a
missing reading), never as a guess and never as an exception. `bool` is not a number
here, although Python says it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def text(value: Any) -> str | None:
    """A non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def boolean(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def flag(value: Any) -> bool | None:
    """A JSON boolean, or the integers 0 / 1 that some protocols use for one."""
    if isinstance(value, bool):
        return value
    return {0: False, 1: True}.get(value) if isinstance(value, int) else None


def mapping(value: Any) -> Mapping[str, Any]:
    """An object, or an empty one."""
    return value if isinstance(value, Mapping) else {}


def objects(value: Any) -> list[Mapping[str, Any]]:
    """The objects of a list (other elements skipped); [] for anything but a list."""
    return [x for x in value if isinstance(x, Mapping)] if isinstance(value, list) else []


def path(tree: Any, key_path: str) -> Any:
    """`tree["a"]["b"]` for "a/b"; None where any step is missing or not an object."""
    for part in key_path.split("/"):
        if not isinstance(tree, Mapping):
            return None
        tree = tree.get(part)
    return tree
