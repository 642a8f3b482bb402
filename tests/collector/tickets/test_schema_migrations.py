"""The ticket schema is Alembic's: an empty database and one of release 0.1 both upgrade
to the schema the code declares, on SQLite and PostgreSQL; a newer database is refused;
two collector processes on one PostgreSQL never open two tickets for one fault."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import types
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, insert, select, text

from collector.detect.findings import Fault, Finding
from collector.tickets import TicketService, db, schema
from ledwatch.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
RELEASE_0_1 = "8687d09"  # the last commit of release 0.1's schema


def _release_0_1_metadata() -> object:
    """The schema module of release 0.1, loaded from git (it made tables by create_all)."""
    source = subprocess.run(
        ["git", "show", f"{RELEASE_0_1}:collector/tickets/db.py"], cwd=ROOT,
        capture_output=True, text=True, check=True).stdout
    module = types.ModuleType("ledwatch_release_0_1_db")
    sys.modules[module.__name__] = module
    exec(compile(source, "release-0.1/db.py", "exec"), module.__dict__)
    return module


def _differences(url: str) -> list[object]:
    engine = create_engine(url)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                 db.metadata)
    engine.dispose()
    return list(diffs)


def test_an_empty_database_is_created_at_the_newest_revision(ticket_db_url: str) -> None:
    svc = TicketService(ticket_db_url)
    with svc._engine.connect() as conn:
        assert schema.current(conn) == schema.head()
    svc.close()
    assert _differences(ticket_db_url) == []  # the migrations make what the code declares


def test_a_database_of_release_0_1_is_upgraded_and_keeps_its_tickets(
    ticket_db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    old = _release_0_1_metadata()
    engine = create_engine(ticket_db_url)
    old.metadata.create_all(engine)  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(insert(old.tickets).values(  # type: ignore[attr-defined]
            key="acme/main/card/c1/module_fault", open_key="acme/main/card/c1/module_fault",
            site="acme", screen="main", component="card/c1", fault="module_fault",
            priority="P3", state="open", source="auto", detail="2 modules", opened_ms=1,
            response_due_ms=2, onsite_due_ms=3, resolve_due_ms=4, reopen_count=0,
            product_fault=True))
    engine.dispose()
    with caplog.at_level("WARNING"):
        svc = TicketService(ticket_db_url)
    assert "upgraded from schema revision 0001" in caplog.text
    [t], _ = svc.list()
    assert (t.fault, t.state, t.flapping, t.escalation_level) == ("module_fault", "open", False, 0)
    # and it works on: a finding joins the old ticket
    svc.apply_findings([Finding("acme", "main", "card/c1", Fault.MODULE_FAULT, False, 10, "ok")])
    assert svc.get(t.id).state == "verifying"
    svc.close()
    assert _differences(ticket_db_url) == []


def test_without_auto_upgrade_a_behind_database_names_the_command(ticket_db_url: str) -> None:
    engine = create_engine(ticket_db_url)
    _release_0_1_metadata().metadata.create_all(engine)  # type: ignore[attr-defined]
    engine.dispose()
    with pytest.raises(ConfigError, match="run `ledwatch collector db upgrade"):
        TicketService(ticket_db_url, auto_upgrade=False)


def test_a_database_from_a_newer_release_is_refused(ticket_db_url: str) -> None:
    TicketService(ticket_db_url).close()
    engine = create_engine(ticket_db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(ConfigError, match="revision 9999, which this release does not know"):
        TicketService(ticket_db_url)


def _collector_process(url: str, keys: int, start: multiprocessing.synchronize.Event) -> None:
    svc = TicketService(url)
    findings = [Finding("acme", "main", f"card/c{k}", Fault.MODULE_FAULT, True, 1000 + k, "x")
                for k in range(keys)]
    start.wait(10)
    for i in range(0, keys, 5):  # batches, like the ingest loop
        svc.apply_findings(findings[i:i + 5])
    svc.close()


def test_two_collectors_on_one_postgresql_never_open_two_tickets(postgresql: object) -> None:
    url = postgresql.create_database("two_collectors")  # type: ignore[attr-defined]
    TicketService(url).close()  # created once, as a deployment's first start does
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_collector_process, args=(url, 60, start)) for _ in range(2)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    engine = create_engine(url)
    with engine.connect() as conn:
        keys = [r.key for r in conn.execute(select(db.tickets.c.key))]
    engine.dispose()
    assert len(keys) == 60 and len(set(keys)) == 60


def test_the_db_upgrade_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from collector.cli import main

    url = f"sqlite:///{tmp_path / 'tickets.db'}"
    engine = create_engine(url)
    _release_0_1_metadata().metadata.create_all(engine)  # type: ignore[attr-defined]
    engine.dispose()
    cfg = tmp_path / "collector.toml"
    cfg.write_text(f'[database]\nurl = "{url}"\nauto_upgrade = false\n')
    assert main(["db", "current", "--config", str(cfg)]) == 0
    assert f"database: 0001; this release: {schema.head()}" in capsys.readouterr().out
    assert main(["db", "upgrade", "--config", str(cfg)]) == 0
    assert f"upgraded from revision 0001 to {schema.head()}" in capsys.readouterr().out
    assert main(["db", "upgrade", "--config", str(cfg)]) == 0
    assert "already at revision" in capsys.readouterr().out
    TicketService(url, auto_upgrade=False).close()  # current now: starts
    bad = tmp_path / "bad.toml"
    bad.write_text('[database]\nurl = "nodb+nodriver://x/y"\n')
    assert main(["db", "upgrade", "--config", str(bad)]) == 2
    assert "database.url" in capsys.readouterr().err
