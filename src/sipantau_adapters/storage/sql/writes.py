"""The SQL transaction's write of a batch, under a savepoint: the audit head moved first,
then reports, statuses, station states, aggregates, decisions, releases, audit entries,
records, notifications and media, by ``INSERT``s, upserts and updates. On PostgreSQL the
reports, station states and audit entries of a big batch go the bulk path
(:mod:`.bulk`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any
from uuid import UUID

import attrs
import sqlalchemy as sa

from sipantau_adapters.storage.sql.bulk import _Bulk
from sipantau_adapters.storage.sql.rows import (
    _DELIVERY_STATE,
    _columns,
    _notification_values,
    _report_values,
    _station_row,
    _station_values,
)
from sipantau_adapters.storage.sql.statements import (
    _CHUNK,
    _HEAD_MOVE,
    _HEAD_MOVE_TREE,
    _NOTIFICATION_UPDATE,
    _PG,
    _RECORDS,
    _SQLITE,
)
from sipantau_adapters.storage.sql_errors import DB_ERRORS
from sipantau_adapters.storage.sql_models import DECISIONS, RELEASES
from sipantau_core.errors import ConflictError
from sipantau_core.ports import (
    AggregateKey,
    AuditRecord,
    NotificationRecord,
    ReportStatus,
    WriteBatch,
    iter_chunks,
)


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


class _Writes(_Bulk):
    """The transaction's write: :meth:`write` and its parts."""

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
            self._move_head(batch.audit, batch)
        elif batch.tree is not None:
            raise ConflictError(
                "a batch that appends reports to the log's tree moves the log's head: it "
                "needs its audit entry; nothing of the batch was written",
                code="storage.race",
            )
        self._changed = True
        if batch.reports:
            if batch.tree is not None:
                first = batch.tree.size - len(batch.reports)
                report_rows = [
                    _report_values(r, first + k, leaf)
                    for k, (r, leaf) in enumerate(zip(batch.reports, batch.leaves, strict=True))
                ]
            else:
                report_rows = [_report_values(r) for r in batch.reports]
            # In (chain, version) order: concurrent batches with the same reports take
            # the unique index entries in the same order.
            report_rows.sort(key=lambda row: (row[1].int, row[2], row[0].int))
            self._insert_reports(report_rows)
        if batch.statuses:
            self._set_statuses(batch.statuses)
        if batch.stations:
            stations = batch.stations
            if not self._pg:
                conn.execute(
                    _SQLITE["stations"], [_station_values(k, stations[k]) for k in sorted(stations)]
                )
            else:
                self._pg_stations([_station_row(k, stations[k]) for k in sorted(stations)])
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
            self._insert_audit(batch.audit)
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
        if batch.media:
            # the first record of a hash wins (in the batch, and over one stored already)
            by_hash = {m.sha256: m for m in reversed(batch.media)}
            rows = [attrs.asdict(by_hash[k], recurse=False) for k in sorted(by_hash)]
            conn.execute((_PG if self._pg else _SQLITE)["media"], rows)

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

    def _move_head(self, entries: list[AuditRecord], batch: WriteBatch) -> None:
        """Move the log's head from the entry before the batch's first to its last, and
        the report tree from where the batch's leaves start to ``batch.tree``; a head or
        a tree elsewhere is a lost race (``storage.race``)."""
        _check_audit(entries)
        first, last = entries[0], entries[-1]
        params: dict[str, Any] = {
            "expected": first.seq - 1,
            "new_seq": last.seq,
            "new_link": last.link,
        }
        tree = batch.tree
        if tree is None:
            moved = self._conn.execute(_HEAD_MOVE, params).rowcount
        else:
            if len(batch.leaves) != len(batch.reports):
                raise ConflictError(
                    f"the batch has {len(batch.reports)} reports but {len(batch.leaves)} "
                    "leaf hashes; nothing of the batch was written",
                    code="storage.race",
                )
            params["expected_size"] = tree.size - len(batch.reports)
            params["new_size"] = tree.size
            params["new_frontier"] = tree.frontier
            moved = self._conn.execute(_HEAD_MOVE_TREE, params).rowcount
            if moved == 1:
                self._tree = tree
        if moved != 1:
            raise ConflictError(
                f"the audit entries {first.seq}-{last.seq} do not follow the log's head (or "
                "the batch's leaves its tree): a concurrent transaction appended first; "
                "nothing of the batch was written",
                code="storage.race",
            )

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
