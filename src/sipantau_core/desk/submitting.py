"""Submitting: reports checked, stored exactly once and counted in one transaction; a
correction is a new version of the report it amends.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from uuid import UUID

import attrs

from sipantau_core.access import Principal
from sipantau_core.desk import parallel
from sipantau_core.desk._base import Appended
from sipantau_core.desk._records import (
    _COUNTING,
    _NO_STATE,
    _ROLE_VALUE,
    _counters,
    _Recount,
    _violations_json,
)
from sipantau_core.desk.checking import Checking, Submission, _Prepared
from sipantau_core.desk.stages import StageCount, lock_keys, mark, mark_key
from sipantau_core.domain import (
    Report,
    SituationReport,
    TallyReport,
)
from sipantau_core.errors import (
    ConflictError,
    PermissionDenied,
    SipantauError,
)
from sipantau_core.events import ReportEvent
from sipantau_core.ports import (
    AuditRecord,
    CountedTally,
    DeviceKeyRecord,
    ReportStatus,
    StationKey,
    StationState,
    StorageTx,
    StoredReport,
    WriteBatch,
)
from sipantau_core.results import (
    BulkResult,
    Receipt,
)
from sipantau_core.rules import Violation
from sipantau_core.signing import (
    SignatureError,
    SignedReport,
)

#: A new report once planned: what its receipt and event are made of when it is
#: numbered (stored report, violations, event kind, the report, who sent it).
_New = tuple[StoredReport, tuple[Violation, ...], str, Report, Principal]
_ACCEPTED = ReportStatus.ACCEPTED.value
_FLAGGED = ReportStatus.FLAGGED.value


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch is planned and written: the bulk
    path allocates many short-lived objects (none in cycles) and the collector's passes
    over a large deployment cost a third of its time. Restored afterwards (only if it was
    on, so nested and concurrent calls leave it as they found it)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Submitting(Checking):
    """Submitting reports: one, or many in one transaction (the bulk path), stored
    exactly once and counted; corrections are new versions that amend a report."""

    def submit(self, report: Submission, *, principal: Principal) -> Receipt:
        """Check, store and count one report in one transaction.

        Raises :class:`PermissionDenied`, :class:`UnknownEntityError`,
        :class:`ConflictError` (same id with other content, a stale amendment, a second
        tally chain for a station), :class:`~sipantau_core.errors.PayloadError` for a
        payload that cannot be read, or :class:`~sipantau_core.errors.StorageError`.
        """
        item = self.submit_many([report], principal=principal).items[0]
        if isinstance(item, SipantauError):
            raise item
        return item

    def submit_many(
        self,
        reports: Iterable[Submission],
        *,
        principal: Principal | Sequence[Principal],
        workers: int = 1,
    ) -> BulkResult:
        """The bulk path: the same checks and the same results as submitting the reports
        one by one, in order, but in one transaction. ``principal`` is who submits them
        all, or one principal per report (a server batching many monitors' reports).

        ``workers=N`` (an import of many thousand reports into a database server) shares
        the reports out by TPS among N processes (this one and N - 1 forked from it), each
        with its own connection and transaction, so that checking, hashing and writing use
        every core. Each TPS's reports stay in one share, in order, so the receipts are
        those of the serial path; the shares commit on their own (a failed share raises
        after the others are done, and running the same call again is safe: what was
        stored comes back as ``duplicate``). The report events are announced in this
        process, in order. It falls back to one process where that cannot give the same
        result: a storage held in memory, a platform without ``fork``, fewer than 500
        reports a worker, or a report id that two shares would both need. Parallel calls
        from several threads take turns.
        """
        with _gc_paused():
            submissions = [self._read_submission(raw) for raw in reports]
            principals = self._principals(principal, len(submissions))
            shares = self._shares(submissions, workers)
            if shares is None:
                items, events = self._run_batch(submissions, principals)
            else:
                items, events = self._run_shares(submissions, principals, shares)
        self.plugins.report_events(self._as_view(), [event for _, event in events])
        return BulkResult(tuple(items))

    @staticmethod
    def _principals(principal: Principal | Sequence[Principal], n: int) -> list[Principal]:
        if isinstance(principal, Principal):
            return [principal] * n
        principals = list(principal)
        if len(principals) != n:
            raise SipantauError(
                f"submit_many: {n} reports but {len(principals)} principals",
                code="desk.bad_call",
            )
        return principals

    def _shares(
        self, submissions: Sequence[Report | SignedReport | SipantauError], workers: int
    ) -> list[list[int]] | None:
        """The positions of ``submissions`` in shares by TPS, or ``None`` for the serial
        path (see :func:`~sipantau_core.desk.parallel.plan_shares`)."""
        return parallel.plan_shares(submissions, workers, self.storage)

    def _run_shares(
        self,
        submissions: Sequence[Report | SignedReport | SipantauError],
        principals: Sequence[Principal],
        shares: list[list[int]],
    ) -> tuple[list[Receipt | SipantauError], list[tuple[int, ReportEvent]]]:
        items, events, failure = parallel.fork_shares(
            self._run_batch, self.storage, submissions, principals, shares
        )
        if failure is not None:
            # what the other shares committed did happen
            self.plugins.report_events(self._as_view(), [event for _, event in events])
            raise failure
        return items, events

    def _run_batch(
        self,
        submissions: Sequence[Report | SignedReport | SipantauError],
        principals: Sequence[Principal],
    ) -> tuple[list[Receipt | SipantauError], list[tuple[int, ReportEvent]]]:
        """Check, store and count ``submissions`` in one transaction; the items in order
        and the events to announce (with the position of their report)."""
        now = self.clock()
        key_ids = {x.signature.key_id for x in submissions if isinstance(x, SignedReport)}
        keys: dict[str, DeviceKeyRecord] = {}
        if key_ids:
            with self.storage.transaction() as tx:
                keys = {k.key_id: k for k in tx.device_keys(key_ids=key_ids)}
        prepared: list[_Prepared | SipantauError] = []
        denied: list[AuditRecord] = []
        for item, principal_i in zip(submissions, principals, strict=True):
            try:
                if isinstance(item, SipantauError):
                    raise item
                prepared.append(self._prepare(item, principal_i, keys, now))
            except SipantauError as e:
                prepared.append(e)
                if isinstance(e, PermissionDenied | SignatureError):
                    where = (
                        item.report.station
                        if isinstance(item, SignedReport)
                        else (
                            item.station
                            if isinstance(item, TallyReport | SituationReport)
                            else None
                        )
                    )
                    denied.append(
                        self._audit_entry(
                            principal_i, "submit", "report", f"denied:{e.code}", now, where=where
                        )
                    )
        return self._store(prepared, now, denied)

    def _store(
        self,
        prepared: Sequence[_Prepared | SipantauError],
        now: datetime,
        denied: list[AuditRecord],
    ) -> tuple[list[Receipt | SipantauError], list[tuple[int, ReportEvent]]]:
        """Store ``prepared`` in one transaction; again, reading afresh, when a concurrent
        writer stored the same report or version first."""
        return self._in_transaction(lambda tx: self._store_in(tx, prepared, now, denied))

    def _store_in(
        self,
        tx: StorageTx,
        prepared: Sequence[_Prepared | SipantauError],
        now: datetime,
        denied: list[AuditRecord],
    ) -> tuple[list[Receipt | SipantauError], list[tuple[int, ReportEvent]]]:
        """One attempt of :meth:`_store`, in ``tx``."""
        planned, batch = self._plan(tx, prepared, now)
        batch.audit[:0] = denied
        done: list[tuple[list[Receipt | SipantauError], list[tuple[int, ReportEvent]]]] = []

        def finish(numbered: WriteBatch, appended: Appended | None) -> None:
            items, events = self._finish(planned, appended, now)
            done.append((items, events))
            if self.notifier is not None:
                # the alerts are queued in the transaction that stores the reports
                queued = self.notifier.queue([event for _, event in events], now)
                numbered.notifications.extend(queued)

        self._commit(tx, batch, finish)
        return done[0]

    @staticmethod
    def _finish(
        planned: Sequence[Receipt | SipantauError | _New],
        appended: Appended | None,
        now: datetime,
    ) -> tuple[list[Receipt | SipantauError], list[tuple[int, ReportEvent]]]:
        """The receipts (with each new report's leaf and the tree head after the batch)
        and the events to announce, once the batch's reports are numbered."""
        items: list[Receipt | SipantauError] = []
        events: list[tuple[int, ReportEvent]] = []
        if appended is not None:
            first, leaves = appended.batch.first, appended.leaves
            size, root = appended.batch.size, appended.batch.root
        k = 0
        for position, item in enumerate(planned):
            if not isinstance(item, tuple):
                items.append(item)
                continue
            assert appended is not None  # a new report was appended
            stored, violations, kind_of_event, report, principal = item
            receipt = Receipt(
                report_id=stored.report_id,
                status=stored.submitted_status,  # type: ignore[arg-type]
                version=stored.version,
                chain_id=stored.chain_id,
                station=stored.station,
                received_at=now,
                violations=violations,
                leaf_index=first + k,
                leaf_hash=leaves[k].hex(),
                tree_size=size,
                tree_root=root,
            )
            k += 1
            items.append(receipt)
            events.append((position, ReportEvent(kind_of_event, report, receipt, principal, now)))
        return items, events

    def _plan(
        self,
        tx: StorageTx,
        prepared: Sequence[_Prepared | SipantauError],
        now: datetime,
    ) -> tuple[list[Receipt | SipantauError | _New], WriteBatch]:
        """The batch that stores ``prepared``, and per report its receipt (a duplicate),
        its error, or what its receipt and event are made of once it is numbered."""
        ok = [p.report for p in prepared if isinstance(p, _Prepared)]
        keys = lock_keys(ok)
        # Lock the stations first: the reads below then see what concurrent writers of
        # the same stations committed, and a lost race resolves on the first retry.
        states = tx.station_states(keys, lock=True) if keys else {}
        ids = {r.report_id for r in ok} | {r.amends.report_id for r in ok if r.amends is not None}
        known = tx.get_reports(ids) if ids else {}
        heads = tx.chain_heads({r.chain_id for r in known.values()}) if known else {}
        batch = WriteBatch()
        recount = _Recount()
        staged = StageCount()
        items: list[Receipt | SipantauError | _New] = []
        for p in prepared:
            if isinstance(p, SipantauError):
                items.append(p)
                continue
            try:
                items.append(self._plan_one(p, now, known, heads, states, batch, recount, staged))
            except SipantauError as e:
                items.append(e)
        recount.into(batch.aggregates)
        staged.into(batch.aggregates)
        return items, batch

    def _plan_one(
        self,
        p: _Prepared,
        now: datetime,
        known: dict[UUID, StoredReport],
        heads: dict[UUID, StoredReport],
        states: dict[StationKey, StationState],
        batch: WriteBatch,
        recount: _Recount,
        staged: StageCount,
    ) -> Receipt | _New:
        report = p.report
        principal = p.principal
        station = report.station.compact
        existing = known.get(report.report_id)
        if existing is not None:
            if existing.digest != p.digest:
                raise ConflictError(
                    f"report {report.report_id} was stored with other content; "
                    "send a correction with a new report_id that amends it",
                    code="report.conflict",
                    message_id="laporan dengan ID ini sudah ada dengan isi berbeda; kirim koreksi",
                )
            return self._receipt(existing, duplicate=True)
        kind = "tally" if isinstance(report, TallyReport) else "situation"
        if report.amends is not None:
            target = known.get(report.amends.report_id)
            if target is None:
                raise ConflictError(
                    f"report {report.report_id} amends {report.amends.report_id}, "
                    "which this desk does not hold",
                    code="report.amends_unknown",
                    message_id="laporan yang dikoreksi tidak ditemukan",
                )
            head = heads[target.chain_id]
            if (head.kind, head.station, head.contest) != (kind, station, report.contest):
                raise ConflictError(
                    "a correction must be of the same kind, TPS and contest as what it amends",
                    code="report.conflict",
                    message_id="koreksi harus untuk jenis laporan, TPS dan pemilihan yang sama",
                )
            if report.amends.version != head.version:
                raise ConflictError(
                    f"report {report.report_id} amends version {report.amends.version}, "
                    f"but the newest version is {head.version}",
                    code="report.stale_version",
                    message_id=(
                        f"koreksi untuk versi {report.amends.version}, padahal versi terbaru "
                        f"adalah {head.version}"
                    ),
                )
            chain_id, version = head.chain_id, head.version + 1
            batch.statuses[head.report_id] = ReportStatus.SUPERSEDED
            superseded = attrs.evolve(head, status=ReportStatus.SUPERSEDED)
            known[head.report_id] = superseded
        else:
            chain_id, version = report.report_id, 1
        verdict = p.verdict
        violations = () if verdict is None else verdict.violations
        if verdict is not None and violations and not verdict.ok:
            status, outcome = ReportStatus.FLAGGED, _FLAGGED
        else:
            status, outcome = ReportStatus.ACCEPTED, _ACCEPTED
        stage = report.stage.value if isinstance(report, SituationReport) else _COUNTING
        report_id = report.report_id
        stored = StoredReport(
            report_id,
            chain_id,
            version,
            kind,
            station,
            report.contest,
            report.monitor,
            stage,
            report.observed_at,
            now,
            p.digest,
            p.payload,
            status,
            _violations_json(verdict) if violations else "[]",
            principal.id,
            _ROLE_VALUE[principal.role],
            outcome,
        )
        if isinstance(report, TallyReport):
            key = (report.contest, station)
            state = states.get(key, _NO_STATE)
            if state.chain_id is not None and state.chain_id != chain_id:
                raise ConflictError(
                    f"TPS {report.station.label} already has a tally for {report.contest} "
                    f"(report {state.chain_id}); send a correction that amends it",
                    code="report.station_already_reported",
                    message_id=(
                        "TPS ini sudah mengirim hasil; kirim koreksi atas laporan sebelumnya"
                    ),
                )
            counted = (
                CountedTally(
                    report_id, version, _counters(report, p.station, self._options[report.contest])
                )
                if status is ReportStatus.ACCEPTED
                else None
            )
            recount.add(report.contest, report.station.village.value, state.counted, counted)
            states[key] = batch.stations[key] = StationState(chain_id, counted)
        batch.reports.append(stored)
        self._mark_stage(stored, states, batch, staged)
        known[report_id] = heads[chain_id] = stored
        if version > 1:
            kind_of_event = "corrected"
        else:
            kind_of_event = "flagged" if status is ReportStatus.FLAGGED else "accepted"
        return (stored, violations, kind_of_event, report, principal)

    def _mark_stage(
        self,
        stored: StoredReport,
        states: dict[StationKey, StationState],
        batch: WriteBatch,
        staged: StageCount,
    ) -> None:
        """The first report of its stage from its TPS marks the stage reported (see
        :mod:`sipantau_core.desk.stages`)."""
        stage = stored.stage
        assert stage is not None
        station = stored.station
        key = mark_key(stage, station)
        if states.get(key, _NO_STATE).chain_id is not None:
            return
        late = stored.received_at > self._deadlines.of(station)[stage]
        states[key] = batch.stations[key] = mark(stored.report_id, late)
        staged.add(station, stage, late=late, delta=1)
