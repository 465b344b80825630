"""``desk.audit``: the tamper-evident log of a desk, its verification, signed checkpoints,
and the proofs of its report tree.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import os
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

from sipantau_core.access import Action, Principal, Role, Target
from sipantau_core.audit import (
    GENESIS,
    ChainReport,
    Checkpoint,
    check_log,
    extends,
    verify_extends,
)
from sipantau_core.audit_leaves import batch_of, report_leaf_data
from sipantau_core.domain import RegionCode, StationCode
from sipantau_core.errors import (
    SipantauError,
    UnknownEntityError,
)
from sipantau_core.merkle import (
    Frontier,
    RangeRoot,
    consistency_path_of,
    heads_from_consistency,
    inclusion_path_of,
    root_from_inclusion,
)
from sipantau_core.ports import (
    AuditRecord,
    ReportFilter,
    Storage,
    StorageTx,
    StoredReport,
)
from sipantau_core.proofs import ConsistencyProof, InclusionProof
from sipantau_core.signing import (
    DeviceKey,
    PublicKey,
)

_T = TypeVar("_T")


class _Keeper(Protocol):
    """What the audit log reads of its desk."""

    @property
    def storage(self) -> Storage: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...

    def _guard(
        self,
        principal: Principal,
        action: Action,
        target: Target | None,
        *,
        what: str,
        released: bool = False,
        where: Target | None = None,
    ) -> None: ...

    def _audit_entry(
        self,
        principal: Principal,
        action: str,
        obj: str,
        outcome: str,
        at: datetime | None = None,
        *,
        where: Target | None = None,
    ) -> AuditRecord: ...

    def _read_audited(self, entry: AuditRecord, read: Callable[[StorageTx], _T]) -> _T: ...


def _desk_key_from_settings(settings: Mapping[str, Any]) -> DeviceKey | None:
    name = settings.get("desk_key_env")
    if not name:
        return None
    value = os.environ.get(str(name))
    if not value:
        raise SipantauError(
            f"the environment variable {name} (settings.desk_key_env) is not set",
            code="audit.key_missing",
        )
    try:
        seed = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        return DeviceKey.from_seed(seed)
    except (binascii.Error, ValueError):
        raise SipantauError(
            f"{name} must hold a 32-byte Ed25519 seed in base64url", code="audit.key_invalid"
        ) from None


def _leaves(tx: StorageTx, region: str | None = None) -> list[StoredReport]:
    """Every report with a leaf (of ``region``, a region code or a TPS's digits), in leaf
    order (no payloads)."""
    found = tx.reports(ReportFilter(region=region, heads_only=False, payload=False))
    numbered = [r for r in found if r.leaf_index is not None]
    numbered.sort(key=lambda r: r.leaf_index or 0)
    return numbered


def submission_record(report: StoredReport, batch_entry: AuditRecord) -> AuditRecord:
    """A report's leaf as the ``submit`` record a reader of the log sees (after its batch
    entry, with the batch's ``seq``, no link of its own: the batch's root covers it)."""
    return AuditRecord(
        at=report.received_at,
        principal=report.submitted_by,
        role=report.submitted_role,
        action="submit",
        object=f"report:{report.report_id}",
        outcome=report.submitted_status,
        seq=batch_entry.seq,
        detail=f"leaf:{report.leaf_index}",
        region=report.station,
    )


class AuditLog:
    """``desk.audit``: the tamper-evident record of who did what."""

    def __init__(self, desk: _Keeper, key: DeviceKey | None):
        self._desk = desk
        self._key = key

    @property
    def public_key(self) -> PublicKey | None:
        """The key that signs checkpoints (hand it to whoever keeps them)."""
        return self._key.public_key if self._key is not None else None

    def entries(self) -> list[AuditRecord]:
        """The chained entries, in order (for verification; use ``desk.history`` to read
        it as a principal). A batch of reports is one ``submit_batch`` entry here; see
        :meth:`records` for its reports."""
        with self._desk.storage.transaction() as tx:
            return tx.audit()

    def records(self, *, after: int = 0, region: str | None = None) -> list[AuditRecord]:
        """The log as a reader sees it: the chained entries with ``seq > after``, each
        batch entry followed by its reports as ``submit`` records (the principal and role
        that sent each, what it got, when, about which TPS; ``detail`` ``leaf:N``).

        With ``region`` (a region code or a TPS's 13 digits) the batches' ``submit``
        records are only those of its reports: the reports of that region are read, not
        every report of the log (a TPS's page on a national desk)."""
        with self._desk.storage.transaction() as tx:
            entries = tx.audit(after=after)
            batches = [b for b in map(batch_of, entries) if b is not None]
            if not batches:
                leaves = []
            elif region is None:  # the leaves of these batches only (after: the newest)
                lo, hi = min(b.first for b in batches), max(b.size for b in batches)
                leaves = tx.leaf_reports(lo, hi, payload=False)
            else:
                leaves = _leaves(tx, region)
        numbered = [r.leaf_index or 0 for r in leaves]  # in leaf order
        out: list[AuditRecord] = []
        for entry in entries:
            out.append(entry)
            batch = batch_of(entry)
            if batch is not None:
                # the leaves of this batch that were read (all, or those of the region)
                start = bisect.bisect_left(numbered, batch.first)
                stop = bisect.bisect_left(numbered, batch.size)
                out.extend(submission_record(r, entry) for r in leaves[start:stop])
        return out

    def verify(self, checkpoint: Checkpoint | None = None) -> ChainReport:
        """Recompute the hash chain, every report's leaf and every batch's tree root; with
        ``checkpoint``, also check that the log still extends it. The report names the
        first bad entry, or the first bad report (``leaf``, ``report_id``).

        The reports are read a part at a time in leaf order (:data:`~sipantau_core.audit.
        VERIFY_CHUNK` with their payloads), each part in a transaction of its own: a
        national log is verified in the memory of a part, and writers wait for no more
        than a part's read. Batches that writers append meanwhile are left for the next
        verification. (A backend that keeps the port's default ``leaf_reports``, which
        reads every report, is read at once, as before.)"""
        storage = self._desk.storage
        with storage.transaction() as tx:
            entries = tx.audit()
            ranged = type(tx).leaf_reports is not StorageTx.leaf_reports
        last = (entries[-1].seq, entries[-1].link) if entries else (0, GENESIS)
        report = check_log(
            entries,
            _PartByPart(storage),
            chunk=None if ranged else _WHOLE,
            grown=lambda size: _grown(storage, last, size),
        )
        if checkpoint is None:
            with storage.transaction() as tx:
                head = tx.audit_head()
                later = tx.audit(after=report.head[0]) if head != report.head else []
            if report.ok and not _head_fits(report.head, head, later):
                # The newest entries were deleted (or the head row altered).
                return ChainReport(
                    False,
                    len(entries),
                    report.head,
                    report.head[0] + 1,
                    f"the log ends at entry {report.head[0]} but its head records entry "
                    f"{head[0]}: entries were removed",
                    tree=report.tree,
                )
            return report
        if self._key is None:
            raise SipantauError(
                "this desk has no signing key to check checkpoints with", code="audit.no_key"
            )
        if not report.ok:
            return report
        return verify_extends(entries, checkpoint, self._key.public_key)

    def checkpoint(self) -> Checkpoint:
        """A signed statement of the log's head: its sequence and hash, and the report
        tree's size and root (the signed tree head), at the desk's time."""
        if self._key is None:
            raise SipantauError(
                "this desk has no signing key: set [settings] desk_key_env or pass desk_key "
                "to Desk.open",
                code="audit.no_key",
            )
        with self._desk.storage.transaction() as tx:
            seq, link = tx.audit_head(lock=True)  # and the tree with it
            tree = tx.log_tree()
        head = (tree.size, Frontier.from_text(tree.size, tree.frontier).root().hex())
        return Checkpoint.sign(seq, link, self._desk.clock(), self._key, head)

    # -- proofs --------------------------------------------------------------------------

    def inclusion_proof(
        self, report_id: UUID | str, *, principal: Principal, tree_size: int | None = None
    ) -> InclusionProof:
        """The proof that report ``report_id`` is in the log's report tree of
        ``tree_size`` leaves (default: the whole tree; pass a checkpoint's
        ``tree_size`` to check it against that checkpoint). For an auditor of the
        report's region, or whoever may read the report itself (its monitor, the desk
        staff of its region); the read is audited. The path holds hashes only."""
        report_id = report_id if isinstance(report_id, UUID) else _uuid(report_id)
        with self._desk.storage.transaction() as tx:
            found = tx.get_reports([report_id]).get(report_id)
        if found is None:
            raise UnknownEntityError(
                f"no report {report_id} at this desk",
                code="report.not_found",
                message_id=f"laporan {report_id} tidak ditemukan",
            )
        station = StationCode.parse(found.station)
        action = Action.READ_AUDIT if principal.role is Role.AUDITOR else Action.READ_REPORTS
        what = f"proof:report:{report_id}"
        self._desk._guard(principal, action, station, what=what)
        entry = self._desk._audit_entry(principal, "read_proof", what, "ok", where=station)
        index = found.leaf_index
        if index is None:
            raise SipantauError(
                f"report {report_id} has no leaf in the audit log", code="audit.no_leaf"
            )
        leaf = bytes.fromhex(found.leaf_hash)

        def prove(tx: StorageTx) -> tuple[int, list[bytes]]:
            whole = tx.log_tree().size
            size = whole if tree_size is None else tree_size
            if not index < size <= whole:
                raise SipantauError(
                    f"report {report_id} is leaf {index}: not in a tree of {size} leaves "
                    f"(the log's tree has {whole})",
                    code="audit.bad_size",
                )
            return size, inclusion_path_of(index, size, _range_root(tx))

        size, path = self._desk._read_audited(entry, prove)
        head = root_from_inclusion(index, size, leaf, path)
        assert head is not None  # a path made for this size
        return InclusionProof(
            report_id=report_id,
            leaf_index=index,
            leaf_hash=found.leaf_hash,
            leaf=report_leaf_data(found, index).decode("utf-8"),
            tree_size=size,
            root=head.hex(),
            path=tuple(h.hex() for h in path),
        )

    def consistency_proof(
        self, old_size: int, new_size: int | None = None, *, principal: Principal
    ) -> ConsistencyProof:
        """The proof that the report tree of ``old_size`` leaves is a prefix of the tree
        of ``new_size`` leaves (default: the whole tree). Hashes only: for any auditor
        (and the system); the read is audited."""
        scope = principal.scope if isinstance(principal.scope, RegionCode) else None
        what = f"proof:tree:{old_size}-{'' if new_size is None else new_size}"
        self._desk._guard(principal, Action.READ_AUDIT, scope, what=what, where=principal.scope)
        entry = self._desk._audit_entry(principal, "read_proof", what, "ok", where=scope)

        def prove(tx: StorageTx) -> ConsistencyProof:
            whole = tx.log_tree().size
            new = whole if new_size is None else new_size
            if not 0 <= old_size <= new <= whole:
                raise SipantauError(
                    f"no tree of {old_size} leaves inside one of {new} (the log's tree has "
                    f"{whole})",
                    code="audit.bad_size",
                )
            range_root = _range_root(tx)
            old_root = range_root(0, old_size)
            path = consistency_path_of(old_size, new, range_root)
            # the new head from the path (no third read of the leaves), unless there is
            # no path: the same tree, or the empty one
            heads = heads_from_consistency(old_size, new, old_root, path)
            if heads is not None:
                new_root = heads[1]
            else:
                new_root = old_root if old_size == new else range_root(0, new)
            return ConsistencyProof(
                old_size=old_size,
                new_size=new,
                old_root=old_root.hex(),
                new_root=new_root.hex(),
                path=tuple(h.hex() for h in path),
            )

        return self._desk._read_audited(entry, prove)


#: Leaf hashes read a part at a time for a proof (a national log has millions).
_PROOF_CHUNK = 65_536


def _range_root(tx: StorageTx) -> RangeRoot:
    """MTH of a range of the log's leaves, read from ``tx`` a part at a time: a proof
    holds a few hashes, never the whole log. A range with a leaf missing (a tampered log)
    is an error that says so."""

    def range_root(lo: int, hi: int) -> bytes:
        frontier = Frontier()
        for start in range(lo, hi, _PROOF_CHUNK):
            stop = min(hi, start + _PROOF_CHUNK)
            hashes = tx.leaf_hashes(start, stop)
            if len(hashes) != stop - start:
                raise SipantauError(
                    f"the audit log's tree lacks {stop - start - len(hashes)} of its leaves "
                    f"{start}-{stop - 1}: the log was altered (sipantau audit verify names "
                    "where)",
                    code="audit.broken",
                )
            frontier.extend(bytes.fromhex(h) for h in hashes)
        return frontier.root()

    return range_root


#: A part as large as any log: for a backend without a range read of its own.
_WHOLE = 2**62


class _PartByPart:
    """The storage's leaves for :func:`~sipantau_core.audit.check_log`, each read in a
    transaction of its own."""

    def __init__(self, storage: Storage):
        self._storage = storage

    def leaf_reports(
        self,
        start: int,
        stop: int | None = None,
        *,
        limit: int | None = None,
        payload: bool = True,
    ) -> list[StoredReport]:
        with self._storage.transaction() as tx:
            return tx.leaf_reports(start, stop, limit=limit, payload=payload)

    def unnumbered_reports(self, *, limit: int | None = None) -> list[StoredReport]:
        with self._storage.transaction() as tx:
            return tx.unnumbered_reports(limit=limit)


def _grown(storage: Storage, last: tuple[int, str], size: int) -> int:
    """The report tree's size now, from ``size`` leaves after entry ``last`` (sequence,
    link), as the entries appended since state it: only if they extend the chain, and
    only as far as their batches follow one another from ``size``."""
    with storage.transaction() as tx:
        later = tx.audit(after=last[0])
    if not extends(last, later):
        return size
    for batch in map(batch_of, later):
        if batch is None:
            continue
        if batch.first != size:
            break
        size = batch.size
    return size


def _head_fits(ended: tuple[int, str], head: tuple[int, str], later: list[AuditRecord]) -> bool:
    """Whether the log's recorded ``head`` is where the verified log ``ended``, or one
    of the entries appended since (``later``, which must extend it)."""
    if head == ended:
        return True
    return (
        head[0] > ended[0] and extends(ended, later) and any((e.seq, e.link) == head for e in later)
    )


def _uuid(text: str) -> UUID:
    try:
        return UUID(str(text))
    except ValueError:
        raise UnknownEntityError(
            f"not a report id (a UUID): {text!r}",
            code="report.not_found",
            message_id="ID laporan tidak dikenal",
        ) from None
