"""``sqlite:///PATH`` and ``postgresql://…``: the storage port on SQL.

The tables are SQLModel models (:mod:`sipantau_adapters.storage.sql_models`); the schema
is made and changed only by the Alembic migrations shipped in
``sipantau_adapters/storage/migrations/``, which :class:`SQLStorage` runs up to the newest
on open. See ``docs/storage.md``.

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

Where the code is:

- :mod:`.connect`: URLs (:func:`normalize_url`) and engines;
- :mod:`.schema`: the migrations (:func:`upgrade`, :func:`head_revision`,
  :func:`alembic_config`, :func:`migration_connection`);
- :mod:`.rows`: the columns, rows turned into the port's values and back;
- :mod:`.statements`: the statements, built once per dialect;
- :mod:`.reads`: a transaction's reads;
- :mod:`.writes`: a transaction's write of a batch;
- :mod:`.bulk`: PostgreSQL's bulk path (binary ``COPY``, staging tables) and its
  thresholds;
- :mod:`.storage`: :class:`SQLStorage`, and its transaction made of the three above
  (over :mod:`.base`).
"""

from __future__ import annotations

from sipantau_adapters.storage.sql.connect import normalize_url
from sipantau_adapters.storage.sql.schema import (
    SCRIPT_LOCATION,
    alembic_config,
    head_revision,
    migration_connection,
    upgrade,
)
from sipantau_adapters.storage.sql.storage import SQLStorage

__all__ = [
    "SCRIPT_LOCATION",
    "SQLStorage",
    "alembic_config",
    "head_revision",
    "migration_connection",
    "normalize_url",
    "upgrade",
]
