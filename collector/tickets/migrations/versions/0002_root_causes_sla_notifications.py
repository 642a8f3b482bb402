"""Root-cause tickets, maintenance windows, detection state, SLA clocks, notifications.

Issues 7 and 8: a ticket stands for a root cause (`ticket_members`: its causes and
effects) and may be flapping or carry a forecast; maintenance windows hold findings back
(`maintenance`, `suppressed`); detection's rolling state survives restarts
(`detector_state`); SLA clocks pause, escalate and record breaches (new `tickets`
columns); notifications go through an outbox (`notifications`). History steps grew
longer names ("response_breached"): `ticket_events.step` is widened.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Ms = sa.BigInteger

def _new_ticket_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("flapping", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("predicted_failure_ms", Ms, nullable=True),
        sa.Column("evidence", sa.Text, nullable=True),
        sa.Column("paused_ms", Ms, nullable=True),
        sa.Column("paused_total_ms", Ms, nullable=False, server_default="0"),
        sa.Column("response_warned", sa.Integer, nullable=False, server_default="0"),
        sa.Column("onsite_warned", sa.Integer, nullable=False, server_default="0"),
        sa.Column("escalation_level", sa.Integer, nullable=False, server_default="0"),
        sa.Column("response_breached_ms", Ms, nullable=True),
        sa.Column("onsite_breached_ms", Ms, nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        for column in _new_ticket_columns():
            batch.add_column(column)
    with op.batch_alter_table("ticket_events") as batch:
        batch.alter_column("step", type_=sa.String(32), existing_type=sa.String(16),
                           existing_nullable=False)
    op.create_table(
        "ticket_members",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.Integer, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("component", sa.String(128), nullable=False),
        sa.Column("fault", sa.String(32), nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("first_ms", Ms, nullable=False),
        sa.Column("last_ms", Ms, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ticket_members"),
        sa.UniqueConstraint("ticket_id", "key", name="uq_ticket_members_ticket_key"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"],
                                name="fk_ticket_members_ticket_id_tickets"),
    )
    op.create_index("ix_ticket_members_ticket_id", "ticket_members", ["ticket_id"])
    op.create_index("ix_ticket_members_key", "ticket_members", ["key"])
    op.create_table(
        "maintenance",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("screen", sa.String(64), nullable=True),
        sa.Column("component", sa.String(128), nullable=True),
        sa.Column("start_ms", Ms, nullable=False),
        sa.Column("end_ms", Ms, nullable=False),
        sa.Column("who", sa.String(128), nullable=False),
        sa.Column("why", sa.Text, nullable=False),
        sa.Column("created_ms", Ms, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("ended_early_ms", Ms, nullable=True),
        sa.Column("source", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_maintenance"),
    )
    op.create_index("ix_maintenance_site_end", "maintenance", ["site", "end_ms"])
    op.create_table(
        "suppressed",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("maintenance_id", sa.Integer, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("screen", sa.String(64), nullable=False),
        sa.Column("component", sa.String(128), nullable=False),
        sa.Column("fault", sa.String(32), nullable=False),
        sa.Column("priority", sa.String(2), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("root", sa.String(255), nullable=True),
        sa.Column("first_ms", Ms, nullable=False),
        sa.Column("cleared_ms", Ms, nullable=True),
        sa.Column("ticket_id", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_suppressed"),
        sa.ForeignKeyConstraint(["maintenance_id"], ["maintenance.id"],
                                name="fk_suppressed_maintenance_id_maintenance"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"],
                                name="fk_suppressed_ticket_id_tickets"),
    )
    op.create_index("ix_suppressed_maintenance_id", "suppressed", ["maintenance_id"])
    op.create_index("ix_suppressed_key", "suppressed", ["key"])
    op.create_table(
        "notifications",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("ticket_id", sa.Integer, nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("recipients", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_ms", Ms, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_ms", Ms, nullable=True),
        sa.Column("delivered_ms", Ms, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"],
                                name="fk_notifications_ticket_id_tickets"),
    )
    op.create_index("ix_notifications_ticket_id", "notifications", ["ticket_id"])
    op.create_index("ix_notifications_due", "notifications", ["delivered_ms", "next_attempt_ms"])
    op.create_table(
        "detector_state",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("saved_ms", Ms, nullable=False),
        sa.Column("blob", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_detector_state"),
    )


def downgrade() -> None:
    for table in ("detector_state", "notifications", "suppressed", "maintenance",
                  "ticket_members"):
        op.drop_table(table)
    with op.batch_alter_table("ticket_events") as batch:
        batch.alter_column("step", type_=sa.String(16), existing_type=sa.String(32))
    with op.batch_alter_table("tickets") as batch:
        for column in _new_ticket_columns():
            batch.drop_column(column.name)
