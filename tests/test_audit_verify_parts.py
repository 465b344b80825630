"""``desk.audit.verify()`` reads a national log a part at a time (#13), on memory, SQLite
and PostgreSQL.

- The reports are read in leaf order, ``VERIFY_CHUNK`` at a time (``leaf_reports``), never
  all at once (``reports``, on SQL); whatever the size of a part (one leaf, two, three, the
  default), tampering inside a batch, at a part's edge or not, gets the same report.
- Two reports at one leaf (a backend without a unique leaf index) are found whatever the
  parts, as before.
- PostgreSQL: a batch that another writer commits while the log is verified is not taken
  for reports inserted behind the desk's back; a report inserted past that batch still is.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import pytest

import sipantau_core.audit as audit_module
from sipantau_adapters.storage.sql.reads import _Reads
from sipantau_core import Desk
from sipantau_core.audit import check_log, verify_log
from sipantau_core.audit_leaves import report_leaf
from sipantau_core.ports import ReportFilter, StoredReport
from test_audit import SYSTEM, open_desk, situation
from test_audit_tree import Store, _delete, _insert, _move, _update, _with_a_batch, store

__all__ = ["store"]  # the fixture, from test_audit_tree

CHUNKS = [1, 2, 3, audit_module.VERIFY_CHUNK]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """The calls verify makes to read reports, on every backend's transaction class."""
    calls: list[tuple[str, Any]] = []
    from sipantau_adapters.storage.memory import _MemoryTx

    for cls in (_Reads, _MemoryTx):
        for name in ("leaf_reports", "reports"):
            original = getattr(cls, name)

            def spy(self: Any, *a: Any, _o: Any = original, _n: str = name, **k: Any) -> Any:
                calls.append((_n, (a, k)))
                return _o(self, *a, **k)

            monkeypatch.setattr(cls, name, spy)
    return calls


def _verify_with(desk: Desk, chunk: int, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(audit_module, "VERIFY_CHUNK", chunk)
    return desk.audit.verify()


def test_verify_reads_the_reports_a_part_at_a_time(
    store: Store, reads: list[tuple[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    desk = open_desk(store.storage())
    try:
        batch = _with_a_batch(desk)
        size = (batch[-1].leaf_index or 0) + 1
        reads.clear()
        report = _verify_with(desk, 3, monkeypatch)
        assert report.ok and report.tree[0] == size
        ranges = [a for name, (a, k) in reads if name == "leaf_reports" and k.get("limit") is None]
        # the tree's leaves once each, three at a time, in order
        assert ranges == [(start, start + 3) for start in range(0, size, 3)]
        if store.memory is None:  # SQL reads ranges of the leaf index, never every report
            assert [name for name, _ in reads if name == "reports"] == []
    finally:
        desk.close()


TAMPER = ["delete", "digest", "move", "late", "negative", "unnumbered", "cut"]


@pytest.mark.parametrize("action", TAMPER)
@pytest.mark.parametrize("where", [0, 1, 2, 4])
def test_the_same_report_whatever_the_size_of_the_parts(
    store: Store, action: str, where: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    desk = open_desk(store.storage())
    try:
        batch = _with_a_batch(desk)
        target = batch[where]
        size = (batch[-1].leaf_index or 0) + 1
        if action == "delete":
            _delete(store, target)
        elif action == "digest":
            _update(store, target, digest=target.digest[:-1] + "x")
        elif action == "move":
            _move(store, target, batch[where + 1] if where < 4 else batch[0])
        elif action == "late":
            forged = attrs.evolve(target, report_id=uuid.uuid4(), chain_id=uuid.uuid4())
            forged = attrs.evolve(forged, leaf_index=size + where)
            forged = attrs.evolve(forged, leaf_hash=report_leaf(forged, size + where).hex())
            _insert(store, forged, target)
        elif action == "negative":  # a leaf below the tree: in no batch either
            forged = attrs.evolve(target, report_id=uuid.uuid4(), chain_id=uuid.uuid4())
            forged = attrs.evolve(forged, leaf_index=-1 - where)
            _insert(store, forged, target)
        elif action == "unnumbered":
            forged = attrs.evolve(target, report_id=uuid.uuid4(), chain_id=uuid.uuid4())
            _insert(store, attrs.evolve(forged, leaf_index=None, leaf_hash=""), target)
        else:
            for r in batch[where:]:
                _delete(store, r)
        reports = [_verify_with(desk, chunk, monkeypatch) for chunk in CHUNKS]
        assert not reports[-1].ok, reports[-1]
        if action == "negative":
            assert (reports[-1].leaf, reports[-1].report_id) == (-1 - where, forged.report_id)
            assert "in no batch" in reports[-1].reason
        assert all(r == reports[-1] for r in reports), reports
    finally:
        desk.close()


def test_two_reports_at_one_leaf_are_found_whatever_the_parts() -> None:
    """The memory backend and SQL keep one report a leaf; ``verify_log`` over a list of
    reports (a third party's backend) may hold two: the second is named as inserted."""
    desk = open_desk()
    try:
        batch = _with_a_batch(desk)
        entries = desk.audit.entries()
        with desk.storage.transaction() as tx:
            stored = tx.reports(ReportFilter(heads_only=False))
        for k in (0, 2, 4):
            twin = attrs.evolve(batch[k], report_id=uuid.uuid4(), chain_id=uuid.uuid4())
            listed = [*stored, twin]
            expected = verify_log(entries, listed)
            assert (expected.ok, expected.report_id, expected.leaf) == (
                False,
                twin.report_id,
                batch[k].leaf_index,
            )
            assert "which another report holds" in expected.reason
            for chunk in CHUNKS:
                source = audit_module._Listed(listed)
                assert check_log(entries, source, chunk=chunk) == expected
    finally:
        desk.close()


# -- a log that grows while it is verified (PostgreSQL: reads see what commits) -----------


def _during_verify(monkeypatch: pytest.MonkeyPatch, act: Callable[[], None]) -> None:
    """Run ``act`` in another thread (its own connection) at the verification's first
    read of a part of the leaves."""
    original = _Reads.leaf_reports
    done: list[bool] = []

    def leaf_reports(self: Any, *a: Any, **k: Any) -> Any:
        if not done:
            done.append(True)
            worker = threading.Thread(target=act)
            worker.start()
            worker.join()
        return original(self, *a, **k)

    monkeypatch.setattr(_Reads, "leaf_reports", leaf_reports)


@pytest.mark.postgres
@pytest.mark.parametrize("stray", [False, True])
def test_a_batch_committed_during_verify_is_not_an_insertion(
    monkeypatch: pytest.MonkeyPatch, stray: bool
) -> None:
    from pg import fresh_schema

    with fresh_schema() as url:
        desk = open_desk(url)
        other = open_desk(url)
        store = Store("postgresql", url)
        try:
            batch = _with_a_batch(desk)
            before = desk.audit.verify()
            assert before.ok
            forged: list[StoredReport] = []

            def write() -> None:
                result = other.submit_many([situation(1), situation(3)], principal=SYSTEM)
                assert not result.errors
                if stray:  # and a report put past the new batch behind the desk's back
                    at = before.tree[0] + 2 + 5
                    fake = attrs.evolve(batch[0], report_id=uuid.uuid4(), chain_id=uuid.uuid4())
                    fake = attrs.evolve(fake, leaf_index=at)
                    fake = attrs.evolve(fake, leaf_hash=report_leaf(fake, at).hex())
                    _insert(store, fake, batch[0])
                    forged.append(fake)

            _during_verify(monkeypatch, write)
            report = desk.audit.verify()
            if stray:
                assert (report.ok, report.report_id) == (False, forged[0].report_id), report
                assert "in no batch" in report.reason
            else:
                # what was read when it began is verified; the new batch is for next time
                assert report.ok, report
                assert report.tree == before.tree
                monkeypatch.undo()
                assert desk.audit.verify().tree[0] == before.tree[0] + 2
        finally:
            other.close()
            desk.close()


def test_the_head_moved_back_behind_the_desks_back_is_found(tmp_path: Any) -> None:
    """The head row the storage keeps, set back to an earlier entry (or to the empty
    log): the next writer would chain onto an entry taken; verify says so."""
    path = tmp_path / "desk.db"
    store = Store("sqlite", f"sqlite:///{path}", path=path)
    desk = open_desk(store.storage())
    try:
        _with_a_batch(desk)
        entries = desk.audit.entries()
        assert desk.audit.verify().ok
        for seq, link in ((entries[-2].seq, entries[-2].link), (0, "0" * 64)):
            store.sql("UPDATE audit_head SET seq = ?, link = ?", (seq, link))
            report = desk.audit.verify()
            assert (report.ok, report.first_bad) == (False, entries[-1].seq + 1), report
            assert "its head records entry" in report.reason
    finally:
        desk.close()


@pytest.mark.postgres
def test_a_forged_batch_entry_written_during_verify_does_not_hide_a_report() -> None:
    """Entries appended while the log is verified extend the tree only as far as their
    batches follow one another from its end: a chained entry that claims the leaves from
    0 on hides nothing."""
    from pg import fresh_schema
    from sipantau_core.audit import chain
    from sipantau_core.audit_leaves import Batch, batch_entry
    from sipantau_core.ports import WriteBatch

    with fresh_schema() as url:
        desk = open_desk(url)
        store = Store("postgresql", url)
        try:
            batch = _with_a_batch(desk)
            size = (batch[-1].leaf_index or 0) + 1
            stray = attrs.evolve(batch[0], report_id=uuid.uuid4(), chain_id=uuid.uuid4())
            stray = attrs.evolve(stray, leaf_index=size + 50)
            stray = attrs.evolve(stray, leaf_hash=report_leaf(stray, size + 50).hex())

            def forge() -> None:
                _insert(store, stray, batch[0])
                claim = batch_entry(
                    batch[0].received_at, "x", "system", Batch(0, 10**6, 10**6, "00")
                )
                with desk.storage.transaction() as tx:
                    tx.write(WriteBatch(audit=chain(tx.audit_head(lock=True), [claim])))

            mp = pytest.MonkeyPatch()
            try:
                _during_verify(mp, forge)
                report = desk.audit.verify()
            finally:
                mp.undo()
            assert (report.ok, report.report_id) == (False, stray.report_id), report
        finally:
            desk.close()
