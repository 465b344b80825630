"""The SQL transaction's reads: reports, station states, aggregates, decisions,
releases, the audit log and its head, device keys, tokens, monitors, notifications,
media."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from sipantau_adapters.storage.sql.bulk import _Bulk
from sipantau_adapters.storage.sql.rows import (
    _AUDIT_COLUMNS,
    _DEVICE_KEY_COLUMNS,
    _MEDIA_COLUMNS,
    _MEDIA_COLUMNS_NO_DATA,
    _MONITOR_COLUMNS,
    _NOTIFICATION_COLUMNS,
    _REPORT_COLUMNS,
    _REPORT_COLUMNS_NO_PAYLOAD,
    _TOKEN_COLUMNS,
    _notification,
    _report,
    _station_state,
)
from sipantau_adapters.storage.sql.statements import (
    _CHUNK,
    _HEAD_LOCK,
    _HEAD_SELECT,
    _LAST_BATCH,
    _LAST_ENTRY,
    _LEAF_HASHES,
    _PG,
    _SELECT_AGGREGATES,
    _SELECT_AGGREGATES_MANY,
    _SQLITE,
    _is_head,
)
from sipantau_adapters.storage.sql_models import (
    AUDIT,
    DECISIONS,
    DEVICE_KEYS,
    MEDIA,
    MONITORS,
    NOTIFICATIONS,
    RELEASES,
    REPORTS,
    TOKENS,
)
from sipantau_core.audit import GENESIS
from sipantau_core.audit_leaves import batch_from_detail
from sipantau_core.merkle import Frontier
from sipantau_core.ports import (
    AuditRecord,
    Decision,
    DeviceKeyRecord,
    LogTree,
    MediaRecord,
    MonitorRecord,
    NotificationRecord,
    NotificationStatus,
    ReleaseRecord,
    ReportFilter,
    StationKey,
    StationState,
    StoredReport,
    TokenRecord,
    iter_chunks,
)
from sipantau_core.wire import HAS_INCIDENTS


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


class _Reads(_Bulk):
    """The transaction's reads. PostgreSQL's station lookups (``_pg_states``) are the
    bulk path's: from ``_STAGE_FROM`` TPS on they lock through a staging table."""

    # -- helpers -------------------------------------------------------------------------

    def _reports_by(self, name: str, ids: list[UUID]) -> Iterator[StoredReport]:
        """Reports by one of the prepared statements ``name`` over ``ids``: one array
        parameter (PostgreSQL) or ``IN`` lists of at most ``_CHUNK`` (SQLite)."""
        if self._pg:
            rows: Iterable[Sequence[Any]] = self._conn.execute(_PG[name], {"ids": ids})
            yield from (_report(row) for row in rows)
            return
        for chunk in iter_chunks(ids, _CHUNK):
            yield from (
                _report(row) for row in self._conn.execute(_SQLITE[name], {"ids": chunk}).all()
            )

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

    def aggregates_many(self, contest: str, regions: Iterable[str]) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        with self._errors():
            for chunk in iter_chunks(list(dict.fromkeys(regions)), _CHUNK):
                params = {"contest": contest, "regions": list(chunk)}
                for region, name, value in self._conn.execute(_SELECT_AGGREGATES_MANY, params):
                    out.setdefault(region, {})[name] = int(value)
        return out

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
        if query.incidents:
            clauses.append(r.c.payload.contains(HAS_INCIDENTS, autoescape=True))
        if query.heads_only:
            clauses.append(_is_head())
        columns = _REPORT_COLUMNS if query.payload else _REPORT_COLUMNS_NO_PAYLOAD
        stmt = sa.select(*columns).where(*clauses).order_by(r.c.received_at, r.c.report_id)
        with self._errors():
            return [_report(row) for row in self._conn.execute(stmt).all()]

    def decisions(self, report_id: UUID | None = None) -> list[Decision]:
        d = DECISIONS
        stmt = sa.select(d.c.report_id, d.c.action, d.c.principal, d.c.reason, d.c.at).order_by(
            d.c.id
        )
        if report_id is not None:
            stmt = stmt.where(d.c.report_id == report_id)
        with self._errors():
            return [Decision(*row) for row in self._conn.execute(stmt).all()]

    def releases(self) -> list[ReleaseRecord]:
        t = RELEASES
        stmt = sa.select(t.c.region, t.c.contest, t.c.principal, t.c.at).order_by(t.c.id)
        with self._errors():
            return [ReleaseRecord(*row) for row in self._conn.execute(stmt).all()]

    def audit(self, *, after: int = 0, limit: int | None = None) -> list[AuditRecord]:
        stmt = sa.select(*_AUDIT_COLUMNS).where(AUDIT.c.seq > after).order_by(AUDIT.c.seq)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._errors():
            return [AuditRecord(**row._mapping) for row in self._conn.execute(stmt).all()]

    def audit_head(self, *, lock: bool = False) -> tuple[int, str]:
        # SQLite: the transaction holds the database's write lock from BEGIN IMMEDIATE on.
        stmt = _HEAD_LOCK if lock and self._pg else _HEAD_SELECT
        with self._errors():
            row = self._conn.execute(stmt).first()
            if row is None:
                # Every migrated database has the row; put back one deleted by hand, from the
                # log's last entry (a primary-key lookup) and its last batch, then read (and
                # lock) it.
                last = self._conn.execute(_LAST_ENTRY).first()
                seq, link = (last.seq, last.link) if last is not None else (0, GENESIS)
                tree = self._tree_from_the_log()
                statements = _PG if self._pg else _SQLITE
                values = {"id": 1, "seq": seq, "link": link}
                values |= {"tree_size": tree.size, "frontier": tree.frontier}
                self._conn.execute(statements["heal_head"], values)
                row = self._conn.execute(stmt).one()
        if lock:
            self._tree = LogTree(int(row.tree_size), str(row.frontier))
        return int(row.seq), str(row.link)

    def _tree_from_the_log(self) -> LogTree:
        """The report tree as the log's last batch entry states it, its frontier
        recomputed from the stored leaf hashes (when the head row is gone)."""
        last = self._conn.execute(_LAST_BATCH).first()
        batch = None if last is None else batch_from_detail(str(last.detail))
        if batch is None:
            return LogTree()
        hashes = self._conn.execute(_LEAF_HASHES, {"start": 0, "stop": batch.size}).scalars()
        frontier = Frontier.of(bytes.fromhex(h) for h in hashes)
        return LogTree(frontier.size, frontier.to_text())

    def leaf_hashes(self, start: int, stop: int) -> list[str]:
        if stop <= start:
            return []
        with self._errors():
            rows = self._conn.execute(_LEAF_HASHES, {"start": start, "stop": stop}).scalars()
            return [str(h) for h in rows]

    def leaf_reports(
        self,
        start: int,
        stop: int | None = None,
        *,
        limit: int | None = None,
        payload: bool = True,
    ) -> list[StoredReport]:
        # a range of the leaf index (unique here; the order of reports() among equals)
        r = REPORTS
        columns = _REPORT_COLUMNS if payload else _REPORT_COLUMNS_NO_PAYLOAD
        stmt = sa.select(*columns).where(r.c.leaf_index >= start)
        if stop is not None:
            if stop <= start:
                return []
            stmt = stmt.where(r.c.leaf_index < stop)
        stmt = stmt.order_by(r.c.leaf_index, r.c.received_at, r.c.report_id)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._errors():
            return [_report(row) for row in self._conn.execute(stmt).all()]

    def unnumbered_reports(self, *, limit: int | None = None) -> list[StoredReport]:
        r = REPORTS
        stmt = (
            sa.select(*_REPORT_COLUMNS_NO_PAYLOAD)
            .where(r.c.leaf_index.is_(None))
            .order_by(r.c.received_at, r.c.report_id)
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._errors():
            return [_report(row) for row in self._conn.execute(stmt).all()]

    def log_tree(self) -> LogTree:
        found = self._tree
        if found is not None:
            return found  # read with the head, under its lock
        with self._errors():
            row = self._conn.execute(_HEAD_SELECT).first()
            if row is None:
                return self._tree_from_the_log()
        return LogTree(int(row.tree_size), str(row.frontier))

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
            elif self._pg:  # one array parameter (a desk opening looks up 50,000 at once)
                rows = self._conn.execute(_PG["monitors_by_id"], {"ids": list(dict.fromkeys(ids))})
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
                return [_notification(row) for row in self._conn.execute(stmt).all()]
            found = [_notification(row) for row in self._in_chunks(stmt, n.c.dedupe_key, keys)]
        found.sort(key=lambda r: r.seq)
        return found[:limit] if limit is not None else found

    def media(self, sha256s: Iterable[str], *, data: bool = True) -> dict[str, MediaRecord]:
        stmt = sa.select(*(_MEDIA_COLUMNS if data else _MEDIA_COLUMNS_NO_DATA))
        with self._errors():
            rows = list(self._in_chunks(stmt, MEDIA.c.sha256, sha256s))
        found: dict[str, MediaRecord] = {}
        for row in rows:
            values = dict(row._mapping)
            values["data"] = bytes(values["data"]) if data else b""
            found[row.sha256] = MediaRecord(**values)
        return found
