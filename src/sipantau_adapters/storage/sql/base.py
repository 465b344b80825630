"""What the parts of an SQL transaction (:mod:`.reads`, :mod:`.writes`, :mod:`.bulk`)
stand on: its connection, its target and its state."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from sipantau_adapters.storage.sql.connect import _Target
from sipantau_adapters.storage.sql_errors import db_errors
from sipantau_core.ports import LogTree, StationKey, StorageTx


class _TxBase(StorageTx):
    """One transaction's connection and state; its reads, write and bulk path are mixins
    over it, assembled in :class:`~sipantau_adapters.storage.sql.storage._SQLTx`."""

    def __init__(self, conn: Connection, target: _Target):
        self._conn = conn
        self._target = target
        self._pg = target.backend == "postgresql"
        #: a write failed half-way and could not be undone: the transaction must not commit
        self.broken = False
        self._changed = False  # the current write has changed something
        #: TPS looked up for writing (``lock=True``, in bulk) that had no row: inserted
        self._absent: set[StationKey] = set()
        #: the report tree, read with the log's head under its lock
        self._tree: LogTree | None = None

    def _errors(self) -> Any:
        return db_errors(self._target.display)
