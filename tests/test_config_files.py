"""Config files in the encodings Windows editors write, for both `ledwatch agent` and
`ledwatch collector` (ledwatch/files.py): read when they decode, else one line that
names the file and says "save it as UTF-8", exit code 2, no traceback."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import main as agent_main
from agent.settings import load_settings as load_agent_settings
from collector.cli import main as collector_main
from collector.settings import load_settings as load_collector_settings
from ledwatch.errors import ConfigError
from ledwatch.files import decode_text, folder_problem

ROOT = Path(__file__).resolve().parent.parent

# Non-ASCII in a comment and a value: what an operator's editor really holds.
AGENT_TOML = """# Écran du hall, 大厅
[agent]
id = "pc1"
site = "enc-site"
data_dir = "data"
[mqtt]
host = "broker.example"
[[screens]]
id = "lobby"
[screens.controller]
driver = "novastar"
url = "tcp://127.0.0.1:1"
ports = 1
cards_per_port = 2
timeout_ms = 100
retries = 0
"""

COLLECTOR_TOML = """# Zentrale Süd
[mqtt]
host = "127.0.0.1"
client_id = "collector-süd"
[influx]
output = "none"
"""

# How each encoding a Windows editor may use comes out as bytes.
ENCODINGS = {
    "utf-8": lambda t: t.encode("utf-8"),
    "utf-8 with BOM": lambda t: t.encode("utf-8-sig"),
    "utf-16 LE with BOM": lambda t: b"\xff\xfe" + t.encode("utf-16-le"),
    "utf-16 BE with BOM": lambda t: b"\xfe\xff" + t.encode("utf-16-be"),
    "utf-16 LE without BOM": lambda t: t.encode("utf-16-le"),
    "utf-16 BE without BOM": lambda t: t.encode("utf-16-be"),
    "utf-32 with BOM": lambda t: t.encode("utf-32"),
}


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_decode_by_byte_order_mark_or_zero_bytes(encoding: str) -> None:
    assert decode_text(ENCODINGS[encoding](AGENT_TOML)) == AGENT_TOML


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("site = 'Café'\n".encode("cp1252"), "is not UTF-8 (byte 0xe9 on line 1"),
        (b"a = 1\nb = 2\n\x81\x82\n", "is not UTF-8 (byte 0x81 on line 3"),
        (b"\x00\x01\x02\x03binary\x00\xff", "is not a text file (it contains zero bytes)"),
        (b"\xff\xfe" + "a = 1".encode("utf-16-le") + b"\x00", "UTF-16 byte order mark but"),
        (b"\xef\xbb\xbfa = '\xe9'", "UTF-8 byte order mark but is not valid UTF-8"),
    ],
)
def test_undecodable_says_save_as_utf8(raw: bytes, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        decode_text(raw)
    msg = str(err.value)
    assert says in msg and msg.endswith("save it as UTF-8") and "\n" not in msg


@pytest.mark.parametrize(
    "encoding", ["utf-8 with BOM", "utf-16 LE with BOM", "utf-16 BE without BOM"]
)
def test_agent_reads_windows_encodings(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(ENCODINGS[encoding](AGENT_TOML))
    settings = load_agent_settings(path)
    assert settings.agent.site == "enc-site" and settings.screens[0].id == "lobby"
    assert settings.agent.data_dir == tmp_path / "data"  # still relative to the file


def test_agent_check_config_on_a_utf16_file_gets_past_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(AGENT_TOML.encode("utf-16"))  # PowerShell 5's `>`: UTF-16 LE with BOM
    assert agent_main(["--config", str(path), "--check-config"]) == 1  # the link, not the file
    out = capsys.readouterr()
    assert "screen lobby: FAIL link down" in out.out and out.err == ""


def test_agent_refuses_a_legacy_code_page_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(AGENT_TOML.replace("大厅", "").encode("cp1252"))
    assert agent_main(["--config", str(path), "--once"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"ledwatch agent: {path}: is not UTF-8 (byte 0xc9 on line 1; a legacy code page "
        "such as Windows-1252?): save it as UTF-8\n"
    )
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "encoding", ["utf-8 with BOM", "utf-16 LE with BOM", "utf-16 LE without BOM"]
)
def test_collector_reads_windows_encodings(
    tmp_path: Path, encoding: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "collector.toml"
    path.write_bytes(ENCODINGS[encoding](COLLECTOR_TOML))
    assert load_collector_settings(path).mqtt.client_id == "collector-süd"
    assert collector_main(["--config", str(path), "--check-config"]) == 0
    assert f"{path}: OK (output none" in capsys.readouterr().out


def test_collector_refuses_a_legacy_code_page_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "collector.toml"
    path.write_bytes(COLLECTOR_TOML.encode("cp1252"))
    assert collector_main(["--config", str(path), "--check-config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ledwatch collector: {path}: is not UTF-8 (byte 0xfc on line 1")
    assert err.endswith("save it as UTF-8\n") and err.count("\n") == 1


@pytest.mark.parametrize("command", ["agent", "collector"])
def test_cli_process_prints_one_line_and_exits_2(tmp_path: Path, command: str) -> None:
    """The real command as a child process: no traceback reaches the operator."""
    path = tmp_path / f"{command}.toml"
    text = AGENT_TOML if command == "agent" else COLLECTOR_TOML
    path.write_bytes(text.replace("大厅", "").encode("cp1252"))
    proc = subprocess.run(
        [sys.executable, "-m", "ledwatch.cli", command, "--config", str(path), "--check-config"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert str(path) in proc.stderr and proc.stderr.endswith("save it as UTF-8\n")


@pytest.mark.parametrize(
    ("code", "says"),
    [
        (errno.EACCES, "permission denied: run as a user that can write it or set agent.data_dir"),
        (errno.EROFS, "read-only file system: set agent.data_dir to a folder on a writable disk"),
        (errno.ENOSPC, "no space left on the disk: free some space or set agent.data_dir"),
        (errno.ENOTDIR, "a file is in the way: remove or rename that file or set agent.data_dir"),
        (errno.EIO, "Input/output error: check it or set agent.data_dir"),
    ],
)
def test_folder_problems_say_what_to_do(code: int, says: str) -> None:
    assert folder_problem(OSError(code, os.strerror(code)), "agent.data_dir") == says
