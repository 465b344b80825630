"""The audit log in Merkle batches (#13), through a real desk on memory, SQLite and
PostgreSQL.

- Every report is a leaf of one RFC 6962 tree; each batch (a ``submit_many`` call, a
  single ``submit``) appends one chained ``submit_batch`` entry with the tree's size and
  root after it.
- Tampering inside a batch, behind the desk's back (the memory backend's state, plain
  SQL on SQLite and PostgreSQL): a report changed in any field the leaf covers, its
  payload, deleted, inserted (with or without a leaf), moved, the newest cut off, a
  report rewritten together with its stored leaf hash, a batch entry changed:
  ``desk.audit.verify()`` names the first bad report (leaf and id) or entry.
- Proofs: an inclusion proof for every report checks against a signed checkpoint; a
  consistency proof between two checkpoints; a scoped auditor gets its region's proofs
  only (the refusal and the read are audited) and sees hashes of the others; the receipt
  carries the leaf and the tree head.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest

import sipantau_core.desk.audit_log as audit_log_module
from pg import fresh_schema, libpq_url
from sipantau_adapters.storage.memory import MemoryStorage
from sipantau_core import Desk, PermissionDenied, Principal, Role, SipantauError
from sipantau_core.audit import Checkpoint, verify_extends
from sipantau_core.audit_leaves import batch_of, report_leaf
from sipantau_core.merkle import EMPTY_ROOT
from sipantau_core.ports import ReportFilter, StoredReport
from sipantau_core.proofs import (
    ConsistencyProof,
    InclusionProof,
    check_consistency,
    check_inclusion,
)
from sipantau_core.signing import DeviceKey
from test_audit import (
    COORDINATOR,
    DESK_KEY,
    SYSTEM,
    TPS,
    build_log,
    monitor,
    open_desk,
    situation,
    tally,
)


@attrs.define
class Store:
    kind: str
    url: str
    path: Path | None = None
    memory: MemoryStorage | None = None

    def storage(self) -> Any:
        return self.memory if self.memory is not None else self.url

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.path is not None:
            conn = sqlite3.connect(self.path)
            try:
                rows = conn.execute(statement, params).fetchall()
                conn.commit()
            finally:
                conn.close()
            return rows
        schema = self.url.rsplit("schema=", 1)[1]
        with psycopg.connect(libpq_url(self.url), options=f"-c search_path={schema}") as conn:
            cur = conn.execute(statement.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []

    def uid(self, value: uuid.UUID) -> str:
        return value.hex if self.kind == "sqlite" else str(value)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield Store("memory", "memory://", memory=MemoryStorage())
    elif request.param == "sqlite":
        path = tmp_path / "desk.db"
        yield Store("sqlite", f"sqlite:///{path}", path=path)
    else:
        with fresh_schema() as url:
            yield Store("postgresql", url)


def _with_a_batch(desk: Desk) -> list[StoredReport]:
    """The log of ``build_log``, then one batch of five situation reports (three TPS);
    the batch's reports in leaf order."""
    build_log(desk)
    result = desk.submit_many(
        [
            situation(1),
            situation(2),
            situation(2),
            situation(3),
            situation(1),
        ],
        principal=SYSTEM,
    )
    assert not result.errors, result.errors
    leaves = _leaves(desk)
    return leaves[-5:]


def _leaves(desk: Desk) -> list[StoredReport]:
    with desk.storage.transaction() as tx:
        found = tx.reports(ReportFilter(heads_only=False))
    return sorted((r for r in found if r.leaf_index is not None), key=lambda r: r.leaf_index or 0)


def test_each_batch_is_one_chained_entry_over_its_leaves(store: Store) -> None:
    desk = open_desk(store.storage())
    try:
        batch_reports = _with_a_batch(desk)
        entries = desk.audit.entries()
        batches = [(e, batch_of(e)) for e in entries if e.action == "submit_batch"]
        # build_log's single submits are batches of one; the last call a batch of five
        assert [b.count for _, b in batches if b] == [1, 1, 1, 1, 1, 5]
        assert not any(e.action == "submit" and e.outcome == "accepted" for e in entries)
        last_entry, last = batches[-1]
        assert last is not None
        assert [r.leaf_index for r in batch_reports] == list(range(last.first, last.size))
        assert last_entry.object == f"leaves:{last.first}-{last.last}"
        assert (last_entry.principal, last_entry.role) == ("import", "system")
        # about the smallest region holding its reports; a batch of one, about its TPS
        assert last_entry.region == "16.73"
        assert batches[0][0].region in TPS.values()
        # every leaf recomputes from its report
        for r in _leaves(desk):
            assert r.leaf_index is not None
            assert report_leaf(r, r.leaf_index).hex() == r.leaf_hash
        report = desk.audit.verify()
        assert report.ok, report
        assert report.tree == (last.size, last.root)
        # the reader's view lists each report after its batch entry
        records = desk.audit.records()
        at = records.index(last_entry)
        assert [(x.action, x.object) for x in records[at + 1 : at + 6]] == [
            ("submit", f"report:{r.report_id}") for r in batch_reports
        ]
        assert {x.outcome for x in records[at + 1 : at + 6]} == {"accepted"}
    finally:
        desk.close()


# -- tampering inside a batch -------------------------------------------------------------


def _update(store: Store, r: StoredReport, **changes: Any) -> None:
    """Change columns of a stored report behind the desk's back."""
    if store.memory is not None:
        state = store.memory._state
        state.reports[r.report_id] = attrs.evolve(state.reports[r.report_id], **changes)
        return
    sets = ", ".join(f"{k} = ?" for k in changes)
    values = []
    for k, v in changes.items():
        if k == "received_at":
            v = v.replace(tzinfo=None).isoformat(" ", "microseconds") if store.path else v
        values.append(v)
    store.sql(f"UPDATE reports SET {sets} WHERE report_id = ?", (*values, store.uid(r.report_id)))


def _delete(store: Store, r: StoredReport) -> None:
    if store.memory is not None:
        del store.memory._state.reports[r.report_id]
        return
    store.sql("DELETE FROM reports WHERE report_id = ?", (store.uid(r.report_id),))


def _insert(store: Store, r: StoredReport, source: StoredReport) -> None:
    """Insert ``r``: a copy of the stored ``source`` with ``r``'s ids and leaf fields."""
    if store.memory is not None:
        store.memory._state.reports[r.report_id] = r
        return
    store.sql(
        "INSERT INTO reports SELECT ?, ?, version, kind, station, contest, monitor, stage, "
        "observed_at, received_at, digest, payload, status, verdict, submitted_by, "
        "submitted_role, submitted_status, ?, ? FROM reports WHERE report_id = ?",
        (
            store.uid(r.report_id),
            store.uid(r.chain_id),
            r.leaf_index,
            r.leaf_hash,
            store.uid(source.report_id),
        ),
    )


def _move(store: Store, a: StoredReport, b: StoredReport) -> None:
    """Exchange the places of two reports in the tree (their leaf index and hash)."""
    if store.memory is not None:
        _update(store, a, leaf_index=b.leaf_index, leaf_hash=b.leaf_hash)
        _update(store, b, leaf_index=a.leaf_index, leaf_hash=a.leaf_hash)
        return
    _update(store, a, leaf_index=-1)
    _update(store, b, leaf_index=a.leaf_index, leaf_hash=a.leaf_hash)
    _update(store, a, leaf_index=b.leaf_index, leaf_hash=b.leaf_hash)


TAMPERING = [
    "blank-payload",
    "submitted_by",
    "submitted_role",
    "submitted_status",
    "station",
    "digest",
    "payload",
    "received_at",
    "version",
    "delete",
    "move",
]


@pytest.mark.parametrize("action", TAMPERING)
@pytest.mark.parametrize("where", [0, 2, 4])
def test_tampering_with_a_report_inside_a_batch_is_named(
    store: Store, action: str, where: int
) -> None:
    desk = open_desk(store.storage())
    try:
        batch = _with_a_batch(desk)
        assert desk.audit.verify().ok
        target = batch[where]
        expected_leaf, expected_id = target.leaf_index, target.report_id
        if action == "delete":
            _delete(store, target)
            expected_id = None
        elif action == "move":
            other = batch[where + 1] if where < 4 else batch[where - 1]
            _move(store, target, other)
            if where == 4:  # the earlier of the two is found first
                expected_leaf, expected_id = other.leaf_index, target.report_id
            else:
                expected_id = other.report_id
        elif action == "blank-payload":
            _update(store, target, payload="")
        elif action == "received_at":
            _update(store, target, received_at=target.received_at + timedelta(microseconds=1))
        elif action == "version":
            _update(store, target, version=target.version + 1)
        elif action == "station":
            _update(store, target, station=TPS[3] if target.station != TPS[3] else TPS[1])
        elif action == "submitted_status":
            _update(store, target, submitted_status="flagged")
        else:
            _update(store, target, **{action: getattr(target, action)[:-1] + "x"})
        report = desk.audit.verify()
        assert not report.ok
        assert (report.leaf, report.report_id) == (expected_leaf, expected_id), report
        assert str(expected_leaf) in report.reason
        batch_entry = [e for e in desk.audit.entries() if e.action == "submit_batch"][-1]
        assert report.first_bad == batch_entry.seq
    finally:
        desk.close()


def test_a_report_inserted_behind_the_desk_is_named(store: Store) -> None:
    desk = open_desk(store.storage())
    try:
        batch = _with_a_batch(desk)
        size = batch[-1].leaf_index + 1  # type: ignore[operator]
        # without a leaf
        forged = attrs.evolve(batch[2], report_id=uuid.uuid4(), chain_id=uuid.uuid4())
        _insert(store, attrs.evolve(forged, leaf_index=None, leaf_hash=""), batch[2])
        report = desk.audit.verify()
        assert (report.ok, report.report_id, report.leaf) == (False, forged.report_id, None)
        assert "no leaf" in report.reason
        _delete(store, forged)
        assert desk.audit.verify().ok
        # with a plausible leaf after the tree's end
        late = attrs.evolve(forged, leaf_index=size)
        late = attrs.evolve(late, leaf_hash=report_leaf(late, size).hex())
        _insert(store, late, batch[2])
        report = desk.audit.verify()
        assert (report.ok, report.report_id, report.leaf) == (False, late.report_id, size)
        assert "in no batch" in report.reason
    finally:
        desk.close()


def test_a_report_inserted_inside_a_batch_names_the_report_it_displaced(store: Store) -> None:
    """As for chained entries: a forged leaf with a correct hash at leaf i pushes the
    real leaf i to i + 1, where its own hash no longer fits."""
    desk = open_desk(store.storage())
    try:
        batch = _with_a_batch(desk)
        k = batch[2].leaf_index
        assert k is not None
        for r in reversed(batch[2:]):  # make room, from the end
            _update(store, r, leaf_index=(r.leaf_index or 0) + 1)
        forged = attrs.evolve(batch[2], report_id=uuid.uuid4(), chain_id=uuid.uuid4())
        forged = attrs.evolve(forged, leaf_index=k, leaf_hash=report_leaf(forged, k).hex())
        _insert(store, forged, batch[2])
        report = desk.audit.verify()
        assert (report.ok, report.leaf, report.report_id) == (False, k + 1, batch[2].report_id)
    finally:
        desk.close()


def test_a_report_rewritten_with_its_leaf_hash_breaks_its_batch_root(store: Store) -> None:
    desk = open_desk(store.storage())
    try:
        batch = _with_a_batch(desk)
        target = attrs.evolve(batch[1], submitted_by="mallory")
        assert target.leaf_index is not None
        _update(
            store,
            target,
            submitted_by="mallory",
            leaf_hash=report_leaf(target, target.leaf_index).hex(),
        )
        report = desk.audit.verify()
        batch_entry = [e for e in desk.audit.entries() if e.action == "submit_batch"][-1]
        assert (report.ok, report.first_bad, report.leaf) == (False, batch_entry.seq, None)
        assert "root" in report.reason
    finally:
        desk.close()


def test_the_newest_reports_cut_off_are_named(store: Store) -> None:
    desk = open_desk(store.storage())
    try:
        batch = _with_a_batch(desk)
        for r in batch[3:]:
            _delete(store, r)
        report = desk.audit.verify()
        assert (report.ok, report.leaf, report.report_id) == (False, batch[3].leaf_index, None)
    finally:
        desk.close()


def test_a_batch_entry_changed_or_cut_off_with_its_reports_is_found(store: Store) -> None:
    desk = open_desk(store.storage())
    try:
        batch = _with_a_batch(desk)
        entries = desk.audit.entries()
        last = entries[-1]
        assert last.action == "submit_batch"
        kept = desk.audit.checkpoint()
        if store.memory is not None:
            state = store.memory._state
            state.audit[-1] = attrs.evolve(
                last, detail=last.detail.replace('"count":5', '"count":4')
            )
            assert desk.audit.verify().first_bad == last.seq
            state.audit[-1] = last
            # the whole batch cut off: only a checkpoint taken before can tell
            del state.audit[-1]
            for r in batch:
                _delete(store, r)
            assert desk.audit.verify().ok
            report = desk.audit.verify(kept)
            assert (report.ok, report.first_bad) == (False, last.seq)
            return
        store.sql("UPDATE audit_log SET detail = ? WHERE seq = ?", ("{}", last.seq))
        assert desk.audit.verify().first_bad == last.seq
        store.sql("DELETE FROM audit_log WHERE seq = ?", (last.seq,))
        for r in batch:
            _delete(store, r)
        report = desk.audit.verify()  # the head still records the cut entry
        assert (report.ok, report.first_bad) == (False, last.seq)
        assert not desk.audit.verify(kept).ok
    finally:
        desk.close()


# -- checkpoints and proofs --------------------------------------------------------------


def test_every_report_has_an_inclusion_proof_against_a_signed_tree_head(store: Store) -> None:
    desk = open_desk(store.storage())
    try:
        _with_a_batch(desk)
        kept = Checkpoint.from_wire(json.loads(json.dumps(desk.audit.checkpoint().to_wire())))
        assert kept.version == 2 and kept.tree_size == len(_leaves(desk))
        public = desk.audit.public_key
        assert public is not None
        assert verify_extends(desk.audit.entries(), kept, public).ok
        for r in _leaves(desk):
            proof = desk.audit.inclusion_proof(r.report_id, principal=SYSTEM)
            again = InclusionProof.from_wire(json.loads(json.dumps(proof.to_wire())))
            assert again == proof
            assert check_inclusion(again, kept, public, leaf_hash_hex=r.leaf_hash).ok
            # a leaf, a path node or the place changed: refused
            assert not check_inclusion(attrs.evolve(proof, leaf_index=proof.leaf_index + 1))
            assert not check_inclusion(attrs.evolve(proof, leaf=proof.leaf.replace("i", "j", 1)))
            if proof.path:
                flipped = ("0" if proof.path[0][0] != "0" else "1") + proof.path[0][1:]
                assert not check_inclusion(attrs.evolve(proof, path=(flipped, *proof.path[1:])))
        # the proofs of the reports before the checkpoint still check once the log grew
        first = _leaves(desk)[0]
        desk.submit(situation(2), principal=SYSTEM)
        later = desk.audit.inclusion_proof(first.report_id, principal=SYSTEM)
        assert later.tree_size == kept.tree_size + 1  # type: ignore[operator]
        assert not check_inclusion(later, kept, public).ok  # another tree head
        pinned = desk.audit.inclusion_proof(
            first.report_id, principal=SYSTEM, tree_size=kept.tree_size
        )
        assert check_inclusion(pinned, kept, public).ok
    finally:
        desk.close()


def test_a_consistency_proof_shows_the_log_only_grew(store: Store) -> None:
    desk = open_desk(store.storage())
    try:
        empty = desk.audit.checkpoint()
        assert (empty.tree_size, empty.root) == (0, EMPTY_ROOT.hex())
        build_log(desk)
        old = desk.audit.checkpoint()
        _with_tail = desk.submit_many([situation(1), situation(2)], principal=SYSTEM)
        assert not _with_tail.errors
        new = desk.audit.checkpoint()
        public = desk.audit.public_key
        assert old.tree_size is not None and new.tree_size is not None
        proof = desk.audit.consistency_proof(old.tree_size, new.tree_size, principal=SYSTEM)
        back = ConsistencyProof.from_wire(json.loads(json.dumps(proof.to_wire())))
        assert check_consistency(back, old, new, public).ok
        assert check_consistency(
            desk.audit.consistency_proof(0, principal=SYSTEM), empty, new, public
        ).ok
        # the checkpoints swapped, or another key: refused
        assert not check_consistency(back, new, old, public).ok
        stranger = DeviceKey.from_seed(bytes(32)).public_key
        assert "signature" in check_consistency(back, old, new, stranger).reason
        other = Checkpoint.sign(new.seq, new.link, new.at, DESK_KEY, (new.tree_size, old.root))
        assert not check_consistency(back, old, other, public).ok
        # a report of the old tree rewritten (with its leaf): the old head no longer fits
        target = _leaves(desk)[1]
        assert target.leaf_index is not None
        changed = attrs.evolve(target, submitted_by="mallory")
        if store.memory is not None:
            store.memory._state.reports[target.report_id] = attrs.evolve(
                changed, leaf_hash=report_leaf(changed, target.leaf_index).hex()
            )
        else:
            store.sql(
                "UPDATE reports SET submitted_by = 'mallory', leaf_hash = ? WHERE report_id = ?",
                (report_leaf(changed, target.leaf_index).hex(), store.uid(target.report_id)),
            )
        rewritten = desk.audit.consistency_proof(old.tree_size, principal=SYSTEM)
        assert not check_consistency(rewritten, old, new, public).ok
    finally:
        desk.close()


def test_proofs_read_the_log_a_part_at_a_time_and_name_a_missing_leaf(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proofs read the leaf hashes in parts (here of 3 leaves; 65,536 otherwise), so
    that a national log is never held whole: the same proofs, which check; a leaf gone
    from the log is an error that says so, not a wrong proof."""
    desk = open_desk(store.storage())
    try:
        _with_a_batch(desk)
        before = desk.audit.checkpoint()
        desk.submit_many([situation(3), situation(1)], principal=SYSTEM)
        kept = desk.audit.checkpoint()
        public = desk.audit.public_key
        assert before.tree_size is not None and kept.tree_size is not None
        whole = [desk.audit.inclusion_proof(r.report_id, principal=SYSTEM) for r in _leaves(desk)]
        grew = desk.audit.consistency_proof(before.tree_size, principal=SYSTEM)
        monkeypatch.setattr(audit_log_module, "_PROOF_CHUNK", 3)
        for r, expected in zip(_leaves(desk), whole, strict=True):
            proof = desk.audit.inclusion_proof(r.report_id, principal=SYSTEM)
            assert proof == expected
            assert check_inclusion(proof, kept, public, leaf_hash_hex=r.leaf_hash).ok
        assert desk.audit.consistency_proof(before.tree_size, principal=SYSTEM) == grew
        assert check_consistency(grew, before, kept, public).ok
        # a report of the log deleted behind the desk's back
        gone = _leaves(desk)[2]
        if store.memory is not None:
            del store.memory._state.reports[gone.report_id]
        else:
            store.sql("DELETE FROM reports WHERE report_id = ?", (store.uid(gone.report_id),))
        last = _leaves(desk)[-1]
        with pytest.raises(SipantauError) as caught:
            desk.audit.inclusion_proof(last.report_id, principal=SYSTEM)
        assert caught.value.code == "audit.broken"
        assert "0-2" in str(caught.value)  # the part that lacks it
    finally:
        desk.close()


def test_the_history_of_a_tps_reads_only_its_reports(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``history(region=...)``, as a TPS's page asks it: the same records about that TPS
    as the whole history has, and no other TPS's reports, read through a filter on the
    region (not every report of the log); a scoped auditor's history reads its region's
    reports only, and is what it was."""
    desk = open_desk(store.storage())
    try:
        _with_a_batch(desk)
        auditor = Principal(id="aud", role=Role.AUDITOR, scope="16.73.01")
        whole = desk.history(principal=SYSTEM)
        scoped_before = [e for e in whole if _seen_by(auditor, e)]
        asked: list[str | None] = []
        real = audit_log_module._leaves

        def spy(tx: Any, region: str | None = None) -> Any:
            asked.append(region)
            return real(tx, region)

        monkeypatch.setattr(audit_log_module, "_leaves", spy)
        for n in (1, 2, 3):
            code = TPS[n]
            mine = desk.history(principal=SYSTEM, region=code)
            assert [e for e in mine if e.region == code] == [e for e in whole if e.region == code]
            # the batches' records of reports (``leaf:N``): this TPS's only
            submits = [e for e in mine if e.detail.startswith("leaf:")]
            assert submits and {e.region for e in submits} == {code}
        assert asked == [TPS[1], TPS[2], TPS[3]]
        scoped = desk.history(principal=auditor)
        assert asked[-1] == "167301"
        assert [(e.seq, e.action, e.object) for e in scoped] == [
            (e.seq, e.action, e.object) for e in scoped_before
        ]
    finally:
        desk.close()


def _seen_by(principal: Principal, record: Any) -> bool:
    from sipantau_core.desk._records import _visible

    return _visible(principal, record)


def test_a_scoped_auditor_proves_its_own_reports_and_sees_only_hashes() -> None:
    desk = open_desk()
    try:
        build_log(desk)
        district = Principal(id="aud-01", role=Role.AUDITOR, scope="16.73.01")
        public = desk.audit.public_key
        kept = desk.audit.checkpoint()
        mine = [r for r in _leaves(desk) if r.station.startswith("167301")]
        others = [r for r in _leaves(desk) if not r.station.startswith("167301")]
        assert mine and others
        for r in mine:
            proof = desk.audit.inclusion_proof(r.report_id, principal=district)
            assert check_inclusion(proof, kept, public).ok
            # hashes of the others only: no other report's id or TPS in the proof
            text = json.dumps(proof.to_wire())
            assert not any(str(o.report_id) in text or o.station in text for o in others)
        for r in others:
            with pytest.raises(PermissionDenied) as info:
                desk.audit.inclusion_proof(r.report_id, principal=district)
            assert info.value.code == "access.out_of_scope"
        entries = desk.audit.entries()
        assert [e.outcome for e in entries if e.action == "read_proof"] == ["ok"] * len(mine)
        assert entries[-1].outcome == "denied:access.out_of_scope"
        # the monitor of a TPS proves its own report; a viewer nothing
        own = next(r for r in mine if r.station == TPS[1])
        assert check_inclusion(
            desk.audit.inclusion_proof(own.report_id, principal=monitor(1)), kept, public
        ).ok
        with pytest.raises(PermissionDenied):
            desk.audit.inclusion_proof(own.report_id, principal=monitor(2))
        consistency = desk.audit.consistency_proof(0, principal=district)
        assert check_consistency(consistency).ok
        with pytest.raises(PermissionDenied):
            desk.audit.consistency_proof(0, principal=COORDINATOR)
        with pytest.raises(SipantauError) as bad:
            desk.audit.consistency_proof(5, 2, principal=SYSTEM)
        assert bad.value.code == "audit.bad_size"
    finally:
        desk.close()


def test_a_receipt_carries_the_leaf_and_the_tree_head_of_its_batch() -> None:
    desk = open_desk()
    try:
        first = desk.submit(tally(1, (7, 8), 1), principal=monitor(1))
        assert (first.leaf_index, first.tree_size) == (0, 1)
        batch = desk.submit_many([situation(2), situation(3)], principal=SYSTEM)
        receipts = batch.receipts
        assert [r.leaf_index for r in receipts] == [1, 2]
        assert {(r.tree_size, r.tree_root) for r in receipts} == {(3, desk.audit.verify().tree[1])}
        # later, the monitor checks its receipt with a proof against that tree head
        proof = desk.audit.inclusion_proof(
            first.report_id, principal=monitor(1), tree_size=first.tree_size
        )
        assert proof.root == first.tree_root
        assert check_inclusion(proof, leaf_hash_hex=first.leaf_hash).ok
        # a duplicate answers with the first submission's leaf
        again = desk.submit(tally(1, (7, 8), 1, report_id=first.report_id), principal=monitor(1))
        assert (again.status, again.leaf_index, again.leaf_hash) == (
            "duplicate",
            0,
            first.leaf_hash,
        )
    finally:
        desk.close()


def test_a_checkpoint_of_version_1_is_still_read_and_checked() -> None:
    desk = open_desk()
    try:
        build_log(desk)
        seq, link = desk.audit.entries()[-1].seq, desk.audit.entries()[-1].link
        old = Checkpoint.sign(seq, link, desk.clock(), DESK_KEY)
        wire = old.to_wire()
        assert "tree_size" not in wire and "version" not in wire  # the wire form before #13
        back = Checkpoint.from_wire(wire)
        assert back == old and back.version == 1
        assert desk.audit.verify(back).ok
        # a version-2 statement does not pass for a version-1 one, nor back
        new = desk.audit.checkpoint()
        assert not attrs.evolve(new, tree_size=None, root="").signature_ok(DESK_KEY.public_key)
        forged = attrs.evolve(new, tree_size=(new.tree_size or 0) + 1)
        assert not verify_extends(desk.audit.entries(), forged, DESK_KEY.public_key).ok
    finally:
        desk.close()
