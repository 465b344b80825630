"""The SQL storage (:class:`SQLStorage`) and its transactions (:class:`_SQLTx`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext, suppress
from typing import Any

from sipantau_adapters.storage.sql.connect import _make_engine, _parse
from sipantau_adapters.storage.sql.reads import _Reads
from sipantau_adapters.storage.sql.schema import _migrate, head_revision
from sipantau_adapters.storage.sql.writes import _Writes
from sipantau_adapters.storage.sql_errors import DB_ERRORS, db_errors
from sipantau_core.errors import StorageError
from sipantau_core.ports import Storage, StorageTx


class _SQLTx(_Reads, _Writes):
    """One transaction on one connection: its reads (:mod:`.reads`) and its write
    (:mod:`.writes`), both over the bulk path (:mod:`.bulk`) and :class:`~.base._TxBase`
    (the connection and the transaction's state)."""


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
