"""A data or log folder the agent cannot create or write: one line naming the folder and
what to do, exit code 2, before anything polls or publishes (and `--check-config`
leaves nothing behind)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_config import write_agent_config

from agent.cli import main

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534  # Debian's `nobody` / `nogroup`


def test_a_file_where_the_data_folder_should_be(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data").write_text("not a folder")
    path = write_agent_config(tmp_path, "folders", {"lobby": "tcp://127.0.0.1:1"})
    for mode in ("--once", "--check-config"):
        assert main(["--config", str(path), mode]) == 2
        assert capsys.readouterr().err == (
            f"ledwatch agent: agent.data_dir {tmp_path / 'data'}: a file is in the way: "
            "remove or rename that file or set agent.data_dir\n"
        )


def test_a_file_where_the_log_folder_should_be(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "logs").write_text("")
    path = write_agent_config(
        tmp_path, "folders", {"lobby": "tcp://127.0.0.1:1"}, log_file="logs/agent.log"
    )
    assert main(["--config", str(path), "--once"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ledwatch agent: agent.log_file {tmp_path / 'logs'}: a file is in")
    assert err.endswith("or set agent.log_file\n") and err.count("\n") == 1


@pytest.fixture
def locked_folder() -> Iterator[Path]:
    """A folder this test's agent process may read but not write: as root, the agent
    runs as `nobody` (root writes anywhere); otherwise the folder is made read-only."""
    root = Path(tempfile.mkdtemp(prefix="ledwatch-locked-"))
    root.chmod(0o755)  # readable by `nobody`: the config file is in here
    locked = root / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        yield locked
    finally:
        locked.chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)


def run_agent(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`ledwatch agent` as a child process; as root it runs as `nobody` (util-linux's
    setpriv, which drops every capability), since root may write anywhere."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and setpriv (util-linux) is missing to drop to nobody")
        prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    return subprocess.run(
        [*prefix, sys.executable, "-m", "ledwatch.cli", "agent", "--config", str(config), *args],
        capture_output=True, text=True, timeout=60, cwd=config.parent,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


@pytest.mark.parametrize("mode", ["--once", "--check-config"])
def test_permission_denied_says_which_folder_and_what_to_do(
    locked_folder: Path, mode: str
) -> None:
    config = write_agent_config(locked_folder.parent, "folders", {"lobby": "tcp://127.0.0.1:1"})
    config.write_text(
        config.read_text().replace('data_dir = "data"', 'data_dir = "locked/data"'), "utf-8"
    )
    config.chmod(0o644)
    proc = run_agent(config, mode)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr == (
        f"ledwatch agent: agent.data_dir {locked_folder / 'data'}: permission denied: run as "
        "a user that can write it or set agent.data_dir\n"
    )
    assert list(locked_folder.iterdir()) == []  # nothing created, no probe left behind
