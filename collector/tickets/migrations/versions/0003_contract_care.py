"""Issue 9: the installed base, spare parts used, proactive-care tasks; notification
claims for several collectors on one database, and notifications about tasks.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Ms = sa.BigInteger


def upgrade() -> None:
    op.create_table(
        "components",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("screen", sa.String(64), nullable=False),
        sa.Column("component", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("first_ms", Ms, nullable=False),
        sa.Column("seen_ms", Ms, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_components"),
        sa.UniqueConstraint("site", "screen", "component", "kind", name="uq_components_part"),
    )
    op.create_index("ix_components_kind_model", "components", ["kind", "model"])
    op.create_table(
        "parts_used",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.Integer, nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("screen", sa.String(64), nullable=False),
        sa.Column("component", sa.String(128), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("ts_ms", Ms, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_parts_used"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"],
                                name="fk_parts_used_ticket_id_tickets"),
    )
    op.create_index("ix_parts_used_ticket_id", "parts_used", ["ticket_id"])
    op.create_index("ix_parts_used_ts_ms", "parts_used", ["ts_ms"])
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("screen", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("due_ms", Ms, nullable=False),
        sa.Column("done_ms", Ms, nullable=True),
        sa.Column("done_by", sa.String(128), nullable=True),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("report", sa.Text, nullable=True),
        sa.Column("notified_ms", Ms, nullable=True),
        sa.Column("overdue_notified_ms", Ms, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
        sa.UniqueConstraint("site", "screen", "kind", "due_ms", name="uq_tasks_due"),
    )
    op.create_index("ix_tasks_due_ms", "tasks", ["due_ms"])
    # Task and report notifications go through the same outbox: a row is about a ticket
    # or a task (or, a report on a screen without a task, neither).
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(128), nullable=True))
        batch.add_column(sa.Column("claimed_until", Ms, nullable=True))
        batch.alter_column("ticket_id", existing_type=sa.Integer, nullable=True)
        batch.add_column(sa.Column("task_id", sa.Integer, nullable=True))
        batch.create_foreign_key("fk_notifications_task_id_tasks", "tasks", ["task_id"], ["id"])
        batch.create_index("ix_notifications_task_id", ["task_id"])


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_index("ix_notifications_task_id")
        batch.drop_constraint("fk_notifications_task_id_tasks", type_="foreignkey")
        batch.drop_column("task_id")
        batch.alter_column("ticket_id", existing_type=sa.Integer, nullable=False)
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
    for table in ("tasks", "parts_used", "components"):
        op.drop_table(table)
