"""`ledwatch demo` as a new user runs it: a subprocess, its output, its API, Ctrl-C.

The demo's first fault (a module failure on acme-arena/lobby) is scheduled at 15 s; its
ticket must be printed and served by the API within 10 s of the fault starting, and
SIGINT (Ctrl-C) must stop every part and exit 0.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from ledwatch.demo import DEMO_TOKEN, SCENARIO


def test_demo_opens_the_first_ticket_and_stops_on_ctrl_c(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ledwatch.cli", "demo", "--api-port", str(port),
         "--data-dir", str(tmp_path), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                              daemon=True)
    reader.start()
    first = SCENARIO[0].faults[0]  # "module_fail@15:p0c2"
    at_s = float(re.search(r"@(\d+)", first).group(1))  # type: ignore[union-attr]
    try:
        deadline = time.monotonic() + at_s + 30
        ticket_line = None
        while time.monotonic() < deadline and ticket_line is None:
            ticket_line = next((ln for ln in list(lines) if "TICKET" in ln and
                                "card/p0c2 module_fault" in ln), None)
            assert proc.poll() is None, "".join(lines)
            time.sleep(0.5)
        assert ticket_line, "no module_fault ticket printed:\n" + "".join(lines)
        opened_at = float(re.search(r"t\+\s*([\d.]+)s", ticket_line).group(1))  # type: ignore[union-attr]
        assert at_s <= opened_at <= at_s + 10, ticket_line

        resp = httpx.get(f"http://127.0.0.1:{port}/api/v1/tickets",
                         params={"site": "acme-arena", "screen": "lobby"},
                         headers={"Authorization": f"Bearer {DEMO_TOKEN}"}, timeout=5)
        assert resp.status_code == 200, resp.text
        tickets = resp.json()["data"]
        assert [(t["component"], t["fault"], t["priority"]) for t in tickets] == [
            ("card/p0c2", "module_fault", "P3")]
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/tickets",
                         timeout=5).status_code == 401  # no token

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(5)
    out = "".join(lines)
    assert "stopped. 1 ticket(s) opened." in out, out
    assert "Traceback" not in out, out
