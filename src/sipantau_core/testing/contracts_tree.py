"""The audit log's report tree in the contract suites (#13): a backend stores the
reports of a batch as the next leaves of the log's Merkle tree and the tree with the
log's head (:class:`LogTreeContract`, a part of ``StorageContract``); a desk on it makes
every report a leaf and verifies (:class:`DeskLogTreeContract`, a part of
``DeskContract``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import attrs
import pytest

from sipantau_core.access import Principal, Role
from sipantau_core.audit import chain
from sipantau_core.domain import SecurityStatus, SituationReport, Stage
from sipantau_core.errors import ConflictError
from sipantau_core.ports import (
    AuditRecord,
    LogTree,
    ReportStatus,
    Storage,
    StoredReport,
    WriteBatch,
)

if TYPE_CHECKING:
    from sipantau_core.desk import Desk

T0 = datetime(2024, 11, 27, 6, 0, tzinfo=UTC)
SYSTEM = Principal(id="import", role=Role.SYSTEM)
#: the TPS of ``contracts.small_deployment`` and their monitors
_TPS = {1: "1673011001001", 2: "1673011001002", 3: "1673021002001"}


def _stored(station: str) -> StoredReport:
    rid = uuid.uuid4()
    return StoredReport(
        report_id=rid, chain_id=rid, version=1, kind="situation", station=station,
        contest=None, monitor="LLG-0001", stage="pembukaan", observed_at=T0,
        received_at=T0, digest=f"{rid.int:064x}", payload="{}",
        status=ReportStatus.ACCEPTED, verdict="[]", submitted_by="tester",
    )  # fmt: skip


def _situation(n: int) -> SituationReport:
    return SituationReport(
        report_id=uuid.uuid4(),
        monitor=f"LLG-000{n}",
        station=_TPS[n],
        observed_at=T0 + timedelta(hours=1),
        stage=Stage.OPENING,
        status=SecurityStatus.SAFE,
    )


class LogTreeContract:
    """Reports numbered as leaves; the tree moves with the head."""

    def test_reports_numbered_as_leaves_move_the_tree_with_the_head(self, storage: Storage) -> None:
        a, b, c = _stored(_TPS[1]), _stored(_TPS[2]), _stored(_TPS[3])
        entry = AuditRecord(T0, "p", "system", "submit_batch", "leaves:0-1", "ok")
        with storage.transaction() as tx:
            assert tx.log_tree() == LogTree()
            head = tx.audit_head(lock=True)
            tx.write(
                WriteBatch(
                    reports=[a, b],
                    audit=chain(head, [entry]),
                    tree=LogTree(2, "ab" * 32),
                    leaves=["01" * 32, "02" * 32],
                )
            )
            assert tx.log_tree() == LogTree(2, "ab" * 32)
        with storage.transaction() as tx:
            found = tx.get_reports([a.report_id, b.report_id])
            assert (found[a.report_id].leaf_index, found[a.report_id].leaf_hash) == (0, "01" * 32)
            assert (found[b.report_id].leaf_index, found[b.report_id].leaf_hash) == (1, "02" * 32)
            assert tx.audit_head(lock=True)[0] == 1
            assert tx.log_tree() == LogTree(2, "ab" * 32)
        # a batch whose leaves do not start where the tree ends lost a race: nothing of it
        with storage.transaction() as tx:
            head = tx.audit_head(lock=True)
            stale = WriteBatch(
                reports=[c],
                audit=chain(head, [attrs.evolve(entry, object="leaves:1-1")]),
                tree=LogTree(2, "cd" * 32),
                leaves=["03" * 32],
            )
            with pytest.raises(ConflictError) as info:
                tx.write(stale)
        assert info.value.code == "storage.race"
        with storage.transaction() as tx:
            assert tx.get_reports([c.report_id]) == {}
            assert tx.log_tree() == LogTree(2, "ab" * 32)
            assert len(tx.audit()) == 1
        # a report written without a tree has no leaf
        with storage.transaction() as tx:
            tx.write(WriteBatch(reports=[c]))
        with storage.transaction() as tx:
            assert tx.get_reports([c.report_id])[c.report_id].leaf_index is None
            assert tx.log_tree().size == 2


class DeskLogTreeContract:
    """Every report the desk stores is a leaf; the log verifies."""

    def test_the_audit_log_holds_every_report_as_a_leaf(self, desk: Desk) -> None:
        v1 = _situation(1)
        first = desk.submit(v1, principal=SYSTEM)
        result = desk.submit_many([_situation(2), _situation(3), v1], principal=SYSTEM)
        receipts = [first, *result.receipts]
        assert [r.leaf_index for r in receipts] == [0, 1, 2, 0]  # the duplicate: its leaf
        assert receipts[1].tree_size == receipts[2].tree_size == 3
        report = desk.audit.verify()
        assert report.ok, report.reason
        assert report.tree == (3, receipts[1].tree_root)
        batches = [e for e in desk.audit.entries() if e.action == "submit_batch"]
        assert [e.object for e in batches] == ["leaves:0-0", "leaves:1-2"]
