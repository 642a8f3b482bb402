"""Alembic migrations of the ticket database (docs/tickets.md, "Schema and migrations")."""
