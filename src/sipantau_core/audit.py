"""The tamper-evident audit log: a hash chain over every entry, a Merkle tree over every
report, and signed checkpoints.

Each entry's *leaf hash* is SHA-256 over a domain-separated canonical form of the entry
(its sequence number included); each *link* is SHA-256 over a different domain string,
the previous link and the leaf. Changing, deleting, inserting or reordering an entry
breaks every link from there on, and :func:`verify_chain` names the first bad entry.

Reports are not entries of their own (#13): each is a leaf of one RFC 6962 Merkle tree
(:mod:`sipantau_core.audit_leaves`), and each batch of them appends one chained
``submit_batch`` entry with the tree's size and root after it. :func:`verify_log`
recomputes the chain, every report's leaf and every batch's root, and names the first bad
entry or report.

A :class:`Checkpoint` (sequence, link, tree size, tree root, time) signed with the desk's
Ed25519 key can be handed to an outside party; :func:`verify_extends` later checks, with
the log and the checkpoint only, that the log still extends it.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Final, Protocol
from uuid import UUID

import attrs

from sipantau_core.audit_leaves import batch_of, report_leaf
from sipantau_core.merkle import EMPTY_ROOT, Frontier
from sipantau_core.ports import AuditRecord, StoredReport
from sipantau_core.signing import DeviceKey, PublicKey
from sipantau_core.wire import _json_str

__all__ = [
    "GENESIS",
    "ChainReport",
    "Checkpoint",
    "LeafSource",
    "chain",
    "check_log",
    "leaf_hash",
    "link_hash",
    "tree_at",
    "verify_chain",
    "verify_extends",
    "verify_log",
]

_LEAF: Final = b"sipantau/audit-leaf/v1\x00"
_LINK: Final = b"sipantau/audit-link/v1\x00"
_CHECKPOINT: Final = b"sipantau/audit-checkpoint/v1\x00"
_CHECKPOINT_V2: Final = b"sipantau/audit-checkpoint/v2\x00"
#: The link before the first entry.
GENESIS: Final = "0" * 64


def _utc(at: datetime) -> str:
    global _LAST_UTC  # the entries of a batch share one time: written once
    last = _LAST_UTC
    if last[0] is at:
        return last[1]
    text = at.astimezone(UTC).isoformat(timespec="microseconds")
    _LAST_UTC = (at, text)
    return text


_LAST_UTC: tuple[datetime | None, str] = (None, "")


def _canonical(entry: AuditRecord, seq: int) -> str:
    """The entry's canonical form with sequence ``seq``: the JSON object of every field
    but the link, keys sorted, no white space (as ``json.dumps(..., sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)`` writes it), built directly: the bulk
    path writes one entry per report."""
    str_ = str
    if not (
        type(seq) is int
        and type(entry.principal) is str_
        and type(entry.role) is str_
        and type(entry.action) is str_
        and type(entry.object) is str_
        and type(entry.outcome) is str_
        and type(entry.detail) is str_
        and type(entry.region) is str_
    ):
        body = {
            "seq": seq,
            "at": _utc(entry.at),
            "principal": entry.principal,
            "role": entry.role,
            "action": entry.action,
            "object": entry.object,
            "outcome": entry.outcome,
            "detail": entry.detail,
            "region": entry.region,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    q = _json_str
    return (
        f'{{"action":{q(entry.action)},"at":"{_utc(entry.at)}","detail":{q(entry.detail)},'
        f'"object":{q(entry.object)},"outcome":{q(entry.outcome)},'
        f'"principal":{q(entry.principal)},"region":{q(entry.region)},'
        f'"role":{q(entry.role)},"seq":{seq}}}'
    )


def leaf_hash(entry: AuditRecord) -> bytes:
    """SHA-256 over the entry's canonical form (every field but the link)."""
    return _leaf(entry, entry.seq)


def _leaf(entry: AuditRecord, seq: int) -> bytes:
    return hashlib.sha256(_LEAF + _canonical(entry, seq).encode("utf-8")).digest()


def _link(previous: str, leaf: bytes) -> str:
    return hashlib.sha256(_LINK + bytes.fromhex(previous) + leaf).hexdigest()


def link_hash(previous: str, entry: AuditRecord) -> str:
    """The link of ``entry`` after the link ``previous`` (hex)."""
    return _link(previous, leaf_hash(entry))


def chain(head: tuple[int, str], entries: Iterable[AuditRecord]) -> list[AuditRecord]:
    """Number ``entries`` after ``head`` (sequence, link) and link each to the one before."""
    seq, link = head
    previous = bytes.fromhex(link)
    out = []
    for entry in entries:
        seq += 1
        previous = hashlib.sha256(_LINK + previous + _leaf(entry, seq)).digest()
        link = previous.hex()
        out.append(
            AuditRecord(
                at=entry.at,
                principal=entry.principal,
                role=entry.role,
                action=entry.action,
                object=entry.object,
                outcome=entry.outcome,
                seq=seq,
                detail=entry.detail,
                region=entry.region,
                link=link,
            )
        )
    return out


@attrs.frozen
class ChainReport:
    """The result of checking a log: ``ok``, or the first bad entry's ``seq`` (the
    position where it was expected when entries are missing) and why. When a report is
    the first bad thing, ``leaf`` and ``report_id`` name it (``first_bad`` is then the
    batch entry it belongs to, if any). ``tree`` is the report tree's (size, root)."""

    ok: bool
    entries: int
    head: tuple[int, str]
    first_bad: int | None = None
    reason: str = ""
    leaf: int | None = None
    report_id: UUID | None = None
    tree: tuple[int, str] = (0, EMPTY_ROOT.hex())


def verify_chain(
    entries: Sequence[AuditRecord], start: tuple[int, str] = (0, GENESIS)
) -> ChainReport:
    """Recompute the chain from the start (or from ``start``, the (sequence, link) the
    entries follow); report the first entry that does not fit."""
    seq, link = start
    for entry in entries:
        if entry.seq != seq + 1:
            what = "missing or reordered" if entry.seq > seq + 1 else "inserted or reordered"
            return ChainReport(
                False,
                len(entries),
                (seq, link),
                seq + 1,
                f"entry {seq + 1} {what} (found sequence {entry.seq})",
            )
        expected = link_hash(link, attrs.evolve(entry, link=""))
        if entry.link != expected:
            return ChainReport(
                False,
                len(entries),
                (seq, link),
                entry.seq,
                f"entry {entry.seq} was altered (its hash does not match)",
            )
        seq, link = entry.seq, expected
    return ChainReport(True, len(entries), (seq, link))


@attrs.frozen
class Checkpoint:
    """A signed statement that the log had ``seq`` entries ending in ``link`` and its
    report tree ``tree_size`` leaves with head ``root`` (hex), at ``at``.

    Version 2 (#13, the signed tree head). A version-1 checkpoint (before #13: no tree,
    ``tree_size`` is ``None``) is still read from its wire form and checked as it was
    signed: it pins the chain only."""

    seq: int
    link: str
    at: datetime
    key_id: str
    signature: bytes
    tree_size: int | None = None
    root: str = ""

    @property
    def version(self) -> int:
        return 1 if self.tree_size is None else 2

    @staticmethod
    def message(
        seq: int, link: str, at: datetime, tree_size: int | None = None, root: str = ""
    ) -> bytes:
        if tree_size is None:
            return _CHECKPOINT + f"{seq}|{link}|{_utc(at)}".encode()
        return _CHECKPOINT_V2 + f"{seq}|{link}|{tree_size}|{root}|{_utc(at)}".encode()

    @classmethod
    def sign(
        cls,
        seq: int,
        link: str,
        at: datetime,
        key: DeviceKey,
        tree: tuple[int, str] | None = None,
    ) -> Checkpoint:
        """Sign (seq, link, at) and, with ``tree`` (size, root hex), the tree head."""
        size, root = tree if tree is not None else (None, "")
        message = cls.message(seq, link, at, size, root)
        return cls(seq, link, at, key.public_key.key_id, key.sign(message), size, root)

    def signature_ok(self, key: PublicKey) -> bool:
        return key.key_id == self.key_id and key.verify(
            self.signature, self.message(self.seq, self.link, self.at, self.tree_size, self.root)
        )

    def to_wire(self) -> dict[str, object]:
        out: dict[str, object] = {
            "seq": self.seq,
            "link": self.link,
            "at": _utc(self.at),
            "key_id": self.key_id,
            "signature": self.signature.hex(),
        }
        if self.tree_size is not None:
            out = {"version": 2, **out, "tree_size": self.tree_size, "root": self.root}
        return out

    @classmethod
    def from_wire(cls, data: dict[str, object]) -> Checkpoint:
        tree_size = data.get("tree_size")
        return cls(
            int(str(data["seq"])),
            str(data["link"]),
            datetime.fromisoformat(str(data["at"])),
            str(data["key_id"]),
            bytes.fromhex(str(data["signature"])),
            None if tree_size is None else int(str(tree_size)),
            str(data.get("root", "")),
        )


def verify_extends(
    entries: Sequence[AuditRecord], checkpoint: Checkpoint, key: PublicKey
) -> ChainReport:
    """Check that ``entries`` (the whole log, in order) is a valid chain that still holds
    the checkpoint: its signature is the desk's, and entry ``checkpoint.seq`` ends in
    ``checkpoint.link``."""
    if not checkpoint.signature_ok(key):
        return ChainReport(
            False, len(entries), (0, GENESIS), None, "the checkpoint's signature is not the desk's"
        )
    report = verify_chain(entries)
    if not report.ok:
        return report
    if checkpoint.seq == 0:
        return (
            report
            if checkpoint.link == GENESIS
            else ChainReport(
                False, len(entries), report.head, 0, "the checkpoint of an empty log is altered"
            )
        )
    if len(entries) < checkpoint.seq:
        return ChainReport(
            False,
            len(entries),
            report.head,
            len(entries) + 1,
            f"the log ends at {len(entries)}, before the checkpoint at "
            f"{checkpoint.seq}: entries were removed",
        )
    at = entries[checkpoint.seq - 1]
    if at.link != checkpoint.link:
        return ChainReport(
            False,
            len(entries),
            report.head,
            checkpoint.seq,
            f"entry {checkpoint.seq} no longer ends in the checkpoint's hash: "
            "the log was rewritten",
        )
    if checkpoint.tree_size is not None and tree_at(entries, checkpoint.seq) != (
        checkpoint.tree_size,
        checkpoint.root,
    ):
        return ChainReport(
            False,
            len(entries),
            report.head,
            checkpoint.seq,
            f"the log's report tree at entry {checkpoint.seq} is not the checkpoint's "
            f"({checkpoint.tree_size} leaves): the log was rewritten",
        )
    return report


def tree_at(entries: Sequence[AuditRecord], seq: int) -> tuple[int, str]:
    """The report tree's (size, root) as of entry ``seq``: the last batch entry's."""
    for entry in reversed(entries[:seq]):
        batch = batch_of(entry)
        if batch is not None:
            return batch.size, batch.root
    return 0, EMPTY_ROOT.hex()


def _leaf_ok(report: StoredReport, index: int) -> bytes | None:
    """The leaf hash of ``report`` as leaf ``index`` when it matches the stored one and
    the report's payload (read with the report: ``ReportFilter(payload=True)``) still
    hashes to its digest; ``None`` when not."""
    leaf = report_leaf(report, index)
    if leaf.hex() != report.leaf_hash:
        return None
    if hashlib.sha256(report.payload.encode()).hexdigest() != report.digest:
        return None  # the payload changed (or was blanked) under its digest
    return leaf


class LeafSource(Protocol):
    """What :func:`check_log` reads the log's reports from, a part at a time (a
    :class:`~sipantau_core.ports.StorageTx` is one)."""

    def leaf_reports(
        self,
        start: int,
        stop: int | None = None,
        *,
        limit: int | None = None,
        payload: bool = True,
    ) -> list[StoredReport]: ...

    def unnumbered_reports(self, *, limit: int | None = None) -> list[StoredReport]: ...


class _Listed:
    """The reports of a list as a :class:`LeafSource` (several at one leaf keep the
    list's order)."""

    def __init__(self, reports: Iterable[StoredReport]):
        listed = list(reports)
        self._numbered = sorted(
            (r for r in listed if r.leaf_index is not None), key=lambda r: r.leaf_index or 0
        )
        self._indexes = [r.leaf_index or 0 for r in self._numbered]
        self._unnumbered = sorted(
            (r for r in listed if r.leaf_index is None),
            key=lambda r: (r.received_at, r.report_id),
        )

    def leaf_reports(
        self,
        start: int,
        stop: int | None = None,
        *,
        limit: int | None = None,
        payload: bool = True,
    ) -> list[StoredReport]:
        lo = bisect.bisect_left(self._indexes, start)
        hi = len(self._indexes) if stop is None else bisect.bisect_left(self._indexes, stop)
        found = self._numbered[lo:hi]
        return found if limit is None else found[:limit]

    def unnumbered_reports(self, *, limit: int | None = None) -> list[StoredReport]:
        return self._unnumbered if limit is None else self._unnumbered[:limit]


def verify_log(entries: Sequence[AuditRecord], reports: Iterable[StoredReport]) -> ChainReport:
    """Recompute the chain, then every report's leaf and every batch's root, in the log's
    order; name the first bad entry, or the first bad report (its leaf and id): changed
    (its leaf no longer hashes the same, or its payload no longer hashes to its digest),
    deleted (a leaf of a batch without its report), inserted (a report in no batch), or
    moved to another place in the tree. A batch whose reports were rewritten together
    with their stored leaf hashes no longer hashes to its root: the batch is named.

    ``reports`` are read with their payloads (``ReportFilter(payload=True)``); see
    :func:`check_log` for a log too large to hold."""
    return check_log(entries, _Listed(reports))


#: Reports read at once by :func:`check_log` (with their payloads).
VERIFY_CHUNK = 16_384


class _Cursor:
    """The log's leaves in order, read from a :class:`LeafSource` ``chunk`` leaves at a
    time; reports that share a leaf (a tampered log without a unique index) after the
    first are kept aside."""

    def __init__(self, source: LeafSource, chunk: int):
        self._source, self._chunk = source, chunk
        self._rows: list[StoredReport] = []
        self._at = 0  # position in rows
        self._read_to = 0  # leaves read: [0, read_to)
        self.twice: StoredReport | None = None  # the first (leaf, id) of a shared leaf

    def take(self, index: int) -> StoredReport | None:
        """The report at leaf ``index`` (leaves are taken in order), or ``None``."""
        if index >= self._read_to:
            self.rest(index)  # what is left of the part before shares its leaves
            start = self._read_to
            self._read_to = start + self._chunk
            self._rows, self._at = self._source.leaf_reports(start, self._read_to), 0
        rows, at = self._rows, self._at
        while at < len(rows) and (rows[at].leaf_index or 0) < index:
            at += 1  # a second report at a leaf already taken
            self._second(rows[at - 1])
        found = None
        if at < len(rows) and rows[at].leaf_index == index:
            found = rows[at]
            at += 1
        self._at = at
        return found

    def _second(self, r: StoredReport) -> None:
        key = (r.leaf_index or 0, r.report_id)
        if self.twice is None or key < (self.twice.leaf_index or 0, self.twice.report_id):
            self.twice = r

    def rest(self, size: int) -> None:
        """Set aside the remaining reports read below leaf ``size``."""
        for r in self._rows[self._at :]:
            if (r.leaf_index or 0) < size:
                self._second(r)
        self._at = len(self._rows)


def check_log(
    entries: Sequence[AuditRecord],
    source: LeafSource,
    *,
    chunk: int | None = None,
    grown: Callable[[int], int] | None = None,
) -> ChainReport:
    """:func:`verify_log` over the reports of ``source``, read ``chunk`` leaves at a time
    (default :data:`VERIFY_CHUNK`) in leaf order: the memory it needs is that of a part,
    not of the whole log.

    For a log still being written, ``grown(size)`` tells the size of its tree now, from
    the tree of ``entries`` (``size`` leaves), as the entries appended since state it (if
    they extend the chain, their batches one after the other from ``size``): a report past
    the tree of ``entries`` but within that is a later batch's, not one inserted. A report
    at a negative leaf is in no batch."""
    chain_report = verify_chain(entries)
    if not chain_report.ok:
        return chain_report
    n, head = len(entries), chain_report.head
    cursor = _Cursor(source, chunk or VERIFY_CHUNK)
    frontier = Frontier()
    for entry in entries:
        batch = batch_of(entry)
        if batch is None:
            if entry.action == "submit_batch":
                return ChainReport(
                    False, n, head, entry.seq, f"entry {entry.seq} is a batch without its tree head"
                )
            continue
        if batch.first != frontier.size:
            return ChainReport(
                False,
                n,
                head,
                entry.seq,
                f"batch entry {entry.seq} starts at leaf {batch.first}, but the tree had "
                f"{frontier.size} leaves",
            )
        for i in range(batch.first, batch.size):
            found = cursor.take(i)
            if found is None:
                return ChainReport(
                    False,
                    n,
                    head,
                    entry.seq,
                    f"leaf {i} of batch entry {entry.seq} has no report: it was deleted",
                    leaf=i,
                )
            leaf = _leaf_ok(found, i)
            if leaf is None:
                return ChainReport(
                    False,
                    n,
                    head,
                    entry.seq,
                    f"report {found.report_id} (leaf {i}, batch entry {entry.seq}) was "
                    "altered or moved",
                    leaf=i,
                    report_id=found.report_id,
                )
            frontier.append(leaf)
        if frontier.root().hex() != batch.root:
            return ChainReport(
                False,
                n,
                head,
                entry.seq,
                f"batch entry {entry.seq}: its reports (leaves {batch.first}-{batch.last}) no "
                "longer hash to its root: they were rewritten",
            )
    tree = (frontier.size, frontier.root().hex())
    cursor.rest(frontier.size)
    beyond = _beyond(source, frontier.size, grown)
    below = source.leaf_reports(_FIRST_LEAF, 0, limit=1, payload=False)
    if below:
        beyond = below[0]
    if beyond is not None:
        r = beyond
        return ChainReport(
            False,
            n,
            head,
            None,
            f"report {r.report_id} (leaf {r.leaf_index}) is in no batch of the log: it was "
            "inserted",
            leaf=r.leaf_index,
            report_id=r.report_id,
            tree=tree,
        )
    if cursor.twice is not None:
        r = cursor.twice
        return ChainReport(
            False,
            n,
            head,
            None,
            f"report {r.report_id} claims leaf {r.leaf_index}, which another report holds: "
            "it was inserted",
            leaf=r.leaf_index,
            report_id=r.report_id,
            tree=tree,
        )
    unnumbered = source.unnumbered_reports(limit=1)  # the oldest
    if unnumbered:
        r = unnumbered[0]
        return ChainReport(
            False,
            n,
            head,
            None,
            f"report {r.report_id} has no leaf in the log: it was inserted",
            report_id=r.report_id,
            tree=tree,
        )
    return ChainReport(True, n, head, tree=tree)


#: Below any leaf index (a report numbered below 0 is in no batch).
_FIRST_LEAF: Final = -(2**63)


def _beyond(
    source: LeafSource, size: int, grown: Callable[[int], int] | None
) -> StoredReport | None:
    """The first report past the tree's ``size`` leaves that no batch holds (of those
    appended since, with ``grown``), or ``None``."""
    start = size
    for _ in range(_GROWN_TRIES):
        found = source.leaf_reports(start, None, limit=1, payload=False)
        if not found:
            return None
        first = found[0]
        now = grown(size) if grown is not None else size
        if (first.leaf_index or 0) >= now:
            return first
        start = now  # a batch committed since holds it: look past that batch
    return None  # a log that grew under every look: what was read is checked


#: How many times :func:`check_log` looks past a log that keeps growing while it reads.
_GROWN_TRIES: Final = 1000


def extends(head: tuple[int, str], later: Sequence[AuditRecord]) -> bool:
    """Whether ``later`` continue the chain after ``head`` (sequence, link)."""
    return verify_chain(later, start=head).ok
