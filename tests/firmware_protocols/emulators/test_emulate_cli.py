"""`ledwatch emulate modbus-psu` as a subprocess, read by the agent's real Modbus reader."""

from __future__ import annotations

import subprocess
import sys

from agent.drivers.modbus_psu.reader import ModbusPsuReader


def test_modbus_psu_emulator_from_the_command_line() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ledwatch.cli", "emulate", "modbus-psu", "--tcp", "127.0.0.1:0",
         "--units", "2", "--fault", "die:2", "--duration", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().split()
        assert first[0] == "tcp", first
        reader = ModbusPsuReader({
            "url": f"modbus-tcp://{first[1]}", "timeout_ms": 500, "retries": 1,
            "units": [{"slave": 1, "id": "psu-a"}, {"slave": 2, "id": "psu-b"}],
        })
        reader.open()
        try:
            cols = reader.read()
        finally:
            reader.close()
        assert cols["id"] == ["psu-a", "psu-b"]
        assert cols["ok"] == [True, False]  # unit 2 was told to die at once
        assert cols["vout_v"][0] is not None and cols["vout_v"][0] > 4.5
    finally:
        proc.terminate()
        proc.wait(10)


def test_bad_fault_spec_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ledwatch.cli", "emulate", "modbus-psu", "--tcp", "127.0.0.1:0",
         "--fault", "boom:1"], capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 2
    assert "expected KIND[@AT_S]:SLAVE" in done.stderr
