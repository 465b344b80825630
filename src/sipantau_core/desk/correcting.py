"""Correcting the count: a desk officer overrides a flagged tally or rejects a report,
with a reason, on record.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import attrs

from sipantau_core.access import Action, Principal
from sipantau_core.desk._base import DeskBase
from sipantau_core.desk._records import (
    _counters,
    _not_found,
    _Recount,
)
from sipantau_core.desk.stages import StageCount, unmark
from sipantau_core.domain import SituationReport, StationCode, TallyReport
from sipantau_core.errors import ConflictError, SipantauError, UnknownEntityError
from sipantau_core.events import ReportEvent
from sipantau_core.ports import (
    CountedTally,
    Decision,
    ReportStatus,
    StationState,
    StorageTx,
    WriteBatch,
)
from sipantau_core.results import (
    Receipt,
    ReceiptStatus,
)
from sipantau_core.wire import parse_report


class Correcting(DeskBase):
    """A desk officer's decisions on a report: count a flagged tally anyway, or reject
    a report; and who decided what."""

    def override(self, report_id: UUID, *, principal: Principal, reason: str) -> Receipt:
        """Count a flagged tally anyway (a desk officer's decision, with a reason)."""
        return self._decide(report_id, principal, reason, "override")

    def reject(self, report_id: UUID, *, principal: Principal, reason: str) -> Receipt:
        """Refuse a report: it no longer counts (a desk officer's decision, with a reason)."""
        return self._decide(report_id, principal, reason, "reject")

    def _decide(self, report_id: UUID, principal: Principal, reason: str, action: str) -> Receipt:
        if not reason or not reason.strip():
            raise SipantauError(
                "a decision needs a reason",
                code="decision.reason_missing",
                message_id="keputusan harus disertai alasan",
            )
        now = self.clock()
        with self.storage.transaction() as tx:
            stored = tx.get_reports([report_id]).get(report_id)
            if stored is None:
                raise _not_found(report_id)
        self._guard(
            principal, Action.DECIDE, StationCode.parse(stored.station), what=f"report:{report_id}"
        )
        receipt = self._in_transaction(
            lambda tx: self._decide_in(tx, report_id, principal, reason, action, now)
        )
        report = parse_report(stored.payload)
        kind = "overridden" if action == "override" else "rejected"
        self.plugins.report_event(
            self._as_view(), ReportEvent(kind, report, receipt, principal, now, reason)
        )
        return receipt

    def _decide_in(
        self,
        tx: StorageTx,
        report_id: UUID,
        principal: Principal,
        reason: str,
        action: str,
        now: datetime,
    ) -> Receipt:
        stored = tx.get_reports([report_id]).get(report_id)
        if stored is None:
            raise _not_found(report_id)
        head = tx.chain_heads([stored.chain_id])[stored.chain_id]
        if head.report_id != stored.report_id:
            raise ConflictError(
                f"report {report_id} is version {stored.version}; version {head.version} "
                "is newer: decide on that one",
                code="report.not_head",
                message_id="keputusan hanya untuk versi laporan terbaru",
            )
        batch = WriteBatch()
        if action == "override":
            if stored.status is not ReportStatus.FLAGGED:
                raise ConflictError(
                    f"only a flagged tally can be overridden; report {report_id} is "
                    f"{stored.status.value}",
                    code="report.not_flagged",
                    message_id="hanya laporan yang ditandai yang dapat dihitung dengan keputusan",
                )
            new_status = ReportStatus.OVERRIDDEN
        else:
            if stored.status is ReportStatus.REJECTED:
                raise ConflictError(
                    f"report {report_id} is rejected already",
                    code="report.already_rejected",
                    message_id="laporan sudah ditolak",
                )
            new_status = ReportStatus.REJECTED
        if new_status is ReportStatus.REJECTED:
            # locked before the tally's station, as the submissions lock them
            staged = StageCount()
            unmark(tx, stored, self._deadlines, batch, staged)
            staged.into(batch.aggregates)
        if stored.kind == "tally":
            assert stored.contest is not None
            key = (stored.contest, stored.station)
            state = tx.station_states([key], lock=True)[key]
            station_code = StationCode.parse(stored.station)
            counted: CountedTally | None = None
            if new_status is ReportStatus.OVERRIDDEN:
                report = parse_report(stored.payload)
                assert isinstance(report, TallyReport)
                counted = CountedTally(
                    stored.report_id,
                    stored.version,
                    _counters(
                        report,
                        self.deployment.stations[station_code],
                        self._options[stored.contest],
                    ),
                )
            recount = _Recount()
            recount.add(stored.contest, station_code.village.value, state.counted, counted)
            recount.into(batch.aggregates)
            batch.stations[key] = StationState(chain_id=state.chain_id, counted=counted)
        batch.statuses[report_id] = new_status
        batch.decisions.append(Decision(report_id, action, principal.id, reason.strip(), now))
        batch.audit.append(
            self._audit_entry(
                principal,
                action,
                f"report:{report_id}",
                new_status.value,
                now,
                where=StationCode.parse(stored.station),
            )
        )
        self._commit(tx, batch)
        decided: ReceiptStatus = "overridden" if action == "override" else "rejected"
        return attrs.evolve(self._receipt(stored), status=decided)

    def acknowledge(
        self, report_id: UUID, incident: int, *, principal: Principal, note: str = ""
    ) -> Decision:
        """Record that a desk officer has seen incident ``incident`` (its position in the
        situation report) and is acting on it, with an optional note: a
        :class:`~sipantau_core.ports.Decision` of action ``acknowledge:N`` and an audit
        entry. Officers and coordinators, within their region."""
        with self.storage.transaction() as tx:
            stored = tx.get_reports([report_id]).get(report_id)
        if stored is None:
            raise _not_found(report_id)
        station = StationCode.parse(stored.station)
        self._guard(principal, Action.DECIDE, station, what=f"report:{report_id}")
        report = parse_report(stored.payload)
        if not isinstance(report, SituationReport) or not 0 <= incident < len(report.incidents):
            raise UnknownEntityError(
                f"report {report_id} has no incident #{incident}",
                code="incident.not_found",
                message_id="kejadian tidak ditemukan",
            )
        now = self.clock()
        decision = Decision(report_id, f"acknowledge:{incident}", principal.id, note.strip(), now)
        entry = self._audit_entry(
            principal, "acknowledge", f"incident:{report_id}:{incident}", "ok", now, where=station
        )
        self._write(WriteBatch(decisions=[decision], audit=[entry]))
        return decision

    def decisions(self, report_id: UUID, *, principal: Principal) -> list[Decision]:
        """Who overrode or rejected a report, when and why."""
        with self.storage.transaction() as tx:
            stored = tx.get_reports([report_id]).get(report_id)
        if stored is None:
            raise _not_found(report_id)
        self._guard(
            principal,
            Action.READ_REPORTS,
            StationCode.parse(stored.station),
            what=f"decisions:{report_id}",
        )
        with self.storage.transaction() as tx:
            found = tx.decisions(report_id)
        self._write_audit(
            self._audit_entry(
                principal,
                "read_reports",
                f"decisions:{report_id}",
                "ok",
                where=StationCode.parse(stored.station),
            )
        )
        return found
