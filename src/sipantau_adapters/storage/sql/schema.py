"""The schema: the Alembic migrations shipped in ``sipantau_adapters/storage/migrations``,
run up to the newest when an :class:`~sipantau_adapters.storage.sql.SQLStorage` opens or
by :func:`upgrade`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine

from sipantau_adapters.storage.sql.connect import _make_engine, _parse, _Target
from sipantau_adapters.storage.sql_errors import db_errors
from sipantau_adapters.storage.sql_models import VERSION_TABLE
from sipantau_core.errors import StorageError

#: Where Alembic finds the migrations: inside the package ``sipantau_adapters.storage``.
SCRIPT_LOCATION = "sipantau_adapters.storage:migrations"


def alembic_config(connection: Connection | None = None, schema: str | None = None) -> Config:
    """An Alembic config for sipantau's migrations (``script_location`` inside
    ``sipantau_adapters.storage``; new revision files named ``rNNNN_slug.py``). Pass
    ``connection`` (from :func:`migration_connection`) for commands that touch a
    database."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("file_template", "r%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    return config


_HEAD: list[str] = []


def head_revision() -> str:
    """The newest migration this release ships."""
    if not _HEAD:
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert head is not None
        _HEAD.append(head)
    return _HEAD[0]


def _current_revision(conn: Connection, schema: str | None) -> str | None:
    context = MigrationContext.configure(
        conn, opts={"version_table": VERSION_TABLE, "version_table_schema": schema}
    )
    return context.get_current_revision()


def _prepare(conn: Connection, target: _Target) -> None:
    """Serialize concurrent migrations of one schema, and create the schema."""
    if target.backend != "postgresql":
        return  # SQLite: BEGIN IMMEDIATE serializes already
    key = f"sipantau.migrate:{target.schema or ''}"
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
    if target.schema is not None:
        conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{target.schema}"')


@contextmanager
def migration_connection(url: str) -> Iterator[tuple[Connection, str | None]]:
    """A connection to ``url`` inside a transaction, with its schema (if any) created and
    selected and concurrent migrations locked out, for Alembic (see ``migrations/env.py``)."""
    target = _parse(url)
    engine = _make_engine(target)
    try:
        with engine.connect() as conn, conn.begin():
            _prepare(conn, target)
            yield conn, target.schema
    finally:
        engine.dispose()


def _migrate(engine: Engine, target: _Target, revision: str) -> None:
    with db_errors(target.display), engine.connect() as conn, conn.begin():
        if revision == "head" and _current_revision(conn, target.schema) == head_revision():
            return
        _prepare(conn, target)
        try:
            command.upgrade(alembic_config(conn, target.schema), revision)
        except CommandError as e:
            raise StorageError(
                f"cannot migrate the database {target.display} to {revision}: {e}. "
                "A database made by a newer release of sipantau does not open with an "
                "older one.",
                code="storage.schema",
            ) from e


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision`` (default: the newest)."""
    target = _parse(url)
    engine = _make_engine(target)
    try:
        _migrate(engine, target, revision)
    finally:
        engine.dispose()
