"""The optional compiled parts (setup.py), or None where the install could not build them.

Each caller keeps a pure-Python path that gives the same result; docs/hot-path.md
("Compiled parts") says what each is worth."""

from __future__ import annotations

from types import ModuleType

columns: ModuleType | None  # ledwatch/_columns.pyx: the schema check, detection's frames
encode: ModuleType | None  # collector/influx/_encode.pyx: the cards' and PSUs' lines
try:
    from ledwatch import _columns as columns
except ImportError:  # no C compiler at install: the callers take their Python path
    columns = None
try:
    from collector.influx import _encode as encode
except ImportError:  # the same, or a display PC's wheel without the collector's part
    encode = None


def missing() -> list[str]:
    """The compiled parts this install lacks (the collector names them at start)."""
    return [name for name, mod in (("ledwatch._columns", columns),
                                   ("collector.influx._encode", encode)) if mod is None]
