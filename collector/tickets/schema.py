"""The ticket database's schema version: Alembic migrations, checked and run at start.

```
 empty database ................ upgrade to the newest revision (a fresh install)
 release 0.1 (no alembic_version, made by create_all) .. is revision 0001: stamped
 behind ........................ upgraded, with a log line saying from and to which
                                 revision (or, with database.auto_upgrade = false, a
                                 start-up error telling to run `ledwatch collector db upgrade`)
 ahead (a newer release wrote it) ... refused: this release cannot read it
```
On PostgreSQL an advisory lock makes two collectors starting at once upgrade one after
the other; the second finds the database current.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from ledwatch.errors import ConfigError

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
LEGACY = "0001"  # release 0.1: the tables create_all made, before migrations existed
_LOCK_KEY = 0x1ED_3A7C  # pg_advisory_lock key: "LEDwatch schema"


def _config(conn: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def head() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    found = ScriptDirectory.from_config(cfg).get_current_head()
    assert found is not None
    return found


def current(conn: Connection) -> str | None:
    """The database's revision; LEGACY for a release-0.1 database; None when empty."""
    revision = MigrationContext.configure(conn).get_current_revision()
    if revision is None and inspect(conn).has_table("tickets"):
        return LEGACY
    return revision


def _known(revision: str) -> bool:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        return ScriptDirectory.from_config(cfg).get_revision(revision) is not None
    except Exception:
        return False


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the database to the newest revision; returns (before, after)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        before = current(conn)
        if before is not None and not _known(before):
            raise ConfigError(
                f"database.url: the ticket database is at revision {before}, which this "
                f"release does not know (its newest is {head()}): it was written by a newer "
                "LEDwatch; upgrade LEDwatch or use another database")
        cfg = _config(conn)
        if before == LEGACY and MigrationContext.configure(conn).get_current_revision() is None:
            command.stamp(cfg, LEGACY)
        command.upgrade(cfg, "head")
        return before, head()


def prepare(engine: Engine, auto_upgrade: bool = True) -> None:
    """At start: make sure the schema is the newest, or say clearly why not."""
    newest = head()
    with engine.connect() as conn:
        now = current(conn)
    if now == newest:
        return
    if now is not None and not _known(now):
        upgrade(engine)  # raises the "newer release" message
    if now is not None and not auto_upgrade:
        raise ConfigError(
            f"database.url: the ticket database is at revision {now}, this release needs "
            f"{newest}: run `ledwatch collector db upgrade --config <file>` (back it up first)")
    before, after = upgrade(engine)
    if before is None:
        log.info("ticket database created (schema revision %s)", after)
    else:
        log.warning("ticket database upgraded from schema revision %s to %s", before, after)
