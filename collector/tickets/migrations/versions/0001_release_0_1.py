"""The ticket schema of release 0.1 (tickets, history, surveys, downtime).

Databases of that release were made by `metadata.create_all` and have no
`alembic_version` table; `collector.tickets.schema` recognises them and stamps this
revision before upgrading.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Ms = sa.BigInteger


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("open_key", sa.String(255), nullable=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("screen", sa.String(64), nullable=False),
        sa.Column("component", sa.String(128), nullable=False),
        sa.Column("fault", sa.String(32), nullable=False),
        sa.Column("priority", sa.String(2), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("reporter", sa.String(128), nullable=True),
        sa.Column("engineer", sa.String(128), nullable=True),
        sa.Column("opened_ms", Ms, nullable=False),
        sa.Column("reopened_ms", Ms, nullable=True),
        sa.Column("acknowledged_ms", Ms, nullable=True),
        sa.Column("dispatched_ms", Ms, nullable=True),
        sa.Column("arrived_ms", Ms, nullable=True),
        sa.Column("cleared_ms", Ms, nullable=True),
        sa.Column("resolved_ms", Ms, nullable=True),
        sa.Column("closed_ms", Ms, nullable=True),
        sa.Column("response_due_ms", Ms, nullable=False),
        sa.Column("onsite_due_ms", Ms, nullable=False),
        sa.Column("resolve_due_ms", Ms, nullable=False),
        sa.Column("repair_due_ms", Ms, nullable=True),
        sa.Column("in_warranty", sa.Boolean, nullable=True),
        sa.Column("reopen_count", sa.Integer, nullable=False),
        sa.Column("repeat_of", sa.Integer, nullable=True),
        sa.Column("root_cause", sa.Text, nullable=True),
        sa.Column("resolution", sa.String(8), nullable=True),
        sa.Column("product_fault", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tickets"),
        sa.UniqueConstraint("open_key", name="uq_tickets_open_key"),
        sa.ForeignKeyConstraint(["repeat_of"], ["tickets.id"],
                                name="fk_tickets_repeat_of_tickets"),
    )
    op.create_index("ix_tickets_key_id", "tickets", ["key", "id"])
    op.create_index("ix_tickets_site_screen", "tickets", ["site", "screen"])
    op.create_index("ix_tickets_state", "tickets", ["state"])
    op.create_index("ix_tickets_opened_ms", "tickets", ["opened_ms"])
    op.create_table(
        "ticket_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.Integer, nullable=False),
        sa.Column("ts_ms", Ms, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("step", sa.String(16), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=True),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ticket_events"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"],
                                name="fk_ticket_events_ticket_id_tickets"),
    )
    op.create_index("ix_ticket_events_ticket_id", "ticket_events", ["ticket_id"])
    op.create_table(
        "surveys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.Integer, nullable=False),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("satisfied", sa.Boolean, nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("ts_ms", Ms, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_surveys"),
        sa.UniqueConstraint("ticket_id", name="uq_surveys_ticket_id"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"],
                                name="fk_surveys_ticket_id_tickets"),
    )
    op.create_index("ix_surveys_ts_ms", "surveys", ["ts_ms"])
    op.create_table(
        "downtime",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("screen", sa.String(64), nullable=False),
        sa.Column("ticket_id", sa.Integer, nullable=False),
        sa.Column("start_ms", Ms, nullable=False),
        sa.Column("end_ms", Ms, nullable=True),
        sa.Column("product_fault", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_downtime"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"],
                                name="fk_downtime_ticket_id_tickets"),
    )
    op.create_index("ix_downtime_ticket_id", "downtime", ["ticket_id"])
    op.create_index("ix_downtime_site_screen", "downtime", ["site", "screen"])


def downgrade() -> None:
    for table in ("downtime", "surveys", "ticket_events", "tickets"):
        op.drop_table(table)
