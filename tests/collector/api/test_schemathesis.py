"""Schemathesis against the live API: every phase (examples, coverage, fuzzing, stateful),
with an admin token, on a real uvicorn server over a real TicketService on SQLite
(LEDWATCH_SCHEMATHESIS_DATABASE=postgresql: on the test PostgreSQL).

Checks: no 5xx, every response matches its documented schema, status code and content
type, and auth is not ignored. Bounded for `make test` by a fixed number of examples per
operation and a fixed seed, so a run is short and repeatable; rerun with more
(docs/testing.md):

    LEDWATCH_SCHEMATHESIS_EXAMPLES=200 LEDWATCH_SCHEMATHESIS_SEED=7 \
        pytest tests/collector/api/test_schemathesis.py -s

The `st` CLI runs in a subprocess, against the server in this process: one run covers
all four phases and ends with the summary the test prints.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_server import ADMIN, NOW_MS, TOKENS, snapshot

from collector.api.app import ApiContext
from collector.delivery import DeliveryTracker
from collector.service import serve_api
from collector.state import ScreenDirectory, ScreenState
from collector.tickets import TicketService

EXAMPLES = int(os.environ.get("LEDWATCH_SCHEMATHESIS_EXAMPLES", "50"))
SEED = int(os.environ.get("LEDWATCH_SCHEMATHESIS_SEED", "20260301"))
# sqlite (make test) or postgresql (the server tests/conftest.py starts).
DATABASE = os.environ.get("LEDWATCH_SCHEMATHESIS_DATABASE", "sqlite")
CHECKS = (
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "content_type_conformance",
    "ignored_auth",
)
PHASES = ("examples", "coverage", "fuzzing", "stateful")
# The stateful phase: scenarios (call chains along the links) and steps per scenario;
# a ticket's walk from report to reopen is 7 steps.
STATEFUL_SCENARIOS = int(os.environ.get("LEDWATCH_SCHEMATHESIS_SCENARIOS", str(4 * EXAMPLES)))
STATEFUL_STEPS = 12
# A PDF takes a second or more to render: fewer examples there keep the run short.
SLOW_OPERATIONS = {"GET /api/v1/reports/inspection/{site}/{screen}": max(2, EXAMPLES // 4)}


@dataclass
class Served:
    url: str
    tickets: TicketService


@pytest.fixture(scope="module")
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Served]:
    """The collector's API as `ledwatch collector` serves it (collector.service.serve_api),
    with a contract, two live screens, an agent status and delivery accounting."""
    if DATABASE == "postgresql":
        url = request.getfixturevalue("postgresql").create_database(f"st{os.getpid()}")
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('schemathesis') / 'tickets.db'}"
    contracts = {"sites": {"acme": {"screens": {"main": {"acceptance_date": "2026-01-10"}}}}}
    svc = TicketService(url, contracts)
    screens = ScreenDirectory()
    for name in ("main", "side"):
        screens.update(
            ScreenState("acme", name, "pc1", 7, NOW_MS, snapshot("acme", name), NOW_MS + 5)
        )
    screens.set_agent_status("acme", "pc1", {"state": "online"})
    delivery = DeliveryTracker()
    for seq in (1, 2, 5):
        delivery.record("acme", "main", "pc1", seq)
    ctx = ApiContext(
        tickets=svc,
        screens=screens,
        health=lambda: {"broker": {"ok": True}},
        metrics_text=lambda: "# TYPE ledwatch_up gauge\nledwatch_up 1\n",
        tokens=TOKENS,
        delivery=delivery,
    )
    server = serve_api(ctx, "127.0.0.1", 0)
    try:
        yield Served(server.url, svc)
    finally:
        server.stop()
        svc.close()


def _config(path: Path) -> Path:
    """Per-phase and per-operation example counts (the CLI has no flags for those)."""
    lines = ["[phases.stateful]", f"generation.max-examples = {STATEFUL_SCENARIOS}",
             f"max-steps = {STATEFUL_STEPS}", ""]
    for name, examples in SLOW_OPERATIONS.items():
        lines += ["[[operations]]", f'include-name = "{name}"',
                  f"generation.max-examples = {examples}", ""]
    path.write_text("\n".join(lines))
    return path


def _summary(out: str) -> dict[str, Any]:
    """Figures from the CLI's SUMMARY block; a missing one fails the test (format change)."""
    tested = re.search(r"^\s*Tested:\s*(\d+)", out, re.M)
    cases = re.search(r"^\s*(\d+) generated", out, re.M)
    final = re.search(r"^=+ (.+) in ([\d.]+)s =+$", out, re.M)
    assert tested and cases and final, out[-3000:]
    failures = re.search(r"(\d+) failures?", final.group(1))
    return {
        "operations": int(tested.group(1)),
        "cases": int(cases.group(1)),
        "failures": int(failures.group(1)) if failures else 0,
        "outcome": final.group(1),
        "seconds": float(final.group(2)),
    }


def test_schemathesis_finds_nothing(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = Path(sys.executable).with_name("st")
    cmd = [
        str(cli), "--config-file", str(_config(tmp_path / "schemathesis.toml")), "--no-color",
        "run", f"{served.url}/openapi.json",
        "--header", f"Authorization: {ADMIN['Authorization']}",
        "--checks", ",".join(CHECKS),
        "--phases", ",".join(PHASES),
        "--max-examples", str(EXAMPLES),
        "--seed", str(SEED),
        "--workers", "1",
        "--generation-database", "none",  # no examples carried over from an earlier run
        "--request-timeout", "30",
        "--report", "junit", "--report-dir", str(tmp_path / "report"),
    ]
    started = time.monotonic()
    # cwd: the CLI keeps a crash cache (.schemathesis/) where it runs, not in the repo.
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False,
                         cwd=tmp_path)
    took = time.monotonic() - started
    out = run.stdout + run.stderr
    (tmp_path / "schemathesis.log").write_text(out)
    s = _summary(out)
    line = (
        f"schemathesis: {s['operations']} operations, {s['cases']} cases, "
        f"{s['failures']} failures ({s['outcome']}); {EXAMPLES} examples/operation, "
        f"seed {SEED}, phases {'+'.join(PHASES)}, {took:.1f} s"
    )
    with capsys.disabled():
        print(f"\n{line}")
    assert run.returncode == 0, f"{line}\n{out[out.find('FAILURES'):][:20000]}"
    assert s["failures"] == 0
    assert s["operations"] >= 20  # every operation of the schema was tested
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert re.search(rf"✅ +{phase}", out), f"{phase} did not pass:\n{out[-3000:]}"
    stateful = re.search(r"API Links:\s+(\d+) covered", out)
    assert stateful and int(stateful.group(1)) > 0, "the stateful phase followed no link"
    # The calls walked real tickets through their lifecycle on the real database.
    tickets, _ = served.tickets.list(limit=1000)
    steps = {str(e.step) for t in tickets for e in served.tickets.get(t.id).history}
    with capsys.disabled():
        print(f"  tickets created: {len(tickets)}; steps taken: {', '.join(sorted(steps))}")
    assert {"open", "acknowledge", "dispatch", "pause"} <= steps, steps


def test_every_protected_operation_says_401_without_a_token(served: Served) -> None:
    """Auth-less calls of every operation behind a token: 401 with the Bearer challenge,
    never a 5xx (schemathesis' ignored_auth checks the same with generated inputs)."""
    spec = httpx.get(f"{served.url}/openapi.json").json()
    protected = 0
    for path, item in spec["paths"].items():
        # Any value will do: auth is checked before the path is looked at.
        url = served.url + re.sub(r"\{\w+\}", "1", path)
        for method, op in item.items():
            for headers in ({}, {"Authorization": "Bearer not-a-token"},
                            {"Authorization": "Basic dXNlcjpwYXNz"}):
                r = httpx.request(method, url, headers=headers, json={})
                assert r.status_code < 500, (method, path, r.status_code, r.text)
                if not op.get("security"):
                    continue
                assert r.status_code == 401, (method, path, headers, r.text)
                assert r.headers["www-authenticate"] == "Bearer"
                assert isinstance(r.json()["detail"], str)
            protected += bool(op.get("security"))
    assert protected >= 20
