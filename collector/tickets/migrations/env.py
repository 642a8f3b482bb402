"""Alembic's environment: migrations run on the connection LEDwatch hands in.

`collector.tickets.schema` calls Alembic with `config.attributes["connection"]`; there
is no alembic.ini and no URL of its own, so `ledwatch collector db upgrade` and the
collector's start-up migrate exactly the database the config names.
"""

from __future__ import annotations

from alembic import context

from collector.tickets.db import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
