"""SQL schema (SQLAlchemy 2 Core) for tickets; runs on SQLite (WAL) and PostgreSQL.

The tables here are what the newest migration (collector/tickets/migrations) makes; the
migrations, not `create_all`, build and change real databases (schema.py), and a test
holds the two equal on both backends. Constraint names follow one convention, so
migrations are deterministic everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    false,
    make_url,
)
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from ledwatch.errors import ConfigError

# Named constraints make later Alembic migrations deterministic on every backend.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Ms = BigInteger  # ms since the Unix epoch, UTC

tickets = Table(
    "tickets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(255), nullable=False),  # site/screen/component/fault
    # = key while the ticket is not closed, NULL once closed: the unique index keeps one
    # open ticket per fault key even with several collector processes on one database.
    Column("open_key", String(255), nullable=True),
    Column("site", String(64), nullable=False),
    Column("screen", String(64), nullable=False),
    Column("component", String(128), nullable=False),
    Column("fault", String(32), nullable=False),
    Column("priority", String(2), nullable=False),
    Column("state", String(16), nullable=False),
    Column("source", String(8), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("reporter", String(128), nullable=True),
    Column("engineer", String(128), nullable=True),
    Column("opened_ms", Ms, nullable=False),
    Column("reopened_ms", Ms, nullable=True),
    Column("acknowledged_ms", Ms, nullable=True),
    Column("dispatched_ms", Ms, nullable=True),
    Column("arrived_ms", Ms, nullable=True),
    Column("cleared_ms", Ms, nullable=True),
    Column("resolved_ms", Ms, nullable=True),
    Column("closed_ms", Ms, nullable=True),
    Column("response_due_ms", Ms, nullable=False),
    Column("onsite_due_ms", Ms, nullable=False),
    Column("resolve_due_ms", Ms, nullable=False),
    Column("repair_due_ms", Ms, nullable=True),
    Column("in_warranty", Boolean, nullable=True),
    Column("reopen_count", Integer, nullable=False, default=0),
    Column("repeat_of", Integer, ForeignKey("tickets.id"), nullable=True),
    Column("root_cause", Text, nullable=True),
    Column("resolution", String(8), nullable=True),
    Column("product_fault", Boolean, nullable=False, default=True),
    # Root-cause tickets (docs/detection.md): marked when the fault came and went
    # repeatedly; the predicted failure time of a degrading part; the opening evidence.
    Column("flapping", Boolean, nullable=False, default=False, server_default=false()),
    Column("predicted_failure_ms", Ms, nullable=True),
    Column("evidence", Text, nullable=True),  # JSON object
    # SLA clocks (docs/tickets.md): waiting on the customer pauses them; warnings at
    # fractions of the response / on-site time (how many were sent, per clock), the
    # escalation level reached, and when a deadline passed without its step.
    Column("paused_ms", Ms, nullable=True),  # the current pause began (NULL: running)
    Column("paused_total_ms", Ms, nullable=False, default=0, server_default="0"),
    Column("response_warned", Integer, nullable=False, default=0, server_default="0"),
    Column("onsite_warned", Integer, nullable=False, default=0, server_default="0"),
    Column("escalation_level", Integer, nullable=False, default=0, server_default="0"),
    Column("response_breached_ms", Ms, nullable=True),
    Column("onsite_breached_ms", Ms, nullable=True),
    UniqueConstraint("open_key"),
    Index("ix_tickets_key_id", "key", "id"),
    Index("ix_tickets_site_screen", "site", "screen"),
    Index("ix_tickets_state", "state"),
    Index("ix_tickets_opened_ms", "opened_ms"),
)

ticket_events = Table(
    "ticket_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False, index=True),
    Column("ts_ms", Ms, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("step", String(32), nullable=False),
    Column("from_state", String(16), nullable=True),
    Column("to_state", String(16), nullable=False),
    Column("note", Text, nullable=False, default=""),
)

surveys = Table(
    "surveys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False),
    Column("score", Integer, nullable=False),
    Column("satisfied", Boolean, nullable=False),
    Column("comment", Text, nullable=False, default=""),
    Column("ts_ms", Ms, nullable=False, index=True),
    Column("actor", String(128), nullable=False),
    UniqueConstraint("ticket_id"),  # one rating per ticket; a later one replaces it
)

# Screen-dark periods (faults in the contract's `downtime_faults`): the availability KPI
# and, where `product_fault` holds, the warranty extension are computed from these rows.
downtime = Table(
    "downtime",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site", String(64), nullable=False),
    Column("screen", String(64), nullable=False),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False, index=True),
    Column("start_ms", Ms, nullable=False),
    Column("end_ms", Ms, nullable=True),
    Column("product_fault", Boolean, nullable=False, default=True),
    Index("ix_downtime_site_screen", "site", "screen"),
)


# The findings a ticket stands for: its causes (the finding that opened it and later
# stages of the same root cause, e.g. voltage_low -> psu_failed) and their effects (the
# cabinet a failed PSU took dark). A ticket clears when none of its causes is active.
ticket_members = Table(
    "ticket_members",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False, index=True),
    Column("key", String(255), nullable=False, index=True),
    Column("component", String(128), nullable=False),
    Column("fault", String(32), nullable=False),
    Column("role", String(8), nullable=False),  # cause | effect
    Column("active", Boolean, nullable=False),
    Column("first_ms", Ms, nullable=False),
    Column("last_ms", Ms, nullable=False),
    UniqueConstraint("ticket_id", "key", name="uq_ticket_members_ticket_key"),
)

# Maintenance windows: while one covers a screen (or one component of it), findings
# open no tickets; they are recorded in `suppressed` instead.
maintenance = Table(
    "maintenance",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site", String(64), nullable=False),
    Column("screen", String(64), nullable=True),  # NULL: the whole site
    Column("component", String(128), nullable=True),  # NULL: the whole screen
    Column("start_ms", Ms, nullable=False),
    Column("end_ms", Ms, nullable=False),
    Column("who", String(128), nullable=False),
    Column("why", Text, nullable=False),
    Column("created_ms", Ms, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("ended_early_ms", Ms, nullable=True),  # DELETE ends a window, it stays on record
    Column("source", String(8), nullable=False, default="api"),  # api | config
    Index("ix_maintenance_site_end", "site", "end_ms"),
)

suppressed = Table(
    "suppressed",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("maintenance_id", Integer, ForeignKey("maintenance.id"), nullable=False, index=True),
    Column("key", String(255), nullable=False, index=True),
    Column("site", String(64), nullable=False),
    Column("screen", String(64), nullable=False),
    Column("component", String(128), nullable=False),
    Column("fault", String(32), nullable=False),
    Column("priority", String(2), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("root", String(255), nullable=True),  # an effect: the root it belongs to
    Column("first_ms", Ms, nullable=False),
    Column("cleared_ms", Ms, nullable=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=True),  # opened later
)

# The notification outbox: one row per (ticket or task change, channel, route level),
# written in the same transaction as the change; the sender (collector/notify) delivers
# and marks it. `id` is the idempotency key receivers see.
notifications = Table(
    "notifications",
    metadata,
    Column("id", String(128), primary_key=True),
    # What the row is about: a ticket, or (task_due, task_overdue, report_ready) a
    # proactive-care task; a report on a screen without a task has neither.
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=True, index=True),
    Column("task_id", Integer, ForeignKey("tasks.id"), nullable=True, index=True),
    Column("event", String(32), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("level", Integer, nullable=False),
    Column("recipients", Text, nullable=False, default="[]"),  # JSON list
    Column("note", Text, nullable=False, default=""),
    Column("payload", Text, nullable=False),  # the ticket (or task) as the API shows it, JSON
    Column("created_ms", Ms, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_ms", Ms, nullable=True),  # NULL with delivered_ms NULL: given up
    Column("delivered_ms", Ms, nullable=True),
    Column("last_error", Text, nullable=True),
    # Which collector is sending it now, until when (several collectors on one PostgreSQL
    # must not send a row at the same time; a claim that lapses is taken over).
    Column("claimed_by", String(128), nullable=True),
    Column("claimed_until", Ms, nullable=True),
    Index("ix_notifications_due", "delivered_ms", "next_attempt_ms"),
)

# The installed base (issue 9), from telemetry: every component with its model and how
# many parts it counts (a receiving card's modules, a PSU), per site and screen.
# `first_ms` starts its operating hours (spares and MTBF count them from there).
components = Table(
    "components",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site", String(64), nullable=False),
    Column("screen", String(64), nullable=False),
    Column("component", String(128), nullable=False),  # controller, card/p0c1, psu/p0c1-psu1
    Column("kind", String(32), nullable=False),  # controller | receiving_card | module | psu
    Column("model", String(128), nullable=False),
    Column("quantity", Integer, nullable=False, default=1),
    Column("first_ms", Ms, nullable=False),
    Column("seen_ms", Ms, nullable=False),
    UniqueConstraint("site", "screen", "component", "kind", name="uq_components_part"),
    Index("ix_components_kind_model", "kind", "model"),
)

# Spare parts used on a repair, recorded with the resolve step.
parts_used = Table(
    "parts_used",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False, index=True),
    Column("site", String(64), nullable=False),
    Column("screen", String(64), nullable=False),
    Column("component", String(128), nullable=False),
    Column("model", String(128), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("ts_ms", Ms, nullable=False, index=True),
)

# Proactive care (DOMAIN.md): quarterly remote inspections and follow-up contacts every
# two months after acceptance, scheduled per screen; doing one is a recorded step.
tasks = Table(
    "tasks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site", String(64), nullable=False),
    Column("screen", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # inspection | follow_up
    Column("due_ms", Ms, nullable=False),
    Column("done_ms", Ms, nullable=True),
    Column("done_by", String(128), nullable=True),
    Column("note", Text, nullable=False, default=""),
    Column("report", Text, nullable=True),  # where the inspection report was written
    Column("notified_ms", Ms, nullable=True),  # task_due queued (same transaction)
    Column("overdue_notified_ms", Ms, nullable=True),  # task_overdue queued
    UniqueConstraint("site", "screen", "kind", "due_ms", name="uq_tasks_due"),
    Index("ix_tasks_due_ms", "due_ms"),
)

# Detection's rolling state (pending counts, bucketed history, flapping), saved so a
# restarted collector judges as if it had never stopped (docs/detection.md).
detector_state = Table(
    "detector_state",
    metadata,
    Column("name", String(128), primary_key=True),  # the collector's MQTT client id
    Column("saved_ms", Ms, nullable=False),
    Column("blob", LargeBinary, nullable=False),
)


def insert_ignore(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> int:
    """Insert `rows`, skipping those a unique key already holds (another collector on the
    same PostgreSQL may have written them a moment ago); returns how many were new."""
    if not rows:
        return 0
    dialect = conn.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(table).on_conflict_do_nothing()
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table).on_conflict_do_nothing()
    else:  # pragma: no cover - the two backends LEDwatch supports are above
        raise ConfigError(f"database.url: unsupported database {dialect!r}")
    # RETURNING, not rowcount: psycopg reports -1 for ON CONFLICT DO NOTHING.
    stmt = stmt.returning(*table.primary_key.columns)
    return sum(conn.execute(stmt.values(**row)).first() is not None for row in rows)


def make_engine(db_url: str) -> Engine:
    """An engine for `db_url`; SQLite gets WAL, foreign keys and a busy timeout."""
    kwargs: dict[str, Any] = {}
    try:
        url = make_url(db_url)
    except ArgumentError as exc:
        raise ConfigError(f"database.url: {db_url!r} is not an SQLAlchemy URL ({exc})") from None
    is_sqlite = url.get_backend_name() == "sqlite"
    if is_sqlite and url.database and url.database != ":memory:":
        try:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"database.url: cannot create the folder of {url.database}: {exc}"
            ) from None
    if is_sqlite and not (url.database and url.database != ":memory:"):
        kwargs["poolclass"] = StaticPool  # one shared in-memory database for every thread
    if is_sqlite:
        # Ingest and API threads share the engine; writes are serialised by the service.
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 15}
    try:
        engine = create_engine(url, **kwargs)
    except (ArgumentError, ImportError) as exc:
        raise ConfigError(f"database.url: cannot use {url.drivername!r}: {exc}") from None
    if is_sqlite:

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if url.database and url.database != ":memory:":
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    return engine
