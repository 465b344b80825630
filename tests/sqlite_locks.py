"""A new SQLite file that another connection is writing: what several processes or
threads opening one new file together meet."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def new_file_being_written(path: Path, *, for_seconds: float = 0.3) -> Iterator[None]:
    """``path`` as a new database that another connection writes (still in rollback
    mode) for ``for_seconds`` after the block starts. Checks first that SQLite itself
    refuses the switch to WAL meanwhile at once ("database is locked", no busy wait)."""
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("CREATE TABLE other_app (x)")
    plain = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            plain.execute("PRAGMA journal_mode = WAL")  # SQLite itself does not wait
    finally:
        plain.close()
    threading.Timer(for_seconds, lambda: writer.execute("COMMIT")).start()
    try:
        yield
    finally:
        writer.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
