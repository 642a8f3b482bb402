"""A corrupt outbox file (garbage, a truncated file, a damaged page, at start or while
running) is moved aside to `<name>.corrupt-<timestamp>`, kept, reported, and a new
outbox takes over: monitoring goes on. End to end: `ledwatch agent --once` on a garbage
outbox against the NovaStar emulator and a real Mosquitto still publishes."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from agent_config import write_agent_config

from agent.outbox import Kind, SqliteOutbox
from agent.outbox.sqlite import is_corrupt
from ledwatch import contract

ROOT = Path(__file__).resolve().parents[2]
PAGE = 4096
NOISE = b"\xde\xad\xbe\xef" * (PAGE // 4)  # what a bad sector reads back as, repeatably


def filled(path: Path, puts: int = 200, acked: int = 50) -> tuple[int, int]:
    """An outbox with `puts` snapshots of screen "lobby", the first `acked` acknowledged,
    checkpointed into the main file; returns (last id, last seq)."""
    box = SqliteOutbox(path)
    for _ in range(puts):
        msg_id, seq = box.put_seq(Kind.TELEMETRY, "t/lobby", "lobby", lambda s: b"x" * 3000)
    box.ack_batch([m.id for m in box.next_batch(acked)])
    box.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return msg_id, seq


def garbage(path: Path) -> None:
    path.write_bytes(NOISE * 8)


def truncated(path: Path) -> None:
    os.truncate(path, 3 * PAGE + 100)


def damaged_page(path: Path) -> None:
    """One page in the middle overwritten: the header and the counters still read."""
    with path.open("r+b") as fh:
        fh.seek(8 * PAGE)
        fh.write(NOISE)


def aside(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.iterdir() if ".corrupt-" in p.name)


@pytest.mark.parametrize(
    ("damage", "seqs_kept"), [(garbage, False), (truncated, False), (damaged_page, True)]
)
def test_corrupt_file_at_start_is_kept_aside_and_replaced(
    tmp_path: Path, damage: Callable[[Path], None], seqs_kept: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    path = tmp_path / "data" / "outbox.sqlite3"
    last_id, last_seq = filled(path)
    damage(path)
    bad = path.read_bytes()

    with caplog.at_level(logging.ERROR, logger="agent.outbox.sqlite"):
        box = SqliteOutbox(path)
    try:
        [record] = box.set_aside()
        assert record.path.name.startswith("outbox.sqlite3.corrupt-")
        assert record.path.read_bytes() == bad  # kept as found, byte for byte
        assert aside(path)[0] == record.path
        assert record.seqs_kept is seqs_kept
        assert f"outbox {path} is corrupt" in caplog.text and str(record.path) in caplog.text
        # A new, working outbox in its place.
        assert box.depth() == 0 and box.next_batch(10) == []
        msg_id, seq = box.put_seq(Kind.TELEMETRY, "t/lobby", "lobby", lambda s: b"new")
        assert [m.payload for m in box.next_batch(10)] == [b"new"]
        if seqs_kept:  # read back from the damaged file: no seq is ever reused
            assert (msg_id, seq) == (last_id + 1, last_seq + 1)
            assert record.stranded == 150  # the unacknowledged ones, left in the kept file
        else:
            assert seq == 1
    finally:
        box.close()
    # The new file is a healthy outbox: reopening it sets nothing aside.
    again = SqliteOutbox(path)
    assert again.set_aside() == [] and again.depth() == 1
    again.close()


def test_corruption_found_while_running_keeps_seqs_and_ids_going(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    box = SqliteOutbox(path)
    try:
        for _ in range(300):
            last_id, last_seq = box.put_seq(Kind.TELEMETRY, "t", "lobby", lambda s: b"x" * 3000)
        db = sqlite3.connect(path)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        with path.open("r+b") as fh:  # a bad sector under the running agent
            fh.seek(PAGE)
            fh.write(NOISE * 50)
        assert box.next_batch(300) == []  # the read that tripped over it ran on the new file
        [record] = box.set_aside()
        assert record.seqs_kept  # this process knew the seqs it had handed out
        msg_id, seq = box.put_seq(Kind.TELEMETRY, "t", "lobby", lambda s: b"after")
        # Ids go on above the old file's, so an in-flight old message's ack cannot
        # delete a new one; the seq goes on, so the collector sees no reuse.
        assert msg_id > last_id and seq == last_seq + 1
        box.ack_batch([last_id])  # an ack for a message of the old file: ignored
        assert [m.payload for m in box.next_batch(10)] == [b"after"]
    finally:
        box.close()


def test_only_damage_counts_as_corruption() -> None:
    locked = sqlite3.OperationalError("database is locked")
    assert not is_corrupt(locked) and not is_corrupt(OSError("disk full"))
    assert is_corrupt(sqlite3.DatabaseError("file is not a database"))
    assert is_corrupt(sqlite3.DatabaseError("database disk image is malformed"))


def test_agent_once_on_a_garbage_outbox_publishes_and_keeps_the_bad_file(
    tmp_path: Path, emulator: Any, mosquitto: Any, subscriber: Any
) -> None:
    _, url = emulator()
    site = "outbox-corrupt"
    sub = subscriber(mosquitto.host, mosquitto.port, [f"ledwatch/v1/{site}/screen/+/telemetry"])
    config = write_agent_config(
        tmp_path, site, {"lobby": url}, mosquitto.host, mosquitto.port, log_file="agent.log"
    )
    outbox = tmp_path / "data" / "outbox.sqlite3"
    outbox.parent.mkdir()
    outbox.write_bytes(b"not an outbox " * 1000)  # a bad disk sector, a stray copy, ...

    proc = subprocess.run(
        [sys.executable, "-m", "ledwatch.cli", "agent", "--config", str(config), "--once"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    [kept] = aside(outbox)
    assert kept.read_bytes() == b"not an outbox " * 1000
    log_text = (tmp_path / "agent.log").read_text()
    assert f"outbox {outbox} is corrupt (file is not a database): moved aside to {kept}" in log_text
    assert "outbox_corrupt=1" in proc.stdout  # the status line says so too

    msgs = sub.wait_for(lambda m: len(m) >= 1)
    doc = orjson.loads(msgs[0].payload)
    contract.validate_telemetry(doc)
    assert doc["screen"] == "lobby" and doc["controller"]["online"] is True
    assert doc["stats"]["outbox_corrupt"] == 1  # and every snapshot after the reset
