"""What every SQLite file of sipantau's adapters needs (the desk's storage, a device's
outbox)."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

__all__ = ["set_wal"]


def set_wal(db: Any, busy_timeout: float) -> None:
    """``PRAGMA journal_mode = WAL`` on ``db`` (a connection or a cursor), waiting out
    other connections for up to ``busy_timeout`` seconds. SQLite answers "database is
    locked" at once, without its busy handler, when a new database (still in rollback
    mode) is being written or switched by another connection: several processes or
    threads opening a new file together meet that."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)
