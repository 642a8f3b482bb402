"""The agent as a display PC installs it: the wheel, a fresh venv, only the `agent` extra.

Builds the wheel from a copy of the source tree (`pip wheel --no-deps`, so the checkout
gets no build/ folder), creates a venv without system site-packages, installs
`ledwatch[agent]` from that wheel (pip fetches the dependencies from PyPI), checks that
no collector library came along, and runs the installed `ledwatch` against an emulator
of every controller family (NovaStar over TCP, Colorlight over UDP, NovaStar COEX and
Brompton Tessera over HTTP) served from this (the test's) environment: one
`agent --check-config` over a config with a screen of each must say OK for all four,
and `emulate` (every family), `decode`, `discover` must start. The venv is built once
for the module (the slow part: pip fetching the agent's dependencies).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_config import write_agent_config

from firmware_protocols.emulators.brompton_tessera import TesseraEmulator
from firmware_protocols.emulators.colorlight import ColorlightEmulator
from firmware_protocols.emulators.novastar import NovastarEmulator
from firmware_protocols.emulators.novastar_coex import CoexEmulator

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "agent", "collector", "firmware_protocols", "ledwatch")
COLLECTOR_ONLY = ("fastapi", "sqlalchemy", "numpy", "uvicorn", "influxdb_client", "amqtt")
S22_REPLY = "AA 55 00 5D 00 FE 00 00 00 00 01 00 10 00 00 05 00 00 C6 56"  # spec 2.2


def run(args: list[str], cwd: Path, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout_s, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def agent_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh venv holding `ledwatch[agent]` from a freshly built wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "testcases")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"),
                 str(src)], tmp)  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp / "dist").glob("ledwatch-*-py3-none-any.whl")
    venv = tmp / "venv"
    made = run([sys.executable, "-m", "venv", str(venv)], tmp)
    assert made.returncode == 0, made.stderr
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    installed = run([str(bin_dir / "python"), "-m", "pip", "install", "-q",
                     f"ledwatch[agent] @ {wheel.as_uri()}"], tmp, 600)  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    return bin_dir


@pytest.fixture
def fleet() -> Iterator[dict[str, str | dict[str, object]]]:
    """One emulated screen per family (2 ports x 3 cards where the family has cards), as
    screen id -> the `[screens.controller]` table (or NovaStar URL) reading it."""
    nova = NovastarEmulator(ports=2, cards=3, psus=2)
    clt = ColorlightEmulator(ports=2, cards=3)
    coex = CoexEmulator(outputs=2, cabinets=3)
    tessera = TesseraEmulator(tiles=12)
    try:
        host, port = nova.serve_tcp()
        screens: dict[str, str | dict[str, object]] = {"wall": f"tcp://{host}:{port}"}
        host, port = clt.serve_udp()
        screens["led-clt"] = {"driver": "colorlight", "url": f"udp://{host}:{port}",
                              "ports": 2, "cards_per_port": 3, "mfc_ports": [0]}  # fmt: skip
        host, port = coex.serve_http()
        screens["led-coex"] = {"driver": "novastar-coex", "url": f"http://{host}:{port}",
                               "cabinets": 6, "request_gap_ms": 50}  # fmt: skip
        host, port = tessera.serve_http()
        screens["led-tessera"] = {"driver": "brompton-tessera", "tiles": 12,
                                  "url": f"http://{host}:{port}"}  # fmt: skip
        yield screens
    finally:
        for emu in (nova, clt, coex, tessera):
            emu.stop()


def test_agent_extra_brings_no_collector_library(agent_venv: Path, tmp_path: Path) -> None:
    probe = ("import importlib.util as u, sys; "
             f"print(','.join(m for m in {COLLECTOR_ONLY!r} if u.find_spec(m)))")  # fmt: skip
    done = run([str(agent_venv / "python"), "-c", probe], tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "", done.stdout + done.stderr
    needed = run([str(agent_venv / "python"), "-c", "import paho, serial, pymodbus, httpx"],
                 tmp_path)  # fmt: skip
    assert needed.returncode == 0, needed.stderr


def test_installed_agent_checks_its_config_against_every_family(
    agent_venv: Path, tmp_path: Path, fleet: dict[str, str | dict[str, object]]
) -> None:
    config = write_agent_config(tmp_path, "wheel-site", fleet)
    done = run([str(agent_venv / "ledwatch"), "agent", "--config", str(config),
                "--check-config"], tmp_path, 60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    for line in ("screen wall: OK link up, 6/6 cards answering",
                 "screen led-clt: OK link up, 6/6 cards answering",
                 "screen led-coex: OK link up, 6/6 cards answering",
                 "screen led-tessera: OK link up, 0/0 cards answering"):  # tiles: counts only
        assert line in done.stdout, done.stdout
    assert "config OK: 4 screen(s) checked" in done.stdout


def test_installed_emulate_decode_discover_run(agent_venv: Path, tmp_path: Path) -> None:
    ledwatch = str(agent_venv / "ledwatch")
    emulated = run([ledwatch, "emulate", "novastar", "--tcp", "127.0.0.1:0", "--cards", "2",
                    "--duration", "0.5"], tmp_path, 60)  # fmt: skip
    assert emulated.returncode == 0 and emulated.stdout.startswith("tcp 127.0.0.1:"), (
        emulated.stdout + emulated.stderr
    )
    for family, where in (("colorlight", "--udp"), ("novastar-coex", "--tcp"),
                          ("brompton-tessera", "--tcp")):  # fmt: skip
        emulated = run([ledwatch, "emulate", family, where, "127.0.0.1:0", "--duration", "0.3"],
                       tmp_path, 60)  # fmt: skip
        first = f"{where.removeprefix('--')} 127.0.0.1:"
        assert emulated.returncode == 0 and emulated.stdout.startswith(first), (
            family + emulated.stdout + emulated.stderr
        )
    decoded = run([ledwatch, "decode", "novastar", "--json", *S22_REPLY.split()], tmp_path, 60)
    assert decoded.returncode == 0 and '"power supply switches"' in decoded.stdout, decoded.stderr
    found = run([ledwatch, "discover", "--subnet", "127.0.0.1/32", "--port", "9",
                 "--timeout-s", "0.2"], tmp_path, 60)  # fmt: skip
    assert found.returncode == 1 and "no controller answered" in found.stdout, found.stderr
    assert "searched for: colorlight, novastar" in found.stdout, found.stdout
