"""The storage port: what a storage backend must offer the desk.

The desk works in transactions. In each it first *reads* what it needs (batch lookups,
locking the stations whose counts it will change), decides in Python, then *writes* one
:class:`WriteBatch`: new reports, status changes, the counted tally of each station, the
deltas of the aggregated counts, decisions, releases, audit entries and media (the photos
reports reference, by the SHA-256 of their bytes). A backend applies
the batch atomically, with the report id and the (chain, version) pair unique by
constraint. Backends: ``memory://`` and SQL (``sqlite:///``, ``postgresql://``) in
``sipantau_adapters``; a third party's passes the contract suite in
``sipantau_core.testing.contracts``.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any
from uuid import UUID

import attrs

__all__ = [
    "AggregateKey",
    "AuditRecord",
    "CountedTally",
    "Decision",
    "DeviceKeyRecord",
    "LogTree",
    "MediaRecord",
    "MonitorRecord",
    "NotificationRecord",
    "NotificationStatus",
    "ReleaseRecord",
    "ReportFilter",
    "ReportStatus",
    "StationKey",
    "StationState",
    "Storage",
    "StorageTx",
    "StoredReport",
    "TokenRecord",
    "WriteBatch",
]


class ReportStatus(enum.Enum):
    ACCEPTED = "accepted"  # counted (tallies) / on record (situation)
    FLAGGED = "flagged"  # stored, breaks a hard rule, kept out of the counts
    OVERRIDDEN = "overridden"  # flagged, then counted by a desk officer's decision
    REJECTED = "rejected"  # refused by a desk officer; not counted
    SUPERSEDED = "superseded"  # a newer version of the same report exists


COUNTED_STATUSES = frozenset({ReportStatus.ACCEPTED, ReportStatus.OVERRIDDEN})


@attrs.frozen
class StoredReport:
    """A report as the desk holds it: the canonical payload plus what the desk decided."""

    report_id: UUID
    chain_id: UUID  # the report_id of the chain's first version
    version: int
    kind: str  # "tally" | "situation"
    station: str  # 13-digit TPS code
    contest: str | None
    monitor: str
    stage: str | None
    observed_at: datetime
    received_at: datetime
    digest: str  # SHA-256 of the canonical bytes, hex
    payload: str  # canonical JSON
    status: ReportStatus
    verdict: str  # JSON list of violations ([] when none or not a tally)
    submitted_by: str
    #: the submitter's role and what the submission got (``accepted`` / ``flagged``):
    #: with the fields above, what the report's leaf in the audit log records
    submitted_role: str = ""
    submitted_status: str = ""
    #: the report's place in the audit log's Merkle tree (0, 1, 2, … in the order the
    #: desk stored them) and its leaf hash (hex), see :mod:`sipantau_core.audit`;
    #: ``None`` for a report written without a leaf (not through the desk)
    leaf_index: int | None = None
    leaf_hash: str = ""


#: (contest id, 13-digit TPS code)
StationKey = tuple[str, str]
#: (contest id, region code, counter name: "votes.N", "valid", "invalid", "total",
#: "stations", "registered")
AggregateKey = tuple[str, str, str]


@attrs.frozen
class CountedTally:
    """The contribution of a station's counted tally to the aggregates."""

    report_id: UUID
    version: int
    counters: Mapping[str, int]  # the same counter names as the aggregates


@attrs.frozen
class StationState:
    """Per (contest, station): which report chain holds its tally, and what counts."""

    chain_id: UUID | None = None
    counted: CountedTally | None = None


@attrs.frozen
class Decision:
    """A desk officer's decision on a report: ``override``, ``reject``, or
    ``acknowledge:N`` (incident N of a situation report seen and acted on)."""

    report_id: UUID
    action: str
    principal: str
    reason: str
    at: datetime


@attrs.frozen
class ReleaseRecord:
    """A region's aggregates released to viewers (for one contest, or all when ``None``)."""

    region: str
    contest: str | None
    principal: str
    at: datetime


@attrs.frozen
class AuditRecord:
    """One entry of the record of who did what: never personal data or figures.

    ``seq`` and ``link`` (the hash chain, see :mod:`sipantau_core.audit`) are assigned by
    the desk just before the write, after :meth:`StorageTx.audit_head`; ``region`` is the
    region or TPS the entry is about ("" when none), so auditors see their region's."""

    at: datetime
    principal: str
    role: str
    action: str
    object: str
    outcome: str
    seq: int = 0
    detail: str = ""
    region: str = ""
    link: str = ""


@attrs.frozen
class LogTree:
    """The audit log's Merkle tree over the report leaves, as of the log's head: its
    ``size`` (leaves) and right edge (``frontier``: the hex roots of its perfect
    subtrees, largest first, joined by commas; see
    :class:`sipantau_core.merkle.Frontier`)."""

    size: int = 0
    frontier: str = ""


@attrs.frozen
class DeviceKeyRecord:
    """A monitor's enrolled device key (Ed25519 public key, 32 bytes)."""

    key_id: str
    monitor: str
    public_key: bytes
    enrolled_by: str
    enrolled_at: datetime
    revoked_at: datetime | None = None
    revoked_by: str | None = None


@attrs.frozen
class TokenRecord:
    """A desk staff token, stored only as its hash, with the principal it stands for."""

    token_hash: str
    principal: str
    role: str
    scope: str  # "" for no scope (system)
    issued_by: str
    issued_at: datetime
    revoked_at: datetime | None = None


@attrs.frozen
class MonitorRecord:
    """A monitor enrolled at the desk; personal data sealed (AES-GCM, bound to the row and
    field, see :mod:`sipantau_core.sealing`), ``None`` where not given."""

    id: str
    station: str
    name: bytes | None
    phone: bytes | None
    national_id: bytes | None
    enrolled_by: str
    enrolled_at: datetime


@attrs.frozen
class MediaRecord:
    """A photo that a report references (a tally's ``sheet_sha256``, an incident's
    ``media_sha256``), stored under the SHA-256 of its bytes (``sha256``, lowercase hex):
    content-addressed, so the same bytes are stored once. ``content_type`` is what the
    desk read from the bytes (``image/jpeg``, ``image/png``, ``image/webp``); ``size``
    the number of bytes; who uploaded it first, and when."""

    sha256: str
    content_type: str
    size: int
    data: bytes
    uploaded_by: str
    uploaded_at: datetime


class NotificationStatus(enum.Enum):
    """Where a queued notification stands."""

    PENDING = "pending"  # to be sent (again) at ``next_attempt_at``
    SENT = "sent"  # delivered
    GIVEN_UP = "given_up"  # not delivered, and no longer tried: ``given_up_reason`` says why


@attrs.frozen
class NotificationRecord:
    """One alert for one recipient of one channel, in the desk's durable queue (see
    :mod:`sipantau_core.notify`).

    ``dedupe_key`` (unique by constraint) is derived from the event, the escalation rule,
    the channel and the recipient: the same event is queued once per rule and recipient.
    ``payload`` is the alert's JSON (facts, never personal data); the message is rendered
    from it at send time, redacted to the channel's clearance. ``seq`` is assigned by the
    storage when the record is first written (the queue's order); ``attempts``,
    ``next_attempt_at``, ``last_error``, ``sent_at``, ``message_id`` (the message it went
    out in) and ``given_up_reason`` are the delivery state."""

    dedupe_key: str
    event: str
    rule: str
    channel: str
    recipient: str
    kind: str
    payload: str
    created_at: datetime
    next_attempt_at: datetime
    status: NotificationStatus = NotificationStatus.PENDING
    attempts: int = 0
    last_error: str = ""
    sent_at: datetime | None = None
    message_id: str = ""
    given_up_reason: str = ""
    seq: int = 0


@attrs.define
class WriteBatch:
    """Everything one transaction writes."""

    reports: list[StoredReport] = attrs.field(factory=list)
    statuses: dict[UUID, ReportStatus] = attrs.field(factory=dict)
    stations: dict[StationKey, StationState] = attrs.field(factory=dict)
    aggregates: dict[AggregateKey, int] = attrs.field(factory=dict)
    decisions: list[Decision] = attrs.field(factory=list)
    releases: list[ReleaseRecord] = attrs.field(factory=list)
    audit: list[AuditRecord] = attrs.field(factory=list)
    device_keys: list[DeviceKeyRecord] = attrs.field(factory=list)
    tokens: list[TokenRecord] = attrs.field(factory=list)
    monitors: list[MonitorRecord] = attrs.field(factory=list)
    #: new notifications, queued unless one with the same ``dedupe_key`` is queued already
    notifications: list[NotificationRecord] = attrs.field(factory=list)
    #: the delivery state of queued notifications, replaced by ``dedupe_key``
    notification_updates: list[NotificationRecord] = attrs.field(factory=list)
    #: media, stored unless the same ``sha256`` is stored already (then skipped: not an
    #: error, and the first upload's record stays)
    media: list[MediaRecord] = attrs.field(factory=list)
    #: when the batch appends ``reports`` to the audit log's tree: the tree after them
    #: (stored with the log's head) and their leaf hashes, in order; report ``i`` is leaf
    #: ``tree.size - len(reports) + i``. ``None``: the reports get no leaf.
    tree: LogTree | None = None
    leaves: list[str] = attrs.field(factory=list)

    def add(self, key: AggregateKey, delta: int) -> None:
        if delta:
            self.aggregates[key] = self.aggregates.get(key, 0) + delta

    def __bool__(self) -> bool:
        return bool(
            self.reports
            or self.statuses
            or self.stations
            or any(self.aggregates.values())
            or self.decisions
            or self.releases
            or self.audit
            or self.device_keys
            or self.tokens
            or self.monitors
            or self.notifications
            or self.notification_updates
            or self.media
        )


@attrs.frozen
class ReportFilter:
    """Which reports to list. ``region`` is a region code prefix (or a TPS code)."""

    region: str | None = None
    station: str | None = None
    kind: str | None = None
    contest: str | None = None
    heads_only: bool = True  # only the newest version of each chain
    statuses: frozenset[ReportStatus] | None = None
    #: ``False``: the caller needs no payload (a count of stage reports), and a backend
    #: may leave it out (``""``) rather than read it; a backend may also ignore this.
    payload: bool = True
    #: ``True``: only situation reports that carry at least one incident (what a feed of
    #: incidents reads); a backend may also ignore this and return the others too.
    incidents: bool = False


class StorageTx(abc.ABC):
    """One transaction. Reads see the transaction's own state; :meth:`write` applies a
    batch. Leaving the context commits; an exception rolls everything back."""

    # -- reads ---------------------------------------------------------------------------

    @abc.abstractmethod
    def get_reports(self, report_ids: Iterable[UUID]) -> dict[UUID, StoredReport]:
        """The stored reports among ``report_ids``."""

    @abc.abstractmethod
    def chain_heads(self, chain_ids: Iterable[UUID]) -> dict[UUID, StoredReport]:
        """The newest version of each chain among ``chain_ids``."""

    @abc.abstractmethod
    def station_states(
        self, keys: Iterable[StationKey], *, lock: bool = False
    ) -> dict[StationKey, StationState]:
        """The state of each station (an empty :class:`StationState` when none). With
        ``lock``, concurrent transactions that lock the same stations wait for this one."""

    @abc.abstractmethod
    def aggregates(self, contest: str, region: str) -> dict[str, int]:
        """The counters of ``region`` for ``contest`` (empty when nothing counted)."""

    def aggregates_many(self, contest: str, regions: Iterable[str]) -> dict[str, dict[str, int]]:
        """:meth:`aggregates` of several regions, by region (those with nothing counted
        left out). A backend may override it with one read."""
        out: dict[str, dict[str, int]] = {}
        for region in dict.fromkeys(regions):
            found = self.aggregates(contest, region)
            if found:
                out[region] = found
        return out

    @abc.abstractmethod
    def reports(self, query: ReportFilter) -> list[StoredReport]:
        """Reports matching ``query``, ordered by received time then id."""

    def leaf_hashes(self, start: int, stop: int) -> list[str]:
        """The leaf hashes (hex) of the audit log's report tree from leaf ``start`` up to
        ``stop`` (excluded), in leaf order: what a Merkle proof is computed from, a part
        at a time (a national log has millions). Leaves missing from the range (a
        tampered log) are left out: the caller checks the count. A backend may override
        it with a range read of its own (the default reads every report, no payloads)."""
        found = self.reports(ReportFilter(heads_only=False, payload=False))
        leaves = sorted(
            (r.leaf_index, r.leaf_hash)
            for r in found
            if r.leaf_index is not None and start <= r.leaf_index < stop
        )
        return [leaf for _, leaf in leaves]

    def leaf_reports(
        self,
        start: int,
        stop: int | None = None,
        *,
        limit: int | None = None,
        payload: bool = True,
    ) -> list[StoredReport]:
        """The reports whose leaf index is ``start`` or more and less than ``stop``
        (``None``: no end), in leaf order (several at one leaf, in a tampered log: in the
        order of :meth:`reports`), at most ``limit`` of them; with their payloads unless
        ``payload=False``. What ``desk.audit.verify()`` reads, a part at a time. A backend
        may override it with a range read of its own (the default reads every report)."""
        found = self.reports(ReportFilter(heads_only=False, payload=payload))
        picked = [
            r
            for r in found
            if r.leaf_index is not None
            and r.leaf_index >= start
            and (stop is None or r.leaf_index < stop)
        ]
        picked.sort(key=lambda r: r.leaf_index or 0)  # stable: ties in reports() order
        return picked if limit is None else picked[:limit]

    def unnumbered_reports(self, *, limit: int | None = None) -> list[StoredReport]:
        """The reports that have no leaf in the log's tree (none, unless the log was
        tampered with), in the order of :meth:`reports`, at most ``limit`` (no payloads).
        A backend may override it (the default reads every report)."""
        found = self.reports(ReportFilter(heads_only=False, payload=False))
        picked = [r for r in found if r.leaf_index is None]
        return picked if limit is None else picked[:limit]

    @abc.abstractmethod
    def decisions(self, report_id: UUID | None = None) -> list[Decision]:
        """Decisions, on one report or all, in the order they were made."""

    @abc.abstractmethod
    def releases(self) -> list[ReleaseRecord]:
        """Every release, oldest first."""

    @abc.abstractmethod
    def audit(self, *, after: int = 0, limit: int | None = None) -> list[AuditRecord]:
        """Audit entries with ``seq > after``, in order."""

    @abc.abstractmethod
    def audit_head(self, *, lock: bool = False) -> tuple[int, str]:
        """The last audit entry's ``(seq, link)``, or ``(0, GENESIS)`` when the log is
        empty. With ``lock``, concurrent transactions that lock the head wait for this
        one (so the chain has one writer at a time)."""

    @abc.abstractmethod
    def log_tree(self) -> LogTree:
        """The audit log's Merkle tree as of its head (``LogTree()`` when no report is
        in it). Read after :meth:`audit_head` with ``lock``: it moves with the head."""

    @abc.abstractmethod
    def device_keys(
        self, *, key_ids: Iterable[str] | None = None, monitor: str | None = None
    ) -> list[DeviceKeyRecord]:
        """Enrolled device keys (revoked ones too), by key id and/or monitor."""

    @abc.abstractmethod
    def token(self, token_hash: str) -> TokenRecord | None:
        """The staff token stored under ``token_hash``."""

    @abc.abstractmethod
    def monitors(self, ids: Iterable[str] | None = None) -> dict[str, MonitorRecord]:
        """Enrolled monitors (all, or those in ``ids``)."""

    @abc.abstractmethod
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
        """Queued notifications in queue order (``seq``): with a status among
        ``statuses``, of ``channel``, with a ``dedupe_key`` among ``keys``, due
        (``next_attempt_at <= due``); at most ``limit``. With ``lock``, concurrent
        transactions that lock the same records wait for this one (so that one sender
        claims them)."""

    @abc.abstractmethod
    def media(self, sha256s: Iterable[str], *, data: bool = True) -> dict[str, MediaRecord]:
        """The stored media among ``sha256s``, by hash. ``data=False``: the caller needs
        the record only (content type, size, who, when), and a backend may leave
        ``data`` empty (``b""``) rather than read the bytes."""

    # -- the write -----------------------------------------------------------------------

    @abc.abstractmethod
    def write(self, batch: WriteBatch) -> None:
        """Apply ``batch``: insert reports (a duplicate report id or (chain, version)
        raises :class:`~sipantau_core.errors.ConflictError` with code ``storage.race``
        and the transaction must be abandoned), set statuses, replace station states,
        add the aggregate deltas, append decisions, releases and audit entries (with the
        ``seq`` and ``link`` they carry: a ``seq`` taken already is a ``storage.race``
        too), number the reports as leaves of the log's tree when ``tree`` is given and
        store it with the head (a tree that does not start where the stored one ends is a
        ``storage.race``, and so is a ``leaf_index`` taken already), insert or replace
        device keys (by key id), tokens (by hash) and monitors (by id), queue the new
        notifications (each numbered ``seq`` in batch order; one whose ``dedupe_key`` is
        queued already is skipped, not an error) and replace the delivery state of
        ``notification_updates`` by ``dedupe_key`` (keeping ``seq``; a key not queued is
        a ``storage.integrity`` ConflictError), and store the new media (one whose
        ``sha256`` is stored already, or comes twice in the batch, is stored once: the
        first record stays; not an error)."""


class Storage(abc.ABC):
    """A storage backend. Made by a plugin's ``sipantau_storage`` hook from a URL."""

    url: str = ""
    #: Several processes may write to this storage at once, each through its own handle
    #: (a database server, a database file); ``False`` for storage held in one process's
    #: memory. The parallel bulk path (``submit_many(..., workers=N)``) needs it.
    multi_process: bool = False

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[StorageTx]:
        """A new transaction (see :class:`StorageTx`). Raises
        :class:`~sipantau_core.errors.StorageError` (``storage.unavailable``) when the
        backend cannot be reached."""

    def close(self) -> None:  # noqa: B027 - optional for backends that hold nothing
        """Release connections."""

    def after_fork(self) -> None:  # noqa: B027 - optional for backends that hold nothing
        """In a child process forked from the one that opened this storage: drop the
        connections inherited from the parent (without closing them: they are the
        parent's) so that the child opens its own."""

    def info(self) -> Mapping[str, Any]:
        """What the backend is (for logs): never credentials."""
        return {"backend": type(self).__name__}


def iter_chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """``items`` in slices of ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
