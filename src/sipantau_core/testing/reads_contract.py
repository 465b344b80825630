"""The reads that serve screens of many regions and the audit log's proofs, part of
:class:`~sipantau_core.testing.contracts.StorageContract`: ``ReportFilter(incidents=True)``
keeps every report with an incident; ``leaf_hashes`` and ``leaf_reports`` read a range of
the log's leaves in leaf order, ``unnumbered_reports`` the reports without a leaf."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from sipantau_core.ports import (
    ReportFilter,
    ReportStatus,
    Storage,
    StoredReport,
    WriteBatch,
)

__all__ = ["ReadsContract"]

_T0 = datetime(2024, 11, 27, 6, 0, tzinfo=UTC)


def _canonical(payload: dict[str, Any]) -> str:
    """As the desk stores payloads: keys sorted, no white space."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _situation(payload: dict[str, Any], received_at: datetime) -> StoredReport:
    rid = uuid.uuid4()
    return StoredReport(
        report_id=rid,
        chain_id=rid,
        version=1,
        kind="situation",
        station="1673011001001",
        contest=None,
        monitor="LLG-0001",
        stage="pembukaan",
        observed_at=received_at - timedelta(minutes=5),
        received_at=received_at,
        digest=f"{rid.int:064x}"[-64:],
        payload=_canonical(payload),
        status=ReportStatus.ACCEPTED,
        verdict="[]",
        submitted_by="tester",
    )


class ReadsContract:
    """Reads for screens; the ``storage`` fixture is the subclass's."""

    def test_the_incident_filter_keeps_every_report_with_an_incident(
        self, storage: Storage
    ) -> None:
        """``ReportFilter(incidents=True)`` may leave out reports without incidents, never
        one with an incident (whatever its text holds)."""
        base = {"schema": "sipantau.situation/1", "stage": "pembukaan"}
        text = 'a "incidents":[] %_\\'
        with_one = _situation({**base, "incidents": [{"category": "x", "text": text}]}, _T0)
        without = _situation(
            {**base, "incidents": [], "note": '"incidents":[{'}, _T0 + timedelta(seconds=1)
        )
        with storage.transaction() as tx:
            tx.write(WriteBatch(reports=[with_one, without]))
        with storage.transaction() as tx:
            found = tx.reports(ReportFilter(kind="situation", incidents=True))
        assert with_one in found
        assert set(found) <= {with_one, without}

    def test_leaf_hashes_are_a_range_of_the_leaves_in_leaf_order(self, storage: Storage) -> None:
        """``leaf_hashes(start, stop)``: the leaf hashes of leaves ``start`` to ``stop - 1``,
        in leaf order whatever the order they were stored in; a report without a leaf is
        none of them."""
        base = {"schema": "sipantau.situation/1", "stage": "pembukaan"}
        leaves = [
            attrs.evolve(
                _situation(base, _T0 + timedelta(minutes=i)), leaf_index=i, leaf_hash=f"{i:064x}"
            )
            for i in range(9)
        ]
        random.Random(13).shuffle(leaves)
        with storage.transaction() as tx:
            tx.write(WriteBatch(reports=[*leaves, _situation(base, _T0)]))
        hashes = [f"{i:064x}" for i in range(9)]
        with storage.transaction() as tx:
            assert tx.leaf_hashes(0, 9) == hashes
            assert tx.leaf_hashes(2, 5) == hashes[2:5]
            assert tx.leaf_hashes(7, 100) == hashes[7:]
            assert tx.leaf_hashes(4, 4) == [] == tx.leaf_hashes(20, 30)

    def test_leaf_reports_are_a_range_of_the_leaves_in_leaf_order(self, storage: Storage) -> None:
        """``leaf_reports(start, stop, limit=, payload=)``: the reports of leaves ``start``
        to ``stop - 1`` (no end with ``stop=None``), in leaf order, at most ``limit``, with
        their payloads unless ``payload=False``; ``unnumbered_reports``: those without a
        leaf, oldest first (what ``desk.audit.verify()`` reads, a part at a time)."""
        base = {"schema": "sipantau.situation/1", "stage": "pembukaan"}
        leaves = [
            attrs.evolve(
                _situation({**base, "note": f"n{i}"}, _T0 + timedelta(minutes=i)),
                leaf_index=i,
                leaf_hash=f"{i:064x}",
            )
            for i in range(9)
        ]
        loose = [_situation(base, _T0 + timedelta(seconds=s)) for s in (30, 10, 20)]
        shuffled = [*leaves, *loose]
        random.Random(17).shuffle(shuffled)
        with storage.transaction() as tx:
            tx.write(WriteBatch(reports=shuffled))
        with storage.transaction() as tx:
            assert tx.leaf_reports(0, 9) == leaves
            assert tx.leaf_reports(2, 5) == leaves[2:5]
            assert tx.leaf_reports(7) == leaves[7:] == tx.leaf_reports(7, 100)
            assert tx.leaf_reports(3, None, limit=2) == leaves[3:5]
            assert tx.leaf_reports(4, 4) == [] == tx.leaf_reports(20) == tx.leaf_reports(9, 30)
            bare = tx.leaf_reports(1, 3, payload=False)
            assert [r.report_id for r in bare] == [r.report_id for r in leaves[1:3]]
            assert all(r.payload in ("", leaves[r.leaf_index or 0].payload) for r in bare)
            oldest = sorted(loose, key=lambda r: r.received_at)
            assert [r.report_id for r in tx.unnumbered_reports()] == [r.report_id for r in oldest]
            assert [r.report_id for r in tx.unnumbered_reports(limit=1)] == [oldest[0].report_id]
