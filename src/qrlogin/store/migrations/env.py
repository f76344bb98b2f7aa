"""Alembic environment. Runs on a connection handed in by :mod:`qrlogin.store.migrate`."""

from __future__ import annotations

from alembic import context

from qrlogin.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
