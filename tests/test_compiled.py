"""ledwatch/compiled.py: the install built both compiled parts, and a missing one is named
(the collector logs it at start) while its callers fall back to Python."""

from __future__ import annotations

import pytest

from ledwatch import compiled


def test_both_parts_are_built_here() -> None:
    assert compiled.missing() == [], "no C compiler at install? (docs/testing.md step 1)"


def test_a_missing_part_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiled, "encode", None)
    assert compiled.missing() == ["collector.influx._encode"]
    monkeypatch.setattr(compiled, "columns", None)
    assert compiled.missing() == ["ledwatch._columns", "collector.influx._encode"]
