"""From a storage URL to an engine: the URL read (sipantau's own parameters taken out,
:func:`normalize_url`) and the SQLAlchemy engine made, with SQLite's connection settings."""

from __future__ import annotations

import logging
import re
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from sipantau_adapters._sqlite import set_wal
from sipantau_core.errors import StorageError

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PG_DRIVERS = ("postgresql", "postgres", "postgresql+psycopg")
_SQLITE_DRIVERS = ("sqlite", "sqlite+pysqlite")
_SYNCHRONOUS = ("off", "normal", "full", "extra")


# ---------------------------------------------------------------------------------------
# URLs
# ---------------------------------------------------------------------------------------


@attrs.frozen
class _Target:
    backend: str  # "sqlite" | "postgresql"
    url: URL  # for create_engine: driver normalised, sipantau's own parameters removed
    display: str  # the URL as given, password masked
    schema: str | None = None
    memory: bool = False
    synchronous: str = "full"
    busy_timeout: float = 30.0


def _bad_url(url: str, why: str) -> StorageError:
    return StorageError(f"storage URL {url}: {why}", code="storage.bad_url")


def _one(value: str | tuple[str, ...]) -> str:
    return value if isinstance(value, str) else value[-1]


def _parse(url: str) -> _Target:
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as e:
        raise _bad_url(url, f"not a database URL ({e})") from e
    display = parsed.render_as_string(hide_password=True)
    driver = parsed.drivername.lower()
    query = dict(parsed.query)
    if driver in _PG_DRIVERS:
        schema = _one(query.pop("schema")) if "schema" in query else None
        if schema is not None and not _SCHEMA_RE.match(schema):
            raise _bad_url(
                display,
                f"schema {schema!r} must be a lower-case SQL name ([a-z_][a-z0-9_]*, "
                "at most 63 characters)",
            )
        target_url = parsed.set(drivername="postgresql+psycopg", query=query)
        return _Target("postgresql", target_url, display, schema=schema)
    if driver in _SQLITE_DRIVERS:
        if "schema" in query:
            raise _bad_url(display, "?schema= is for PostgreSQL; SQLite has one per file")
        synchronous = _one(query.pop("synchronous", "full")).lower()
        if synchronous not in _SYNCHRONOUS:
            raise _bad_url(display, f"synchronous must be one of {_SYNCHRONOUS}")
        try:
            busy = float(_one(query.pop("busy_timeout", "30")))
        except ValueError as e:
            raise _bad_url(display, "busy_timeout must be a number of seconds") from e
        database = parsed.database or ""
        memory = database in ("", ":memory:")
        return _Target(
            "sqlite",
            parsed.set(drivername="sqlite+pysqlite", query=query),
            display,
            memory=memory,
            synchronous=synchronous,
            busy_timeout=busy,
        )
    raise _bad_url(
        display, "use sqlite:///PATH, sqlite:// or postgresql://USER@HOST:PORT/DB (psycopg 3)"
    )


def normalize_url(url: str) -> str:
    """The SQLAlchemy URL sipantau connects with (password masked): ``postgresql://``
    and ``postgres://`` become ``postgresql+psycopg://``; sipantau's own parameters
    (``schema``, ``synchronous``, ``busy_timeout``) are taken out."""
    return _parse(url).url.render_as_string(hide_password=True)


# ---------------------------------------------------------------------------------------
# Engines
# ---------------------------------------------------------------------------------------


#: Engines never put bound parameters (report payloads, figures, token hashes) into their
#: log lines or error messages, and log under their own name, quiet unless asked.
_QUIET: dict[str, Any] = {"hide_parameters": True, "logging_name": "sipantau"}
_ENGINE_LOGGER = "sqlalchemy.engine.Engine.sipantau"
if logging.getLogger(_ENGINE_LOGGER).level == logging.NOTSET:
    logging.getLogger(_ENGINE_LOGGER).setLevel(logging.WARNING)


def _make_engine(target: _Target) -> Engine:
    if target.backend == "postgresql":
        try:
            import psycopg  # noqa: F401
        except ImportError as e:  # pragma: no cover - installs without the postgres extra
            raise StorageError(
                "PostgreSQL storage needs psycopg 3: pip install 'sipantau[postgres]'",
                code="install.missing_extra",
            ) from e
        connect_args: dict[str, Any] = {"application_name": "sipantau"}
        query = target.url.query
        if "connect_timeout" not in query:
            connect_args["connect_timeout"] = 10
        if target.schema is not None:
            options = _one(query["options"]) + " " if "options" in query else ""
            connect_args["options"] = f"{options}-c search_path={target.schema}"
        return sa.create_engine(target.url, connect_args=connect_args, pool_pre_ping=True, **_QUIET)
    if target.memory:
        engine = sa.create_engine(
            target.url,
            connect_args={"check_same_thread": False, "timeout": target.busy_timeout},
            poolclass=StaticPool,
            **_QUIET,
        )
    else:
        engine = sa.create_engine(
            target.url,
            connect_args={"check_same_thread": False, "timeout": target.busy_timeout},
            **_QUIET,
        )
    _sqlite_events(engine, target)
    return engine


def _sqlite_events(engine: Engine, target: _Target) -> None:
    busy_ms = int(target.busy_timeout * 1000)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # sqlite3 must not begin transactions by itself: we emit BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            if not target.memory:
                set_wal(cursor, target.busy_timeout)
            cursor.execute(f"PRAGMA synchronous = {target.synchronous.upper()}")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    def on_begin(conn: Connection) -> None:
        # A writer from the start: concurrent transactions queue (busy timeout) instead
        # of failing when a reader tries to become a writer.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)
