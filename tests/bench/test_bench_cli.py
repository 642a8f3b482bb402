"""`ledwatch bench ...`: the micro-benchmarks keep their flags, `detection` has its own,
and the runner says clearly when the replay fails."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pytest

import ledwatch.bench
from ledwatch.bench import main, synthetic_snapshot
from ledwatch.bench.detection import runner
from ledwatch.bench.detection.generator import (
    CONFIG_FILE,
    FLEET_FILE,
    INCIDENTS_FILE,
    TELEMETRY_FILE,
)
from ledwatch.bench.detection.labels import MINUTE_MS, Label
from ledwatch.contract import validate_telemetry


def test_synthetic_snapshot_still_importable_and_valid() -> None:
    validate_telemetry(synthetic_snapshot(30, seq=2))


@pytest.mark.parametrize("name", ["ingest", "detect", "poll"])
def test_micro_benchmarks_keep_their_flags(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[argparse.Namespace] = []
    _, help_ = ledwatch.bench.BENCHES[name]
    monkeypatch.setitem(ledwatch.bench.BENCHES, name, (lambda a: seen.append(a) or 0, help_))
    assert main([name, "--cards", "30", "--snapshots", "7", "--repeat", "2"]) == 0
    assert (seen[0].cards, seen[0].snapshots, seen[0].repeat) == (30, 7, 2)
    assert main([name]) == 0
    assert (seen[1].cards, seen[1].snapshots, seen[1].repeat) == (200, 50, 5)
    with pytest.raises(SystemExit):
        main([name, "--cards", "0"])


def test_cli_entry_still_points_here() -> None:
    from ledwatch.cli import COMMANDS

    assert COMMANDS["bench"][0] == "ledwatch.bench:main"


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("month")
    assert main(["detection", "--generate-only", "--screens", "2", "--days", "2",
                 "--seed", "4", "--out", str(out)]) == 0  # fmt: skip
    return out


def _perfect(out: Path) -> list[dict[str, Any]]:
    """One ticket per incident on its root, opened 4 min after the start (a day ahead for
    a dying PSU), as the REST API returns tickets."""
    labels = [Label.from_json(d) for d in json.loads((out / INCIDENTS_FILE).read_text())]
    tickets = []
    for n, lab in enumerate((x for x in labels if x.incident), start=1):
        opened = lab.start_ms + 4 * MINUTE_MS
        if lab.dark_ms is not None:
            opened = lab.dark_ms - 30 * 60 * MINUTE_MS
        tickets.append({
            "id": n, "site": lab.site, "screen": lab.screen, "component": lab.root,
            "fault": lab.kind, "priority": "P2", "state": "open", "opened_ms": opened,
            "reopen_count": 0, "history": [{"ts_ms": opened, "actor": "detector", "step": "open",
                                            "from_state": None, "to_state": "open", "note": ""}],
        })  # fmt: skip
    return tickets


def test_generate_only_writes_the_month(month: Path) -> None:
    for name in (TELEMETRY_FILE, INCIDENTS_FILE, CONFIG_FILE, FLEET_FILE):
        assert (month / name).is_file()
    summary = json.loads((month / FLEET_FILE).read_text())
    assert summary["screen_days"] == 4 and summary["snapshots"] > 2800


def test_scoring_a_tickets_file(month: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_perfect(month)))
    args = ["detection", "--screens", "2", "--days", "2", "--seed", "4", "--out", str(month)]
    assert main([*args, "--tickets", str(good)]) == 0
    out = capsys.readouterr().out
    assert "reusing the month" in out and "replay: not run" in out
    assert out.rstrip().splitlines()[-1].startswith("score: recall 1.000 | false alerts 0.0")
    assert out.rstrip().endswith("| PASS")
    none = tmp_path / "none.json"
    none.write_text("[]")
    assert main([*args, "--tickets", str(none)]) == 1
    assert capsys.readouterr().out.rstrip().endswith("| FAIL")
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a list"}')
    assert main([*args, "--tickets", str(bad)]) == 2
    assert "cannot score" in capsys.readouterr().err


def test_replay_failure_is_reported(tmp_path: Path) -> None:
    tickets = tmp_path / "tickets.json"
    cmd = [sys.executable, "-c", "import sys; print('no such rule: x'); sys.exit(3)"]
    with pytest.raises(runner.ReplayError, match=r"exit code 3(.|\n)*no such rule: x"):
        runner.run_replay(cmd, tickets, timeout_s=60)
    with pytest.raises(runner.ReplayError, match="wrote no"):
        runner.run_replay([sys.executable, "-c", "pass"], tickets, timeout_s=60)
    with pytest.raises(runner.ReplayError, match="within 1 s"):
        runner.run_replay([sys.executable, "-c", "import time; time.sleep(30)"], tickets, 1)


def test_missing_replay_command_gives_a_clear_error(
    month: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(runner, "_have_replay", lambda: False)
    args = ["detection", "--screens", "2", "--days", "2", "--seed", "4", "--out", str(month),
            "--reuse"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no `replay` command" in err and "--tickets" in err


def test_replay_command_line(tmp_path: Path) -> None:
    cmd = runner.replay_command(tmp_path / "c.toml", tmp_path / "t.json", tmp_path / "x.gz")
    assert cmd[:4] == [sys.executable, "-m", "ledwatch.cli", "replay"]
    assert cmd[4:] == ["--config", str(tmp_path / "c.toml"), "--tickets-out",
                       str(tmp_path / "t.json"), str(tmp_path / "x.gz")]  # fmt: skip
