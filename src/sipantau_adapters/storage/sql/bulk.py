"""PostgreSQL's bulk path: binary ``COPY`` (reports and audit entries from ``_COPY_FROM``
rows on, the new TPS rows of a staged lookup) and COPYed temporary tables (station locks
and upserts from ``_STAGE_FROM`` TPS on). The write (:mod:`.writes`) and the station
lookups (:mod:`.reads`) go through it; on SQLite, and below the thresholds, it runs
plain statements.

The thresholds are read from this module on every call: lowering them here (as the race
and fault tests do) sends small batches down the bulk path."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sipantau_adapters.storage.sql.base import _TxBase
from sipantau_adapters.storage.sql.rows import (
    _AUDIT_COLUMNS,
    _AUDIT_NAMES,
    _REPORT_COLUMNS,
    _REPORT_NAMES,
    _audit_values,
    _station_state,
)
from sipantau_adapters.storage.sql.statements import _PG, _STAGE_KEYS, _STAGE_STATIONS
from sipantau_adapters.storage.sql_models import AUDIT, REPORTS, STATIONS
from sipantau_core.errors import StorageError
from sipantau_core.ports import AuditRecord, CountedTally, StationKey, StationState

_COPY_REPORTS = (
    f"COPY reports ({', '.join(_REPORT_NAMES)}) FROM STDIN (FORMAT BINARY)",
    [c.type for c in _REPORT_COLUMNS],
)
_STATION_COLUMNS = [
    STATIONS.c[name]
    for name in ("contest", "station", "chain_id", "counted_report_id", "counted_version")
] + [STATIONS.c.counters]
#: The counters go as text: a ``json`` column's binary form is its text, so the server
#: reads (and checks) the JSON written by :func:`~.rows._counters_json` as it is.
_COPY_STATIONS = (
    f"COPY station_states ({', '.join(c.name for c in _STATION_COLUMNS)}) "
    "FROM STDIN (FORMAT BINARY)",
    [c.type for c in _STATION_COLUMNS[:-1]] + [sa.Text()],
)
_COPY_AUDIT = (
    f"COPY audit_log ({', '.join(_AUDIT_NAMES)}) FROM STDIN (FORMAT BINARY)",
    [c.type for c in _AUDIT_COLUMNS],
)
#: PostgreSQL: from how many rows COPY beats an INSERT (two round trips instead of one)
_COPY_FROM = 20
#: PostgreSQL: from how many rows upserts go through a COPYed temporary table
_STAGE_FROM = 1000


def _check_aware(times: Iterable[datetime]) -> None:
    """What :class:`~sipantau_adapters.storage.sql_models.UTCDateTime` checks, for COPY."""
    for t in times:
        if t.tzinfo is None or t.utcoffset() is None:
            raise StorageError(
                f"a naive datetime ({t.isoformat()}) has no instant to store",
                code="storage.failed",
            )


#: From this many keys an unlocked read of station states is a range scan (PostgreSQL).
_RANGE_FROM = 2000


class _Bulk(_TxBase):
    """The transaction's bulk path, and where it chooses between ``COPY`` or a staging
    table and plain statements by the number of rows."""

    def _pg_states(self, keys: list[StationKey], lock: bool) -> dict[StationKey, StationState]:
        ordered = sorted(keys)
        params = {"contest": [k[0] for k in ordered], "station": [k[1] for k in ordered]}
        if lock and len(ordered) >= _STAGE_FROM:
            with self._staged(_STAGE_KEYS, ordered):
                # Lock the rows there are. A TPS without one is written by a plain
                # insert of its final row (``_pg_stations``), not locked through a
                # placeholder row: a concurrent writer of the same new TPS then fails on the
                # primary key (``storage.race``, and the desk reads again) or waits for it.
                rows = self._conn.execute(_PG["lock_select_staged"]).all()
            found = {(row.contest, row.station): _station_state(row) for row in rows}
            self._absent.update(k for k in ordered if k not in found)
            return found
        if lock:
            # Insert the missing rows (so that there is a row to lock), then lock them all,
            # both in sorted order so that concurrent transactions queue instead of
            # deadlocking.
            self._conn.execute(_PG["lock_insert"], params)
            rows = self._conn.execute(_PG["lock_select"], params).all()
        elif len(ordered) >= _RANGE_FROM and len({k[0] for k in ordered}) == 1:
            # A whole region's stations (a count of a province): one range scan of the
            # primary key instead of shipping every key to the server, then the keys kept.
            wanted = set(ordered)
            bounds = {"contest": ordered[0][0], "low": ordered[0][1], "high": ordered[-1][1]}
            rows = [
                row
                for row in self._conn.execute(_PG["select_states_range"], bounds).all()
                if (row.contest, row.station) in wanted
            ]
            return _states_from_text(rows)
        else:
            rows = self._conn.execute(_PG["select_states"], params).all()
        return {(row.contest, row.station): _station_state(row) for row in rows}

    def _pg_stations(self, rows: list[tuple[Any, ...]]) -> None:
        """PostgreSQL: the station states of a batch (:func:`~.rows._station_row`, in
        key order)."""
        conn = self._conn
        # A TPS that had no row when it was locked gets a plain insert (a row a
        # concurrent writer put there since is a primary-key violation: a lost
        # race); the others are upserted.
        absent = self._absent
        new = [r for r in rows if (r[0], r[1]) in absent]
        known = [r for r in rows if (r[0], r[1]) not in absent] if new else rows
        if new:
            self._copy(_COPY_STATIONS, new)
            absent.difference_update((r[0], r[1]) for r in new)
        if len(known) >= _STAGE_FROM:
            with self._staged(_STAGE_STATIONS, known):
                conn.execute(_PG["stations_staged"])
        elif known:
            columns = {c.name: [r[i] for r in known] for i, c in enumerate(_STATION_COLUMNS)}
            conn.execute(_PG["stations"], columns)

    def _insert_reports(self, rows: list[tuple[Any, ...]]) -> None:
        """Insert report rows (:func:`~.rows._report_values`)."""
        if self._pg and len(rows) >= _COPY_FROM:
            _check_aware(t for row in rows for t in (row[8], row[9]))
            self._copy(_COPY_REPORTS, rows)
        else:
            self._conn.execute(
                sa.insert(REPORTS), [dict(zip(_REPORT_NAMES, row, strict=True)) for row in rows]
            )

    def _insert_audit(self, entries: list[AuditRecord]) -> None:
        values = [_audit_values(e) for e in entries]
        if self._pg and len(values) >= _COPY_FROM:
            _check_aware(e.at for e in entries)
            self._copy(_COPY_AUDIT, values)
        else:
            self._conn.execute(
                sa.insert(AUDIT), [dict(zip(_AUDIT_NAMES, v, strict=True)) for v in values]
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


def _states_from_text(rows: Sequence[Any]) -> dict[StationKey, StationState]:
    """Station states from rows whose counters are JSON text, decoded in one call (one
    call per row costs twice as much as the rest of the row)."""
    texts = [row.counters for row in rows if row.counted_report_id is not None]
    decoded = iter(json.loads("[" + ",".join(t or "null" for t in texts) + "]"))
    out: dict[StationKey, StationState] = {}
    for row in rows:
        counted = None
        if row.counted_report_id is not None:
            counted = CountedTally(
                row.counted_report_id, row.counted_version, dict(next(decoded) or {})
            )
        out[(row.contest, row.station)] = StationState(chain_id=row.chain_id, counted=counted)
    return out
