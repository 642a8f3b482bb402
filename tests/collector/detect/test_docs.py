"""The rules' defaults are shown in the sample config and in docs/detection.md: both
stay equal to the table in the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.detect.rules import defaults_table

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(("path", "prefix"), [("collector/sample.toml", "# "),
                                              ("docs/detection.md", "")])
def test_the_defaults_table_is_shown_as_it_is(path: str, prefix: str) -> None:
    text = (ROOT / path).read_text()
    missing = [line for line in defaults_table() if f"\n{prefix}{line}\n" not in text]
    assert not missing, f"{path} is out of date: {missing}"
