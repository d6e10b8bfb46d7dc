"""Alembic environment: the URL comes from the Config (set by ``cloud_api.migrate``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

import cloud_api.models  # noqa: F401  (registers the tables on Base.metadata)
from cloud_api.db import Base, make_engine

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


run_migrations_online()
