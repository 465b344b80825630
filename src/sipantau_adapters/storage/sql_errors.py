"""How database errors become sipantau errors: nothing from SQLAlchemy, psycopg or sqlite3
leaves the storage port.

- a unique violation (a report id, a chain's version, an audit ``seq``), a deadlock or a
  serialization failure: a concurrent transaction won a race, :class:`ConflictError`
  ``storage.race`` (the desk retries the transaction);
- another constraint: :class:`StorageError` ``storage.integrity``;
- the database cannot be reached, refused the login, is gone mid-transaction or stayed
  locked past the busy timeout: :class:`StorageError` ``storage.unavailable``;
- anything else: :class:`StorageError` ``storage.failed``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import exc as sa_exc

from sipantau_core.errors import ConflictError, SipantauError, StorageError

__all__ = ["DB_ERRORS", "db_errors", "translate"]

try:  # the postgres extra
    import psycopg
except ImportError:  # pragma: no cover - sqlite-only installs
    DB_ERRORS: tuple[type[BaseException], ...] = (sa_exc.SQLAlchemyError, sqlite3.Error)
else:
    DB_ERRORS = (sa_exc.SQLAlchemyError, sqlite3.Error, psycopg.Error)

#: unique violation, serialization failure, deadlock
_RACE_SQLSTATES = frozenset({"23505", "40001", "40P01"})
#: the server is gone, shutting down, out of connections, refused the login, or has no
#: such database
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300", "3D000"})
_SQLITE_RACE = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})


def _detail(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return " ".join(lines[:3]) or type(error).__name__


def _unavailable_sqlite(orig: BaseException) -> bool:
    name = str(getattr(orig, "sqlite_errorname", ""))
    text = str(orig).lower()
    return (
        name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN"))
        or "database is locked" in text
        or "unable to open database file" in text
    )


def translate(error: BaseException, where: str) -> SipantauError:
    """The sipantau error for a database ``error``; ``where`` names the database (a URL
    with the password masked)."""
    if isinstance(error, SipantauError):
        return error
    orig: Any = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    if orig is None:
        orig = error
    sqlstate = getattr(orig, "sqlstate", None)
    detail = _detail(orig)
    sqlite_name = str(getattr(orig, "sqlite_errorname", ""))
    if sqlstate in _RACE_SQLSTATES or sqlite_name in _SQLITE_RACE:
        return ConflictError(
            f"a concurrent transaction stored the same report, version or audit entry "
            f"first, or the database chose this one to break a deadlock ({detail}); it was "
            "rolled back, nothing of it was written",
            code="storage.race",
        )
    if (
        isinstance(error, sa_exc.IntegrityError)
        or isinstance(orig, sqlite3.IntegrityError)
        or (isinstance(sqlstate, str) and sqlstate.startswith("23"))
    ):
        return StorageError(
            f"the database refused a write that breaks a constraint ({detail})",
            code="storage.integrity",
        )
    if _is_unavailable(error, orig, sqlstate):
        return StorageError(
            f"the database {where} cannot be reached or used: {detail}. Check that the "
            "server is running and accepts connections at that host and port, and that the "
            "user, password and database name are right. The transaction was rolled back; "
            "nothing of it was written (had the connection dropped during the commit itself, "
            "retry: submissions are idempotent).",
            code="storage.unavailable",
        )
    return StorageError(f"the database {where} failed: {detail}", code="storage.failed")


def _is_unavailable(error: BaseException, orig: BaseException, sqlstate: object) -> bool:
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, sa_exc.DisconnectionError | sa_exc.TimeoutError | sa_exc.InterfaceError):
        return True
    if isinstance(sqlstate, str) and (
        sqlstate in _UNAVAILABLE_SQLSTATES or sqlstate.startswith(("08", "28"))
    ):
        return True
    if isinstance(orig, sqlite3.Error):
        return _unavailable_sqlite(orig)
    # psycopg raises OperationalError without a SQLSTATE when it gets no answer at all
    # (connection refused, unknown host, timeout, server closed the connection).
    return sqlstate is None and type(orig).__name__ in ("OperationalError", "InterfaceError")


@contextmanager
def db_errors(where: str) -> Iterator[None]:
    """Translate database errors raised inside the block."""
    try:
        yield
    except DB_ERRORS as e:
        raise translate(e, where) from e
