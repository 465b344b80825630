"""``sqlite:///PATH`` and ``postgresql://…``: the storage port on SQL.

The tables are SQLModel models (:mod:`sipantau_adapters.storage.sql_models`); the schema
is made and changed only by the Alembic migrations shipped in ``migrations/``, which
:class:`SQLStorage` runs up to the newest on open. See ``docs/storage.md``.

URLs:

- ``sqlite:///PATH`` (a file; WAL mode), ``sqlite://`` (in memory, one process);
  ``?synchronous=normal`` trades the durability of the last commits on power loss for
  speed (default ``full``); ``?busy_timeout=SECONDS`` (default 30).
- ``postgresql://USER:PASSWORD@HOST:PORT/DB`` (also ``postgres://`` and
  ``postgresql+psycopg://``; the driver is psycopg 3); ``?schema=NAME`` keeps every table,
  and Alembic's version table, in the schema ``NAME`` (created when missing).

Transactions: SQLite runs each one as a writer from its start (``BEGIN IMMEDIATE``), so
they are serialized across processes, which wait up to the busy timeout. PostgreSQL runs
READ COMMITTED; ``station_states(keys, lock=True)`` locks the stations' rows (inserting
missing ones first) in sorted order, and the aggregates are incremented by upserts in
sorted order. A unique violation (a concurrent writer stored the same report or version),
a deadlock or a serialization failure raise ``ConflictError(code="storage.race")`` and
leave nothing of the batch written; the desk then retries the whole transaction.

The audit log: the desk numbers and chains the entries (``seq``, ``link``) after
``audit_head(lock=True)``, which reads the one row of ``audit_head`` (never the log) and,
on PostgreSQL, locks it (``SELECT … FOR UPDATE``) so that the chain has one writer at a
time; on SQLite ``BEGIN IMMEDIATE`` serialises already. A write that appends entries first
moves the head from the entry before its first (``UPDATE … WHERE seq = first - 1``): entries
that do not follow the head, or a ``seq`` taken already, are a ``storage.race`` with nothing
of the batch written.
"""

from __future__ import annotations

import json
import logging
import operator
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext, suppress
from datetime import datetime
from typing import Any
from uuid import UUID

import attrs
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from psycopg.types.json import Json
from sqlalchemy import event
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from sipantau_adapters._sqlite import set_wal
from sipantau_adapters.storage.sql_errors import DB_ERRORS, db_errors
from sipantau_adapters.storage.sql_models import (
    AGGREGATES,
    AUDIT,
    AUDIT_HEAD,
    DECISIONS,
    DEVICE_KEYS,
    MONITORS,
    NOTIFICATIONS,
    RELEASES,
    REPORTS,
    STATIONS,
    TOKENS,
    VERSION_TABLE,
)
from sipantau_core.audit import GENESIS
from sipantau_core.errors import ConflictError, StorageError
from sipantau_core.ports import (
    AggregateKey,
    AuditRecord,
    CountedTally,
    Decision,
    DeviceKeyRecord,
    MonitorRecord,
    NotificationRecord,
    NotificationStatus,
    ReleaseRecord,
    ReportFilter,
    ReportStatus,
    StationKey,
    StationState,
    Storage,
    StorageTx,
    StoredReport,
    TokenRecord,
    WriteBatch,
    iter_chunks,
)

__all__ = [
    "SCRIPT_LOCATION",
    "SQLStorage",
    "alembic_config",
    "head_revision",
    "migration_connection",
    "normalize_url",
    "upgrade",
]

#: Where Alembic finds the migrations: inside this package.
SCRIPT_LOCATION = "sipantau_adapters.storage:migrations"

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PG_DRIVERS = ("postgresql", "postgres", "postgresql+psycopg")
_SQLITE_DRIVERS = ("sqlite", "sqlite+pysqlite")
_SYNCHRONOUS = ("off", "normal", "full", "extra")
#: how many values one ``IN (…)`` list carries on SQLite
_CHUNK = 900


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


# ---------------------------------------------------------------------------------------
# Migrations
# ---------------------------------------------------------------------------------------


def alembic_config(connection: Connection | None = None, schema: str | None = None) -> Config:
    """An Alembic config for sipantau's migrations (``script_location`` inside this
    package; new revision files named ``rNNNN_slug.py``). Pass ``connection`` (from
    :func:`migration_connection`) for commands that touch a database."""
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


# ---------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------

_REPORT_COLUMNS = [
    REPORTS.c.report_id,
    REPORTS.c.chain_id,
    REPORTS.c.version,
    REPORTS.c.kind,
    REPORTS.c.station,
    REPORTS.c.contest,
    REPORTS.c.monitor,
    REPORTS.c.stage,
    REPORTS.c.observed_at,
    REPORTS.c.received_at,
    REPORTS.c.digest,
    REPORTS.c.payload,
    REPORTS.c.status,
    REPORTS.c.verdict,
    REPORTS.c.submitted_by,
]
_REPORT_NAMES = [c.name for c in _REPORT_COLUMNS]
_STATUS = {s.value: s for s in ReportStatus}
_AUDIT_NAMES = [
    "seq", "at", "principal", "role", "action", "object", "outcome", "detail", "region", "link"
]  # fmt: skip
_AUDIT_COLUMNS = [AUDIT.c[name] for name in _AUDIT_NAMES]
_audit_values = operator.attrgetter(*_AUDIT_NAMES)
_COPY_REPORTS = (
    f"COPY reports ({', '.join(_REPORT_NAMES)}) FROM STDIN (FORMAT BINARY)",
    [c.type for c in _REPORT_COLUMNS],
)
_STATION_COLUMNS = [
    STATIONS.c[name]
    for name in ("contest", "station", "chain_id", "counted_report_id", "counted_version")
] + [STATIONS.c.counters]
_COPY_STATIONS = (
    f"COPY station_states ({', '.join(c.name for c in _STATION_COLUMNS)}) "
    "FROM STDIN (FORMAT BINARY)",
    [c.type for c in _STATION_COLUMNS],
)
_COPY_AUDIT = (
    f"COPY audit_log ({', '.join(_AUDIT_NAMES)}) FROM STDIN (FORMAT BINARY)",
    [c.type for c in _AUDIT_COLUMNS],
)
#: PostgreSQL: from how many rows COPY beats an INSERT (two round trips instead of one)
_COPY_FROM = 20
#: PostgreSQL: from how many rows upserts go through a COPYed temporary table
_STAGE_FROM = 1000
_STAGE_KEYS = sa.table(
    "sipantau_stage_keys", sa.column("contest", sa.Text()), sa.column("station", sa.Text())
)
_STAGE_STATIONS = sa.table(
    "sipantau_stage_stations",
    sa.column("contest", sa.Text()),
    sa.column("station", sa.Text()),
    sa.column("chain_id", sa.Uuid()),
    sa.column("counted_report_id", sa.Uuid()),
    sa.column("counted_version", sa.Integer()),
    sa.column("counters", sa.Text()),
)


def _check_aware(times: Iterable[datetime]) -> None:
    """What :class:`~sipantau_adapters.storage.sql_models.UTCDateTime` checks, for COPY."""
    for t in times:
        if t.tzinfo is None or t.utcoffset() is None:
            raise StorageError(
                f"a naive datetime ({t.isoformat()}) has no instant to store",
                code="storage.failed",
            )


_json_key = json.encoder.encode_basestring_ascii


def _counters_json(counters: Mapping[str, int]) -> str:
    """``json.dumps(counters, separators=(",", ":"))``, written directly (a row per TPS)."""
    if not all(type(v) is int for v in counters.values()):
        return json.dumps(counters, separators=(",", ":"))
    return "{" + ",".join([f"{_json_key(k)}:{v}" for k, v in counters.items()]) + "}"


def _as_json(text: str) -> Json:
    """Counters already written as JSON text, for a binary ``COPY`` into a JSON column."""
    return Json(text, dumps=_as_is)


def _as_is(text: str) -> str:
    return text


def _station_rows(
    rows: list[dict[str, Any]], counters_as: Callable[[str], Any] = _as_is
) -> Iterator[tuple[Any, ...]]:
    """Station rows for ``COPY``: ``counters`` as JSON text (a staging table's text
    column), or as ``counters_as`` makes it (``_as_json`` for the table's JSON column)."""
    for row in rows:
        counters = row["counters"]
        yield (
            row["contest"],
            row["station"],
            row["chain_id"],
            row["counted_report_id"],
            row["counted_version"],
            None if counters is None else counters_as(_counters_json(counters)),
        )


def _report(row: Sequence[Any]) -> StoredReport:
    return StoredReport(
        report_id=row[0],
        chain_id=row[1],
        version=row[2],
        kind=row[3],
        station=row[4],
        contest=row[5],
        monitor=row[6],
        stage=row[7],
        observed_at=row[8],
        received_at=row[9],
        digest=row[10],
        payload=row[11],
        status=_STATUS[row[12]],
        verdict=row[13],
        submitted_by=row[14],
    )


def _report_values(r: StoredReport) -> tuple[Any, ...]:
    return (
        r.report_id,
        r.chain_id,
        r.version,
        r.kind,
        r.station,
        r.contest,
        r.monitor,
        r.stage,
        r.observed_at,
        r.received_at,
        r.digest,
        r.payload,
        r.status.value,
        r.verdict,
        r.submitted_by,
    )


def _station_state(row: Any) -> StationState:
    counted = None
    if row.counted_report_id is not None:
        counters = row.counters
        if isinstance(counters, str):  # pragma: no cover - a driver that returns text
            counters = json.loads(counters)
        counted = CountedTally(row.counted_report_id, row.counted_version, dict(counters or {}))
    return StationState(chain_id=row.chain_id, counted=counted)


def _station_values(key: StationKey, state: StationState) -> dict[str, Any]:
    counted = state.counted
    return {
        "contest": key[0],
        "station": key[1],
        "chain_id": state.chain_id,
        "counted_report_id": counted.report_id if counted else None,
        "counted_version": counted.version if counted else None,
        "counters": dict(counted.counters) if counted else None,
    }


def _region_range(region: str) -> tuple[str, str | None, str | None]:
    """For ``ReportFilter.region``: (exact station, prefix, exclusive upper bound). The
    bound turns a prefix into an index range over ``station``."""
    if len(region) == 13 and "." not in region:
        return region, None, None
    prefix = region.replace(".", "")
    upper = None
    if prefix.isdigit() and prefix.strip("9"):
        upper = str(int(prefix) + 1).zfill(len(prefix))
    return "", prefix, upper


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _unnest(*columns: tuple[str, sa.types.TypeEngine[Any]]) -> Any:
    """PostgreSQL: ``unnest(:a::T[], :b::U[], …) AS u(a, b, …)``: many rows in one
    statement with one array parameter per column."""
    fn = sa.func.unnest(*(sa.bindparam(name, type_=pg.ARRAY(t)) for name, t in columns))
    names = [sa.column(name, t) for name, t in columns]
    return fn.table_valued(*names).render_derived(name="u")


# Statements built once (SQLAlchemy then finds their compiled form in its cache at once).

_SELECT_AGGREGATES = sa.select(AGGREGATES.c.name, AGGREGATES.c.value).where(
    AGGREGATES.c.contest == sa.bindparam("contest"),
    AGGREGATES.c.region == sa.bindparam("region"),
    AGGREGATES.c.value != 0,
)


def _is_head() -> Any:
    newer = REPORTS.alias("newer")
    return ~sa.exists().where(
        newer.c.chain_id == REPORTS.c.chain_id, newer.c.version > REPORTS.c.version
    )


def _by_ids(column: sa.Column[Any], *, postgresql: bool) -> Any:
    if postgresql:
        return column == sa.any_(sa.bindparam("ids", type_=pg.ARRAY(column.type)))
    return column.in_(sa.bindparam("ids", expanding=True))


def _report_lookups(postgresql: bool) -> dict[str, Any]:
    select = sa.select(*_REPORT_COLUMNS)
    return {
        "get_reports": select.where(_by_ids(REPORTS.c.report_id, postgresql=postgresql)),
        "chain_heads": select.where(_by_ids(REPORTS.c.chain_id, postgresql=postgresql), _is_head()),
    }


def _upsert_stations_from(source: Any) -> Any:
    """``INSERT … SELECT`` of station states from ``source`` (a staging table or an
    ``unnest`` of arrays), replacing the rows that exist, in key order."""
    ins = pg.insert(STATIONS).from_select(
        ["contest", "station", "chain_id", "counted_report_id", "counted_version", "counters"],
        sa.select(
            source.c.contest,
            source.c.station,
            source.c.chain_id,
            source.c.counted_report_id,
            source.c.counted_version,
            sa.cast(source.c.counters, sa.JSON()),
        ).order_by(source.c.contest, source.c.station),
    )
    return ins.on_conflict_do_update(
        index_elements=["contest", "station"],
        set_={
            "chain_id": ins.excluded.chain_id,
            "counted_report_id": ins.excluded.counted_report_id,
            "counted_version": ins.excluded.counted_version,
            "counters": ins.excluded.counters,
        },
    )


def _pg_statements() -> dict[str, Any]:
    s: dict[str, Any] = _report_lookups(postgresql=True)
    key_cols = (("contest", sa.String()), ("station", sa.String()))
    u = _unnest(*key_cols)
    s["lock_insert"] = (
        pg.insert(STATIONS)
        .from_select(
            ["contest", "station"],
            sa.select(u.c.contest, u.c.station).order_by(u.c.contest, u.c.station),
        )
        .on_conflict_do_nothing(index_elements=["contest", "station"])
    )
    u = _unnest(*key_cols)
    s["lock_select"] = (
        sa.select(STATIONS)
        .join(u, sa.and_(STATIONS.c.contest == u.c.contest, STATIONS.c.station == u.c.station))
        .order_by(STATIONS.c.contest, STATIONS.c.station)
        .with_for_update(of=STATIONS)
    )
    s["select_states"] = sa.select(STATIONS).join(
        u, sa.and_(STATIONS.c.contest == u.c.contest, STATIONS.c.station == u.c.station)
    )
    k = _STAGE_KEYS
    s["lock_select_staged"] = (
        sa.select(STATIONS)
        .join(k, sa.and_(STATIONS.c.contest == k.c.contest, STATIONS.c.station == k.c.station))
        .order_by(STATIONS.c.contest, STATIONS.c.station)
        .with_for_update(of=STATIONS)
    )
    s["stations_staged"] = _upsert_stations_from(_STAGE_STATIONS)
    s["stations"] = _upsert_stations_from(
        _unnest(
            *key_cols,
            ("chain_id", sa.Uuid()),
            ("counted_report_id", sa.Uuid()),
            ("counted_version", sa.Integer()),
            ("counters", sa.Text()),
        )
    )
    u = _unnest(("contest", sa.String()), ("region", sa.String()), ("name", sa.String()),
                ("value", sa.BigInteger()))  # fmt: skip
    ins = pg.insert(AGGREGATES).from_select(
        ["contest", "region", "name", "value"],
        sa.select(u.c.contest, u.c.region, u.c.name, u.c.value).order_by(
            u.c.contest, u.c.region, u.c.name
        ),
    )
    s["aggregates"] = ins.on_conflict_do_update(
        index_elements=["contest", "region", "name"],
        set_={"value": AGGREGATES.c.value + ins.excluded.value},
    )
    s["statuses"] = (
        sa.update(REPORTS)
        .where(REPORTS.c.report_id == sa.any_(sa.bindparam("ids", type_=pg.ARRAY(sa.Uuid()))))
        .values(status=sa.bindparam("new_status"))
    )
    return s


_PG = _pg_statements()


def _sqlite_statements() -> dict[str, Any]:
    s: dict[str, Any] = _report_lookups(postgresql=False)
    s["select_states"] = sa.select(STATIONS).where(
        STATIONS.c.contest == sa.bindparam("contest"),
        STATIONS.c.station.in_(sa.bindparam("stations", expanding=True)),
    )
    s["statuses"] = (
        sa.update(REPORTS)
        .where(_by_ids(REPORTS.c.report_id, postgresql=False))
        .values(status=sa.bindparam("new_status"))
    )
    ins = sqlite_dialect.insert(STATIONS)
    s["stations"] = ins.on_conflict_do_update(
        index_elements=["contest", "station"],
        set_={
            "chain_id": ins.excluded.chain_id,
            "counted_report_id": ins.excluded.counted_report_id,
            "counted_version": ins.excluded.counted_version,
            "counters": ins.excluded.counters,
        },
    )
    ins = sqlite_dialect.insert(AGGREGATES)
    s["aggregates"] = ins.on_conflict_do_update(
        index_elements=["contest", "region", "name"],
        set_={"value": AGGREGATES.c.value + ins.excluded.value},
    )
    return s


_SQLITE = _sqlite_statements()


def _upsert(insert: Any, table: sa.Table) -> Any:
    """``INSERT … ON CONFLICT (primary key) DO UPDATE`` every other column."""
    ins = insert(table)
    key = [c.name for c in table.primary_key.columns]
    return ins.on_conflict_do_update(
        index_elements=key,
        set_={c.name: ins.excluded[c.name] for c in table.c if c.name not in key},
    )


#: (batch attribute, table, key attribute) of the records upserted by their key
_RECORDS: tuple[tuple[str, sa.Table, str], ...] = (
    ("device_keys", DEVICE_KEYS, "key_id"),
    ("tokens", TOKENS, "token_hash"),
    ("monitors", MONITORS, "id"),
)
for _name, _table, _ in _RECORDS:
    _PG[_name] = _upsert(pg.insert, _table)
    _SQLITE[_name] = _upsert(sqlite_dialect.insert, _table)

_HEAD_SELECT = sa.select(AUDIT_HEAD.c.seq, AUDIT_HEAD.c.link).where(AUDIT_HEAD.c.id == 1)
_HEAD_LOCK = _HEAD_SELECT.with_for_update()
_HEAD_MOVE = (
    sa.update(AUDIT_HEAD)
    .where(AUDIT_HEAD.c.id == 1, AUDIT_HEAD.c.seq == sa.bindparam("expected"))
    .values(seq=sa.bindparam("new_seq"), link=sa.bindparam("new_link"))
)
_LAST_ENTRY = sa.select(AUDIT.c.seq, AUDIT.c.link).order_by(AUDIT.c.seq.desc()).limit(1)
_PG["heal_head"] = pg.insert(AUDIT_HEAD).on_conflict_do_nothing(index_elements=["id"])
_SQLITE["heal_head"] = sqlite_dialect.insert(AUDIT_HEAD).on_conflict_do_nothing(
    index_elements=["id"]
)
_DEVICE_KEY_COLUMNS = [DEVICE_KEYS.c[a.name] for a in attrs.fields(DeviceKeyRecord)]
_TOKEN_COLUMNS = [TOKENS.c[a.name] for a in attrs.fields(TokenRecord)]
_MONITOR_COLUMNS = [MONITORS.c[a.name] for a in attrs.fields(MonitorRecord)]
_NOTIFICATION_NAMES = [a.name for a in attrs.fields(NotificationRecord)]
_NOTIFICATION_COLUMNS = [NOTIFICATIONS.c[name] for name in _NOTIFICATION_NAMES]
_NOTIFICATION_STATUS = {s.value: s for s in NotificationStatus}
#: the delivery state a notification update replaces
_DELIVERY_STATE = (
    "status", "attempts", "next_attempt_at", "last_error", "sent_at", "message_id",
    "given_up_reason",
)  # fmt: skip
_PG["queue"] = pg.insert(NOTIFICATIONS).on_conflict_do_nothing(index_elements=["dedupe_key"])
_SQLITE["queue"] = sqlite_dialect.insert(NOTIFICATIONS).on_conflict_do_nothing(
    index_elements=["dedupe_key"]
)
_NOTIFICATION_UPDATE = (
    sa.update(NOTIFICATIONS)
    .where(NOTIFICATIONS.c.dedupe_key == sa.bindparam("b_dedupe_key"))
    .values({name: sa.bindparam(f"b_{name}") for name in _DELIVERY_STATE})
)


def _notification(row: Any) -> NotificationRecord:
    values = dict(row._mapping)
    values["status"] = _NOTIFICATION_STATUS[values["status"]]
    return NotificationRecord(**values)


def _notification_values(record: NotificationRecord) -> dict[str, Any]:
    values = attrs.asdict(record, recurse=False)
    del values["seq"]  # numbered by the database
    values["status"] = record.status.value
    return values


def _check_audit(entries: Sequence[AuditRecord]) -> None:
    """The entries of one batch are numbered, chained and consecutive (that the first
    follows the head is checked by moving the head)."""
    first = entries[0].seq
    for i, entry in enumerate(entries):
        if entry.seq < 1 or not entry.link:
            why = (
                f"audit entry {i} of the batch has no sequence number or link (seq "
                f"{entry.seq}): the desk numbers and chains the entries after "
                "tx.audit_head(lock=True), with sipantau_core.audit.chain"
            )
        elif entry.seq != first + i:
            why = (
                f"the batch's audit entries are not consecutive (seq {entry.seq} where "
                f"{first + i} was expected)"
            )
        else:
            continue
        raise ConflictError(f"{why}; nothing of the batch was written", code="storage.race")


class _SQLTx(StorageTx):
    def __init__(self, conn: Connection, target: _Target):
        self._conn = conn
        self._target = target
        self._pg = target.backend == "postgresql"
        #: a write failed half-way and could not be undone: the transaction must not commit
        self.broken = False
        self._changed = False  # the current write has changed something
        #: TPS looked up for writing (``lock=True``, in bulk) that had no row: inserted
        self._absent: set[StationKey] = set()

    # -- helpers -------------------------------------------------------------------------

    def _errors(self) -> Any:
        return db_errors(self._target.display)

    def _reports_by(self, name: str, ids: list[UUID]) -> Iterator[StoredReport]:
        """Reports by one of the prepared statements ``name`` over ``ids``: one array
        parameter (PostgreSQL) or ``IN`` lists of at most ``_CHUNK`` (SQLite)."""
        if self._pg:
            rows: Iterable[Sequence[Any]] = self._conn.execute(_PG[name], {"ids": ids})
            yield from (_report(row) for row in rows)
            return
        for chunk in iter_chunks(ids, _CHUNK):
            yield from (_report(row) for row in self._conn.execute(_SQLITE[name], {"ids": chunk}))

    def _in_chunks(self, stmt: Any, column: sa.Column[Any], values: Iterable[Any]) -> Iterator[Any]:
        """Rows of ``stmt`` where ``column`` is among ``values``, in ``IN`` lists of at most
        ``_CHUNK`` (each list one statement)."""
        wanted = list(dict.fromkeys(values))
        for chunk in iter_chunks(wanted, _CHUNK):
            yield from self._conn.execute(stmt.where(column.in_(chunk)))

    # -- reads ---------------------------------------------------------------------------

    def get_reports(self, report_ids: Iterable[UUID]) -> dict[UUID, StoredReport]:
        ids = list(dict.fromkeys(report_ids))
        if not ids:
            return {}
        with self._errors():
            return {r.report_id: r for r in self._reports_by("get_reports", ids)}

    def chain_heads(self, chain_ids: Iterable[UUID]) -> dict[UUID, StoredReport]:
        chains = list(dict.fromkeys(chain_ids))
        if not chains:
            return {}
        with self._errors():
            return {r.chain_id: r for r in self._reports_by("chain_heads", chains)}

    def station_states(
        self, keys: Iterable[StationKey], *, lock: bool = False
    ) -> dict[StationKey, StationState]:
        wanted = list(dict.fromkeys(keys))
        found: dict[StationKey, StationState] = {}
        if wanted:
            with self._errors():
                found = self._pg_states(wanted, lock) if self._pg else self._sqlite_states(wanted)
        empty = StationState()
        return {k: found.get(k, empty) for k in wanted}

    def _pg_states(self, keys: list[StationKey], lock: bool) -> dict[StationKey, StationState]:
        ordered = sorted(keys)
        params = {"contest": [k[0] for k in ordered], "station": [k[1] for k in ordered]}
        if lock and len(ordered) >= _STAGE_FROM:
            with self._staged(_STAGE_KEYS, ordered):
                # Lock the rows there are. A TPS without one is written by a plain
                # insert of its final row (``_write``), not locked through a placeholder
                # row: a concurrent writer of the same new TPS then fails on the primary
                # key (``storage.race``, and the desk reads again) or waits for it.
                rows = list(self._conn.execute(_PG["lock_select_staged"]))
            found = {(row.contest, row.station): _station_state(row) for row in rows}
            self._absent.update(k for k in ordered if k not in found)
            return found
        if lock:
            # Insert the missing rows (so that there is a row to lock), then lock them all,
            # both in sorted order so that concurrent transactions queue instead of
            # deadlocking.
            self._conn.execute(_PG["lock_insert"], params)
            rows = list(self._conn.execute(_PG["lock_select"], params))
        else:
            rows = list(self._conn.execute(_PG["select_states"], params))
        return {(row.contest, row.station): _station_state(row) for row in rows}

    def _sqlite_states(self, keys: list[StationKey]) -> dict[StationKey, StationState]:
        # The transaction holds the database's write lock from BEGIN IMMEDIATE on: the
        # rows are locked already.
        by_contest: dict[str, list[str]] = defaultdict(list)
        for contest, station in keys:
            by_contest[contest].append(station)
        out: dict[StationKey, StationState] = {}
        for contest, stations in by_contest.items():
            for chunk in iter_chunks(stations, _CHUNK):
                rows = self._conn.execute(
                    _SQLITE["select_states"], {"contest": contest, "stations": chunk}
                )
                for row in rows:
                    out[(row.contest, row.station)] = _station_state(row)
        return out

    def aggregates(self, contest: str, region: str) -> dict[str, int]:
        params = {"contest": contest, "region": region}
        with self._errors():
            rows = self._conn.execute(_SELECT_AGGREGATES, params)
            return {name: int(value) for name, value in rows}

    def reports(self, query: ReportFilter) -> list[StoredReport]:
        r = REPORTS
        clauses: list[Any] = []
        if query.region is not None:
            exact, prefix, upper = _region_range(query.region)
            if prefix is None:
                clauses.append(r.c.station == exact)
            elif prefix:
                clauses.append(r.c.station >= prefix)
                if upper is not None:
                    clauses.append(r.c.station < upper)
                clauses.append(r.c.station.like(_like_escape(prefix) + "%", escape="\\"))
        if query.station is not None:
            clauses.append(r.c.station == query.station)
        if query.kind is not None:
            clauses.append(r.c.kind == query.kind)
        if query.contest is not None:
            clauses.append(r.c.contest == query.contest)
        if query.statuses is not None:
            if not query.statuses:
                return []
            clauses.append(r.c.status.in_(sorted(s.value for s in query.statuses)))
        if query.heads_only:
            clauses.append(_is_head())
        stmt = sa.select(*_REPORT_COLUMNS).where(*clauses).order_by(r.c.received_at, r.c.report_id)
        with self._errors():
            return [_report(row) for row in self._conn.execute(stmt)]

    def decisions(self, report_id: UUID | None = None) -> list[Decision]:
        d = DECISIONS
        stmt = sa.select(d.c.report_id, d.c.action, d.c.principal, d.c.reason, d.c.at).order_by(
            d.c.id
        )
        if report_id is not None:
            stmt = stmt.where(d.c.report_id == report_id)
        with self._errors():
            return [Decision(*row) for row in self._conn.execute(stmt)]

    def releases(self) -> list[ReleaseRecord]:
        t = RELEASES
        stmt = sa.select(t.c.region, t.c.contest, t.c.principal, t.c.at).order_by(t.c.id)
        with self._errors():
            return [ReleaseRecord(*row) for row in self._conn.execute(stmt)]

    def audit(self, *, after: int = 0, limit: int | None = None) -> list[AuditRecord]:
        stmt = sa.select(*_AUDIT_COLUMNS).where(AUDIT.c.seq > after).order_by(AUDIT.c.seq)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._errors():
            return [AuditRecord(**row._mapping) for row in self._conn.execute(stmt)]

    def audit_head(self, *, lock: bool = False) -> tuple[int, str]:
        # SQLite: the transaction holds the database's write lock from BEGIN IMMEDIATE on.
        stmt = _HEAD_LOCK if lock and self._pg else _HEAD_SELECT
        with self._errors():
            row = self._conn.execute(stmt).first()
            if row is None:
                # Every migrated database has the row; put back one deleted by hand, from the
                # log's last entry (a primary-key lookup), then read (and lock) it.
                last = self._conn.execute(_LAST_ENTRY).first()
                seq, link = (last.seq, last.link) if last is not None else (0, GENESIS)
                statements = _PG if self._pg else _SQLITE
                self._conn.execute(statements["heal_head"], {"id": 1, "seq": seq, "link": link})
                row = self._conn.execute(stmt).one()
        return int(row.seq), str(row.link)

    def device_keys(
        self, *, key_ids: Iterable[str] | None = None, monitor: str | None = None
    ) -> list[DeviceKeyRecord]:
        k = DEVICE_KEYS
        stmt = sa.select(*_DEVICE_KEY_COLUMNS)
        if monitor is not None:
            stmt = stmt.where(k.c.monitor == monitor)
        with self._errors():
            if key_ids is None:
                rows: Iterable[Any] = self._conn.execute(stmt)
            else:
                rows = self._in_chunks(stmt, k.c.key_id, key_ids)
            found = [DeviceKeyRecord(**row._mapping) for row in rows]
        found.sort(key=lambda r: (r.enrolled_at, r.key_id))
        return found

    def token(self, token_hash: str) -> TokenRecord | None:
        stmt = sa.select(*_TOKEN_COLUMNS).where(TOKENS.c.token_hash == token_hash)
        with self._errors():
            row = self._conn.execute(stmt).first()
        return None if row is None else TokenRecord(**row._mapping)

    def monitors(self, ids: Iterable[str] | None = None) -> dict[str, MonitorRecord]:
        stmt = sa.select(*_MONITOR_COLUMNS)
        with self._errors():
            if ids is None:
                rows: Iterable[Any] = self._conn.execute(stmt)
            else:
                rows = self._in_chunks(stmt, MONITORS.c.id, ids)
            found = [MonitorRecord(**row._mapping) for row in rows]
        return {m.id: m for m in sorted(found, key=lambda m: m.id)}

    def notifications(
        self,
        *,
        statuses: Iterable[NotificationStatus] | None = None,
        channel: str | None = None,
        keys: Iterable[str] | None = None,
        due: datetime | None = None,
        limit: int | None = None,
        lock: bool = False,
    ) -> list[NotificationRecord]:
        n = NOTIFICATIONS
        stmt = sa.select(*_NOTIFICATION_COLUMNS).order_by(n.c.seq)
        if statuses is not None:
            wanted = sorted(s.value for s in statuses)
            if not wanted:
                return []
            stmt = stmt.where(n.c.status.in_(wanted))
        if channel is not None:
            stmt = stmt.where(n.c.channel == channel)
        if due is not None:
            stmt = stmt.where(n.c.next_attempt_at <= due)
        if lock and self._pg:
            # SQLite: BEGIN IMMEDIATE holds the database's write lock already
            stmt = stmt.with_for_update()
        with self._errors():
            if keys is None:
                if limit is not None:
                    stmt = stmt.limit(limit)
                return [_notification(row) for row in self._conn.execute(stmt)]
            found = [_notification(row) for row in self._in_chunks(stmt, n.c.dedupe_key, keys)]
        found.sort(key=lambda r: r.seq)
        return found[:limit] if limit is not None else found

    # -- the write -----------------------------------------------------------------------

    def write(self, batch: WriteBatch) -> None:
        if not (batch or batch.device_keys or batch.tokens or batch.monitors):
            return
        # A savepoint around what a concurrent writer can refuse: on a conflict nothing
        # of the batch is written, and the transaction stays usable (as in memory). The
        # audit entries are checked against the head first, before anything is written.
        # Any other failure half-way through a batch without a savepoint marks the
        # transaction broken: it is then rolled back, even if the caller carries on.
        guarded = bool(batch.reports or batch.statuses)
        self._changed = False
        with self._errors():
            if guarded:
                # not released: one round trip less; it ends with the transaction
                self._conn.exec_driver_sql("SAVEPOINT sipantau_write")
            try:
                self._write(batch)
            except BaseException:
                undone = False
                if guarded:
                    with suppress(*DB_ERRORS):
                        self._conn.exec_driver_sql("ROLLBACK TO SAVEPOINT sipantau_write")
                        undone = True
                if not undone and self._changed:
                    self.broken = True
                raise

    def _write(self, batch: WriteBatch) -> None:
        conn = self._conn
        if batch.audit:
            # First: a batch whose entries do not follow the head (a concurrent writer
            # appended first, or the chain was not locked) is refused before anything of
            # it is written.
            self._move_head(batch.audit)
        self._changed = True
        if batch.reports:
            # In (chain, version) order: concurrent batches with the same reports take
            # the unique index entries in the same order.
            reports = sorted(
                batch.reports, key=lambda r: (r.chain_id.int, r.version, r.report_id.int)
            )
            self._insert_reports(reports)
        if batch.statuses:
            self._set_statuses(batch.statuses)
        if batch.stations:
            rows = [_station_values(k, batch.stations[k]) for k in sorted(batch.stations)]
            if not self._pg:
                conn.execute(_SQLITE["stations"], rows)
            else:
                # A TPS that had no row when it was locked gets a plain insert (a row a
                # concurrent writer put there since is a primary-key violation: a lost
                # race); the others are upserted.
                absent = self._absent
                new = [r for r in rows if (r["contest"], r["station"]) in absent]
                known = [r for r in rows if (r["contest"], r["station"]) not in absent]
                if new:
                    self._copy(_COPY_STATIONS, _station_rows(new, _as_json))
                    absent.difference_update((r["contest"], r["station"]) for r in new)
                if len(known) >= _STAGE_FROM:
                    with self._staged(_STAGE_STATIONS, _station_rows(known)):
                        conn.execute(_PG["stations_staged"])
                elif known:
                    conn.execute(_PG["stations"], _columns(known, json_column="counters"))
        deltas = sorted((k, v) for k, v in batch.aggregates.items() if v)
        if deltas:
            self._add_aggregates(deltas)
        if batch.decisions:
            conn.execute(
                sa.insert(DECISIONS),
                [attrs.asdict(d, recurse=False) for d in batch.decisions],
            )
        if batch.releases:
            conn.execute(
                sa.insert(RELEASES), [attrs.asdict(r, recurse=False) for r in batch.releases]
            )
        if batch.audit:
            values = [_audit_values(e) for e in batch.audit]
            if self._pg and len(values) >= _COPY_FROM:
                _check_aware(e.at for e in batch.audit)
                self._copy(_COPY_AUDIT, values)
            else:
                conn.execute(
                    sa.insert(AUDIT), [dict(zip(_AUDIT_NAMES, v, strict=True)) for v in values]
                )
        for name, _, key in _RECORDS:
            records: list[Any] = getattr(batch, name)
            if records:
                # by key, the last of a key winning: one row each, locked in key order
                latest = {getattr(r, key): r for r in records}
                rows = [attrs.asdict(latest[k], recurse=False) for k in sorted(latest)]
                conn.execute((_PG if self._pg else _SQLITE)[name], rows)
        if batch.notifications:
            self._queue(batch.notifications)
        if batch.notification_updates:
            self._update_notifications(batch.notification_updates)

    def _queue(self, records: list[NotificationRecord]) -> None:
        """Insert the new notifications in batch order (so ``seq`` follows it); a key
        queued already (or twice in the batch) is skipped by the unique constraint."""
        rows = [_notification_values(r) for r in records]
        self._conn.execute((_PG if self._pg else _SQLITE)["queue"], rows)

    def _update_notifications(self, records: list[NotificationRecord]) -> None:
        latest = {r.dedupe_key: r for r in records}  # the last of a key wins
        rows = []
        for key in sorted(latest):  # rows locked in key order
            values = _notification_values(latest[key])
            rows.append({f"b_{name}": values[name] for name in ("dedupe_key", *_DELIVERY_STATE)})
        # executemany: both drivers sum the rows each parameter set updated
        updated = self._conn.execute(_NOTIFICATION_UPDATE, rows).rowcount
        if updated != len(rows):
            raise ConflictError(
                f"{len(rows) - updated} of the notifications whose delivery state the batch "
                "sets are not queued",
                code="storage.integrity",
            )

    def _move_head(self, entries: list[AuditRecord]) -> None:
        """Move the log's head from the entry before the batch's first to its last; a head
        elsewhere is a lost race (``storage.race``)."""
        _check_audit(entries)
        first, last = entries[0], entries[-1]
        moved = self._conn.execute(
            _HEAD_MOVE, {"expected": first.seq - 1, "new_seq": last.seq, "new_link": last.link}
        ).rowcount
        if moved != 1:
            raise ConflictError(
                f"the audit entries {first.seq}-{last.seq} do not follow the log's head: a "
                "concurrent transaction appended first; nothing of the batch was written",
                code="storage.race",
            )

    def _insert_reports(self, reports: list[StoredReport]) -> None:
        if self._pg and len(reports) >= _COPY_FROM:
            _check_aware(t for r in reports for t in (r.observed_at, r.received_at))
            self._copy(_COPY_REPORTS, (_report_values(r) for r in reports))
        else:
            self._conn.execute(
                sa.insert(REPORTS),
                [dict(zip(_REPORT_NAMES, _report_values(r), strict=True)) for r in reports],
            )

    def _copy(
        self,
        copy_in: tuple[str, Sequence[sa.types.TypeEngine[Any]]],
        rows: Iterable[Sequence[Any]],
    ) -> None:
        """PostgreSQL: ``COPY … FROM STDIN (FORMAT BINARY)`` on this transaction's
        connection, the fastest way in (binary: the values are not formatted as text and
        parsed back); a unique violation fails it like an INSERT would."""
        statement, types = copy_in
        driver = self._conn.connection.driver_connection
        assert driver is not None
        names = [t.compile(self._conn.dialect).lower() for t in types]
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types(names)
            for row in rows:
                copy.write_row(row)

    @contextmanager
    def _staged(self, table: sa.TableClause, rows: Iterable[Sequence[Any]]) -> Iterator[None]:
        """PostgreSQL: ``rows`` COPYed into a temporary table for the block (many rows to
        upsert: COPY is several times faster than array parameters)."""
        columns = ", ".join(f"{c.name} {c.type.compile(self._conn.dialect)}" for c in table.c)
        self._conn.exec_driver_sql(f"CREATE TEMP TABLE {table.name} ({columns}) ON COMMIT DROP")
        self._copy(
            (f"COPY {table.name} FROM STDIN (FORMAT BINARY)", [c.type for c in table.c]), rows
        )
        yield
        self._conn.exec_driver_sql(f"DROP TABLE {table.name}")

    def _set_statuses(self, statuses: Mapping[UUID, ReportStatus]) -> None:
        by_status: dict[str, list[UUID]] = defaultdict(list)
        for report_id, status in statuses.items():
            by_status[status.value].append(report_id)
        updated = 0
        for value, ids in sorted(by_status.items()):
            ids.sort()
            if self._pg:
                updated += self._conn.execute(
                    _PG["statuses"], {"ids": ids, "new_status": value}
                ).rowcount
            else:
                for chunk in iter_chunks(ids, _CHUNK):
                    params = {"ids": chunk, "new_status": value}
                    updated += self._conn.execute(_SQLITE["statuses"], params).rowcount
        if updated != len(statuses):
            raise ConflictError(
                f"{len(statuses) - updated} of the reports whose status the batch sets "
                "do not exist",
                code="storage.integrity",
            )

    def _add_aggregates(self, deltas: list[tuple[AggregateKey, int]]) -> None:
        rows = [{"contest": c, "region": r, "name": n, "value": v} for (c, r, n), v in deltas]
        if self._pg:
            self._conn.execute(_PG["aggregates"], _columns(rows))
        else:
            self._conn.execute(_SQLITE["aggregates"], rows)


def _columns(rows: list[dict[str, Any]], json_column: str | None = None) -> dict[str, list[Any]]:
    """Rows as one list per column (for :func:`_unnest`)."""
    out: dict[str, list[Any]] = {name: [row[name] for row in rows] for name in rows[0]}
    if json_column is not None:
        out[json_column] = [None if v is None else _counters_json(v) for v in out[json_column]]
    return out


# ---------------------------------------------------------------------------------------
# The storage
# ---------------------------------------------------------------------------------------


class SQLStorage(Storage):
    """The storage port on SQLite or PostgreSQL. Opening it migrates the database to the
    newest schema; :class:`~sipantau_core.errors.StorageError` (``storage.unavailable``)
    when it cannot be reached."""

    def __init__(self, url: str, *, migrate: bool = True):
        self._target = _parse(url)
        self.url = self._target.display
        self._engine = _make_engine(self._target)
        # In memory, every transaction shares the one connection: one at a time.
        self._lock = threading.RLock() if self._target.memory else None
        if migrate:
            try:
                _migrate(self._engine, self._target, "head")
            except BaseException:
                self._engine.dispose()
                raise

    @property
    def backend(self) -> str:
        return self._target.backend

    @property
    def schema(self) -> str | None:
        return self._target.schema

    @contextmanager
    def transaction(self) -> Iterator[StorageTx]:
        where = self._target.display
        with self._lock if self._lock is not None else nullcontext():
            with db_errors(where):
                conn = self._engine.connect()
            try:
                with db_errors(where):
                    trans = conn.begin()
                tx = _SQLTx(conn, self._target)
                try:
                    yield tx
                except BaseException:
                    if trans.is_active:
                        with suppress(*DB_ERRORS):
                            trans.rollback()
                    raise
                if tx.broken:
                    with suppress(*DB_ERRORS):
                        trans.rollback()
                    raise StorageError(
                        "a write of this transaction failed half-way, and the transaction "
                        "went on to commit; it was rolled back instead, nothing of it was "
                        "written",
                        code="storage.failed",
                    )
                with db_errors(where):
                    trans.commit()
            finally:
                with suppress(*DB_ERRORS):
                    conn.close()

    def close(self) -> None:
        self._engine.dispose()

    @property
    def multi_process(self) -> bool:  # type: ignore[override]
        return not self._target.memory

    def after_fork(self) -> None:
        # SQLAlchemy's recipe for a forked child: forget the pool's connections. An
        # in-memory database is the one connection, copied into the child with its data.
        if not self._target.memory:
            self._engine.dispose(close=False)

    def info(self) -> Mapping[str, Any]:
        return {
            "backend": self._target.backend,
            "url": self._target.display,
            "schema": self._target.schema,
            "revision": head_revision(),
        }

    def __repr__(self) -> str:
        return f"SQLStorage({self._target.display!r})"
