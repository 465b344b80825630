"""Alembic's environment for sipantau's SQL storage.

Run through :func:`sipantau_adapters.storage.sql.upgrade` (or by opening an
``SQLStorage``): it passes an open connection, inside a transaction, with the schema
selected and created, as ``config.attributes["connection"]`` and the schema name as
``config.attributes["schema"]``; the tables and Alembic's version table then live in that
schema. Without a connection (the ``alembic`` command line with a config whose
``script_location`` is ``sipantau_adapters.storage:migrations``), ``sqlalchemy.url`` is
opened the same way.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from sipantau_adapters.storage.sql_models import VERSION_TABLE, metadata


def _run(connection: Connection, schema: str | None) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        version_table_schema=schema,
        compare_type=True,
        render_as_batch=True,  # SQLite alters a table by copying it
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection, config.attributes.get("schema"))
        return
    if context.is_offline_mode():
        raise RuntimeError("sipantau's migrations run against a database, not as SQL text")
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "no database: use sipantau_adapters.storage.sql.upgrade(URL) or set sqlalchemy.url"
        )
    from sipantau_adapters.storage.sql import migration_connection

    with migration_connection(url) as (conn, schema):
        _run(conn, schema)


main()
