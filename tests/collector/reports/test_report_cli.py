"""`ledwatch report ...` and the scheduled generation, over the emulated run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import emulated
import pytest
from emulated import Run

from collector.reports import Quarter
from collector.reports.schedule import ReportSettings, due_screens, generate_due
from collector.tickets import TicketService
from ledwatch.cli import main as ledwatch

Config = Callable[..., Path]


@pytest.fixture
def config(run: Run, tmp_path: Path) -> Config:
    """`config(influx_url=None, db_url=None)` -> a collector TOML for the emulated run."""
    influx: Any = run.influx
    secret = tmp_path / "influx.pw"
    secret.write_text(influx.password + "\n")

    def make(influx_url: str | None = None, db_url: str | None = None,
             output: str = "v1") -> Path:
        path = tmp_path / "collector.toml"
        path.write_text(f"""
[influx]
output = "{output}"
url = "{influx_url or influx.url}"
database = "{influx.database}"
username = "{influx.username}"
password_file = "{secret}"
[database]
url = "{db_url or run.db_url}"
[contracts.sites.{run.site}.screens.{run.screen}]
acceptance_date = {emulated.ACCEPTANCE}
""")
        return path

    return make


def _args(cfg: Path, *extra: str, screen: str = "wall", quarter: str = "2026-Q4") -> list[str]:
    return ["report", "inspection", "--site", "rpt", "--screen", screen, "--quarter", quarter,
            *extra, "--config", str(cfg)]


def test_writes_pdf_and_html(config: Config, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    pdf, html = tmp_path / "r.pdf", tmp_path / "r.html"
    assert ledwatch(_args(config(), "--pdf", str(pdf), "--html", str(html))) == 0
    out = capsys.readouterr().out
    assert pdf.read_bytes().startswith(b"%PDF-") and "p0c3-psu1" in html.read_text()
    assert f"wrote {pdf} (" in out and f"wrote {html}" in out
    assert "rpt/wall 2026-Q4: availability 99.9" in out and "5 incidents" in out


@pytest.mark.parametrize(
    ("extra", "kwargs", "code", "message"),
    [
        ((), {"quarter": "2026-Q5"}, 2,
         "ledwatch report: quarter must be YYYY-Qn (e.g. 2026-Q4), got '2026-Q5'"),
        ((), {"screen": "nosuch"}, 2, "ledwatch report: screen rpt/nosuch is unknown"),
        ((), {"screen": "No Such"}, 2, "ledwatch report: --screen: "),
        ((), {"quarter": "2027-Q1"}, 2, "ledwatch report: quarter 2027-Q1 has not started yet"),
    ],
)
def test_bad_arguments_one_line_exit_2(config: Config, capsys: pytest.CaptureFixture[str],
                                       extra: tuple[str, ...], kwargs: dict[str, str],
                                       code: int, message: str) -> None:
    assert ledwatch(_args(config(), *extra, **kwargs)) == code
    err = capsys.readouterr().err
    assert err.startswith(message), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_unreachable_influx_exit_1(config: Config, free_port: Callable[[], int],
                                   capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert ledwatch(_args(config(influx_url=url), "--pdf", str(tmp_path / "x.pdf"))) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"ledwatch report: InfluxDB at {url} is unreachable") and \
        err.count("\n") == 1
    assert not (tmp_path / "x.pdf").exists()


def test_config_and_database_errors(config: Config, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope" / "tickets.db"
    assert ledwatch(_args(config(db_url=f"sqlite:///{missing}"))) == 2
    assert capsys.readouterr().err == (
        f"ledwatch report: database.url: no ticket database at {str(missing)!r}\n")
    assert not missing.parent.exists()  # nothing created by a report
    assert ledwatch(["report", "inspection", "--site", "rpt", "--config", "x.toml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ledwatch report inspection: the following arguments are required")
    assert err.count("\n") == 1


def test_other_output_reports_without_history(config: Config, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    html = tmp_path / "r.html"
    assert ledwatch(_args(config(output="v2"), "--html", str(html))) == 0
    assert "so this report has no history charts" in html.read_text()


def test_generate_due_writes_each_report_once(run: Run, tmp_path: Path) -> None:
    contracts = emulated.contracts(run.site, run.screen)
    contracts["sites"][run.site]["screens"]["later"] = {"acceptance_date": "2027-02-01"}
    svc = TicketService(run.db_url, contracts, clock=run.clock, auto_upgrade=False)
    try:
        q = Quarter(2026, 4)
        seen = [("rpt", "side"), ("other", "lobby")]
        assert due_screens(svc, q, seen, contracts) == [
            ("other", "lobby"), ("rpt", "side"), ("rpt", "wall")]  # "later": accepted after
        settings = ReportSettings(folder=tmp_path / "reports", max_per_call=2)
        first = generate_due(svc, run.source, settings, q, seen, contracts)
        assert [(g.site, g.screen) for g in first] == [("other", "lobby"), ("rpt", "side")]
        rest = generate_due(svc, run.source, settings, q, seen, contracts)
        assert [(g.site, g.screen) for g in rest] == [("rpt", "wall")]
        assert generate_due(svc, run.source, settings, q, seen, contracts) == []
        wall = rest[0]
        assert wall.paths == (tmp_path / "reports/2026-Q4/rpt/wall.pdf",
                              tmp_path / "reports/2026-Q4/rpt/wall.html")
        assert wall.paths[0].read_bytes().startswith(b"%PDF-")
        assert wall.summary.startswith("rpt/wall 2026-Q4: availability 99.91 %, 5 incidents "
                                       "(6 SLA breaches), 2 predicted failures, ")
        assert not list((tmp_path / "reports").rglob(".*.tmp"))
        assert generate_due(svc, run.source, ReportSettings(enabled=False), q) == []
    finally:
        svc.close()


def test_due_command(config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "out"
    assert ledwatch(["report", "due", "--quarter", "2026-Q4", "--folder", str(folder),
                     "--config", str(config())]) == 0
    out = capsys.readouterr().out
    assert (folder / "2026-Q4/rpt/wall.pdf").exists()
    assert out.strip().endswith("1 report written")
