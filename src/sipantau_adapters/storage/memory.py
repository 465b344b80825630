"""``memory://``: the storage port in process memory (tests, demos, one process).

Transactions are serialized by one lock; a transaction that raises is undone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from typing import Any
from uuid import UUID

import attrs

from sipantau_core.audit import GENESIS
from sipantau_core.errors import ConflictError
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
    Storage,
    StorageTx,
    StoredReport,
    TokenRecord,
    WriteBatch,
)
from sipantau_core.wire import HAS_INCIDENTS

__all__ = ["MemoryStorage"]


class _State:
    def __init__(self) -> None:
        self.reports: dict[UUID, StoredReport] = {}
        self.chains: dict[UUID, dict[int, UUID]] = {}
        self.stations: dict[StationKey, StationState] = {}
        self.aggregates: dict[tuple[str, str], dict[str, int]] = {}
        self.decisions: list[Decision] = []
        self.releases: list[ReleaseRecord] = []
        self.audit: list[AuditRecord] = []
        self.device_keys: dict[str, DeviceKeyRecord] = {}
        self.tokens: dict[str, TokenRecord] = {}
        self.monitors: dict[str, MonitorRecord] = {}
        self.notifications: dict[str, NotificationRecord] = {}  # by dedupe key, in seq order
        self.notification_seq = 0
        self.media: dict[str, MediaRecord] = {}  # by SHA-256 of the bytes
        self.tree = LogTree()
        self.leaves: set[int] = set()  # the leaf indices taken


class _MemoryTx(StorageTx):
    def __init__(self, state: _State):
        self._s = state
        self.undo: list[Callable[[], None]] = []

    def get_reports(self, report_ids: Iterable[UUID]) -> dict[UUID, StoredReport]:
        return {i: self._s.reports[i] for i in report_ids if i in self._s.reports}

    def chain_heads(self, chain_ids: Iterable[UUID]) -> dict[UUID, StoredReport]:
        out = {}
        for chain in chain_ids:
            versions = self._s.chains.get(chain)
            if versions:
                out[chain] = self._s.reports[versions[max(versions)]]
        return out

    def station_states(
        self, keys: Iterable[StationKey], *, lock: bool = False
    ) -> dict[StationKey, StationState]:
        return {k: self._s.stations.get(k, StationState()) for k in keys}

    def aggregates(self, contest: str, region: str) -> dict[str, int]:
        return {k: v for k, v in self._s.aggregates.get((contest, region), {}).items() if v}

    def reports(self, query: ReportFilter) -> list[StoredReport]:
        found = []
        for r in self._s.reports.values():
            if query.region is not None and not _within(r.station, query.region):
                continue
            if query.station is not None and r.station != query.station:
                continue
            if query.kind is not None and r.kind != query.kind:
                continue
            if query.contest is not None and r.contest != query.contest:
                continue
            if query.statuses is not None and r.status not in query.statuses:
                continue
            if query.heads_only and max(self._s.chains[r.chain_id]) != r.version:
                continue
            if query.incidents and HAS_INCIDENTS not in r.payload:
                continue
            found.append(r)
        found.sort(key=lambda r: (r.received_at, str(r.report_id)))
        return found

    def leaf_reports(
        self,
        start: int,
        stop: int | None = None,
        *,
        limit: int | None = None,
        payload: bool = True,
    ) -> list[StoredReport]:
        found = [
            r
            for r in self._s.reports.values()
            if r.leaf_index is not None
            and r.leaf_index >= start
            and (stop is None or r.leaf_index < stop)
        ]
        found.sort(key=lambda r: (r.leaf_index, r.received_at, str(r.report_id)))
        return found if limit is None else found[:limit]

    def decisions(self, report_id: UUID | None = None) -> list[Decision]:
        return [d for d in self._s.decisions if report_id is None or d.report_id == report_id]

    def releases(self) -> list[ReleaseRecord]:
        return list(self._s.releases)

    def audit(self, *, after: int = 0, limit: int | None = None) -> list[AuditRecord]:
        found = [a for a in self._s.audit if a.seq > after]
        return found[:limit] if limit is not None else found

    def audit_head(self, *, lock: bool = False) -> tuple[int, str]:
        if not self._s.audit:
            return (0, GENESIS)
        last = self._s.audit[-1]
        return (last.seq, last.link)

    def log_tree(self) -> LogTree:
        return self._s.tree

    def device_keys(
        self, *, key_ids: Iterable[str] | None = None, monitor: str | None = None
    ) -> list[DeviceKeyRecord]:
        wanted = set(key_ids) if key_ids is not None else None
        return [
            k
            for k in self._s.device_keys.values()
            if (wanted is None or k.key_id in wanted) and (monitor is None or k.monitor == monitor)
        ]

    def token(self, token_hash: str) -> TokenRecord | None:
        return self._s.tokens.get(token_hash)

    def monitors(self, ids: Iterable[str] | None = None) -> dict[str, MonitorRecord]:
        if ids is None:
            return dict(self._s.monitors)
        return {i: self._s.monitors[i] for i in ids if i in self._s.monitors}

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
        wanted_statuses = set(statuses) if statuses is not None else None
        if keys is not None:
            wanted = set(keys)
            records: Iterable[NotificationRecord] = sorted(
                (self._s.notifications[k] for k in wanted if k in self._s.notifications),
                key=lambda n: n.seq,
            )
        else:
            records = self._s.notifications.values()
        found = [
            n
            for n in records
            if (wanted_statuses is None or n.status in wanted_statuses)
            and (channel is None or n.channel == channel)
            and (due is None or n.next_attempt_at <= due)
        ]
        return found[:limit] if limit is not None else found

    def media(self, sha256s: Iterable[str], *, data: bool = True) -> dict[str, MediaRecord]:
        return {h: self._s.media[h] for h in sha256s if h in self._s.media}

    def write(self, batch: WriteBatch) -> None:
        s = self._s
        # Check every constraint before changing anything.
        new_ids: set[UUID] = set()
        new_versions: set[tuple[UUID, int]] = set()
        for r in batch.reports:
            if r.report_id in s.reports or r.report_id in new_ids:
                raise ConflictError(f"report {r.report_id} exists", code="storage.race")
            if r.version in s.chains.get(r.chain_id, {}) or (r.chain_id, r.version) in new_versions:
                raise ConflictError(
                    f"version {r.version} of chain {r.chain_id} exists", code="storage.race"
                )
            new_ids.add(r.report_id)
            new_versions.add((r.chain_id, r.version))
        for report_id in batch.statuses:
            if report_id not in s.reports and report_id not in new_ids:
                raise ConflictError(f"no report {report_id} to update", code="storage.integrity")
        expected = s.audit[-1].seq + 1 if s.audit else 1
        for entry in batch.audit:
            if entry.seq != expected:
                raise ConflictError(
                    f"audit entry {entry.seq} does not follow the head {expected - 1}",
                    code="storage.race",
                )
            expected += 1
        reports = batch.reports
        if batch.tree is not None:
            first = batch.tree.size - len(reports)
            if first != s.tree.size or len(batch.leaves) != len(reports):
                raise ConflictError(
                    f"the batch's leaves start at {first}, the log's tree has {s.tree.size}",
                    code="storage.race",
                )
            reports = [
                _numbered(r, first + k, leaf)
                for k, (r, leaf) in enumerate(zip(reports, batch.leaves, strict=True))
            ]
        for r in reports:
            if r.leaf_index is not None and r.leaf_index in s.leaves:
                raise ConflictError(f"leaf {r.leaf_index} is taken", code="storage.race")
        updated_keys = {n.dedupe_key for n in batch.notification_updates}
        new_keys = {n.dedupe_key for n in batch.notifications}
        missing = updated_keys - set(s.notifications) - new_keys
        if missing:
            raise ConflictError(
                f"{len(missing)} of the notifications whose delivery state the batch sets "
                "are not queued",
                code="storage.integrity",
            )
        undo = self.undo
        for r in reports:
            s.reports[r.report_id] = r
            s.chains.setdefault(r.chain_id, {})[r.version] = r.report_id
            undo.append(partial(_remove_report, s, r))
            if r.leaf_index is not None:
                s.leaves.add(r.leaf_index)
                undo.append(partial(s.leaves.discard, r.leaf_index))
        if batch.tree is not None:
            undo.append(partial(setattr, s, "tree", s.tree))
            s.tree = batch.tree
        for report_id, status in batch.statuses.items():
            old = s.reports[report_id]
            s.reports[report_id] = attrs.evolve(old, status=status)
            undo.append(partial(s.reports.__setitem__, old.report_id, old))
        for key, station_state in batch.stations.items():
            undo.append(partial(_restore, s.stations, key, s.stations.get(key)))
            s.stations[key] = station_state
        for (contest, region, name), delta in batch.aggregates.items():
            counters = s.aggregates.setdefault((contest, region), {})
            counters[name] = counters.get(name, 0) + delta
            undo.append(partial(_add, counters, name, -delta))
        undo.append(partial(_truncate, s.decisions, len(s.decisions)))
        s.decisions.extend(batch.decisions)
        undo.append(partial(_truncate, s.releases, len(s.releases)))
        s.releases.extend(batch.releases)
        undo.append(partial(_truncate, s.audit, len(s.audit)))
        s.audit.extend(batch.audit)
        _upsert(undo, s.device_keys, {k.key_id: k for k in batch.device_keys})
        _upsert(undo, s.tokens, {t.token_hash: t for t in batch.tokens})
        _upsert(undo, s.monitors, {m.id: m for m in batch.monitors})
        self._queue(batch)
        for record in batch.media:
            if record.sha256 not in s.media:  # content-addressed: stored once
                s.media[record.sha256] = record
                undo.append(partial(_restore_any, s.media, record.sha256, None))

    def _queue(self, batch: WriteBatch) -> None:
        s, undo = self._s, self.undo
        undo.append(partial(setattr, s, "notification_seq", s.notification_seq))
        for record in batch.notifications:
            if record.dedupe_key in s.notifications:
                continue  # the same event, rule, channel and recipient: queued once
            s.notification_seq += 1
            s.notifications[record.dedupe_key] = attrs.evolve(record, seq=s.notification_seq)
            undo.append(partial(_restore_any, s.notifications, record.dedupe_key, None))
        for record in batch.notification_updates:
            old = s.notifications[record.dedupe_key]
            s.notifications[record.dedupe_key] = attrs.evolve(record, seq=old.seq)
            undo.append(partial(s.notifications.__setitem__, record.dedupe_key, old))


def _numbered(r: StoredReport, index: int, leaf: str) -> StoredReport:
    """``r`` as leaf ``index`` (built directly: ``attrs.evolve`` costs four times more,
    and the bulk path numbers every report)."""
    return StoredReport(
        r.report_id, r.chain_id, r.version, r.kind, r.station, r.contest, r.monitor,
        r.stage, r.observed_at, r.received_at, r.digest, r.payload, r.status, r.verdict,
        r.submitted_by, r.submitted_role, r.submitted_status, index, leaf,
    )  # fmt: skip


def _upsert(undo: list[Callable[[], None]], table: dict[str, Any], records: dict[str, Any]) -> None:
    for name, record in records.items():
        undo.append(partial(_restore_any, table, name, table.get(name)))
        table[name] = record


def _add(counters: dict[str, int], name: str, delta: int) -> None:
    counters[name] = counters.get(name, 0) + delta


def _truncate(items: list[Any], n: int) -> None:
    del items[n:]


def _within(station: str, region: str) -> bool:
    if len(region) == 13 and "." not in region:
        return station == region
    return station.startswith(region.replace(".", ""))


def _remove_report(s: _State, r: StoredReport) -> None:
    s.reports.pop(r.report_id, None)
    s.chains.get(r.chain_id, {}).pop(r.version, None)
    if not s.chains.get(r.chain_id):
        s.chains.pop(r.chain_id, None)


def _restore_any(table: dict[str, Any], key: str, previous: Any) -> None:
    if previous is None:
        table.pop(key, None)
    else:
        table[key] = previous


def _restore(
    d: dict[StationKey, StationState], key: StationKey, previous: StationState | None
) -> None:
    if previous is None:
        d.pop(key, None)
    else:
        d[key] = previous


class MemoryStorage(Storage):
    """Everything in one process's memory; gone when the process ends."""

    def __init__(self, url: str = "memory://"):
        self.url = url
        self._state = _State()
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[StorageTx]:
        with self._lock:
            tx = _MemoryTx(self._state)
            try:
                yield tx
            except BaseException:
                for undo in reversed(tx.undo):
                    undo()
                raise
