"""`ledwatch demo --webhook URL --smtp HOST:PORT`: a new user's receivers get the tickets.

A local HTTP receiver and a real SMTP server (aiosmtpd) stand for the user's own; the
demo makes up the webhook secret and prints it, and every POST must verify with it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "collector" / "notify"))
from notify_helpers import HttpReceiver, SmtpReceiver  # noqa: E402

from collector.notify.webhook import verify  # noqa: E402


def demo(*args: str) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ledwatch.cli", "demo", "--quiet", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),  # type: ignore[union-attr]
                     daemon=True).start()
    return proc, lines


def test_demo_tickets_reach_the_users_webhook_and_mailbox(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    hook = HttpReceiver().start()
    smtp = SmtpReceiver().start()
    port = free_port()
    proc, lines = demo("--api-port", str(port), "--data-dir", str(tmp_path),
                       "--webhook", f"{hook.url}/demo-hook",
                       "--smtp", f"127.0.0.1:{smtp.port}", "--smtp-to", "me@example.org")
    try:
        deadline = time.monotonic() + 60  # the first fault is at 15 s
        while not (hook.posts("/demo-hook") and smtp.mails):
            assert time.monotonic() < deadline, "".join(lines)
            assert proc.poll() is None, "".join(lines)
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        hook.stop()
        smtp.stop()
    out = "".join(lines)
    assert f"service desk: http://127.0.0.1:{port}/desk" in out, out
    assert "demo-admin-token-change-me" in out
    found = re.search(r"signed with secret (\S+) \(made up", out)
    assert found, out
    secret = found.group(1)
    first = hook.posts("/demo-hook")[0]
    assert verify(secret, first.headers["x-ledwatch-timestamp"], first.body,
                  first.headers["x-ledwatch-signature"], now=time.time())
    body = json.loads(first.body)
    assert body["event"] == "opened" and body["ticket"]["site"] == "acme-arena"
    assert body["desk_url"].startswith(f"http://127.0.0.1:{port}/desk/tickets/")
    mail = smtp.mails[0]
    assert mail.rcpt_tos == ("me@example.org",) and mail.mail_from == "ledwatch-demo@example.com"
    assert "acme-arena" in mail.message["Subject"]


def test_demo_refuses_a_bad_smtp_address_and_an_unreachable_webhook(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    bad = subprocess.run([sys.executable, "-m", "ledwatch.cli", "demo", "--smtp", "nohost"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "expected HOST:PORT" in bad.stderr, bad.stderr
    closed = free_port()  # nothing listens here
    proc, lines = demo("--api-port", str(free_port()), "--data-dir", str(tmp_path),
                       "--webhook", f"http://127.0.0.1:{closed}/hook")
    assert proc.wait(timeout=60) == 1, "".join(lines)
    out = "".join(lines)
    assert "could not start" in out and "notify.channels.webhook" in out, out
